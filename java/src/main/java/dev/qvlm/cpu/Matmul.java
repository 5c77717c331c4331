package dev.qvlm.cpu;

import dev.qvlm.quant.Q4Matrix;
import dev.qvlm.tensor.F32Matrix;
import dev.qvlm.tensor.HalfMatrix;
import dev.qvlm.tensor.Matrix;

/**
 * {@code out[t, o] = sum_i x[t, i] * W[o, i] + bias[o]} for n tokens (rows of x), W stored (out, in) as in
 * nn.Linear. Rows of W are split over the cores; each worker decodes four rows of W to FP32 once and reuses them
 * for every token, so the decode cost of F16/BF16/int4 storage is paid once per row, not once per token.
 */
public final class Matmul {
    private static final ThreadLocal<float[]> SCRATCH = ThreadLocal.withInitial(() -> new float[0]);

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
        final int rows = w.rows(), cols = w.cols();
        final float[] heap = w instanceof F32Matrix f ? f.array() : null;
        // grain: enough work per chunk to amortise the task (about 64k multiply-adds)
        int grain = Math.max(4, 65536 / Math.max(1, cols * Math.max(1, n)) * 4);
        Parallel.forRange((rows + 3) / 4, Math.max(1, grain / 4), (b0, b1) -> {
            float[] buf = heap;
            if (buf == null) {
                buf = SCRATCH.get();
                if (buf.length < 4 * cols) {
                    buf = new float[4 * cols];
                    SCRATCH.set(buf);
                }
            }
            for (int b = b0; b < b1; b++) {
                int r = b * 4;
                int nr = Math.min(4, rows - r);
                int o0, o1, o2, o3;
                if (heap != null) {
                    o0 = r * cols;
                    o1 = nr > 1 ? o0 + cols : o0;
                    o2 = nr > 2 ? o0 + 2 * cols : o0;
                    o3 = nr > 3 ? o0 + 3 * cols : o0;
                } else {
                    for (int k = 0; k < nr; k++) w.rowToFloat(r + k, buf, k * cols);
                    o0 = 0;
                    o1 = nr > 1 ? cols : 0;
                    o2 = nr > 2 ? 2 * cols : 0;
                    o3 = nr > 3 ? 3 * cols : 0;
                }
                if (nr == 4) {
                    float[] tmp = new float[8];
                    // tokens in pairs: each weight vector loaded once for two tokens (a batched decode step's rows),
                    // with per-token results bit-identical to the single-token kernel
                    int t = 0;
                    for (; t + 1 < n; t += 2) {
                        VectorMath.dot4x2(buf, o0, o1, o2, o3, x, xOff + t * cols, xOff + (t + 1) * cols, cols, tmp, 0, 4, 1);
                        store4(out, outOff + t * rows + r, tmp, 0, bias, r);
                        store4(out, outOff + (t + 1) * rows + r, tmp, 4, bias, r);
                    }
                    for (; t < n; t++) {
                        VectorMath.dot4(buf, o0, o1, o2, o3, x, xOff + t * cols, cols, tmp, 0, 1);
                        store4(out, outOff + t * rows + r, tmp, 0, bias, r);
                    }
                } else {
                    // the last rows % 4 rows: dot4 with the rows repeated, so each keeps dot4's single chain (the
                    // contract's order, as the one-token HalfMatvec and the batched kernels compute them)
                    float[] tmp = new float[4];
                    for (int t = 0; t < n; t++) {
                        VectorMath.dot4(buf, o0, o1, o2, o3, x, xOff + t * cols, cols, tmp, 0, 1);
                        for (int k = 0; k < nr; k++) out[outOff + t * rows + r + k] = tmp[k] + (bias == null ? 0 : bias[r + k]);
                    }
                }
            }
        });
    }

    private static void store4(float[] out, int oo, float[] tmp, int to, float[] bias, int r) {
        out[oo] = tmp[to] + (bias == null ? 0 : bias[r]);
        out[oo + 1] = tmp[to + 1] + (bias == null ? 0 : bias[r + 1]);
        out[oo + 2] = tmp[to + 2] + (bias == null ? 0 : bias[r + 2]);
        out[oo + 3] = tmp[to + 3] + (bias == null ? 0 : bias[r + 3]);
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
