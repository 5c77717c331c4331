package dev.qvlm.train;

import dev.qvlm.backend.BackwardOps;
import dev.qvlm.backend.Tensor;
import dev.qvlm.config.Activation;
import dev.qvlm.cpu.CpuBackend;
import dev.qvlm.cpu.CpuTensor;
import dev.qvlm.model.Linear;
import dev.qvlm.tensor.F32Matrix;
import org.junit.jupiter.api.Test;

import java.util.Random;
import java.util.function.Function;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Every backward op of the CPU backend against central finite differences of an independent double-precision
 * reference of the forward op, on small random shapes. The scalar probed is L = Σ dY ⊙ f(inputs) for a random
 * dY, so ∂L/∂input is exactly the vector–Jacobian product the op computes. Tolerance: |analytic − FD| ≤
 * 2e-4 · max|FD| + 1e-5 (FP32 backward against an O(h²) = 1e-10 double FD); each reference forward is first
 * checked against the backend's own forward (≤ 1e-4 relative), so the FD checks the op the model actually runs.
 */
class BackwardOpsTest {
    private final CpuBackend cpu = new CpuBackend();
    private final BackwardOps ops = cpu.backward();
    private final Random rnd = new Random(7);

    private double[] rand(int n, double scale) {
        double[] a = new double[n];
        for (int i = 0; i < n; i++) a[i] = scale * rnd.nextGaussian();
        return a;
    }

    private static float[] f(double[] a) {
        float[] o = new float[a.length];
        for (int i = 0; i < a.length; i++) o[i] = (float) a[i];
        return o;
    }

    /** Rounds to float and back, so the reference sees exactly the FP32 inputs the backend sees. */
    private static double[] r(double[] a) {
        double[] o = new double[a.length];
        for (int i = 0; i < a.length; i++) o[i] = (float) a[i];
        return o;
    }

    private Tensor t(double[] a, int rows, int cols) {
        return cpu.upload(f(a), rows, cols);
    }

    private static float[] data(Tensor t) {
        CpuTensor c = (CpuTensor) t;
        float[] o = new float[c.size()];
        System.arraycopy(c.data(), c.offset(), o, 0, o.length);
        return o;
    }

    private static double dot(double[] a, double[] b) {
        double s = 0;
        for (int i = 0; i < a.length; i++) s += a[i] * b[i];
        return s;
    }

