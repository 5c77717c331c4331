package dev.qvlm.cpu;

import dev.qvlm.tensor.F32Matrix;
import dev.qvlm.tensor.HalfMatrix;
import dev.qvlm.tensor.Matrix;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;

/**
 * The FP32-activation matrix product {@code out[t, o] = Σ_i x[t, i]·W[o, i] + bias[o]} for any number of tokens
 * (a batched decode step's 2..32 rows, a prefill's hundreds), W stored (out, in) as in nn.Linear, in any
 * {@link Matrix} storage (F32 read in place; F16/BF16/int4 decoded to FP32 once per panel).
 *
 * <p>Blocking, from the outside in:
 * <ul>
 * <li>threads split the output rows ({@link Parallel#forRange} over blocks of {@value #MR} rows), so no two
 *     threads write the same output and each decodes only its own rows;</li>
 * <li>a panel of {@link #panelRows} rows is decoded once and reused by every token: F16 → F32 and int4 → FP32
 *     are paid once per weight, not once per token. Its size grows with n, 4 KB of FP32 per token between 8 KB
 *     and {@value #PANEL_BYTES} bytes (half of Zen 5's 1 MB L2): a few tokens use a panel while it is still in
 *     L1 from the decode (a fixed 64 KB panel made one-token F16 calls 7–20 % slower than the old kernel's
 *     four rows at a time), many tokens amortise the panel's x traffic over more rows;</li>
 * <li>for each group of {@code TG} = 2 tiles of {@value #NR} tokens, the input index runs in blocks of {@code KC} =
 *     512 columns, so that the group's block of x (16 KB) stays in L1 while every {@value #MR}-row tile of the
 *     panel streams its weights past it (unblocked, x and one tile's weights are 32 KB each at 2048 columns, more
 *     than the 48 KB L1 holds); each tile's accumulators wait in a small per-thread array between blocks. The
 *     group's tiles run back to back on the same weight rows, so the second reads them from L1: each weight
 *     vector fetched from L2 serves 8 tokens instead of 4, which halves the panel's L2 traffic (the tile reaches
 *     about 80 % of the FMA peak with everything in L1, about 50 % streaming from L2). On the shared 2-core test
 *     machine TinyLlama's 128-token prefill measured about 5 % faster with 2 tiles than with 1, so L2 traffic is
 *     only part of the gap; 3 or 4 tiles (24–32 KB of x) and blocks of 256 columns measured slower.
 *     {@code -Dqvlm.gemm.tg} and {@code -Dqvlm.gemm.kc} override both for such measurements ({@code tg=1} is the
 *     previous order);</li>
 * <li>the register tile is {@value #MR} rows × {@value #NR} tokens: 16 vector accumulators (with the four x
 *     vectors and one weight vector, 21 of AVX-512's 32 registers), each weight vector loaded once for four
 *     tokens and each x vector once for four rows.</li>
 * </ul>
 *
 * <p>The numeric contract (shared with the single-token kernels, see {@link VectorMath#dot4}): every output is
 * accumulated exactly as {@code dot4} does it: one lane-partial vector per output, {@code fma(w, x, acc)} over the
 * input index in ascending chunks of {@code F.length()}, then the lanes summed left to right from 0, then the
 * scalar tail {@code s += w·x} in order, then {@code + bias} ({@code + 0} without one). Tiles, blocks, n, the rows
 * a thread gets and the panel size change which outputs are computed together, never the operations of one
 * output, so a token's row is bit-identical whether it runs alone or in a batch of any size (continuous batching
 * relies on it). With 16 lanes the ordered lane sums of a 16-accumulator tile are done on a transposed copy
 * (four rounds of two-vector permutes, then 15 vector adds: lane k of the result is accumulator k's lanes added
 * left to right from 0): at 256 columns, where the lane sums are a large share of the work, the tile ran 1.5×
 * faster this way than with 16 scalar chains.
 */
public final class Gemm {
    static final VectorSpecies<Float> F = VectorMath.F;
    /** Weight rows per register tile. */
    static final int MR = 4;
    /** Tokens per register tile. */
    static final int NR = 4;
    /** Columns per block of the input index: x of one token group = 8 × 512 floats = 16 KB, a third of L1. */
    static final int KC = Math.max(F.length(), Integer.getInteger("qvlm.gemm.kc", 512) / F.length() * F.length());
    /** Token tiles per group: each weight tile is used for TG × NR tokens while it is in L1 (tuning: -Dqvlm.gemm.tg). */
    static final int TG = Math.max(1, Integer.getInteger("qvlm.gemm.tg", 2));
    /** Bytes of one decoded FP32 panel. */
    static final int PANEL_BYTES = 512 * 1024;
    /** Lane sums through a 16 × 16 transpose: the permute tables below assume exactly 16 lanes (AVX-512). */
    static final boolean TRANSPOSE = F.length() == 16;
    /**
     * Round j of the transpose swaps bit j of the accumulator index with bit j of the lane index: the lower of two
     * accumulators (index k, k + 2^j) takes lanes l with bit j clear from itself and the others from its partner
     * shifted down by 2^j; the upper one the reverse. As {@code selectFrom(p, q)} indices (16.. select q).
     */
    private static final FloatVector LO0 = swapTable(0, false), HI0 = swapTable(0, true), LO1 = swapTable(1, false),
            HI1 = swapTable(1, true), LO2 = swapTable(2, false), HI2 = swapTable(2, true), LO3 = swapTable(3, false),
            HI3 = swapTable(3, true);

