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

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import org.junit.jupiter.api.function.Executable;

import static org.junit.jupiter.api.Assertions.assertAll;
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

    /**
     * Intermediate activations (vision tower output, projector output, first LLM layer): relative to the largest
     * value, as {@link dev.qvlm.model.GoldenTest} (1e-3), doubled with FP16 activations, whose own rounding is up to
     * 4.9e-4 of each value. The first run on a card (H200) measured 8.9e-4 (FP16) and 3.2e-4 (FP32: the weights are
     * FP16 on the device in both modes) against an absolute 2e-2 that values of 40–150 cannot meet in FP16.
     */
    static void assertRelative(String what, Storage storage, float[] ref, float[] got) {
        GpuTests.assertClose(what, ref, got, storage == Storage.F16 ? 2e-3 : 1e-3);
    }

    /** Logits: absolute, 2e-2 (issue 8's acceptance). */
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
            // every comparison runs and reports, so a miss in the vision tower still shows how the logits fared
            List<Executable> checks = new ArrayList<>();
            Tensor feats = model.visionFeatures(golden.toFloatArray(s + ".pixel_values"));
            float[] featsOut = gpu.download(feats);
            checks.add(() -> assertRelative(tag + "vision_layer_m2", storage, golden.toFloatArray(s + ".vision_layer_m2"), featsOut));
            Tensor proj = model.project(feats);
            float[] projOut = gpu.download(proj);
            checks.add(() -> assertRelative(tag + "projector_out", storage, golden.toFloatArray(s + ".projector_out"), projOut));

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
            checks.add(() -> assertRelative(tag + "llm_hidden_1", storage, golden.toFloatArray(s + ".llm_hidden_1"), layer0[0]));
            checks.add(() -> assertAbs(tag + "logits", golden.toFloatArray(s + ".logits"), logits));

            int vocab = ckpt.config().text().vocabSize();
            int[] out = new int[gen.length];
            float[] last = Arrays.copyOfRange(logits, logits.length - vocab, logits.length);
            for (int i = 0; i < gen.length; i++) {
                int[] dev = gpu.argmax(gpu.upload(last, 1, vocab));
                out[i] = dev[0];
                if (i + 1 < gen.length) last = model.forward(cache, new int[]{out[i]}, null, false);
            }
            checks.add(() -> assertArrayEquals(Arrays.stream(gen).mapToInt(Math::toIntExact).toArray(), out, tag + "greedy continuation"));
            System.out.printf("%s%d prompt tokens + %d generated in %.1f ms; device memory: %s%n", tag, ids.length,
                    gen.length, (System.nanoTime() - t0) / 1e6, gpu.memoryReport());
            assertAll(tag, checks);
        }
    }
}
