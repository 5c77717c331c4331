package dev.qvlm.cpu;

import dev.qvlm.tensor.F32Matrix;
import dev.qvlm.tensor.Matrix;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * The FP32-activation matrix product {@code out[t, o] = Σ_i x[t, i]·W[o, i] + bias[o]} for any number of tokens
 * (a batched decode step's 2..32 rows, a prefill's hundreds), W stored (out, in) as in nn.Linear, in any
 * {@link Matrix} storage (F32 read in place; F16/BF16/int4 decoded to FP32).
 *
 * <p>Blocking, from the outside in:
 * <ul>
 * <li>threads split the output rows ({@link Parallel#forRange} over blocks of {@value #MR} rows), so no two
 *     threads write the same output and each decodes only its own rows;</li>
 * <li>a panel of {@link #panelRows} rows (about {@value #PANEL_BYTES} bytes of FP32, so it stays in L2) is decoded
 *     once and reused by every token: the F16 → F32 / int4 → FP32 cost is paid once per weight, not once per
 *     token;</li>
 * <li>inside the panel, tiles of {@value #NR} tokens (their activation rows stay in L1/L2 across the panel) times
 *     {@value #MR} rows: a register tile of 16 vector accumulators (fits AVX-512's 32 registers with the four x
 *     vectors and one weight vector), each weight vector loaded once for four tokens and each x vector once for
 *     four rows.</li>
 * </ul>
 *
 * <p>The numeric contract (shared with the single-token kernels, see {@link VectorMath#dot4}): every output is
 * accumulated exactly as {@code dot4} does it: one lane-partial vector per output, {@code fma(w, x, acc)} over the
 * input index in ascending chunks of {@code F.length()}, then the lanes summed left to right from 0, then the scalar
 * tail {@code s += w·x} in order, then {@code + bias} ({@code + 0} without one). The tile shape, n, the row range a
 * thread gets and the panel size change which outputs are computed together, never the operations of one output, so
 * a token's row is bit-identical whether it runs alone or in a batch of any size (continuous batching relies on it).
 */
public final class Gemm {
    static final VectorSpecies<Float> F = VectorMath.F;
    /** Weight rows per register tile. */
    static final int MR = 4;
    /** Tokens per register tile. */
    static final int NR = 4;
    /** FP32 bytes of one decoded panel: a quarter of Zen 5's 1 MB L2, leaving room for the tokens' x rows. */
    static final int PANEL_BYTES = 256 * 1024;

    /** Per thread: the decoded panel, and the tile's accumulators spilled for the ordered lane sums. */
    private static final ThreadLocal<float[][]> SCRATCH = ThreadLocal.withInitial(() -> new float[][] {new float[0], new float[MR * NR * F.length()]});

    private Gemm() {}

    /** Rows per decoded panel for rows of {@code cols} floats: a multiple of {@value #MR}, at least one tile. */
    static int panelRows(int cols) {
        return Math.max(MR, Math.min(256, PANEL_BYTES / (4 * Math.max(1, cols))) / MR * MR);
    }

    /** out[t·rows + o] for t &lt; n (tokens are rows of x, {@code cols = w.cols()} apart). bias may be null. */
    public static void matmul(float[] out, int outOff, float[] x, int xOff, int n, Matrix w, float[] bias) {
        final int rows = w.rows(), cols = w.cols();
        if (n <= 0 || rows == 0) return;
        final float[] heap = w instanceof F32Matrix f ? f.array() : null;
        final int blocks = (rows + MR - 1) / MR;
        // about 64k multiply-adds per chunk, so the hand-off to another thread stays small against the work
        int grain = Math.max(1, 65536 / Math.max(1, MR * cols * n));
        Parallel.forRange(blocks, grain, (b0, b1) -> {
            float[][] s = SCRATCH.get();
            int pr = panelRows(cols);
            if (heap == null && s[0].length < pr * cols) s[0] = new float[pr * cols];
            for (int r0 = b0 * MR, end = Math.min(rows, b1 * MR); r0 < end; r0 += pr) {
                int r1 = Math.min(end, r0 + pr);
                float[] panel;
                int base;
                if (heap != null) {
                    panel = heap;
                    base = r0 * cols;
                } else {
                    panel = s[0];
                    base = 0;
                    for (int r = r0; r < r1; r++) w.rowToFloat(r, panel, (r - r0) * cols);
                }
                panel(out, outOff, x, xOff, n, rows, cols, panel, base, r0, r1, bias, s[1]);
            }
        });
    }

    /** Rows [r0, r1) of W, FP32 in {@code panel} from {@code base} (row r0 first, cols apart), times all n tokens. */
    private static void panel(float[] out, int outOff, float[] x, int xOff, int n, int rows, int cols,
                              float[] panel, int base, int r0, int r1, float[] bias, float[] acc) {
        for (int t0 = 0; t0 < n; t0 += NR) {
            int nt = Math.min(NR, n - t0);
            int xo = xOff + t0 * cols;
            for (int r = r0; r < r1; r += MR) {
                int nr = Math.min(MR, r1 - r);
                // a partial tile repeats its first row: those accumulators are computed and dropped
                int w0 = base + (r - r0) * cols;
                int w1 = nr > 1 ? w0 + cols : w0, w2 = nr > 2 ? w0 + 2 * cols : w0, w3 = nr > 3 ? w0 + 3 * cols : w0;
                int kv;
                switch (nt) {
                    case 4 -> kv = tile4x4(panel, w0, w1, w2, w3, x, xo, cols, acc);
                    case 3 -> kv = tile4x3(panel, w0, w1, w2, w3, x, xo, cols, acc);
                    case 2 -> kv = tile4x2(panel, w0, w1, w2, w3, x, xo, cols, acc);
                    default -> kv = tile4x1(panel, w0, w1, w2, w3, x, xo, cols, acc);
                }
                finish(acc, nr, nt, panel, w0, w1, w2, w3, x, xo, cols, kv, out, outOff + t0 * rows + r, rows, bias, r);
            }
        }
    }

    /**
     * The ordered lane sums, scalar tails and bias of one tile: acc[(t·MR + k)·L + l] is lane l of the accumulator of
     * row k, token t; columns [kv, cols) are the tail the vector loop left.
     */
    private static void finish(float[] acc, int nr, int nt, float[] w, int w0, int w1, int w2, int w3,
                               float[] x, int xo, int cols, int kv, float[] out, int oo, int rows, float[] bias, int r) {
        final int L = F.length();
        for (int t = 0; t < nt; t++) {
            int xt = xo + t * cols;
            for (int k = 0; k < nr; k++) {
                int a = (t * MR + k) * L;
                float s = 0;
                for (int l = 0; l < L; l++) s += acc[a + l];
                int wk = k == 0 ? w0 : k == 1 ? w1 : k == 2 ? w2 : w3;
                for (int i = kv; i < cols; i++) s += w[wk + i] * x[xt + i];
                out[oo + t * rows + k] = s + (bias == null ? 0 : bias[r + k]);
            }
        }
    }

    // The register tiles. Each returns the first column its vector loop did not cover and leaves its accumulators
    // in acc (layout of finish). Written out per token count: the JIT keeps named locals in registers, not arrays.

    private static int tile4x4(float[] w, int w0, int w1, int w2, int w3, float[] x, int xo, int cols, float[] acc) {
        final int L = F.length();
        final int x0 = xo, x1 = xo + cols, x2 = xo + 2 * cols, x3 = xo + 3 * cols;
        FloatVector a00 = FloatVector.zero(F), a01 = a00, a02 = a00, a03 = a00, a10 = a00, a11 = a00, a12 = a00, a13 = a00;
        FloatVector a20 = a00, a21 = a00, a22 = a00, a23 = a00, a30 = a00, a31 = a00, a32 = a00, a33 = a00;
        int i = 0;
        for (int upper = cols - L; i <= upper; i += L) {
            FloatVector v0 = FloatVector.fromArray(F, x, x0 + i), v1 = FloatVector.fromArray(F, x, x1 + i);
            FloatVector v2 = FloatVector.fromArray(F, x, x2 + i), v3 = FloatVector.fromArray(F, x, x3 + i);
            FloatVector u = FloatVector.fromArray(F, w, w0 + i);
            a00 = u.fma(v0, a00); a01 = u.fma(v1, a01); a02 = u.fma(v2, a02); a03 = u.fma(v3, a03);
            u = FloatVector.fromArray(F, w, w1 + i);
            a10 = u.fma(v0, a10); a11 = u.fma(v1, a11); a12 = u.fma(v2, a12); a13 = u.fma(v3, a13);
            u = FloatVector.fromArray(F, w, w2 + i);
            a20 = u.fma(v0, a20); a21 = u.fma(v1, a21); a22 = u.fma(v2, a22); a23 = u.fma(v3, a23);
            u = FloatVector.fromArray(F, w, w3 + i);
            a30 = u.fma(v0, a30); a31 = u.fma(v1, a31); a32 = u.fma(v2, a32); a33 = u.fma(v3, a33);
        }
        // token t, row k at (t·MR + k)·L
        a00.intoArray(acc, 0); a10.intoArray(acc, L); a20.intoArray(acc, 2 * L); a30.intoArray(acc, 3 * L);
        a01.intoArray(acc, 4 * L); a11.intoArray(acc, 5 * L); a21.intoArray(acc, 6 * L); a31.intoArray(acc, 7 * L);
        a02.intoArray(acc, 8 * L); a12.intoArray(acc, 9 * L); a22.intoArray(acc, 10 * L); a32.intoArray(acc, 11 * L);
        a03.intoArray(acc, 12 * L); a13.intoArray(acc, 13 * L); a23.intoArray(acc, 14 * L); a33.intoArray(acc, 15 * L);
        return i;
    }

    private static int tile4x3(float[] w, int w0, int w1, int w2, int w3, float[] x, int xo, int cols, float[] acc) {
        final int L = F.length();
        final int x0 = xo, x1 = xo + cols, x2 = xo + 2 * cols;
        FloatVector a00 = FloatVector.zero(F), a01 = a00, a02 = a00, a10 = a00, a11 = a00, a12 = a00;
        FloatVector a20 = a00, a21 = a00, a22 = a00, a30 = a00, a31 = a00, a32 = a00;
        int i = 0;
        for (int upper = cols - L; i <= upper; i += L) {
            FloatVector v0 = FloatVector.fromArray(F, x, x0 + i), v1 = FloatVector.fromArray(F, x, x1 + i);
            FloatVector v2 = FloatVector.fromArray(F, x, x2 + i);
            FloatVector u = FloatVector.fromArray(F, w, w0 + i);
            a00 = u.fma(v0, a00); a01 = u.fma(v1, a01); a02 = u.fma(v2, a02);
            u = FloatVector.fromArray(F, w, w1 + i);
            a10 = u.fma(v0, a10); a11 = u.fma(v1, a11); a12 = u.fma(v2, a12);
            u = FloatVector.fromArray(F, w, w2 + i);
            a20 = u.fma(v0, a20); a21 = u.fma(v1, a21); a22 = u.fma(v2, a22);
            u = FloatVector.fromArray(F, w, w3 + i);
            a30 = u.fma(v0, a30); a31 = u.fma(v1, a31); a32 = u.fma(v2, a32);
        }
        a00.intoArray(acc, 0); a10.intoArray(acc, L); a20.intoArray(acc, 2 * L); a30.intoArray(acc, 3 * L);
        a01.intoArray(acc, 4 * L); a11.intoArray(acc, 5 * L); a21.intoArray(acc, 6 * L); a31.intoArray(acc, 7 * L);
        a02.intoArray(acc, 8 * L); a12.intoArray(acc, 9 * L); a22.intoArray(acc, 10 * L); a32.intoArray(acc, 11 * L);
        return i;
    }

    private static int tile4x2(float[] w, int w0, int w1, int w2, int w3, float[] x, int xo, int cols, float[] acc) {
        final int L = F.length();
        final int x0 = xo, x1 = xo + cols;
        FloatVector a00 = FloatVector.zero(F), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00, a31 = a00;
        int i = 0;
        for (int upper = cols - L; i <= upper; i += L) {
            FloatVector v0 = FloatVector.fromArray(F, x, x0 + i), v1 = FloatVector.fromArray(F, x, x1 + i);
            FloatVector u = FloatVector.fromArray(F, w, w0 + i);
            a00 = u.fma(v0, a00); a01 = u.fma(v1, a01);
            u = FloatVector.fromArray(F, w, w1 + i);
            a10 = u.fma(v0, a10); a11 = u.fma(v1, a11);
            u = FloatVector.fromArray(F, w, w2 + i);
            a20 = u.fma(v0, a20); a21 = u.fma(v1, a21);
            u = FloatVector.fromArray(F, w, w3 + i);
            a30 = u.fma(v0, a30); a31 = u.fma(v1, a31);
        }
        a00.intoArray(acc, 0); a10.intoArray(acc, L); a20.intoArray(acc, 2 * L); a30.intoArray(acc, 3 * L);
        a01.intoArray(acc, 4 * L); a11.intoArray(acc, 5 * L); a21.intoArray(acc, 6 * L); a31.intoArray(acc, 7 * L);
        return i;
    }

    private static int tile4x1(float[] w, int w0, int w1, int w2, int w3, float[] x, int xo, int cols, float[] acc) {
        final int L = F.length();
        FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
        int i = 0;
        for (int upper = cols - L; i <= upper; i += L) {
            FloatVector v = FloatVector.fromArray(F, x, xo + i);
            a0 = FloatVector.fromArray(F, w, w0 + i).fma(v, a0);
            a1 = FloatVector.fromArray(F, w, w1 + i).fma(v, a1);
            a2 = FloatVector.fromArray(F, w, w2 + i).fma(v, a2);
            a3 = FloatVector.fromArray(F, w, w3 + i).fma(v, a3);
        }
        a0.intoArray(acc, 0); a1.intoArray(acc, L); a2.intoArray(acc, 2 * L); a3.intoArray(acc, 3 * L);
        return i;
    }
}