    private static FloatVector swapTable(int j, boolean upper) {
        if (!TRANSPOSE) return null;
        int b = 1 << j;
        float[] idx = new float[16];
        for (int l = 0; l < 16; l++)
            idx[l] = upper ? ((l & b) == 0 ? l + b : 16 + l) : ((l & b) == 0 ? l : 16 + l - b);
        return FloatVector.fromArray(F, idx, 0);
    }

    /** Per thread: the decoded panel, the tiles' accumulators between column blocks, one tile's lane sums. */
    private static final class Scratch {
        float[] panel = new float[0];
        float[] state = new float[0];
        final float[] sums = new float[MR * NR];
    }

    private static final ThreadLocal<Scratch> SCRATCH = ThreadLocal.withInitial(Scratch::new);

    private Gemm() {}

    /** Rows per decoded panel for n tokens of {@code cols} floats: a multiple of {@value #MR}, at least one tile. */
    static int panelRows(int cols, int n) {
        long bytes = Math.clamp(4096L * n, 8192, PANEL_BYTES);
        return (int) Math.max(MR, Math.min(256, bytes / (4L * Math.max(1, cols))) / MR * MR);
    }

    /** out[t·rows + o] for t &lt; n (tokens are rows of x, {@code cols = w.cols()} apart). bias may be null. */
    public static void matmul(float[] out, int outOff, float[] x, int xOff, int n, Matrix w, float[] bias) {
        matmul(out, outOff, x, xOff, n, w, bias, TRANSPOSE);
    }

    /** {@link #matmul} with the lane sums' method chosen: tests run the scalar one (other CPUs' only) here too. */
    static void matmul(float[] out, int outOff, float[] x, int xOff, int n, Matrix w, float[] bias, boolean transpose) {
        if (transpose && !TRANSPOSE) throw new IllegalArgumentException("the transpose needs 16 lanes, not " + F.length());
        final int rows = w.rows(), cols = w.cols();
        if (n <= 0 || rows == 0) return;
        final float[] heap = w instanceof F32Matrix f ? f.array() : null;
        final int blocks = (rows + MR - 1) / MR;
        // at least 256k multiply-adds per chunk (as the previous kernel had): a hand-off to a parked pool thread
        // costs microseconds, as much as a whole small call (256 x 256, two tokens: 7 µs of one core)
        int grain = Math.max(1, 262144 / Math.max(1, MR * cols * n));
        Parallel.forRange(blocks, grain, (b0, b1) -> {
            Scratch s = SCRATCH.get();
            int pr = panelRows(cols, n);
            if (heap == null && s.panel.length < pr * cols) s.panel = new float[pr * cols];
            int stateLen = pr / MR * TG * MR * NR * F.length();
            if (s.state.length < stateLen) s.state = new float[stateLen];
            for (int r0 = b0 * MR, end = Math.min(rows, b1 * MR); r0 < end; r0 += pr) {
                int r1 = Math.min(end, r0 + pr);
                float[] panel;
                int base;
                if (heap != null) {
                    panel = heap;
                    base = r0 * cols;
                } else {
                    panel = s.panel;
                    base = 0;
                    decodePanel(w, r0, r1, cols, panel);
                }
                panel(out, outOff, x, xOff, n, rows, cols, panel, base, r0, r1, bias, s, transpose);
            }
        });
    }

    private static final VectorSpecies<Integer> I = VectorSpecies.of(int.class, F.vectorShape());
    private static final VectorSpecies<Short> S16 = VectorSpecies.of(short.class, VectorShape.forBitSize(F.vectorBitSize() / 2));

    /**
     * Rows [r0, r1) of w to FP32, row r at panel[(r − r0)·cols]. F16 weights four rows at a time, a quarter of the
     * panel apart, in lockstep: four streams from memory instead of one (the decode kernels' lesson, `HalfMatvec`);
     * the conversion is rowToFloat's, exact, so the same values.
     */
    private static void decodePanel(Matrix w, int r0, int r1, int cols, float[] panel) {
        int q = w instanceof HalfMatrix h && h.kind() == HalfMatrix.Kind.F16 && !HalfMatrix.SCALAR && cols % F.length() == 0
                ? (r1 - r0) / 4 : 0;
        if (q > 0) {
            MemorySegment seg = ((HalfMatrix) w).segment();
            for (int k = 0; k < q; k++) decode4F16(seg, r0 + k, q, cols, panel, k * cols);
        }
        for (int r = r0 + 4 * q; r < r1; r++) w.rowToFloat(r, panel, (r - r0) * cols);
    }

