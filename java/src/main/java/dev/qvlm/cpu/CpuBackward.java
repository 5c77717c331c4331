package dev.qvlm.cpu;

import dev.qvlm.backend.BackwardOps;
import dev.qvlm.backend.Tensor;
import dev.qvlm.config.Activation;
import dev.qvlm.model.Linear;
import dev.qvlm.tensor.F32Matrix;
import dev.qvlm.tensor.Matrix;

import java.util.Collections;
import java.util.Map;
import java.util.WeakHashMap;

/**
 * FP32 backward ops on the host. The two matmuls of a linear's backward reuse the forward's vectorised
 * {@link Matmul} on transposed operands: dX = dY · W is dY · (Wᵀ)ᵀ with Wᵀ decoded once per weight matrix and
 * cached by identity (frozen LLM weights are transposed once per run; a vision weight that changes each step is
 * a new matrix, and the old entry goes with it), and dW = dYᵀ · X with both activations transposed.
 */
final class CpuBackward implements BackwardOps {
    private final CpuBackend cpu;
    /** Wᵀ as dense FP32 [in x out], keyed by the weight matrix object (weak: dropped with the matrix). */
    private final Map<Matrix, F32Matrix> transposed = Collections.synchronizedMap(new WeakHashMap<>());

    CpuBackward(CpuBackend cpu) {
        this.cpu = cpu;
    }

    private static CpuTensor c(Tensor t) {
        return (CpuTensor) t;
    }

    private F32Matrix transposedOf(Matrix w) {
        F32Matrix t = transposed.get(w);
        if (t != null) return t;
        int R = w.rows(), C = w.cols();
        float[] row = new float[C], tt = new float[R * C];
        for (int r = 0; r < R; r++) {
            w.rowToFloat(r, row, 0);
            for (int c = 0; c < C; c++) tt[c * R + r] = row[c];
        }
        t = new F32Matrix(C, R, tt);
        transposed.put(w, t);
        return t;
    }

