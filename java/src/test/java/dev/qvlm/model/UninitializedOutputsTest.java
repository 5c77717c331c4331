package dev.qvlm.model;

import dev.qvlm.TestPaths;
import dev.qvlm.backend.Backend;
import dev.qvlm.cpu.CpuBackend;
import org.junit.jupiter.api.Test;

import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Proxy;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The forward pass asks for {@link Backend#uninitialized} tensors only where the next op writes them whole (the GPU
 * skips their memset). Here every such tensor starts as NaN: a read before the write would spread NaN into the
 * logits, so prefill, decode and a batched step must give the CPU backend's logits bit for bit.
 */
class UninitializedOutputsTest {
    static Backend poisoning(CpuBackend cpu, int[] poisoned) {
        return (Backend) Proxy.newProxyInstance(Backend.class.getClassLoader(), new Class<?>[]{Backend.class},
                (proxy, m, args) -> {
                    if (m.getName().equals("uninitialized")) {
                        int rows = (int) args[0], cols = (int) args[1];
                        float[] nan = new float[rows * cols];
                        Arrays.fill(nan, Float.NaN);
                        poisoned[0]++;
                        return cpu.upload(nan, rows, cols);
                    }
                    try {
                        return m.invoke(cpu, args);
                    } catch (InvocationTargetException e) {
                        throw e.getCause();
                    }
                });
    }

    @Test
    void everyUninitializedTensorIsWrittenBeforeItIsRead() {
        try (Checkpoint ckpt = Checkpoint.open(TestPaths.tinyModel()); CpuBackend plain = new CpuBackend();
             CpuBackend inner = new CpuBackend()) {
            int[] poisoned = {0};
            LlavaModel ref = new LlavaModel(ckpt.config(), ckpt.weights(), plain);
            LlavaModel got = new LlavaModel(ckpt.config(), ckpt.weights(), poisoning(inner, poisoned));
            int[] prompt = {1, 319, 196, 310, 263, 8, 291}, more = {411, 292};
            KvCache a = ref.newCache(16), b = got.newCache(16);
            assertArrayEquals(ref.forward(a, prompt, null, false), got.forward(b, prompt, null, false), "prefill");
            for (int t : more) assertArrayEquals(ref.forward(a, new int[]{t}, null, false), got.forward(b, new int[]{t}, null, false), "decode");
            // a batch: two sequences' rows in one pass (the path that computes keys/values apart from the caches)
            KvCache a2 = ref.newCache(16), b2 = got.newCache(16);
            ref.forward(a2, more, null, false);
            got.forward(b2, more, null, false);
            assertArrayEquals(
                    ref.forwardLast(List.of(new LlavaModel.Sequence(a, new int[]{5}, null), new LlavaModel.Sequence(a2, new int[]{7, 9}, null))),
                    got.forwardLast(List.of(new LlavaModel.Sequence(b, new int[]{5}, null), new LlavaModel.Sequence(b2, new int[]{7, 9}, null))),
                    "batched step");
            assertTrue(poisoned[0] > 20, "the forward pass asked for " + poisoned[0] + " uninitialized tensors");
        }
    }
}