    /** Rows r, r + d, r + 2d, r + 3d of an F16 matrix into panel[o], [o + d·cols], ... (cols a multiple of L). */
    private static void decode4F16(MemorySegment seg, int r, int d, int cols, float[] panel, int o) {
        final long b0 = 2L * r * cols, st = 2L * d * cols, b1 = b0 + st, b2 = b1 + st, b3 = b2 + st;
        final int os = d * cols;
        for (int i = 0; i < cols; i += F.length()) {
            long off = 2L * i;
            IntVector h0 = (IntVector) ShortVector.fromMemorySegment(S16, seg, b0 + off, ByteOrder.LITTLE_ENDIAN).convertShape(VectorOperators.S2I, I, 0);
            IntVector h1 = (IntVector) ShortVector.fromMemorySegment(S16, seg, b1 + off, ByteOrder.LITTLE_ENDIAN).convertShape(VectorOperators.S2I, I, 0);
            IntVector h2 = (IntVector) ShortVector.fromMemorySegment(S16, seg, b2 + off, ByteOrder.LITTLE_ENDIAN).convertShape(VectorOperators.S2I, I, 0);
            IntVector h3 = (IntVector) ShortVector.fromMemorySegment(S16, seg, b3 + off, ByteOrder.LITTLE_ENDIAN).convertShape(VectorOperators.S2I, I, 0);
            h0.lanewise(VectorOperators.LSHL, 13).and(0x0fffe000).reinterpretAsFloats().mul(0x1p112f).reinterpretAsInts()
                    .or(h0.and(0x80000000)).reinterpretAsFloats().intoArray(panel, o + i);
            h1.lanewise(VectorOperators.LSHL, 13).and(0x0fffe000).reinterpretAsFloats().mul(0x1p112f).reinterpretAsInts()
                    .or(h1.and(0x80000000)).reinterpretAsFloats().intoArray(panel, o + os + i);
            h2.lanewise(VectorOperators.LSHL, 13).and(0x0fffe000).reinterpretAsFloats().mul(0x1p112f).reinterpretAsInts()
                    .or(h2.and(0x80000000)).reinterpretAsFloats().intoArray(panel, o + 2 * os + i);
            h3.lanewise(VectorOperators.LSHL, 13).and(0x0fffe000).reinterpretAsFloats().mul(0x1p112f).reinterpretAsInts()
                    .or(h3.and(0x80000000)).reinterpretAsFloats().intoArray(panel, o + 3 * os + i);
        }
    }

    /** Rows [r0, r1) of W, FP32 in {@code panel} from {@code base} (row r0 first, cols apart), times all n tokens. */
    private static void panel(float[] out, int outOff, float[] x, int xOff, int n, int rows, int cols,
                              float[] panel, int base, int r0, int r1, float[] bias, Scratch s, boolean transpose) {
        final int L = F.length();
        final int kv = cols - cols % L; // the vector loops cover [0, kv), finish the tail
        final int tileState = MR * NR * L;
        final float[] st = s.state, sums = s.sums;
        for (int g0 = 0; g0 < n; g0 += TG * NR) {
            final int g1 = Math.min(n, g0 + TG * NR);
            for (int kb = 0; ; kb += KC) {
                final int ke = Math.min(kv, kb + KC);
                final boolean first = kb == 0, last = ke == kv;
                for (int r = r0, so = 0; r < r1; r += MR) {
                    final int nr = Math.min(MR, r1 - r);
                    // a partial tile repeats its first row: those accumulators are computed and dropped
                    final int w0 = base + (r - r0) * cols;
                    final int w1 = nr > 1 ? w0 + cols : w0, w2 = nr > 2 ? w0 + 2 * cols : w0, w3 = nr > 3 ? w0 + 3 * cols : w0;
                    // the group's token tiles one after the other on the same weight rows: the second reads them from L1
                    for (int t0 = g0; t0 < g1; t0 += NR, so += tileState) {
                        final int nt = Math.min(NR, n - t0);
                        final int xo = xOff + t0 * cols;
                        switch (nt) {
                            case 4 -> tile4x4(panel, w0, w1, w2, w3, x, xo, cols, kb, ke, st, so, first, last, transpose, sums);
                            case 3 -> tile4x3(panel, w0, w1, w2, w3, x, xo, cols, kb, ke, st, so, first, last, transpose, sums);
                            case 2 -> tile4x2(panel, w0, w1, w2, w3, x, xo, cols, kb, ke, st, so, first, last, transpose, sums);
                            default -> tile4x1(panel, w0, w1, w2, w3, x, xo, cols, kb, ke, st, so, first, last, transpose, sums);
                        }
                        if (last)
                            finish(transpose && nt >= 2 ? sums : null, st, so, nr, nt, panel, w0, w1, w2, w3, x, xo, cols, kv,
                                    out, outOff + t0 * rows + r, rows, bias, r);
                    }
                }
                if (last) break;
            }
        }
    }

    /**
     * One tile's outputs: the ordered lane sums (from {@code sums[t·MR + k]} when the tile transposed them, else
     * summed here from its accumulators in st[so + (t·MR + k)·L ..]), the scalar tail over columns [kv, cols),
     * the bias.
     */
    private static void finish(float[] sums, float[] st, int so, int nr, int nt, float[] w, int w0, int w1, int w2, int w3,
                               float[] x, int xo, int cols, int kv, float[] out, int oo, int rows, float[] bias, int r) {
        final int L = F.length();
        for (int t = 0; t < nt; t++) {
            int xt = xo + t * cols;
            for (int k = 0; k < nr; k++) {
                float s;
                if (sums != null) s = sums[t * MR + k];
                else {
                    int a = so + (t * MR + k) * L;
                    s = 0;
                    for (int l = 0; l < L; l++) s += st[a + l];
                }
                int wk = k == 0 ? w0 : k == 1 ? w1 : k == 2 ? w2 : w3;
                for (int i = kv; i < cols; i++) s += w[wk + i] * x[xt + i];
                out[oo + t * rows + k] = s + (bias == null ? 0 : bias[r + k]);
            }
        }
    }