    private static float[] transpose(float[] a, int off, int rows, int cols) {
        float[] t = new float[rows * cols];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++) t[c * rows + r] = a[off + r * cols + c];
        return t;
    }

    @Override
    public void linearBackward(Tensor dX, float[] dW, float[] db, Tensor dY, Tensor in, Linear w) {
        CpuTensor gy = c(dY), x = c(in);
        int n = gy.rows(), out = w.out(), inDim = w.in();
        if (gy.cols() != out || x.cols() != inDim || x.rows() != n)
            throw new IllegalArgumentException(w.name() + " backward: dY [" + n + "x" + gy.cols() + "], input ["
                    + x.rows() + "x" + x.cols() + "] do not fit " + w);
        if (dX != null) {
            CpuTensor gx = c(dX);
            float[] tmp = new float[n * inDim];
            Matmul.matmul(tmp, 0, gy.data(), gy.offset(), n, transposedOf(w.weight()), null);
            float[] d = gx.data();
            int o = gx.offset();
            for (int i = 0; i < tmp.length; i++) d[o + i] += tmp[i];
        }
        if (dW != null) {
            // the weight saw Q(x): the same quantizer on a copy, as the forward applies it
            float[] xq = new float[n * inDim];
            System.arraycopy(x.data(), x.offset(), xq, 0, xq.length);
            Linear.InputQuantizer q = w.inputQuantizer();
            if (q != null) q.apply(xq, 0, n, inDim);
            float[] gyT = transpose(gy.data(), gy.offset(), n, out);
            F32Matrix xT = new F32Matrix(inDim, n, transpose(xq, 0, n, inDim));
            float[] tmp = new float[out * inDim];
            Matmul.matmul(tmp, 0, gyT, 0, out, xT, null);
            for (int i = 0; i < tmp.length; i++) dW[i] += tmp[i];
        }
        if (db != null)
            for (int t = 0; t < n; t++) {
                int o = gy.offset() + t * out;
                for (int j = 0; j < out; j++) db[j] += gy.data()[o + j];
            }
    }

    @Override
    public void rmsNormBackward(Tensor dX, float[] dGamma, Tensor dY, Tensor x, float[] gamma, float eps) {
        CpuTensor gx = c(dX), gy = c(dY), xx = c(x);
        int n = xx.cols();
        for (int r = 0; r < xx.rows(); r++) {
            int xo = xx.offset() + r * n, yo = gy.offset() + r * n, go = gx.offset() + r * n;
            double ss = 0, dot = 0;
            for (int i = 0; i < n; i++) {
                double v = xx.data()[xo + i];
                ss += v * v;
                dot += gy.data()[yo + i] * gamma[i] * v;
            }
            double inv = 1.0 / Math.sqrt(ss / n + eps);
            // d/dx_i of γ_i x_i r: r γ_i dy_i − x_i r³/n Σ_j dy_j γ_j x_j
            double k = inv * inv * inv / n * dot;
            for (int i = 0; i < n; i++) {
                double v = xx.data()[xo + i];
                gx.data()[go + i] += (float) (inv * gamma[i] * gy.data()[yo + i] - v * k);
                if (dGamma != null) dGamma[i] += (float) (gy.data()[yo + i] * v * inv);
            }
        }
    }

    @Override
    public void layerNormBackward(Tensor dX, float[] dGamma, float[] dBeta, Tensor dY, Tensor x, float[] gamma, float eps) {
        CpuTensor gx = c(dX), gy = c(dY), xx = c(x);
        int n = xx.cols();
        double[] xhat = new double[n], g = new double[n];
        for (int r = 0; r < xx.rows(); r++) {
            int xo = xx.offset() + r * n, yo = gy.offset() + r * n, go = gx.offset() + r * n;
            double mean = 0;
            for (int i = 0; i < n; i++) mean += xx.data()[xo + i];
            mean /= n;
            double var = 0;
            for (int i = 0; i < n; i++) {
                double d = xx.data()[xo + i] - mean;
                var += d * d;
            }
            var /= n;
            double inv = 1.0 / Math.sqrt(var + eps);
            double sg = 0, sgx = 0;
            for (int i = 0; i < n; i++) {
                xhat[i] = (xx.data()[xo + i] - mean) * inv;
                g[i] = gy.data()[yo + i] * gamma[i];
                sg += g[i];
                sgx += g[i] * xhat[i];
            }
            // dx = r/n (n·ĝ − Σĝ − x̂ Σ ĝ x̂), ĝ = dy ⊙ γ
            for (int i = 0; i < n; i++) {
                gx.data()[go + i] += (float) (inv / n * (n * g[i] - sg - xhat[i] * sgx));
                if (dGamma != null) dGamma[i] += (float) (gy.data()[yo + i] * xhat[i]);
                if (dBeta != null) dBeta[i] += gy.data()[yo + i];
            }
        }
    }

    @Override
    public void activateBackward(Tensor dX, Tensor dY, Tensor x, Activation act) {
        CpuTensor gx = c(dX), gy = c(dY), xx = c(x);
        int n = xx.size();
        if (gx.size() != n || gy.size() != n) throw new IllegalArgumentException("activateBackward size mismatch");
        for (int i = 0; i < n; i++)
            gx.data()[gx.offset() + i] = (float) (gy.data()[gy.offset() + i] * Activations.derivative(act, xx.data()[xx.offset() + i]));
    }

    @Override
    public void gatedActivateBackward(Tensor dGate, Tensor dUp, Tensor dY, Tensor gate, Tensor up, Activation act) {
        CpuTensor dg = c(dGate), du = c(dUp), gy = c(dY), g = c(gate), u = c(up);
        int n = g.size();
        if (dg.size() != n || du.size() != n || gy.size() != n || u.size() != n)
            throw new IllegalArgumentException("gatedActivateBackward size mismatch");
        for (int i = 0; i < n; i++) {
            float x = g.data()[g.offset() + i], y = gy.data()[gy.offset() + i], v = u.data()[u.offset() + i];
            float a = Activations.apply(act, x);
            dg.data()[dg.offset() + i] = (float) (y * v * Activations.derivative(act, x));
            du.data()[du.offset() + i] = y * a;
        }
    }

    @Override
    public void ropeBackward(Tensor dY, int heads, int headDim, int startPos, double theta) {
        CpuTensor a = c(dY);
        int half = headDim / 2;
        CpuBackend.RopeTable t = cpu.ropeTable(theta, headDim, startPos + a.rows());
        float[] d = a.data();
        for (int r = 0; r < a.rows(); r++) {
            int tb = (startPos + r) * half;
            for (int h = 0; h < heads; h++) {
                int base = a.offset() + r * a.cols() + h * headDim;
                for (int i = 0; i < half; i++) {
                    float g1 = d[base + i], g2 = d[base + i + half];
                    float cs = t.cos()[tb + i], sn = t.sin()[tb + i];
                    // transpose of [[c, −s], [s, c]]
                    d[base + i] = g1 * cs + g2 * sn;
                    d[base + i + half] = g2 * cs - g1 * sn;
                }
            }
        }
    }

    @Override
    public void attentionBackward(Tensor dQ, Tensor dK, Tensor dV, Tensor dOut, Tensor q, Tensor k, Tensor v, int kvLen,
                                  int heads, int kvHeads, int headDim, int qPos0, boolean causal, float scale) {
        CpuTensor gq = c(dQ), gk = c(dK), gv = c(dV), go = c(dOut), qq = c(q), kk = c(k), vv = c(v);
        int n = qq.rows(), group = heads / kvHeads;
        // one task per KV head: the query heads of a group add into the same dK/dV rows
        Parallel.forRange(kvHeads, 1, (s, e) -> {
            double[] p = new double[kvLen], dp = new double[kvLen];
            for (int kh = s; kh < e; kh++)
                for (int h = kh * group; h < (kh + 1) * group; h++)
                    for (int t = 0; t < n; t++) {
                        int qo = qq.offset() + t * qq.cols() + h * headDim;
                        int oo = go.offset() + t * go.cols() + h * headDim;
                        int len = causal ? Math.min(kvLen, qPos0 + t + 1) : kvLen;
                        double max = Double.NEGATIVE_INFINITY;
                        for (int j = 0; j < len; j++) {
                            p[j] = VectorMath.dot(qq.data(), qo, kk.data(), kk.offset() + j * kk.cols() + kh * headDim, headDim) * (double) scale;
                            max = Math.max(max, p[j]);
                        }
                        double sum = 0;
                        for (int j = 0; j < len; j++) sum += p[j] = Math.exp(p[j] - max);
                        double pdp = 0;
                        for (int j = 0; j < len; j++) {
                            p[j] /= sum;
                            dp[j] = VectorMath.dot(go.data(), oo, vv.data(), vv.offset() + j * vv.cols() + kh * headDim, headDim);
                            pdp += p[j] * dp[j];
                        }
                        int dqo = gq.offset() + t * gq.cols() + h * headDim;
                        java.util.Arrays.fill(gq.data(), dqo, dqo + headDim, 0f);
                        for (int j = 0; j < len; j++) {
                            float ds = (float) (p[j] * (dp[j] - pdp) * scale);
                            int ko = kk.offset() + j * kk.cols() + kh * headDim;
                            VectorMath.axpy(ds, kk.data(), ko, gq.data(), dqo, headDim);
                            VectorMath.axpy(ds, qq.data(), qo, gk.data(), gk.offset() + j * gk.cols() + kh * headDim, headDim);
                            VectorMath.axpy((float) p[j], go.data(), oo, gv.data(), gv.offset() + j * gv.cols() + kh * headDim, headDim);
                        }
                    }
        });
    }
}
