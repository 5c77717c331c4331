package dev.qvlm.quant;

import dev.qvlm.cpu.Parallel;

import java.util.Arrays;

/**
 * GPTQ (Frantar et al., "GPTQ: Accurate Post-Training Quantization for Generative Pre-trained Transformers", 2022):
 * rounds one weight matrix column by column onto a fixed {@link Grid}, spreading each column's rounding error over
 * the columns not yet rounded so as to minimise ‖W X − Ŵ X‖² for the calibration inputs X, through H = 2 X Xᵀ.
 *
 * <p>As the paper's Algorithm 1: H += λ·I with λ = percDamp · mean(diag H); the upper Cholesky factor U of H⁻¹
 * (H⁻¹ = Uᵀ U) gives, for column i, err = (w_i − q(w_i)) / U[i,i] and w_j −= err · U[i,j] for j > i. Updates inside a
 * block of {@code blockSize} columns are applied at once per column; those to the columns after the block are
 * batched ("lazy batch updates", Err · U[block, rest]). Columns of H with a zero diagonal (inputs always 0) are set
 * to 0 and get H[i,i] = 1. With act-order the columns are processed in order of decreasing H[i,i].
 *
 * <p>The grid is fixed before rounding, per row (per channel) or per group of the original weights: for channels
 * this is what the reference implementation (IST-DASLab/gptq) does; for groups it is its {@code static_groups=True}
 * mode (the default there computes a group's scale from the error-updated weights when the loop reaches it). A
 * fixed grid is what lets the bound search of Q-VLM choose the clipping percentile of each group before GPTQ rounds.
 * (The reference also zeroes dead columns before taking the ranges; here the ranges come from the weights as
 * they are, which only differs for an input channel that is exactly 0 on every calibration token.)
 *
 * <p>Rows are independent given U, so they are processed in tiles of rows in parallel; H and U are in FP64.
 */
public final class Gptq {
    private Gptq() {}

    /** blockSize: lazy-batch width (128 in the paper); percDamp: λ / mean(diag H) (0.01); actOrder: sort by diag H. */
    public record Options(int blockSize, double percDamp, boolean actOrder) {
        public static final Options DEFAULT = new Options(128, 0.01, false);

        public Options {
            if (blockSize < 1) throw new IllegalArgumentException("GPTQ block size must be at least 1, got " + blockSize);
            if (!(percDamp > 0)) throw new IllegalArgumentException("GPTQ dampening must be positive, got " + percDamp);
        }
    }

    /**
     * Quantizes row-major {@code w} [rows × cols] onto {@code grid} with GPTQ.
     *
     * @param h the Hessian 2·Σ x xᵀ (or any positive multiple of Σ x xᵀ: only ratios matter), [cols × cols] row-major
     */
    public static QuantizedWeight quantize(float[] w, Grid grid, double[] h, Options o) {
        return quantize(w, grid, factor(h, grid.cols(), o), o);
    }

    /** What GPTQ needs from H, computed once for any number of grids: the column order, dead columns and U. */
    public record Factor(int[] perm, boolean[] dead, double[] U) {}

    public static Factor factor(double[] h, int C, Options o) {
        if (h.length != C * C) throw new IllegalArgumentException("Hessian: " + h.length + " values for " + C + " columns");
        int[] perm = order(h, C, o.actOrder());
        boolean[] dead = new boolean[C];
        for (int i = 0; i < C; i++) dead[i] = h[i * C + i] == 0;
        return new Factor(perm, dead, inverseCholeskyUpper(permuted(h, C, perm, dead), C, o.percDamp()));
    }

    /** GPTQ with a precomputed {@link #factor} of the layer's Hessian. */
    public static QuantizedWeight quantize(float[] w, Grid grid, Factor f, Options o) {
        int R = grid.rows(), C = grid.cols();
        if (w.length != R * C) throw new IllegalArgumentException("weights: " + w.length + " values for " + R + "x" + C);
        int[] perm = f.perm();
        boolean[] dead = f.dead();
        double[] U = f.U();
        if (U.length != C * C) throw new IllegalArgumentException("factor of " + (int) Math.sqrt(U.length) + " columns for " + C);
        byte[] codes = new byte[R * C];
        int tile = 16, B = Math.min(o.blockSize(), C);
        Parallel.forRange((R + tile - 1) / tile, 1, (t0, t1) -> {
            for (int t = t0; t < t1; t++) {
                int r0 = t * tile, r1 = Math.min(R, r0 + tile), T = r1 - r0;
                double[] W = new double[T * C];
                for (int a = 0; a < T; a++)
                    for (int j = 0; j < C; j++) W[a * C + j] = dead[perm[j]] ? 0 : w[(r0 + a) * C + perm[j]];
                double[] err = new double[T * B];
                for (int i1 = 0; i1 < C; i1 += B) {
                    int i2 = Math.min(C, i1 + B);
                    for (int i = i1; i < i2; i++) {
                        double d = U[i * C + i];
                        int col = perm[i];
                        for (int a = 0; a < T; a++) {
                            int r = r0 + a;
                            double x = W[a * C + i];
                            int q = grid.code(r, col, x);
                            codes[r * C + col] = (byte) q;
                            double e = (x - grid.value(r, col, q)) / d;
                            err[a * B + i - i1] = e;
                            if (e == 0) continue;
                            for (int j = i + 1; j < i2; j++) W[a * C + j] -= e * U[i * C + j];
                        }
                    }
                    // lazy batch: the block's errors reach the remaining columns in one product Err · U[i1:i2, i2:]
                    if (i2 < C)
                        for (int a = 0; a < T; a++)
                            for (int k = 0; k < i2 - i1; k++) {
                                double e = err[a * B + k];
                                if (e == 0) continue;
                                int ur = (i1 + k) * C;
                                for (int j = i2; j < C; j++) W[a * C + j] -= e * U[ur + j];
                            }
                }
            }
        });
        return grid.withCodes(codes);
    }