    // The register tiles, one per token count (the JIT keeps named locals in registers, not arrays). Each runs
    // columns [i0, i1) for rows w0..w3 and tokens xo, xo + cols, ...; accumulators start at zero (first) or from
    // st[so..] and go back there, except on the last block of a 16-lane 2-, 3- or 4-token tile, which leaves the
    // ordered lane sums of its accumulators in sums[t·MR + k] instead (the transpose of the class comment; the
    // zero rows that pad a 2- or 3-token tile to 16 only fill lanes nobody reads).

    private static void tile4x4(float[] w, int w0, int w1, int w2, int w3, float[] x, int xo, int cols, int i0, int i1,
                                 float[] st, int so, boolean first, boolean last, boolean transpose, float[] sums) {
        final int L = F.length();
        final int x0 = xo + i0, x1 = x0 + cols, x2 = x1 + cols, x3 = x2 + cols;
        final int o0 = w0 + i0, o1 = w1 + i0, o2 = w2 + i0, o3 = w3 + i0, len = i1 - i0;
        FloatVector a00, a10, a20, a30, a01, a11, a21, a31, a02, a12, a22, a32, a03, a13, a23, a33;
        if (first) {
            a00 = FloatVector.zero(F);
            a10 = a00; a20 = a00; a30 = a00; a01 = a00; a11 = a00; a21 = a00; a31 = a00; a02 = a00; a12 = a00; a22 = a00; a32 = a00; a03 = a00; a13 = a00; a23 = a00; a33 = a00;
        } else {
            a00 = FloatVector.fromArray(F, st, so);
            a10 = FloatVector.fromArray(F, st, so + 1 * L);
            a20 = FloatVector.fromArray(F, st, so + 2 * L);
            a30 = FloatVector.fromArray(F, st, so + 3 * L);
            a01 = FloatVector.fromArray(F, st, so + 4 * L);
            a11 = FloatVector.fromArray(F, st, so + 5 * L);
            a21 = FloatVector.fromArray(F, st, so + 6 * L);
            a31 = FloatVector.fromArray(F, st, so + 7 * L);
            a02 = FloatVector.fromArray(F, st, so + 8 * L);
            a12 = FloatVector.fromArray(F, st, so + 9 * L);
            a22 = FloatVector.fromArray(F, st, so + 10 * L);
            a32 = FloatVector.fromArray(F, st, so + 11 * L);
            a03 = FloatVector.fromArray(F, st, so + 12 * L);
            a13 = FloatVector.fromArray(F, st, so + 13 * L);
            a23 = FloatVector.fromArray(F, st, so + 14 * L);
            a33 = FloatVector.fromArray(F, st, so + 15 * L);
        }
        for (int i = 0; i < len; i += L) {
            FloatVector v0 = FloatVector.fromArray(F, x, x0 + i), v1 = FloatVector.fromArray(F, x, x1 + i);
            FloatVector v2 = FloatVector.fromArray(F, x, x2 + i), v3 = FloatVector.fromArray(F, x, x3 + i);
            FloatVector u = FloatVector.fromArray(F, w, o0 + i);
            a00 = u.fma(v0, a00); a01 = u.fma(v1, a01); a02 = u.fma(v2, a02); a03 = u.fma(v3, a03);
            u = FloatVector.fromArray(F, w, o1 + i);
            a10 = u.fma(v0, a10); a11 = u.fma(v1, a11); a12 = u.fma(v2, a12); a13 = u.fma(v3, a13);
            u = FloatVector.fromArray(F, w, o2 + i);
            a20 = u.fma(v0, a20); a21 = u.fma(v1, a21); a22 = u.fma(v2, a22); a23 = u.fma(v3, a23);
            u = FloatVector.fromArray(F, w, o3 + i);
            a30 = u.fma(v0, a30); a31 = u.fma(v1, a31); a32 = u.fma(v2, a32); a33 = u.fma(v3, a33);
        }
        if (last && transpose) {
            FloatVector r0 = a00, r1 = a10, r2 = a20, r3 = a30, r4 = a01, r5 = a11, r6 = a21, r7 = a31, r8 = a02, r9 = a12, r10 = a22, r11 = a32, r12 = a03, r13 = a13, r14 = a23, r15 = a33;
            FloatVector p, q;
            p = r0; q = r1; r0 = LO0.selectFrom(p, q); r1 = HI0.selectFrom(p, q); p = r2; q = r3; r2 = LO0.selectFrom(p, q); r3 = HI0.selectFrom(p, q);
            p = r4; q = r5; r4 = LO0.selectFrom(p, q); r5 = HI0.selectFrom(p, q); p = r6; q = r7; r6 = LO0.selectFrom(p, q); r7 = HI0.selectFrom(p, q);
            p = r8; q = r9; r8 = LO0.selectFrom(p, q); r9 = HI0.selectFrom(p, q); p = r10; q = r11; r10 = LO0.selectFrom(p, q); r11 = HI0.selectFrom(p, q);
            p = r12; q = r13; r12 = LO0.selectFrom(p, q); r13 = HI0.selectFrom(p, q); p = r14; q = r15; r14 = LO0.selectFrom(p, q); r15 = HI0.selectFrom(p, q);
            p = r0; q = r2; r0 = LO1.selectFrom(p, q); r2 = HI1.selectFrom(p, q); p = r1; q = r3; r1 = LO1.selectFrom(p, q); r3 = HI1.selectFrom(p, q);
            p = r4; q = r6; r4 = LO1.selectFrom(p, q); r6 = HI1.selectFrom(p, q); p = r5; q = r7; r5 = LO1.selectFrom(p, q); r7 = HI1.selectFrom(p, q);
            p = r8; q = r10; r8 = LO1.selectFrom(p, q); r10 = HI1.selectFrom(p, q); p = r9; q = r11; r9 = LO1.selectFrom(p, q); r11 = HI1.selectFrom(p, q);
            p = r12; q = r14; r12 = LO1.selectFrom(p, q); r14 = HI1.selectFrom(p, q); p = r13; q = r15; r13 = LO1.selectFrom(p, q); r15 = HI1.selectFrom(p, q);
            p = r0; q = r4; r0 = LO2.selectFrom(p, q); r4 = HI2.selectFrom(p, q); p = r1; q = r5; r1 = LO2.selectFrom(p, q); r5 = HI2.selectFrom(p, q);
            p = r2; q = r6; r2 = LO2.selectFrom(p, q); r6 = HI2.selectFrom(p, q); p = r3; q = r7; r3 = LO2.selectFrom(p, q); r7 = HI2.selectFrom(p, q);
            p = r8; q = r12; r8 = LO2.selectFrom(p, q); r12 = HI2.selectFrom(p, q); p = r9; q = r13; r9 = LO2.selectFrom(p, q); r13 = HI2.selectFrom(p, q);
            p = r10; q = r14; r10 = LO2.selectFrom(p, q); r14 = HI2.selectFrom(p, q); p = r11; q = r15; r11 = LO2.selectFrom(p, q); r15 = HI2.selectFrom(p, q);
            p = r0; q = r8; r0 = LO3.selectFrom(p, q); r8 = HI3.selectFrom(p, q); p = r1; q = r9; r1 = LO3.selectFrom(p, q); r9 = HI3.selectFrom(p, q);
            p = r2; q = r10; r2 = LO3.selectFrom(p, q); r10 = HI3.selectFrom(p, q); p = r3; q = r11; r3 = LO3.selectFrom(p, q); r11 = HI3.selectFrom(p, q);
            p = r4; q = r12; r4 = LO3.selectFrom(p, q); r12 = HI3.selectFrom(p, q); p = r5; q = r13; r5 = LO3.selectFrom(p, q); r13 = HI3.selectFrom(p, q);
            p = r6; q = r14; r6 = LO3.selectFrom(p, q); r14 = HI3.selectFrom(p, q); p = r7; q = r15; r7 = LO3.selectFrom(p, q); r15 = HI3.selectFrom(p, q);
            FloatVector s = FloatVector.zero(F).add(r0).add(r1).add(r2).add(r3).add(r4).add(r5).add(r6).add(r7).add(r8).add(r9).add(r10).add(r11).add(r12).add(r13).add(r14).add(r15);
            s.intoArray(sums, 0);
            return;
        }
        a00.intoArray(st, so); a10.intoArray(st, so + 1 * L); a20.intoArray(st, so + 2 * L); a30.intoArray(st, so + 3 * L);
        a01.intoArray(st, so + 4 * L); a11.intoArray(st, so + 5 * L); a21.intoArray(st, so + 6 * L); a31.intoArray(st, so + 7 * L);
        a02.intoArray(st, so + 8 * L); a12.intoArray(st, so + 9 * L); a22.intoArray(st, so + 10 * L); a32.intoArray(st, so + 11 * L);
        a03.intoArray(st, so + 12 * L); a13.intoArray(st, so + 13 * L); a23.intoArray(st, so + 14 * L); a33.intoArray(st, so + 15 * L);
    }

