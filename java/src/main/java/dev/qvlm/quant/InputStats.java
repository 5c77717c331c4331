package dev.qvlm.quant;

import dev.qvlm.cpu.Parallel;

import java.util.List;

/**
 * Statistics of one linear's calibration inputs, each a row-major [tokens × cols] array: Σ x xᵀ over all tokens (the
 * GPTQ Hessian is twice this), and per input channel mean |x| (AWQ) and max |x| (SmoothQuant). Sums run in sample and
 * token order, so the result does not depend on the number of threads.
 */
public final class InputStats {
    private InputStats() {}

    /** Σ_t x_t x_tᵀ, [cols × cols] row-major, in FP64. */
    public static double[] gram(List<float[]> xs, int cols) {
        double[] g = new double[cols * cols];
        Parallel.forRange(cols, Math.max(1, 8), (i0, i1) -> {
            for (int i = i0; i < i1; i++) {
                int row = i * cols;
                for (float[] x : xs) {
                    int tokens = x.length / cols;
                    for (int t = 0; t < tokens; t++) {
                        int b = t * cols;
                        double a = x[b + i];
                        if (a == 0) continue;
                        for (int j = i; j < cols; j++) g[row + j] += a * x[b + j];
                    }
                }
            }
        });
        for (int i = 0; i < cols; i++) for (int j = 0; j < i; j++) g[i * cols + j] = g[j * cols + i];
        return g;
    }

    /** Per input channel: mean |x| over all tokens. */
    public static double[] meanAbs(List<float[]> xs, int cols) {
        double[] s = new double[cols];
        long n = 0;
        for (float[] x : xs) {
            for (int i = 0; i < x.length; i++) s[i % cols] += Math.abs(x[i]);
            n += x.length / cols;
        }
        for (int c = 0; c < cols; c++) s[c] /= Math.max(1, n);
        return s;
    }

    /** Per input channel: max |x| over all tokens. */
    public static double[] maxAbs(List<float[]> xs, int cols) {
        double[] m = new double[cols];
        for (float[] x : xs) for (int i = 0; i < x.length; i++) m[i % cols] = Math.max(m[i % cols], Math.abs(x[i]));
        return m;
    }

    /** FP32 copy of a Gram matrix, for the vectorised error sums of searches that only compare candidates. */
    public static float[] toFloat(double[] g) {
        float[] f = new float[g.length];
        for (int i = 0; i < g.length; i++) f[i] = (float) g[i];
        return f;
    }

    /**
     * Σ over rows and over segments [c0, c0 + seg) of each row of δ_seg G_seg,seg δ_segᵀ, per group of the grid the
     * segment belongs to (seg = cols: the whole row). FP32 dot products (vectorised), FP64 sums.
     */
    public static double[] segmentErrors(float[] dw, int rows, int cols, int seg, float[] gram, Grid grid, int groups) {
        double[] err = new double[groups];
        double[][] perRow = new double[rows][];
        Parallel.forRange(rows, 1, (r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                double[] e = new double[cols / seg];
                int b = r * cols;
                for (int c0 = 0, k = 0; c0 < cols; c0 += seg, k++) {
                    double s = 0;
                    for (int i = c0; i < c0 + seg; i++) {
                        float di = dw[b + i];
                        if (di != 0) s += di * (double) dev.qvlm.cpu.VectorMath.dot(gram, i * cols + c0, dw, b + c0, seg);
                    }
                    e[k] = s;
                }
                perRow[r] = e;
            }
        });
        for (int r = 0; r < rows; r++)
            for (int c0 = 0, k = 0; c0 < cols; c0 += seg, k++) err[grid == null ? 0 : grid.group(r, c0)] += perRow[r][k];
        return err;
    }

    /** ‖ΔW X‖² = Σ_rows δ_r G δ_rᵀ for ΔW [rows × cols] row-major and G = Σ x xᵀ: the output error over all tokens. */
    public static double outputError(double[] dw, int rows, int cols, double[] gram) {
        double[] perRow = new double[rows];
        Parallel.forRange(rows, Math.max(1, 4), (r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                int b = r * cols;
                double s = 0;
                for (int i = 0; i < cols; i++) {
                    double di = dw[b + i];
                    if (di == 0) continue;
                    double v = 0;
                    int gi = i * cols;
                    for (int j = 0; j < cols; j++) v += gram[gi + j] * dw[b + j];
                    s += di * v;
                }
                perRow[r] = s;
            }
        });
        double sum = 0;
        for (double v : perRow) sum += v;
        return sum;
    }
}
