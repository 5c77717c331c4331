package dev.qvlm.backend;

/**
 * The calibration's statistics over host arrays: the reference semantics of {@link Backend#minMax},
 * {@link Backend#histogram} and {@link Backend#jointLevelSums} (a device computes the same where its tensors live;
 * the CUDA kernels are in cuda-kernels/calib.cuh).
 */
public final class Statistics {
    private Statistics() {}

    /** {min, max} of x[off, off+n), NaNs ignored; (+∞, −∞) when there is no number. */
    public static float[] minMax(float[] x, int off, int n) {
        float lo = Float.POSITIVE_INFINITY, hi = Float.NEGATIVE_INFINITY;
        for (int i = off; i < off + n; i++) {
            float v = x[i];
            if (v < lo) lo = v;
            if (v > hi) hi = v;
        }
        return new float[]{lo, hi};
    }

    /** hist[b] += the number of x[off, off+n) in bin b = ⌊(v − lo) / width⌋ (double), clamped to 0..hist.length−1. */
    public static void histogram(float[] x, int off, int n, double lo, double width, long[] hist) {
        int last = hist.length - 1;
        for (int i = off; i < off + n; i++) {
            int b = (int) ((x[i] - lo) / width);
            hist[Math.max(0, Math.min(last, b))]++;
        }
    }

    /**
     * Soft assignment of x to M uniform levels lo + m·step (Q-VLM Eq. 4): w[m] ∝ exp(−(x − q_m)² / step), normalised.
     */
    public static void softLevels(double x, double lo, double step, int M, double[] w) {
        double max = Double.NEGATIVE_INFINITY;
        for (int m = 0; m < M; m++) {
            double d = x - (lo + m * step);
            w[m] = -(d * d) / step;
            if (w[m] > max) max = w[m];
        }
        double s = 0;
        for (int m = 0; m < M; m++) {
            w[m] = Math.exp(w[m] - max);
            s += w[m];
        }
        for (int m = 0; m < M; m++) w[m] /= s;
    }

    /**
     * sums[m·Mb + k] += Σ_i p_a,i(m) · p_b,i(k) over the element pairs (a[aOff + i], b[bOff + i]), i in [from, to):
     * the unnormalised soft joint level histogram of Q-VLM's dependency proxy (Eq. 5); p_a(m) &lt; 1e-12 skipped.
     */
    public static void jointLevelSums(float[] a, int aOff, float[] b, int bOff, int from, int to, double loA,
                                      double stepA, int M, double loB, double stepB, int Mb, double[] sums) {
        double[] wa = new double[M], wb = new double[Mb];
        for (int i = from; i < to; i++) {
            softLevels(a[aOff + i], loA, stepA, M, wa);
            softLevels(b[bOff + i], loB, stepB, Mb, wb);
            for (int m = 0; m < M; m++) {
                double pm = wa[m];
                if (pm < 1e-12) continue;
                int base = m * Mb;
                for (int k = 0; k < Mb; k++) sums[base + k] += pm * wb[k];
            }
        }
    }
}