    private static void tile4x3(float[] w, int w0, int w1, int w2, int w3, float[] x, int xo, int cols, int i0, int i1,
                                 float[] st, int so, boolean first, boolean last, boolean transpose, float[] sums) {
        final int L = F.length();
        final int x0 = xo + i0, x1 = x0 + cols, x2 = x1 + cols;
        final int o0 = w0 + i0, o1 = w1 + i0, o2 = w2 + i0, o3 = w3 + i0, len = i1 - i0;
        FloatVector a00, a10, a20, a30, a01, a11, a21, a31, a02, a12, a22, a32;
        if (first) {
            a00 = FloatVector.zero(F);
            a10 = a00; a20 = a00; a30 = a00; a01 = a00; a11 = a00; a21 = a00; a31 = a00; a02 = a00; a12 = a00; a22 = a00; a32 = a00;
        } else {
            a00 = FloatVector.fromArray(F, st, so);
            a10 = FloatVector.fromArray(F, st, so + 1 * L);
            a20 = FloatVector.fromArray(F, st, so + 2 * L);
            a30 = FloatVector.fromArray(F, st, so + 3 * L);
            a01 = FloatVector.fromArray(F, st, so + 4 * L);
            a11 = FloatVector.fromArray(F, st, so + 5 * L);
            a21 = FloatVector.fromArray(F, st, so + 6 * L);
            a31 = FloatVector.fromArray(F, st, so + 7 * L);
            a02 = FloatVector.fromArray(F, st, so + 8 * L);
            a12 = FloatVector.fromArray(F, st, so + 9 * L);
            a22 = FloatVector.fromArray(F, st, so + 10 * L);
            a32 = FloatVector.fromArray(F, st, so + 11 * L);
        }
        for (int i = 0; i < len; i += L) {
            FloatVector v0 = FloatVector.fromArray(F, x, x0 + i), v1 = FloatVector.fromArray(F, x, x1 + i);
            FloatVector v2 = FloatVector.fromArray(F, x, x2 + i);
            FloatVector u = FloatVector.fromArray(F, w, o0 + i);
            a00 = u.fma(v0, a00); a01 = u.fma(v1, a01); a02 = u.fma(v2, a02);
            u = FloatVector.fromArray(F, w, o1 + i);
            a10 = u.fma(v0, a10); a11 = u.fma(v1, a11); a12 = u.fma(v2, a12);
            u = FloatVector.fromArray(F, w, o2 + i);
            a20 = u.fma(v0, a20); a21 = u.fma(v1, a21); a22 = u.fma(v2, a22);
            u = FloatVector.fromArray(F, w, o3 + i);
            a30 = u.fma(v0, a30); a31 = u.fma(v1, a31); a32 = u.fma(v2, a32);
        }
        if (last && transpose) {
            FloatVector z = FloatVector.zero(F);
            FloatVector r0 = a00, r1 = a10, r2 = a20, r3 = a30, r4 = a01, r5 = a11, r6 = a21, r7 = a31, r8 = a02, r9 = a12, r10 = a22, r11 = a32, r12 = z, r13 = z, r14 = z, r15 = z;
            FloatVector p, q;
            p = r0; q = r1; r0 = LO0.selectFrom(p, q); r1 = HI0.selectFrom(p, q); p = r2; q = r3; r2 = LO0.selectFrom(p, q); r3 = HI0.selectFrom(p, q);
            p = r4; q = r5; r4 = LO0.selectFrom(p, q); r5 = HI0.selectFrom(p, q); p = r6; q = r7; r6 = LO0.selectFrom(p, q); r7 = HI0.selectFrom(p, q);
            p = r8; q = r9; r8 = LO0.selectFrom(p, q); r9 = HI0.selectFrom(p, q); p = r10; q = r11; r10 = LO0.selectFrom(p, q); r11 = HI0.selectFrom(p, q);
            p = r12; q = r13; r12 = LO0.selectFrom(p, q); r13 = HI0.selectFrom(p, q); p = r14; q = r15; r14 = LO0.selectFrom(p, q); r15 = HI0.selectFrom(p, q);
            p = r0; q = r2; r0 = LO1.selectFrom(p, q); r2 = HI1.selectFrom(p, q); p = r1; q = r3; r1 = LO1.selectFrom(p, q); r3 = HI1.selectFrom(p, q);
            p = r4; q = r6; r4 = LO1.selectFrom(p, q); r6 = HI1.selectFrom(p, q); p = r5; q = r7; r5 = LO1.selectFrom(p, q); r7 = HI1.selectFrom(p, q);
            p = r8; q = r10; r8 = LO1.selectFrom(p, q); r10 = HI1.selectFrom(p, q); p = r9; q = r11; r9 = LO1.selectFrom(p, q); r11 = HI1.selectFrom(p, q);
            p = r12; q = r14; r12 = LO1.selectFrom(p, q); r14 = HI1.selectFrom(p, q); p = r13; q = r15; r13 = LO1.selectFrom(p, q); r15 = HI1.selectFrom(p, q);
            p = r0; q = r4; r0 = LO2.selectFrom(p, q); r4 = HI2.selectFrom(p, q); p = r1; q = r5; r1 = LO2.selectFrom(p, q); r5 = HI2.selectFrom(p, q);
            p = r2; q = r6; r2 = LO2.selectFrom(p, q); r6 = HI2.selectFrom(p, q); p = r3; q = r7; r3 = LO2.selectFrom(p, q); r7 = HI2.selectFrom(p, q);
            p = r8; q = r12; r8 = LO2.selectFrom(p, q); r12 = HI2.selectFrom(p, q); p = r9; q = r13; r9 = LO2.selectFrom(p, q); r13 = HI2.selectFrom(p, q);
            p = r10; q = r14; r10 = LO2.selectFrom(p, q); r14 = HI2.selectFrom(p, q); p = r11; q = r15; r11 = LO2.selectFrom(p, q); r15 = HI2.selectFrom(p, q);
            p = r0; q = r8; r0 = LO3.selectFrom(p, q); r8 = HI3.selectFrom(p, q); p = r1; q = r9; r1 = LO3.selectFrom(p, q); r9 = HI3.selectFrom(p, q);
            p = r2; q = r10; r2 = LO3.selectFrom(p, q); r10 = HI3.selectFrom(p, q); p = r3; q = r11; r3 = LO3.selectFrom(p, q); r11 = HI3.selectFrom(p, q);
            p = r4; q = r12; r4 = LO3.selectFrom(p, q); r12 = HI3.selectFrom(p, q); p = r5; q = r13; r5 = LO3.selectFrom(p, q); r13 = HI3.selectFrom(p, q);
            p = r6; q = r14; r6 = LO3.selectFrom(p, q); r14 = HI3.selectFrom(p, q); p = r7; q = r15; r7 = LO3.selectFrom(p, q); r15 = HI3.selectFrom(p, q);
            FloatVector s = FloatVector.zero(F).add(r0).add(r1).add(r2).add(r3).add(r4).add(r5).add(r6).add(r7).add(r8).add(r9).add(r10).add(r11).add(r12).add(r13).add(r14).add(r15);
            s.intoArray(sums, 0);
            return;
        }
        a00.intoArray(st, so); a10.intoArray(st, so + 1 * L); a20.intoArray(st, so + 2 * L); a30.intoArray(st, so + 3 * L);
        a01.intoArray(st, so + 4 * L); a11.intoArray(st, so + 5 * L); a21.intoArray(st, so + 6 * L); a31.intoArray(st, so + 7 * L);
        a02.intoArray(st, so + 8 * L); a12.intoArray(st, so + 9 * L); a22.intoArray(st, so + 10 * L); a32.intoArray(st, so + 11 * L);
    }

