package dev.qvlm.cuda;

import dev.qvlm.TestPaths;
import dev.qvlm.backend.Tensor;
import dev.qvlm.model.Checkpoint;
import dev.qvlm.model.ForwardHooks;
import dev.qvlm.model.KvCache;
import dev.qvlm.model.Linear;
import dev.qvlm.model.LlavaModel;
import dev.qvlm.safetensors.SafeTensors;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

/**
 * The tiny LLaVA end to end on the GPU against HF transformers' FP32 goldens (the same references as GoldenTest):
 * vision features, projector output, decoder layer 0, logits at every position with max |Δ| ≤ 2e-2, and the greedy
 * continuation with the KV cache, decoded by the device argmax. Both activation storages. GPU only.
 */
class CudaGoldenGpuTest {
    static Checkpoint ckpt;
    static SafeTensors golden;

    @BeforeAll
    static void load() {
        if (CudaRuntime.probe() != null) return; // each test then skips with the reason
        ckpt = Checkpoint.open(TestPaths.tinyModel());
        golden = SafeTensors.open(TestPaths.golden().resolve("golden.safetensors"));
    }

    @AfterAll
    static void close() {
        if (golden != null) golden.close();
        if (ckpt != null) ckpt.close();
    }

    static final double LIMIT = 2e-2;

    static void assertAbs(String what, float[] ref, float[] got) {
        // absolute limit: assertClose's scale factor is max(1, max|ref|), so divide it back out
        double maxAbs = 0;
        for (float v : ref) maxAbs = Math.max(maxAbs, Math.abs(v));
        GpuTests.assertClose(what, ref, got, LIMIT / Math.max(1, maxAbs));
    }

    @ParameterizedTest
    @CsvSource({"s0, F16", "s1, F16", "s2, F16", "s3, F16", "s0, F32", "s1, F32", "s2, F32", "s3, F32"})
    void matchesHuggingFace(String s, Storage storage) {
        GpuTests.requireGpu();
        try (CudaBackend gpu = CudaBackend.open(storage)) {
            LlavaModel model = new LlavaModel(ckpt.config(), ckpt.weights(), gpu);
            String tag = s + " [" + storage.suffix() + "] ";
            long t0 = System.nanoTime();
            Tensor feats = model.visionFeatures(golden.toFloatArray(s + ".pixel_values"));
            assertAbs(tag + "vision_layer_m2", golden.toFloatArray(s + ".vision_layer_m2"), gpu.download(feats));
            Tensor proj = model.project(feats);
            assertAbs(tag + "projector_out", golden.toFloatArray(s + ".projector_out"), gpu.download(proj));

            int[] ids = Arrays.stream(golden.toLongArray(s + ".input_ids")).mapToInt(Math::toIntExact).toArray();
            float[][] layer0 = new float[1][];
            model.setHooks(new ForwardHooks() {
                @Override
                public void layerOutput(Linear.Part stack, int layer, Tensor hidden) {
                    if (stack == Linear.Part.LLM && layer == 0) layer0[0] = gpu.download(hidden);
                }
            });
            long[] gen = golden.toLongArray(s + ".generated");
            KvCache cache = model.newCache(ids.length + gen.length + 1);
            float[] logits = model.forward(cache, ids, proj, true);
            model.setHooks(null);
            assertAbs(tag + "llm_hidden_1", golden.toFloatArray(s + ".llm_hidden_1"), layer0[0]);
            assertAbs(tag + "logits", golden.toFloatArray(s + ".logits"), logits);

            int vocab = ckpt.config().text().vocabSize();
            int[] out = new int[gen.length];
            float[] last = Arrays.copyOfRange(logits, logits.length - vocab, logits.length);
            for (int i = 0; i < gen.length; i++) {
                int[] dev = gpu.argmax(gpu.upload(last, 1, vocab));
                out[i] = dev[0];
                if (i + 1 < gen.length) last = model.forward(cache, new int[]{out[i]}, null, false);
            }
            assertArrayEquals(Arrays.stream(gen).mapToInt(Math::toIntExact).toArray(), out, tag + "greedy continuation");
            System.out.printf("%s%d prompt tokens + %d generated in %.1f ms; device memory: %s%n", tag, ids.length,
                    gen.length, (System.nanoTime() - t0) / 1e6, gpu.memoryReport());
        }
    }
}
