package dev.qvlm.cpu;

import dev.qvlm.quant.Q4Matrix;
import dev.qvlm.tensor.HalfMatrix;
import dev.qvlm.tensor.Matrix;

/**
 * {@code out[t, o] = sum_i x[t, i] * W[o, i] + bias[o]} for n tokens (rows of x), W stored (out, in) as in
 * nn.Linear: the entry point that picks the kernel. Every FP32-activation kernel keeps {@link VectorMath#dot4}'s
 * order of operations for each output (see {@link Gemm}), so a token's row does not depend on n.
 */
public final class Matmul {
    private Matmul() {}

    public static void matmul(float[] out, int outOff, float[] x, int xOff, int n, Matrix w, float[] bias) {
        if (HalfMatrix.SCALAR) {
            matmulScalar(out, outOff, x, xOff, n, w, bias);
            return;
        }
        // decode (few tokens): the fused int4 kernel never materialises FP32 rows
        if (w instanceof Q4Matrix q && n <= Q4Matrix.FUSED_MAX_TOKENS && q.fusedSupported()) {
            q.matmul(out, outOff, x, xOff, n, bias);
            return;
        }
        // one token, 16-bit weights: converted in registers, no decoded row (same bits as decode + dot4)
        if (n == 1 && w instanceof HalfMatrix h) {
            HalfMatvec.matvec(out, outOff, x, xOff, h, bias);
            return;
        }
        // register-tiled, panel-blocked: weights decoded to FP32 once per panel and reused by all n tokens
        Gemm.matmul(out, outOff, x, xOff, n, w, bias);
    }

    /** The reference: scalar reads through {@link Matrix#get}, double accumulation, single thread. */
    public static void matmulScalar(float[] out, int outOff, float[] x, int xOff, int n, Matrix w, float[] bias) {
        int rows = w.rows(), cols = w.cols();
        for (int t = 0; t < n; t++)
            for (int o = 0; o < rows; o++) {
                double s = bias == null ? 0 : bias[o];
                for (int i = 0; i < cols; i++) s += (double) x[xOff + t * cols + i] * w.get(o, i);
                out[outOff + t * rows + o] = (float) s;
            }
    }
}