    private static void tile4x2(float[] w, int w0, int w1, int w2, int w3, float[] x, int xo, int cols, int i0, int i1,
                                 float[] st, int so, boolean first, boolean last, boolean transpose, float[] sums) {
        final int L = F.length();
        final int x0 = xo + i0, x1 = x0 + cols;
        final int o0 = w0 + i0, o1 = w1 + i0, o2 = w2 + i0, o3 = w3 + i0, len = i1 - i0;
        FloatVector a00, a10, a20, a30, a01, a11, a21, a31;
        if (first) {
            a00 = FloatVector.zero(F);
            a10 = a00; a20 = a00; a30 = a00; a01 = a00; a11 = a00; a21 = a00; a31 = a00;
        } else {
            a00 = FloatVector.fromArray(F, st, so);
            a10 = FloatVector.fromArray(F, st, so + 1 * L);
            a20 = FloatVector.fromArray(F, st, so + 2 * L);
            a30 = FloatVector.fromArray(F, st, so + 3 * L);
            a01 = FloatVector.fromArray(F, st, so + 4 * L);
            a11 = FloatVector.fromArray(F, st, so + 5 * L);
            a21 = FloatVector.fromArray(F, st, so + 6 * L);
            a31 = FloatVector.fromArray(F, st, so + 7 * L);
        }
        for (int i = 0; i < len; i += L) {
            FloatVector v0 = FloatVector.fromArray(F, x, x0 + i), v1 = FloatVector.fromArray(F, x, x1 + i);
            FloatVector u = FloatVector.fromArray(F, w, o0 + i);
            a00 = u.fma(v0, a00); a01 = u.fma(v1, a01);
            u = FloatVector.fromArray(F, w, o1 + i);
            a10 = u.fma(v0, a10); a11 = u.fma(v1, a11);
            u = FloatVector.fromArray(F, w, o2 + i);
            a20 = u.fma(v0, a20); a21 = u.fma(v1, a21);
            u = FloatVector.fromArray(F, w, o3 + i);
            a30 = u.fma(v0, a30); a31 = u.fma(v1, a31);
        }
        if (last && transpose) {
            FloatVector z = FloatVector.zero(F);
            FloatVector r0 = a00, r1 = a10, r2 = a20, r3 = a30, r4 = a01, r5 = a11, r6 = a21, r7 = a31, r8 = z, r9 = z, r10 = z, r11 = z, r12 = z, r13 = z, r14 = z, r15 = z;
            FloatVector p, q;
            p = r0; q = r1; r0 = LO0.selectFrom(p, q); r1 = HI0.selectFrom(p, q); p = r2; q = r3; r2 = LO0.selectFrom(p, q); r3 = HI0.selectFrom(p, q);
            p = r4; q = r5; r4 = LO0.selectFrom(p, q); r5 = HI0.selectFrom(p, q); p = r6; q = r7; r6 = LO0.selectFrom(p, q); r7 = HI0.selectFrom(p, q);
            p = r8; q = r9; r8 = LO0.selectFrom(p, q); r9 = HI0.selectFrom(p, q); p = r10; q = r11; r10 = LO0.selectFrom(p, q); r11 = HI0.selectFrom(p, q);
            p = r12; q = r13; r12 = LO0.selectFrom(p, q); r13 = HI0.selectFrom(p, q); p = r14; q = r15; r14 = LO0.selectFrom(p, q); r15 = HI0.selectFrom(p, q);
            p = r0; q = r2; r0 = LO1.selectFrom(p, q); r2 = HI1.selectFrom(p, q); p = r1; q = r3; r1 = LO1.selectFrom(p, q); r3 = HI1.selectFrom(p, q);
            p = r4; q = r6; r4 = LO1.selectFrom(p, q); r6 = HI1.selectFrom(p, q); p = r5; q = r7; r5 = LO1.selectFrom(p, q); r7 = HI1.selectFrom(p, q);
            p = r8; q = r10; r8 = LO1.selectFrom(p, q); r10 = HI1.selectFrom(p, q); p = r9; q = r11; r9 = LO1.selectFrom(p, q); r11 = HI1.selectFrom(p, q);
            p = r12; q = r14; r12 = LO1.selectFrom(p, q); r14 = HI1.selectFrom(p, q); p = r13; q = r15; r13 = LO1.selectFrom(p, q); r15 = HI1.selectFrom(p, q);
            p = r0; q = r4; r0 = LO2.selectFrom(p, q); r4 = HI2.selectFrom(p, q); p = r1; q = r5; r1 = LO2.selectFrom(p, q); r5 = HI2.selectFrom(p, q);
            p = r2; q = r6; r2 = LO2.selectFrom(p, q); r6 = HI2.selectFrom(p, q); p = r3; q = r7; r3 = LO2.selectFrom(p, q); r7 = HI2.selectFrom(p, q);
            p = r8; q = r12; r8 = LO2.selectFrom(p, q); r12 = HI2.selectFrom(p, q); p = r9; q = r13; r9 = LO2.selectFrom(p, q); r13 = HI2.selectFrom(p, q);
            p = r10; q = r14; r10 = LO2.selectFrom(p, q); r14 = HI2.selectFrom(p, q); p = r11; q = r15; r11 = LO2.selectFrom(p, q); r15 = HI2.selectFrom(p, q);
            p = r0; q = r8; r0 = LO3.selectFrom(p, q); r8 = HI3.selectFrom(p, q); p = r1; q = r9; r1 = LO3.selectFrom(p, q); r9 = HI3.selectFrom(p, q);
            p = r2; q = r10; r2 = LO3.selectFrom(p, q); r10 = HI3.selectFrom(p, q); p = r3; q = r11; r3 = LO3.selectFrom(p, q); r11 = HI3.selectFrom(p, q);
            p = r4; q = r12; r4 = LO3.selectFrom(p, q); r12 = HI3.selectFrom(p, q); p = r5; q = r13; r5 = LO3.selectFrom(p, q); r13 = HI3.selectFrom(p, q);
            p = r6; q = r14; r6 = LO3.selectFrom(p, q); r14 = HI3.selectFrom(p, q); p = r7; q = r15; r7 = LO3.selectFrom(p, q); r15 = HI3.selectFrom(p, q);
            FloatVector s = FloatVector.zero(F).add(r0).add(r1).add(r2).add(r3).add(r4).add(r5).add(r6).add(r7).add(r8).add(r9).add(r10).add(r11).add(r12).add(r13).add(r14).add(r15);
            s.intoArray(sums, 0);
            return;
        }
        a00.intoArray(st, so); a10.intoArray(st, so + 1 * L); a20.intoArray(st, so + 2 * L); a30.intoArray(st, so + 3 * L);
        a01.intoArray(st, so + 4 * L); a11.intoArray(st, so + 5 * L); a21.intoArray(st, so + 6 * L); a31.intoArray(st, so + 7 * L);
    }

