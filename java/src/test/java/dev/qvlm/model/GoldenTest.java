package dev.qvlm.model;

import dev.qvlm.TestPaths;
import dev.qvlm.backend.Tensor;
import dev.qvlm.cpu.CpuBackend;
import dev.qvlm.safetensors.SafeTensors;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The CPU forward pass against HF transformers' FP32 outputs (golden.safetensors): vision features at layer -2,
 * projector output, decoder layer 0 output, logits at every position, and the greedy continuation.
 * Tolerance: max |Δ| ≤ 1e-3 · max(1, max |golden|).
 */
class GoldenTest {
    static Checkpoint ckpt;
    static SafeTensors golden;
    static LlavaModel model;

    @BeforeAll
    static void load() {
        ckpt = Checkpoint.open(TestPaths.tinyModel());
        golden = SafeTensors.open(TestPaths.golden().resolve("golden.safetensors"));
        model = new LlavaModel(ckpt.config(), ckpt.weights(), new CpuBackend());
    }

    @AfterAll
    static void close() {
        golden.close();
        ckpt.close();
    }

    static int[] ids(String s) {
        return Arrays.stream(golden.toLongArray(s + ".input_ids")).mapToInt(Math::toIntExact).toArray();
    }

    static void assertClose(String what, float[] expected, float[] actual) {
        assertEquals(expected.length, actual.length, what + " length");
        double maxAbs = 0, maxDiff = 0;
        for (int i = 0; i < expected.length; i++) {
            maxAbs = Math.max(maxAbs, Math.abs(expected[i]));
            maxDiff = Math.max(maxDiff, Math.abs(expected[i] - actual[i]));
        }
        double tol = 1e-3 * Math.max(1, maxAbs);
        System.out.printf("%-28s max|golden| %8.3f  max|Δ| %.2e  (tol %.1e)%n", what, maxAbs, maxDiff, tol);
        assertTrue(maxDiff <= tol, what + ": max |Δ| " + maxDiff + " > " + tol);
    }

    @ParameterizedTest
    @ValueSource(strings = {"s0", "s1", "s2", "s3"})
    void matchesHuggingFace(String s) {
        float[] pixels = golden.toFloatArray(s + ".pixel_values");
        Tensor feats = model.visionFeatures(pixels);
        assertClose(s + " vision_layer_m2", golden.toFloatArray(s + ".vision_layer_m2"), model.backend().download(feats));
        Tensor proj = model.project(feats);
        assertClose(s + " projector_out", golden.toFloatArray(s + ".projector_out"), model.backend().download(proj));

        int[] ids = ids(s);
        float[][] layer0 = new float[1][];
        model.setHooks(new ForwardHooks() {
            @Override
            public void layerOutput(Linear.Part stack, int layer, Tensor hidden) {
                if (stack == Linear.Part.LLM && layer == 0) layer0[0] = model.backend().download(hidden);
            }
        });
        KvCache cache = model.newCache(ids.length + 8);
        float[] logits = model.forward(cache, ids, proj, true);
        model.setHooks(null);
        assertClose(s + " llm_hidden_1", golden.toFloatArray(s + ".llm_hidden_1"), layer0[0]);
        assertClose(s + " logits", golden.toFloatArray(s + ".logits"), logits);

        // greedy continuation with the KV cache, one token at a time
        long[] gen = golden.toLongArray(s + ".generated");
        int vocab = ckpt.config().text().vocabSize();
        int[] out = new int[gen.length];
        float[] last = Arrays.copyOfRange(logits, logits.length - vocab, logits.length);
        for (int i = 0; i < gen.length; i++) {
            out[i] = argmax(last);
            if (i + 1 < gen.length) last = model.forward(cache, new int[]{out[i]}, null, false);
        }
        assertArrayEquals(Arrays.stream(gen).mapToInt(Math::toIntExact).toArray(), out, s + " greedy continuation");
    }

    static int argmax(float[] v) {
        int b = 0;
        for (int i = 1; i < v.length; i++) if (v[i] > v[b]) b = i;
        return b;
    }
}
