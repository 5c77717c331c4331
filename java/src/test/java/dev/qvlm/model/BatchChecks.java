package dev.qvlm.model;

import dev.qvlm.TestPaths;
import dev.qvlm.backend.Tensor;
import dev.qvlm.image.ImageProcessor;
import dev.qvlm.runtime.Llava;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The continuous-batching contract, shared by the CPU test and the GPU test. */
public final class BatchChecks {
    private BatchChecks() {}

    /**
     * Three sequences (two with an image, one text-only) prefilled alone, then decoded greedily for six steps in a
     * batch whose membership changes (one joins late, one leaves early): every batched logits row must equal the same
     * step run alone on a second cache: bit for bit when {@code tol} is 0 (the CPU), else within
     * {@code tol · max(1, max |alone|)} with the same greedy token (the GPU: cuBLAS picks its algorithm by row count,
     * so a batch of n rows sums in another order than one row; seen on an H200, 1 FP16 ulp).
     */
    public static void assertBatchMatchesAlone(Llava llava) {
        assertBatchMatchesAlone(llava, 0);
    }

    public static void assertBatchMatchesAlone(Llava llava, double tol) {
        LlavaModel model = llava.model();
        int vocab = model.config().text().vocabSize();
        ImageProcessor proc = llava.processor();
        Tensor img0 = model.encodeImage(proc.preprocess(TestPaths.data().resolve("images/eval_00000.png")));
        Tensor img1 = model.encodeImage(proc.preprocess(TestPaths.data().resolve("images/eval_00001.png")));
        int[][] prompts = {llava.promptIds(Llava.chatPrompt("Describe the image.")),
                llava.promptIds("USER: What color is a circle? ASSISTANT:"),
                llava.promptIds(Llava.chatPrompt("How many shapes are there?"))};
        Tensor[] images = {img0, null, img1};
        int S = prompts.length, steps = 6;
        KvCache[] alone = new KvCache[S], batched = new KvCache[S];
        int[] next = new int[S];
        for (int s = 0; s < S; s++) {
            alone[s] = model.newCache(prompts[s].length + steps + 1);
            batched[s] = model.newCache(prompts[s].length + steps + 1);
            float[] a = model.forward(alone[s], prompts[s], images[s], false);
            float[] b = model.forwardLast(List.of(new LlavaModel.Sequence(batched[s], prompts[s], images[s])));
            assertSame(a, b, tol, vocab, "prefill " + s);
            next[s] = dev.qvlm.generate.Sampler.argmax(a, 0, vocab);
        }
        for (int step = 0; step < steps; step++) {
            // the batch changes shape: sequence 1 joins late and sequence 0 leaves early, as in serving
            List<Integer> members = new ArrayList<>();
            for (int s = 0; s < S; s++) if (!(s == 1 && step < 2) && !(s == 0 && step >= 4)) members.add(s);
            List<LlavaModel.Sequence> batch = new ArrayList<>();
            for (int s : members) batch.add(new LlavaModel.Sequence(batched[s], new int[]{next[s]}, null));
            float[] all = model.forwardLast(batch);
            assertEquals(members.size() * vocab, all.length);
            for (int i = 0; i < members.size(); i++) {
                int s = members.get(i);
                float[] a = model.forward(alone[s], new int[]{next[s]}, null, false);
                assertSame(a, Arrays.copyOfRange(all, i * vocab, (i + 1) * vocab), tol, vocab, "step " + step + " sequence " + s);
                next[s] = dev.qvlm.generate.Sampler.argmax(a, 0, vocab);
            }
        }
        KvCache c = model.newCache(8);
        assertThrows(IllegalArgumentException.class, () -> model.forwardLast(List.of(
                new LlavaModel.Sequence(c, new int[]{1}, null), new LlavaModel.Sequence(c, new int[]{1}, null))));
    }

    private static void assertSame(float[] alone, float[] batched, double tol, int vocab, String what) {
        if (tol == 0) {
            assertArrayEquals(alone, batched, what);
            return;
        }
        assertEquals(alone.length, batched.length, what + " length");
        double maxAbs = 0, maxDiff = 0;
        for (int i = 0; i < alone.length; i++) {
            maxAbs = Math.max(maxAbs, Math.abs(alone[i]));
            double d = Math.abs((double) alone[i] - batched[i]);
            maxDiff = Double.isNaN(d) ? Double.POSITIVE_INFINITY : Math.max(maxDiff, d);
        }
        double limit = tol * Math.max(1, maxAbs);
        System.out.printf("%-28s max|alone| %8.3f  max|Δ| %.2e  (limit %.1e)%n", what, maxAbs, maxDiff, limit);
        assertTrue(maxDiff <= limit, what + ": max |Δ| " + maxDiff + " > " + limit);
        for (int r = 0; r + vocab <= alone.length; r += vocab)
            assertEquals(dev.qvlm.generate.Sampler.argmax(alone, r, vocab), dev.qvlm.generate.Sampler.argmax(batched, r, vocab),
                    what + ": greedy token of row " + r / vocab);
    }
}
