package dev.qvlm.generate;

import java.util.Arrays;
import java.util.SplittableRandom;

/** Picks the next token from a logits row: greedy, or temperature + top-p (nucleus) sampling. */
public final class Sampler {
    private final SamplingOptions opts;
    private final SplittableRandom random;

    public Sampler(SamplingOptions opts) {
        this.opts = opts;
        this.random = new SplittableRandom(opts.seed());
    }

    public static int argmax(float[] v, int off, int n) {
        int b = 0;
        for (int i = 1; i < n; i++) if (v[off + i] > v[off + b]) b = i;
        return b;
    }

    public int next(float[] logits, int off, int n) {
        if (opts.temperature() <= 0f) return argmax(logits, off, n);
        double max = Double.NEGATIVE_INFINITY;
        for (int i = 0; i < n; i++) max = Math.max(max, logits[off + i]);
        double[] p = new double[n];
        double sum = 0;
        for (int i = 0; i < n; i++) {
            p[i] = Math.exp((logits[off + i] - max) / opts.temperature());
            sum += p[i];
        }
        for (int i = 0; i < n; i++) p[i] /= sum;
        Integer[] order = null;
        int keep = n;
        if (opts.topP() < 1f) {
            order = new Integer[n];
            for (int i = 0; i < n; i++) order[i] = i;
            final double[] pp = p;
            Arrays.sort(order, (a, b) -> Double.compare(pp[b], pp[a]));
            double cum = 0;
            keep = 0;
            while (keep < n) {
                cum += p[order[keep]];
                keep++;
                if (cum >= opts.topP()) break;
            }
        }
        double total = 0;
        for (int k = 0; k < keep; k++) total += p[order == null ? k : order[k]];
        double u = random.nextDouble() * total;
        for (int k = 0; k < keep; k++) {
            int id = order == null ? k : order[k];
            u -= p[id];
            if (u <= 0) return id;
        }
        return order == null ? keep - 1 : order[keep - 1];
    }
}