    /** Processing order of the columns: 0..C−1, or by decreasing H[i,i] (ties by index) with act-order. */
    static int[] order(double[] h, int C, boolean actOrder) {
        Integer[] idx = new Integer[C];
        for (int i = 0; i < C; i++) idx[i] = i;
        if (actOrder) Arrays.sort(idx, (a, b) -> Double.compare(h[b * C + b], h[a * C + a]));
        return Arrays.stream(idx).mapToInt(Integer::intValue).toArray();
    }

    private static double[] permuted(double[] h, int C, int[] perm, boolean[] dead) {
        double[] p = new double[C * C];
        for (int i = 0; i < C; i++)
            for (int j = 0; j < C; j++) p[i * C + j] = h[perm[i] * C + perm[j]];
        for (int i = 0; i < C; i++) if (dead[perm[i]]) p[i * C + i] = 1;
        return p;
    }

    /**
     * U upper triangular with Uᵀ U = (H + λI)⁻¹, λ = percDamp · mean(diag H). If H + λI is not positive definite in
     * floating point (rank-deficient H from few tokens), λ grows tenfold until it is, as GPTQModel does.
     */
    static double[] inverseCholeskyUpper(double[] h, int C, double percDamp) {
        double mean = 0;
        for (int i = 0; i < C; i++) mean += h[i * C + i];
        mean /= C;
        for (double damp = percDamp; ; damp *= 10) {
            double[] a = h.clone();
            for (int i = 0; i < C; i++) a[i * C + i] += damp * mean;
            if (!cholesky(a, C)) {
                if (damp > 1e3) throw new IllegalStateException("Hessian is not positive definite even with dampening " + damp);
                continue;
            }
            double[] inv = inverseFromCholesky(a, C);
            if (!cholesky(inv, C)) continue;
            // inv now holds L' (lower) with L' L'ᵀ = H⁻¹; U = L'ᵀ
            double[] U = new double[C * C];
            for (int i = 0; i < C; i++)
                for (int j = i; j < C; j++) U[i * C + j] = inv[j * C + i];
            return U;
        }
    }

    /** In-place lower Cholesky factor (upper triangle zeroed); false if the matrix is not positive definite. */
    static boolean cholesky(double[] a, int n) {
        for (int j = 0; j < n; j++) {
            double s = a[j * n + j];
            for (int k = 0; k < j; k++) s -= a[j * n + k] * a[j * n + k];
            if (!(s > 0)) return false;
            double d = Math.sqrt(s);
            a[j * n + j] = d;
            final int jj = j;
            Parallel.forRange(n - j - 1, Math.max(1, 4096 / Math.max(1, j)), (i0, i1) -> {
                for (int i = jj + 1 + i0; i < jj + 1 + i1; i++) {
                    double v = a[i * n + jj];
                    for (int k = 0; k < jj; k++) v -= a[i * n + k] * a[jj * n + k];
                    a[i * n + jj] = v / d;
                }
            });
        }
        for (int i = 0; i < n; i++) for (int j = i + 1; j < n; j++) a[i * n + j] = 0;
        return true;
    }

    /** (L Lᵀ)⁻¹ = L⁻ᵀ L⁻¹ from the lower factor L. */
    static double[] inverseFromCholesky(double[] l, int n) {
        // M = L⁻¹ (lower), row by row: M[i] = (e_i − Σ_{k<i} L[i][k] M[k]) / L[i][i], contiguous row updates
        double[] m = new double[n * n];
        for (int i = 0; i < n; i++) {
            int ri = i * n;
            for (int k = 0; k < i; k++) {
                double f = l[ri + k];
                if (f == 0) continue;
                int rk = k * n;
                for (int j = 0; j <= k; j++) m[ri + j] -= f * m[rk + j];
            }
            double d = l[ri + i];
            for (int j = 0; j < i; j++) m[ri + j] /= d;
            m[ri + i] = 1 / d;
        }
        // inv[i][j] = Σ_k M[k][i] M[k][j], k ≥ max(i, j)
        double[] inv = new double[n * n];
        Parallel.forRange(n, Math.max(1, 64), (i0, i1) -> {
            for (int i = i0; i < i1; i++)
                for (int k = i; k < n; k++) {
                    double mi = m[k * n + i];
                    if (mi == 0) continue;
                    for (int j = 0; j <= k; j++) inv[i * n + j] += mi * m[k * n + j];
                }
        });
        return inv;
    }
}
