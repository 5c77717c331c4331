package dev.qvlm.calib;

import dev.qvlm.backend.Statistics;
import dev.qvlm.cpu.CpuBackend;
import dev.qvlm.cpu.CpuTensor;

import java.util.List;

/**
 * The cross-layer dependency proxy of Q-VLM (Eq. 4–5). Each activation element x is softly assigned to the M
 * quantization levels q_m of its layer, p(x→q_m) ∝ exp(−(x − q_m)²/Δ) with Δ the level step; the joint level
 * histogram of consecutive layers is P(m, m') = (1/N) Σ_elements p_k(m)·p_{k+1}(m') over element pairs at the same
 * [token, channel] position, and D(k, k+1) = H(P) − H(P_k) is the conditional entropy of layer k+1's levels given
 * layer k's. The sums are {@link dev.qvlm.backend.Backend#jointLevelSums}, computed where the outputs live.
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

    /** Soft assignment of x to the levels; returns into w (length M), normalised ({@link Statistics#softLevels}). */
    public static void soft(double x, Levels lv, double[] w) {
        Statistics.softLevels(x, lv.lo(), lv.step(), lv.count(), w);
    }

    /** a.get(s) and b.get(s) are the outputs of layers k and k+1 for sample s (same length, row-major). */
    public static Dependency dependency(List<float[]> a, List<float[]> b, Levels la, Levels lb) {
        CpuBackend cpu = new CpuBackend();
        double[] joint = new double[la.count() * lb.count()];
        long total = 0;
        for (int s = 0; s < a.size(); s++) {
            float[] xa = a.get(s), xb = b.get(s);
            if (xa.length != xb.length) throw new IllegalArgumentException("layer outputs differ in size");
            cpu.jointLevelSums(new CpuTensor(xa, 0, 1, xa.length), new CpuTensor(xb, 0, 1, xb.length), la.lo(), la.step(),
                    la.count(), lb.lo(), lb.step(), lb.count(), joint);
            total += xa.length;
        }
        return fromJointSums(joint, total, la.count(), lb.count());
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