    private static void tile4x1(float[] w, int w0, int w1, int w2, int w3, float[] x, int xo, int cols, int i0, int i1,
                                 float[] st, int so, boolean first, boolean last, boolean transpose, float[] sums) {
        final int L = F.length();
        final int x0 = xo + i0;
        final int o0 = w0 + i0, o1 = w1 + i0, o2 = w2 + i0, o3 = w3 + i0, len = i1 - i0;
        FloatVector a00, a10, a20, a30;
        if (first) {
            a00 = FloatVector.zero(F);
            a10 = a00; a20 = a00; a30 = a00;
        } else {
            a00 = FloatVector.fromArray(F, st, so);
            a10 = FloatVector.fromArray(F, st, so + 1 * L);
            a20 = FloatVector.fromArray(F, st, so + 2 * L);
            a30 = FloatVector.fromArray(F, st, so + 3 * L);
        }
        for (int i = 0; i < len; i += L) {
            FloatVector v0 = FloatVector.fromArray(F, x, x0 + i);
            FloatVector u = FloatVector.fromArray(F, w, o0 + i);
            a00 = u.fma(v0, a00);
            u = FloatVector.fromArray(F, w, o1 + i);
            a10 = u.fma(v0, a10);
            u = FloatVector.fromArray(F, w, o2 + i);
            a20 = u.fma(v0, a20);
            u = FloatVector.fromArray(F, w, o3 + i);
            a30 = u.fma(v0, a30);
        }
        a00.intoArray(st, so); a10.intoArray(st, so + 1 * L); a20.intoArray(st, so + 2 * L); a30.intoArray(st, so + 3 * L);
    }

}
