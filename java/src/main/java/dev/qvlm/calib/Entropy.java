package dev.qvlm.calib;

import dev.qvlm.cpu.Parallel;

import java.util.List;

/**
 * The cross-layer dependency proxy of Q-VLM (Eq. 4–5). Each activation element x is softly assigned to the M
 * quantization levels q_m of its layer, p(x→q_m) ∝ exp(−(x − q_m)²/Δ) with Δ the level step; the joint level
 * histogram of consecutive layers is P(m, m') = (1/N) Σ_elements p_k(m)·p_{k+1}(m') over element pairs at the same
 * [token, channel] position, and D(k, k+1) = H(P) − H(P_k) is the conditional entropy of layer k+1's levels given
 * layer k's. Per-thread histograms are merged at the end (the same privatisation the GPU kernel uses).
 */
public final class Entropy {
    private Entropy() {}

    /** Uniform levels lo..hi (M of them) for a layer's output range. */
    public record Levels(double lo, double hi, int count) {
        public double step() {
            return count > 1 ? Math.max((hi - lo) / (count - 1), 1e-12) : 1;
        }
    }

    /** Result: joint histogram (M×M, normalised), D = H(joint) − H(marginal of a), and H of each marginal. */
    public record Dependency(double conditionalEntropy, double entropyA, double entropyB, double[] joint) {}

    /** Soft assignment of x to the levels; returns into w (length M), normalised. */
    public static void soft(double x, Levels lv, double[] w) {
        int M = lv.count();
        double step = lv.step();
        double max = Double.NEGATIVE_INFINITY;
        for (int m = 0; m < M; m++) {
            double d = x - (lv.lo() + m * step);
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

    /** a.get(s) and b.get(s) are the outputs of layers k and k+1 for sample s (same length, row-major). */
    public static Dependency dependency(List<float[]> a, List<float[]> b, Levels la, Levels lb) {
        int M = la.count(), Mb = lb.count();
        double[] joint = new double[M * Mb];
        long[] total = new long[1];
        Object lock = new Object();
        for (int s = 0; s < a.size(); s++) {
            float[] xa = a.get(s), xb = b.get(s);
            if (xa.length != xb.length) throw new IllegalArgumentException("layer outputs differ in size");
            Parallel.forRange(xa.length, 8192, (lo, hi) -> {
                double[] local = new double[M * Mb];
                double[] wa = new double[M], wb = new double[Mb];
                for (int i = lo; i < hi; i++) {
                    soft(xa[i], la, wa);
                    soft(xb[i], lb, wb);
                    for (int m = 0; m < M; m++) {
                        double pm = wa[m];
                        if (pm < 1e-12) continue;
                        int base = m * Mb;
                        for (int n = 0; n < Mb; n++) local[base + n] += pm * wb[n];
                    }
                }
                synchronized (lock) {
                    for (int i = 0; i < local.length; i++) joint[i] += local[i];
                }
            });
            total[0] += xa.length;
        }
        return fromJointSums(joint, total[0], M, Mb);
    }

    /**
     * D(k, k+1) = H(joint) − H(marginal of a) from the unnormalised joint sums (M×Mb, row-major) over
     * {@code count} elements; shared by the CPU accumulation above and the GPU kernel's.
     */
    public static Dependency fromJointSums(double[] sums, long count, int M, int Mb) {
        double[] joint = new double[M * Mb], ma = new double[M], mb = new double[Mb];
        double hJoint = 0, hA = 0, hB = 0;
        for (int m = 0; m < M; m++)
            for (int n = 0; n < Mb; n++) {
                double p = sums[m * Mb + n] / count;
                joint[m * Mb + n] = p;
                ma[m] += p;
                mb[n] += p;
                if (p > 0) hJoint -= p * Math.log(p);
            }
        for (double p : ma) if (p > 0) hA -= p * Math.log(p);
        for (double p : mb) if (p > 0) hB -= p * Math.log(p);
        return new Dependency(hJoint - hA, hA, hB, joint);
    }
}
