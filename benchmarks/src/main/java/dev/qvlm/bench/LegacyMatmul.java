package dev.qvlm.bench;

import dev.qvlm.cpu.Parallel;
import dev.qvlm.cpu.VectorMath;
import dev.qvlm.tensor.F32Matrix;
import dev.qvlm.tensor.Matrix;

/**
 * The FP32-activation matmul as it was before cpu/Gemm (issue 14), kept only as GemmBench's baseline: rows of W
 * decoded four at a time, each quartet dotted with the tokens two at a time (VectorMath.dot4x2), chunks of rows
 * over the common pool.
 */
final class LegacyMatmul {
    private static final ThreadLocal<float[]> SCRATCH = ThreadLocal.withInitial(() -> new float[0]);

    private LegacyMatmul() {}

    static void matmul(float[] out, int outOff, float[] x, int xOff, int n, Matrix w, float[] bias) {
        final int rows = w.rows(), cols = w.cols();
        final float[] heap = w instanceof F32Matrix f ? f.array() : null;
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
            float[] tmp = new float[8];
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
                int t = 0;
                for (; t + 1 < n; t += 2) {
                    VectorMath.dot4x2(buf, o0, o1, o2, o3, x, xOff + t * cols, xOff + (t + 1) * cols, cols, tmp, 0, 4, 1);
                    store(out, outOff + t * rows + r, tmp, 0, bias, r, nr);
                    store(out, outOff + (t + 1) * rows + r, tmp, 4, bias, r, nr);
                }
                for (; t < n; t++) {
                    VectorMath.dot4(buf, o0, o1, o2, o3, x, xOff + t * cols, cols, tmp, 0, 1);
                    store(out, outOff + t * rows + r, tmp, 0, bias, r, nr);
                }
            }
        });
    }

    private static void store(float[] out, int oo, float[] tmp, int to, float[] bias, int r, int nr) {
        for (int k = 0; k < nr; k++) out[oo + k] = tmp[to + k] + (bias == null ? 0 : bias[r + k]);
    }
}
