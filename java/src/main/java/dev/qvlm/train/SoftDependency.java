package dev.qvlm.train;

import dev.qvlm.calib.Entropy;

import java.util.ArrayList;
import java.util.List;
import java.util.stream.IntStream;

/**
 * D(k, k+1) of paper Eq. 4–5 as a differentiable function of the two layer outputs (the L_ent term of VEO):
 * the same soft level assignment and joint histogram as {@link Entropy#dependency}, pooled over a batch, plus its
 * gradient with respect to every element. With P(m, m') = (1/N) Σ_e a_e(m) b_e(m') and D = H(P) − H(P_a):
 * ∂D/∂P(m, m') = log P_a(m) − log P(m, m') =: G, so ∂D/∂a_e = G b_e / N and ∂D/∂b_e = Gᵀ a_e / N; each soft
 * assignment is a softmax of z_m = −(x − q_m)²/Δ, whose backward gives ∂D/∂x = Σ_m a_m (g_m − ⟨a, g⟩)·(−2(x − q_m)/Δ).
 * The levels (min–max of each layer's outputs over the batch) are held constant.
 */
final class SoftDependency {
    private SoftDependency() {}

    record Result(double d, List<float[]> gradA, List<float[]> gradB) {}

    private static final double TINY = 1e-12;

    static Result compute(List<float[]> a, List<float[]> b, Entropy.Levels la, Entropy.Levels lb) {
        int M = la.count(), Mb = lb.count(), S = a.size();
        double[][] sums = new double[S][];
        long count = 0;
        for (int s = 0; s < S; s++) count += a.get(s).length;
        IntStream.range(0, S).parallel().forEach(s -> {
            double[] j = new double[M * Mb], wa = new double[M], wb = new double[Mb];
            float[] xa = a.get(s), xb = b.get(s);
            for (int i = 0; i < xa.length; i++) {
                Entropy.soft(xa[i], la, wa);
                Entropy.soft(xb[i], lb, wb);
                for (int m = 0; m < M; m++) for (int n = 0; n < Mb; n++) j[m * Mb + n] += wa[m] * wb[n];
            }
            sums[s] = j;
        });
        double[] joint = new double[M * Mb];
        for (double[] j : sums) for (int i = 0; i < joint.length; i++) joint[i] += j[i];
        Entropy.Dependency dep = Entropy.fromJointSums(joint, count, M, Mb);
        double[] P = dep.joint(), G = new double[M * Mb];
        for (int m = 0; m < M; m++) {
            double pa = 0;
            for (int n = 0; n < Mb; n++) pa += P[m * Mb + n];
            for (int n = 0; n < Mb; n++) G[m * Mb + n] = Math.log(pa + TINY) - Math.log(P[m * Mb + n] + TINY);
        }
        double invN = 1.0 / count;
        List<float[]> ga = new ArrayList<>(), gb = new ArrayList<>();
        for (int s = 0; s < S; s++) {
            ga.add(new float[a.get(s).length]);
            gb.add(new float[b.get(s).length]);
        }
        IntStream.range(0, S).parallel().forEach(s -> {
            double[] wa = new double[M], wb = new double[Mb], da = new double[M], db = new double[Mb];
            float[] xa = a.get(s), xb = b.get(s), oa = ga.get(s), ob = gb.get(s);
            for (int i = 0; i < xa.length; i++) {
                Entropy.soft(xa[i], la, wa);
                Entropy.soft(xb[i], lb, wb);
                java.util.Arrays.fill(db, 0);
                for (int m = 0; m < M; m++) {
                    double s1 = 0;
                    for (int n = 0; n < Mb; n++) {
                        s1 += G[m * Mb + n] * wb[n];
                        db[n] += G[m * Mb + n] * wa[m];
                    }
                    da[m] = s1 * invN;
                }
                for (int n = 0; n < Mb; n++) db[n] *= invN;
                oa[i] = (float) softBackward(xa[i], la, wa, da);
                ob[i] = (float) softBackward(xb[i], lb, wb, db);
            }
        });
        return new Result(dep.conditionalEntropy(), ga, gb);
    }

    /** d/dx of Σ_m g_m·p_m(x) for the soft assignment p = softmax(−(x − q_m)²/Δ). */
    static double softBackward(double x, Entropy.Levels lv, double[] p, double[] g) {
        double mean = 0;
        for (int m = 0; m < p.length; m++) mean += p[m] * g[m];
        double step = lv.step(), d = 0;
        for (int m = 0; m < p.length; m++) d += p[m] * (g[m] - mean) * (-2 * (x - (lv.lo() + m * step)) / step);
        return d;
    }
}
