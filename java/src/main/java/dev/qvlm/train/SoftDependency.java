package dev.qvlm.train;

import dev.qvlm.calib.Entropy;

import java.util.List;
import java.util.stream.IntStream;

/**
 * Σ_k c_k·D(k, k+1) over consecutive layers (the L_ent term of VEO, paper Eq. 4, 5, 8) as a differentiable function
 * of the layer outputs: the soft level assignment and joint histogram of {@link Entropy#dependency}, pooled over a
 * batch, plus the gradient with respect to every element used. With P(m, m') = (1/N) Σ_e a_e(m) b_e(m') and
 * D = H(P) − H(P_a): ∂D/∂P(m, m') = log P_a(m) − log P(m, m') =: G, so ∂D/∂a_e = G b_e / N and
 * ∂D/∂b_e = Gᵀ a_e / N; each soft assignment is a softmax of z_m = −(x − q_m)²/Δ, whose backward gives
 * ∂/∂x = Σ_m a_m (g_m − ⟨a, g⟩)·(−2(x − q_m)/Δ). The levels (min–max of each layer's outputs over the batch) are
 * held constant. Every {@code stride}-th element (same positions in every layer) enters the estimate, the others
 * get no gradient: a cheaper, unbiased-in-expectation stand-in for the full pool. Each layer's soft assignments
 * are computed once and shared by the two pairs the layer belongs to.
 */
final class SoftDependency {
    private SoftDependency() {}

    /** D per pair and d(Σ_k c_k D_k)/d(output of layer l) per sample (zero outside the sampled elements). */
    record Result(double[] d, float[][][] grad) {}

    private static final double TINY = 1e-12;

    /**
     * @param outs   outs[s][l]: output of layer l for sample s (equal sizes across layers of one sample)
     * @param levels levels of each layer
     * @param c      weight of each pair D(l, l+1)
     */
    static Result compute(float[][][] outs, Entropy.Levels[] levels, double[] c, int stride, int offset) {
        int S = outs.length, L = levels.length, M = levels[0].count();
        // soft assignments of the sampled elements, [s][l][e*M + m]
        float[][][] p = new float[S][L][];
        IntStream.range(0, S * L).parallel().forEach(i -> {
            int s = i / L, l = i % L;
            float[] x = outs[s][l];
            int n = count(x.length, stride, offset);
            float[] out = new float[n * M];
            double[] w = new double[M];
            for (int e = 0, idx = offset; e < n; e++, idx += stride) {
                Entropy.soft(x[idx], levels[l], w);
                for (int m = 0; m < M; m++) out[e * M + m] = (float) w[m];
            }
            p[s][l] = out;
        });
        long N = 0;
        for (int s = 0; s < S; s++) N += p[s][0].length / M;
        double[] d = new double[L - 1];
        double[][] G = new double[L - 1][];
        for (int k = 0; k + 1 < L; k++) {
            final int kk = k;
            double[] joint = IntStream.range(0, S).parallel().mapToObj(s -> {
                double[] j = new double[M * M];
                float[] a = p[s][kk], b = p[s][kk + 1];
                for (int e = 0; e < a.length; e += M)
                    for (int m = 0; m < M; m++) {
                        double am = a[e + m];
                        if (am < 1e-12) continue;
                        for (int n = 0; n < M; n++) j[m * M + n] += am * b[e + n];
                    }
                return j;
            }).reduce(new double[M * M], (x, y) -> {
                double[] z = new double[M * M];
                for (int i = 0; i < z.length; i++) z[i] = x[i] + y[i];
                return z;
            });
            Entropy.Dependency dep = Entropy.fromJointSums(joint, N, M, M);
            d[k] = dep.conditionalEntropy();
            double[] P = dep.joint(), g = new double[M * M];
            for (int m = 0; m < M; m++) {
                double pa = 0;
                for (int n = 0; n < M; n++) pa += P[m * M + n];
                for (int n = 0; n < M; n++) g[m * M + n] = c[k] * (Math.log(pa + TINY) - Math.log(P[m * M + n] + TINY)) / N;
            }
            G[k] = g;
        }
        float[][][] grad = new float[S][L][];
        IntStream.range(0, S * L).parallel().forEach(i -> {
            int s = i / L, l = i % L;
            float[] x = outs[s][l], pl = p[s][l];
            float[] out = new float[x.length];
            double[] gp = new double[M], w = new double[M];
            for (int e = 0, idx = offset; e < pl.length / M; e++, idx += stride) {
                java.util.Arrays.fill(gp, 0);
                // as the first layer of pair l: G_l · b ; as the second of pair l−1: G_{l−1}ᵀ · a
                if (l + 1 < L) {
                    float[] b = p[s][l + 1];
                    for (int m = 0; m < M; m++) {
                        double acc = 0;
                        for (int n = 0; n < M; n++) acc += G[l][m * M + n] * b[e * M + n];
                        gp[m] += acc;
                    }
                }
                if (l > 0) {
                    float[] a = p[s][l - 1];
                    for (int m = 0; m < M; m++) {
                        double am = a[e * M + m];
                        for (int n = 0; n < M; n++) gp[n] += G[l - 1][m * M + n] * am;
                    }
                }
                for (int m = 0; m < M; m++) w[m] = pl[e * M + m];
                out[idx] = (float) softBackward(x[idx], levels[l], w, gp);
            }
            grad[s][l] = out;
        });
        return new Result(d, grad);
    }

    private static int count(int len, int stride, int offset) {
        return len <= offset ? 0 : (len - offset + stride - 1) / stride;
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