    /** Central differences of f at x, h = 1e-5. */
    private static double[] fd(Function<double[], Double> fn, double[] x) {
        double h = 1e-5;
        double[] g = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            double keep = x[i];
            x[i] = keep + h;
            double p = fn.apply(x);
            x[i] = keep - h;
            double m = fn.apply(x);
            x[i] = keep;
            g[i] = (p - m) / (2 * h);
        }
        return g;
    }

    private static void assertGrad(String what, double[] fd, float[] got) {
        assertEquals(fd.length, got.length, what + ": length");
        double max = 0;
        for (double v : fd) max = Math.max(max, Math.abs(v));
        double tol = 2e-4 * max + 1e-5;
        for (int i = 0; i < fd.length; i++)
            assertTrue(Math.abs(fd[i] - got[i]) <= tol, what + "[" + i + "]: backward " + got[i] + " vs FD " + fd[i] + " (tol " + tol + ")");
    }

    private static void assertForward(String what, double[] ref, float[] got) {
        double max = 0;
        for (double v : ref) max = Math.max(max, Math.abs(v));
        for (int i = 0; i < ref.length; i++)
            assertTrue(Math.abs(ref[i] - got[i]) <= 1e-4 * Math.max(1, max), what + " forward [" + i + "]: " + got[i] + " vs " + ref[i]);
    }

    // ------------------------------------------------------------------ linear

    static double[] linearRef(double[] x, double[] w, double[] b, int n, int in, int out) {
        double[] y = new double[n * out];
        for (int t = 0; t < n; t++)
            for (int o = 0; o < out; o++) {
                double s = b == null ? 0 : b[o];
                for (int i = 0; i < in; i++) s += x[t * in + i] * w[o * in + i];
                y[t * out + o] = s;
            }
        return y;
    }

    @Test
    void linear() {
        int n = 5, in = 7, out = 6;
        double[] x = r(rand(n * in, 1)), w = r(rand(out * in, 0.5)), b = r(rand(out, 0.3)), dy = r(rand(n * out, 1));
        Linear lin = new Linear("test", Linear.Part.VISION, new F32Matrix(out, in, f(w)), f(b));
        Tensor y = cpu.allocate(n, out);
        cpu.linear(y, t(x, n, in), lin);
        assertForward("linear", linearRef(x, w, b, n, in, out), data(y));
        Tensor dX = cpu.allocate(n, in);
        float[] dW = new float[out * in], db = new float[out];
        ops.linearBackward(dX, dW, db, t(dy, n, out), t(x, n, in), lin);
        assertGrad("linear dX", fd(v -> dot(dy, linearRef(v, w, b, n, in, out)), x.clone()), data(dX));
        assertGrad("linear dW", fd(v -> dot(dy, linearRef(x, v, b, n, in, out)), w.clone()), dW);
        assertGrad("linear db", fd(v -> dot(dy, linearRef(x, w, v, n, in, out)), b.clone()), db);
    }

    @Test
    void linearWithFakeQuantUsesTheStraightThroughEstimator() {
        int n = 4, in = 5, out = 3;
        double[] x = r(rand(n * in, 1)), w = r(rand(out * in, 0.5)), dy = r(rand(n * out, 1));
        Linear lin = new Linear("test", Linear.Part.VISION, new F32Matrix(out, in, f(w)), null);
        // a coarse input quantizer: round to multiples of 0.25
        lin.setInputQuantizer((a, off, rows, cols) -> {
            for (int i = off; i < off + rows * cols; i++) a[i] = Math.round(a[i] * 4f) / 4f;
        });
        Tensor dX = cpu.allocate(n, in);
        float[] dW = new float[out * in];
        ops.linearBackward(dX, dW, null, t(dy, n, out), t(x, n, in), lin);
        // STE: dX passes the quantizer unchanged (dY · W); dW sees the quantized input (dYᵀ · Q(x))
        for (int tt = 0; tt < n; tt++)
            for (int i = 0; i < in; i++) {
                double s = 0;
                for (int o = 0; o < out; o++) s += dy[tt * out + o] * w[o * in + i];
                assertEquals(s, data(dX)[tt * in + i], 1e-5);
            }
        for (int o = 0; o < out; o++)
            for (int i = 0; i < in; i++) {
                double s = 0;
                for (int tt = 0; tt < n; tt++) s += dy[tt * out + o] * (Math.round(x[tt * in + i] * 4) / 4.0);
                assertEquals(s, dW[o * in + i], 1e-5);
            }
    }

    // ------------------------------------------------------------------ norms

    static double[] rmsRef(double[] x, double[] g, int n, int d, double eps) {
        double[] y = new double[n * d];
        for (int t = 0; t < n; t++) {
            double ss = 0;
            for (int i = 0; i < d; i++) ss += x[t * d + i] * x[t * d + i];
            double inv = 1 / Math.sqrt(ss / d + eps);
            for (int i = 0; i < d; i++) y[t * d + i] = g[i] * x[t * d + i] * inv;
        }
        return y;
    }

    static double[] lnRef(double[] x, double[] g, double[] b, int n, int d, double eps) {
        double[] y = new double[n * d];
        for (int t = 0; t < n; t++) {
            double m = 0, v = 0;
            for (int i = 0; i < d; i++) m += x[t * d + i];
            m /= d;
            for (int i = 0; i < d; i++) v += (x[t * d + i] - m) * (x[t * d + i] - m);
            v /= d;
            for (int i = 0; i < d; i++) y[t * d + i] = (x[t * d + i] - m) / Math.sqrt(v + eps) * g[i] + b[i];
        }
        return y;
    }

    @Test
    void rmsNorm() {
        int n = 3, d = 8;
        double eps = 1e-5;
        double[] x = r(rand(n * d, 1)), g = r(rand(d, 1)), dy = r(rand(n * d, 1));
        Tensor y = cpu.allocate(n, d);
        cpu.rmsNorm(y, t(x, n, d), f(g), (float) eps);
        assertForward("rmsNorm", rmsRef(x, g, n, d, (float) eps), data(y));
        Tensor dX = cpu.allocate(n, d);
        float[] dG = new float[d];
        ops.rmsNormBackward(dX, dG, t(dy, n, d), t(x, n, d), f(g), (float) eps);
        assertGrad("rmsNorm dX", fd(v -> dot(dy, rmsRef(v, g, n, d, (float) eps)), x.clone()), data(dX));
        assertGrad("rmsNorm dGamma", fd(v -> dot(dy, rmsRef(x, v, n, d, (float) eps)), g.clone()), dG);
    }

    @Test
    void layerNorm() {
        int n = 3, d = 8;
        double eps = 1e-5;
        double[] x = r(rand(n * d, 1)), g = r(rand(d, 1)), b = r(rand(d, 1)), dy = r(rand(n * d, 1));
        Tensor y = cpu.allocate(n, d);
        cpu.layerNorm(y, t(x, n, d), f(g), f(b), (float) eps);
        assertForward("layerNorm", lnRef(x, g, b, n, d, (float) eps), data(y));
        Tensor dX = cpu.allocate(n, d);
        float[] dG = new float[d], dB = new float[d];
        ops.layerNormBackward(dX, dG, dB, t(dy, n, d), t(x, n, d), f(g), (float) eps);
        assertGrad("layerNorm dX", fd(v -> dot(dy, lnRef(v, g, b, n, d, (float) eps)), x.clone()), data(dX));
        assertGrad("layerNorm dGamma", fd(v -> dot(dy, lnRef(x, v, b, n, d, (float) eps)), g.clone()), dG);
        assertGrad("layerNorm dBeta", fd(v -> dot(dy, lnRef(x, g, v, n, d, (float) eps)), b.clone()), dB);
    }

    // ------------------------------------------------------------------ activations

    static double act(Activation a, double x) {
        return switch (a) {
            case SILU -> x / (1 + Math.exp(-x));
            case QUICK_GELU -> x / (1 + Math.exp(-1.702 * x));
            case GELU -> 0.5 * x * (1 + dev.qvlm.cpu.Activations.erf(x / Math.sqrt(2)));
            case GELU_TANH -> 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));
            case RELU -> Math.max(0, x);
        };
    }

    @Test
    void activations() {
        int n = 2, d = 9;
        for (Activation a : new Activation[]{Activation.SILU, Activation.QUICK_GELU, Activation.GELU, Activation.GELU_TANH}) {
            double[] x = r(rand(n * d, 2)), dy = r(rand(n * d, 1));
            Tensor y = t(x, n, d);
            cpu.activate(y, a);
            double[] ref = new double[x.length];
            for (int i = 0; i < x.length; i++) ref[i] = act(a, x[i]);
            assertForward(a.name(), ref, data(y));
            Tensor dX = cpu.allocate(n, d);
            ops.activateBackward(dX, t(dy, n, d), t(x, n, d), a);
            // the erf fit is good to 1.2e-7, so GELU's FD sees its kinks at h = 1e-5: compare with a looser bound there
            double[] g = fd(v -> {
                double s = 0;
                for (int i = 0; i < v.length; i++) s += dy[i] * act(a, v[i]);
                return s;
            }, x.clone());
            if (a == Activation.GELU) {
                for (int i = 0; i < g.length; i++) assertEquals(g[i], data(dX)[i], 2e-2 * Math.abs(dy[i]) + 1e-4, "GELU d[" + i + "]");
            } else {
                assertGrad(a.name(), g, data(dX));
            }
        }
    }

    @Test
    void gatedSilu() {
        int n = 3, d = 6;
        double[] gate = r(rand(n * d, 2)), up = r(rand(n * d, 1)), dy = r(rand(n * d, 1));
        Function<double[][], double[]> ref = gu -> {
            double[] y = new double[n * d];
            for (int i = 0; i < y.length; i++) y[i] = act(Activation.SILU, gu[0][i]) * gu[1][i];
            return y;
        };
        Tensor gt = t(gate, n, d);
        cpu.gatedActivate(gt, t(up, n, d), Activation.SILU);
        assertForward("gated", ref.apply(new double[][]{gate, up}), data(gt));
        Tensor dG = cpu.allocate(n, d), dU = cpu.allocate(n, d);
        ops.gatedActivateBackward(dG, dU, t(dy, n, d), t(gate, n, d), t(up, n, d), Activation.SILU);
        assertGrad("gated dGate", fd(v -> dot(dy, ref.apply(new double[][]{v, up})), gate.clone()), data(dG));
        assertGrad("gated dUp", fd(v -> dot(dy, ref.apply(new double[][]{gate, v})), up.clone()), data(dU));
    }

    // ------------------------------------------------------------------ rope

    static double[] ropeRef(double[] x, int n, int heads, int hd, int pos0, double theta) {
        double[] y = x.clone();
        int half = hd / 2;
        for (int t = 0; t < n; t++)
            for (int h = 0; h < heads; h++)
                for (int i = 0; i < half; i++) {
                    double ang = (pos0 + t) * (float) (1.0 / Math.pow(theta, 2.0 * i / hd));
                    int b = t * heads * hd + h * hd;
                    double x1 = x[b + i], x2 = x[b + i + half];
                    y[b + i] = x1 * Math.cos(ang) - x2 * Math.sin(ang);
                    y[b + i + half] = x2 * Math.cos(ang) + x1 * Math.sin(ang);
                }
        return y;
    }

    @Test
    void rope() {
        int n = 4, heads = 2, hd = 8, pos0 = 3;
        double[] x = r(rand(n * heads * hd, 1)), dy = r(rand(n * heads * hd, 1));
        Tensor y = t(x, n, heads * hd);
        cpu.rope(y, heads, hd, pos0, 10000);
        assertForward("rope", ropeRef(x, n, heads, hd, pos0, 10000), data(y));
        Tensor d = t(dy, n, heads * hd);
        ops.ropeBackward(d, heads, hd, pos0, 10000);
        assertGrad("rope", fd(v -> dot(dy, ropeRef(v, n, heads, hd, pos0, 10000)), x.clone()), data(d));
    }

    // ------------------------------------------------------------------ attention

    static double[] attRef(double[] q, double[] k, double[] v, int n, int kvLen, int heads, int kvHeads, int hd,
                           int qPos0, boolean causal, double scale) {
        double[] o = new double[n * heads * hd];
        int group = heads / kvHeads;
        for (int t = 0; t < n; t++)
            for (int h = 0; h < heads; h++) {
                int kh = h / group, len = causal ? Math.min(kvLen, qPos0 + t + 1) : kvLen;
                double[] s = new double[len];
                double max = Double.NEGATIVE_INFINITY;
                for (int j = 0; j < len; j++) {
                    for (int i = 0; i < hd; i++) s[j] += q[t * heads * hd + h * hd + i] * k[j * kvHeads * hd + kh * hd + i];
                    s[j] *= scale;
                    max = Math.max(max, s[j]);
                }
                double sum = 0;
                for (int j = 0; j < len; j++) sum += s[j] = Math.exp(s[j] - max);
                for (int j = 0; j < len; j++)
                    for (int i = 0; i < hd; i++) o[t * heads * hd + h * hd + i] += s[j] / sum * v[j * kvHeads * hd + kh * hd + i];
            }
        return o;
    }

    private void checkAttention(int n, int kvLen, int heads, int kvHeads, int hd, int qPos0, boolean causal) {
        double scale = (float) (1 / Math.sqrt(hd));
        double[] q = r(rand(n * heads * hd, 1)), k = r(rand(kvLen * kvHeads * hd, 1)), v = r(rand(kvLen * kvHeads * hd, 1)),
                dy = r(rand(n * heads * hd, 1));
        String what = (causal ? "causal" : "full") + " attention " + heads + "/" + kvHeads + " heads";
        Tensor o = cpu.allocate(n, heads * hd);
        cpu.attention(o, t(q, n, heads * hd), t(k, kvLen, kvHeads * hd), t(v, kvLen, kvHeads * hd), kvLen, heads, kvHeads, hd, qPos0, causal, (float) scale);
        assertForward(what, attRef(q, k, v, n, kvLen, heads, kvHeads, hd, qPos0, causal, scale), data(o));
        Tensor dQ = cpu.allocate(n, heads * hd), dK = cpu.allocate(kvLen, kvHeads * hd), dV = cpu.allocate(kvLen, kvHeads * hd);
        ops.attentionBackward(dQ, dK, dV, t(dy, n, heads * hd), t(q, n, heads * hd), t(k, kvLen, kvHeads * hd),
                t(v, kvLen, kvHeads * hd), kvLen, heads, kvHeads, hd, qPos0, causal, (float) scale);
        assertGrad(what + " dQ", fd(x -> dot(dy, attRef(x, k, v, n, kvLen, heads, kvHeads, hd, qPos0, causal, scale)), q.clone()), data(dQ));
        assertGrad(what + " dK", fd(x -> dot(dy, attRef(q, x, v, n, kvLen, heads, kvHeads, hd, qPos0, causal, scale)), k.clone()), data(dK));
        assertGrad(what + " dV", fd(x -> dot(dy, attRef(q, k, x, n, kvLen, heads, kvHeads, hd, qPos0, causal, scale)), v.clone()), data(dV));
    }

    @Test
    void causalAttentionWithGroupedKvHeads() {
        checkAttention(3, 5, 4, 2, 4, 2, true);
    }

    @Test
    void fullAttention() {
        checkAttention(4, 4, 2, 2, 4, 0, false);
    }
}
