package dev.qvlm.cpu;

import dev.qvlm.quant.Q4Matrix;
import dev.qvlm.tensor.HalfMatrix;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;

/**
 * int4 weights × int8 activations (llama.cpp's Q4_0 × Q8_0 idea on our packed layout): the opt-in approximate
 * decode path ({@code --int8-activations}). Each activation row is quantized once per call ({@link Int8Rows}, blocks
 * of 32); the weights' nibbles meet the int8 codes in integer arithmetic, exact:
 *
 * <pre>
 * out[t, o] = Σ_g s[o, g] · Σ_{b ∈ g} d[t, b] · Σ_{i ∈ b} (q[o, i] − z[o, g]) · xq[t, i]   (+ bias[o])
 *             weight group g (128 columns or the whole row), activation block b (32 columns, inside one group)
 * </pre>
 *
 * One step covers {@link Int8Rows#STEP} columns (128 with AVX-512): 64 packed bytes are loaded once as int16 lanes
 * of four nibbles (columns 4k..4k+3 in lane k); nibble j is a 16-bit shift and mask, minus the zero point, times
 * the int8 codes of {@link Int8Rows} (nibble-major there) widened to int16, summed over the four nibbles in int16
 * (|sum| ≤ 4·15·127 = 7620); adjacent int16 lanes are added into int32 (a shift pair on the same register), which puts 8 columns of one
 * activation block in each int32 lane; converted to float they meet the per-lane block scales times the group scale
 * in one FMA, and the row's 16 lanes are summed once at the end. The integer part is exact, the float part runs in a
 * fixed order, so a row's result does not depend on the other rows of the call (batched = single).
 *
 * <p>Which Vector API form: the API has no byte dot-product operation (vpmaddubsw / vpdpbusd / vpmaddwd) on JDK 25,
 * and C2 forms vpmaddwd/vpdpwssd only from scalar loops over short arrays ({@code out[i] += a[2i]·b[2i] +
 * a[2i+1]·b[2i+1]}, checked in the disassembly), not from vector code or from computed operands. Forms compared by
 * throughput (scratch harness, interleaved, best of 32 passes; 2-core Zen 5 EPYC, AVX-512, shared, noisy):
 * <pre>
 * one thread, 4096×4096 q4g128 held in L3                                      GB/s of weights
 *   A  32 packed bytes, low/high nibble bytes, B2S, two S2I halves, 2 FMA       2.4–10.5
 *   B  as A, but int16 pairs summed into int32 by shifts, one FMA with lane scales  13.4
 *   D  16 bytes zero-extended B2I, int32 multiply (vpmulld) by int32 codes       9.7–11.7
 *   E  int16 lanes of 4 nibbles, 4 int16 multiplies, pair sum, one FMA (chosen) 14.9–15.8
 *   F  E without subtracting the zero point (a per-group correction instead)     14.2–15.7 (no gain: kept E, exact)
 *   the FP32-activation fused kernel (Q4Matrix), same runs                      13.4–16.5
 * one thread, 4096×11008 streamed from DRAM (256 MB of copies)
 *   E with int16 activation codes                                              4.2–7.7
 *   E with two rows sharing each activation load                               4.9–8.3
 *   E with int8 codes widened in the kernel (B2S; chosen)                      10.4–11.9
 * one thread, 2048×2048, 2026-11-27 later: the loop around E (quiet machine)    from L3 (16 MB)   from DRAM (128 MB)
 *   E in a group loop with a step loop inside (runs once for g128), lane sum     17.3–18.1         17.0–17.2
 *   E in one flat loop over steps, group scale folded into the lane scales (now) 24.8–26.5         21.7–23.1
 *   the flat loop, two adjacent rows sharing the widened codes                   23.9–28.5          8.0–9.6
 *   the flat loop, two rows half the matrix apart sharing them (now)                 –             23.8–26.6
 *   the flat loop without the zero-point subtraction (lane-sum correction)       26.2–27.0         20.2–23.4
 * </pre>
 * The disassembly (HotSpot's hex dump without hsdis, fed to objdump) showed why the loop mattered: the nested form
 * spent about 20 scalar instructions per step (bounds checks, spilled indices, the inner loop's entry and exit)
 * next to its 32 vector ones. Two adjacent rows at once lose from DRAM (the prefetcher does not follow two streams
 * one row apart); two rows far apart gain: one thread +16–20 % on 7B shapes, and end to end (TinyLlama-1.1B W4,
 * 2 threads, 3 interleaved rounds) 54.9–58.8 tokens/s against 49.9–50.5 one row at a time. The machine reads
 * 61–77 GB/s with two threads of two streams each; one stream per thread had left a third of it unused.
 * In L3 the integer kernel is not faster than the FP32 one on this core (both do about 5 vector operations per 16
 * weights); from memory it is, because its activations (1 byte per column instead of 4) stay in L1 next to the
 * streaming weights. Column panels (rows revisited per 4096 columns so that a panel of activations stays in L1)
 * measured slower (2.5 against 4–7 GB/s): they turn one sequential stream into eight.
 */
public final class Int8Matmul {
    private Int8Matmul() {}

    static final VectorSpecies<Short> S = Int8Rows.S;
    static final VectorSpecies<Byte> B = VectorSpecies.of(byte.class, VectorShape.forBitSize(S.vectorBitSize() / 2));
    static final VectorSpecies<Float> F = Int8Rows.F;
    static final int STEP = Int8Rows.STEP, SL = S.length();

    /**
     * Calls of up to this many rows take the int8 kernel when it is enabled (a decode step, batched up to 32
     * sequences). Longer ones (prefill) are compute-bound: there the exact path, which decodes each weight row once
     * and reuses it for every token, does fewer vector operations per token than this kernel, which unpacks the row
     * again per token. Measured (4096×4096 q4g128, 2 threads, loaded machine, best of 8): 128 tokens 91 ms int8
     * against 80 ms exact (decode once per row, before the i14-gemm GEMM); 32 tokens 21 ms int8 against 40 ms for
     * the exact fused kernel.
     */
    public static final int MAX_TOKENS = Q4Matrix.FUSED_MAX_TOKENS;

    /**
     * Whether the kernel takes this matrix: whole steps per weight group (group size 128, or per-channel rows of a
     * multiple of 128 columns, with AVX-512; activation blocks of 32 then never straddle a group).
     */
    public static boolean supports(Q4Matrix w) {
        return !HalfMatrix.SCALAR && w.groupSize() % STEP == 0 && STEP % Int8Rows.BLOCK == 0;
    }

    /** out[t, o] for t in [0, n), the activation rows quantized here (once per call). */
    public static void matmul(float[] out, int outOff, float[] x, int xOff, int n, Q4Matrix w, float[] bias) {
        if (!supports(w)) throw new IllegalArgumentException("int8 kernel: group size " + w.groupSize() + " is not a multiple of " + STEP);
        matmul(out, outOff, Int8Rows.quantize(x, xOff, n, w.cols()), w, bias);
    }

    public static void matmul(float[] out, int outOff, Int8Rows xq, Q4Matrix w, float[] bias) {
        matmul(new float[][]{out}, new int[]{outOff}, xq, new Q4Matrix[]{w}, new float[][]{bias});
    }

    /**
     * Several matrices of one input (a layer's q, k and v; gate and up) in one parallel call: outs[i][outOffs[i] +
     * t·rows_i + o] = row o of ws[i] · activation row t (+ biases[i][o]). The rows of all matrices form one range,
     * so the small ones (k and v) share the call's threads instead of paying a hand-off each, and the activations
     * are quantized once. Every output is the same as a call for its matrix alone.
     */
    public static void matmul(float[][] outs, int[] outOffs, Int8Rows xq, Q4Matrix[] ws, float[][] biases) {
        final int n = xq.rows(), m = ws.length;
        final int[] first = new int[m + 1]; // first[i]: global index of matrix i's row 0
        for (int i = 0; i < m; i++) {
            if (ws[i].cols() != xq.cols())
                throw new IllegalArgumentException("int8 kernel: " + xq.cols() + " activation columns for " + ws[i].cols());
            if (!supports(ws[i])) throw new IllegalArgumentException("int8 kernel: group size " + ws[i].groupSize() + " is not a multiple of " + STEP);
            first[i + 1] = first[i] + ws[i].rows();
        }
        // grain: rows of about 64k weights per chunk (a 256-wide layer of the bundled model is one or two chunks)
        int grain = Math.max(16, 65536 / Math.max(1, xq.cols()));
        Parallel.forRange(first[m], grain, (g0, g1) -> {
            float[] lanes = new float[2 * F.length()];
            for (int i = 0; i < m; i++) {
                int r0 = Math.max(g0, first[i]) - first[i], r1 = Math.min(g1, first[i + 1]) - first[i];
                if (r0 >= r1) continue;
                Q4Matrix w = ws[i];
                float[] out = outs[i], bias = biases[i];
                int rows = w.rows(), oo = outOffs[i];
                // rows in pairs half the range apart (two weight streams per thread, each widened activation vector
                // used twice), four pairs at a time with every token over them (they stay in L1 while the tokens pass)
                int half = (r1 - r0) / 2;
                for (int pb = r0; pb < r0 + half; pb += 4) {
                    int pe = Math.min(r0 + half, pb + 4);
                    for (int t = 0; t < n; t++)
                        for (int r = pb; r < pe; r++) {
                            dot2(w, r, r + half, xq, t, lanes);
                            out[oo + t * rows + r] = VectorMath.sumLanes(lanes, 0) + (bias == null ? 0 : bias[r]);
                            out[oo + t * rows + r + half] = VectorMath.sumLanes(lanes, F.length()) + (bias == null ? 0 : bias[r + half]);
                        }
                }
                for (int r = r0 + 2 * half; r < r1; r++)
                    for (int t = 0; t < n; t++)
                        out[oo + t * rows + r] = dot(w, r, xq, t, lanes) + (bias == null ? 0 : bias[r]);
            }
        });
    }

    /**
     * Row r of w · activation row t of xq. One flat loop over the steps, the group's scale and zero point fetched
     * when a group starts, the group scale folded into the lane scales (one multiply and one FMA per step), one
     * ordered lane sum per row: with a nested group/step loop, whose inner loop runs once for the usual group of
     * 128, the same operations streamed 17–18 GB/s on one core against 23–26 GB/s flat (2048×2048 q4g128, from L3
     * and from DRAM; see the class comment).
     */
    static float dot(Q4Matrix w, int r, Int8Rows xq, int t, float[] lanes) {
        final MemorySegment seg = w.packed();
        final float[] ws = w.scales(), dl = xq.laneScales();
        final byte[] zs = w.zeros();
        final byte[] xc = xq.codes();
        final int cols = w.cols(), gsz = w.groupSize();
        final long base = (long) r * w.wordsPerRow() * 4;
        final int xo = t * cols, lo = t * Int8Rows.lanesPerRow(cols);
        FloatVector total = FloatVector.zero(F);
        short z = 8;
        float s = 0;
        for (int c = 0, gEnd = 0, g = r * w.groupsPerRow(); c < cols; c += STEP) {
            if (c == gEnd) { // a new weight group: its zero point and scale
                z = zs == null ? 8 : zs[g];
                s = ws[g];
                g++;
                gEnd += gsz;
            }
            ShortVector v = ShortVector.fromMemorySegment(S, seg, base + (c >>> 1), ByteOrder.LITTLE_ENDIAN);
            int x0 = xo + c;
            ShortVector p = v.and((short) 15).sub(z).mul(codes(xc, x0));
            p = p.add(v.lanewise(VectorOperators.LSHR, 4).and((short) 15).sub(z).mul(codes(xc, x0 + SL)));
            p = p.add(v.lanewise(VectorOperators.LSHR, 8).and((short) 15).sub(z).mul(codes(xc, x0 + 2 * SL)));
            p = p.add(v.lanewise(VectorOperators.LSHR, 12).sub(z).mul(codes(xc, x0 + 3 * SL)));
            // int16 lanes 2m and 2m+1 into int32 lane m: sign-extend the low half, arithmetic-shift the high half
            IntVector pi = p.reinterpretAsInts();
            IntVector sum = pi.lanewise(VectorOperators.LSHL, 16).lanewise(VectorOperators.ASHR, 16)
                    .add(pi.lanewise(VectorOperators.ASHR, 16));
            total = ((FloatVector) sum.convert(VectorOperators.I2F, 0)).fma(FloatVector.fromArray(F, dl, lo + (c >>> 3)).mul(s), total);
        }
        // the ordered lane sum, not reduceLanes: its order may differ between compiled and interpreted code, and a
        // row's bits must not depend on the call it came in (batched = single)
        total.intoArray(lanes, 0);
        return VectorMath.sumLanes(lanes, 0);
    }

    /**
     * {@link #dot}'s lane partials for rows r and q with activation row t, into lanes[0..L) and lanes[L..2L): each
     * row the same operations, so the same bits once summed. Only the loop is here, the step body written out twice:
     * a call inside it that C2 refuses (a helper, or anything past its node-count cutoff) boxes vectors per call.
     */
    static void dot2(Q4Matrix w, int r, int q, Int8Rows xq, int t, float[] lanes) {
        final MemorySegment seg = w.packed();
        final float[] ws = w.scales(), dl = xq.laneScales();
        final byte[] zs = w.zeros(), xc = xq.codes();
        final int cols = w.cols(), gsz = w.groupSize();
        final long br = (long) r * w.wordsPerRow() * 4, bq = (long) q * w.wordsPerRow() * 4;
        final int xo = t * cols, lo = t * Int8Rows.lanesPerRow(cols);
        FloatVector tr = FloatVector.zero(F), tq = tr;
        short zr = 8, zq = 8;
        float sr = 0, sq = 0;
        for (int c = 0, gEnd = 0, gr = r * w.groupsPerRow(), gq = q * w.groupsPerRow(); c < cols; c += STEP) {
            if (c == gEnd) {
                zr = zs == null ? 8 : zs[gr];
                zq = zs == null ? 8 : zs[gq];
                sr = ws[gr++];
                sq = ws[gq++];
                gEnd += gsz;
            }
            int x0 = xo + c;
            ShortVector a0 = codes(xc, x0), a1 = codes(xc, x0 + SL), a2 = codes(xc, x0 + 2 * SL), a3 = codes(xc, x0 + 3 * SL);
            FloatVector d = FloatVector.fromArray(F, dl, lo + (c >>> 3));
            ShortVector v = ShortVector.fromMemorySegment(S, seg, br + (c >>> 1), ByteOrder.LITTLE_ENDIAN);
            ShortVector p = v.and((short) 15).sub(zr).mul(a0);
            p = p.add(v.lanewise(VectorOperators.LSHR, 4).and((short) 15).sub(zr).mul(a1));
            p = p.add(v.lanewise(VectorOperators.LSHR, 8).and((short) 15).sub(zr).mul(a2));
            p = p.add(v.lanewise(VectorOperators.LSHR, 12).sub(zr).mul(a3));
            IntVector pi = p.reinterpretAsInts();
            IntVector sum = pi.lanewise(VectorOperators.LSHL, 16).lanewise(VectorOperators.ASHR, 16).add(pi.lanewise(VectorOperators.ASHR, 16));
            tr = ((FloatVector) sum.convert(VectorOperators.I2F, 0)).fma(d.mul(sr), tr);
            v = ShortVector.fromMemorySegment(S, seg, bq + (c >>> 1), ByteOrder.LITTLE_ENDIAN);
            p = v.and((short) 15).sub(zq).mul(a0);
            p = p.add(v.lanewise(VectorOperators.LSHR, 4).and((short) 15).sub(zq).mul(a1));
            p = p.add(v.lanewise(VectorOperators.LSHR, 8).and((short) 15).sub(zq).mul(a2));
            p = p.add(v.lanewise(VectorOperators.LSHR, 12).sub(zq).mul(a3));
            pi = p.reinterpretAsInts();
            sum = pi.lanewise(VectorOperators.LSHL, 16).lanewise(VectorOperators.ASHR, 16).add(pi.lanewise(VectorOperators.ASHR, 16));
            tq = ((FloatVector) sum.convert(VectorOperators.I2F, 0)).fma(d.mul(sq), tq);
        }
        tr.intoArray(lanes, 0);
        tq.intoArray(lanes, F.length());
    }

    /** SL int8 activation codes widened to int16 lanes. */
    private static ShortVector codes(byte[] xc, int o) {
        return (ShortVector) ByteVector.fromArray(B, xc, o).convertShape(VectorOperators.B2S, S, 0);
    }

    /**
     * The scalar reference of the same quantization: exact integer block sums Σ (q − z)·xq, then in double
     * Σ_g s·Σ_b d·sum. The kernel's float accumulation order differs, so they agree to float rounding, and exactly
     * where every product and partial sum is representable (tests choose such cases).
     */
    public static void matmulScalar(float[] out, int outOff, Int8Rows xq, Q4Matrix w, float[] bias) {
        int rows = w.rows(), cols = w.cols(), gsz = w.groupSize();
        byte[] zs = w.zeros();
        for (int t = 0; t < xq.rows(); t++)
            for (int o = 0; o < rows; o++) {
                double s = 0;
                for (int g = 0; g < w.groupsPerRow(); g++) {
                    int z = zs == null ? 8 : zs[o * w.groupsPerRow() + g];
                    double gs = 0;
                    for (int c0 = g * gsz; c0 < (g + 1) * gsz; c0 += Int8Rows.BLOCK) {
                        long block = 0;
                        for (int c = c0; c < Math.min(cols, c0 + Int8Rows.BLOCK); c++) block += (long) (w.code(o, c) - z) * xq.code(t, c);
                        gs += (double) xq.scale(t, c0 / Int8Rows.BLOCK) * block;
                    }
                    s += w.scales()[o * w.groupsPerRow() + g] * gs;
                }
                out[outOff + t * rows + o] = (float) (s + (bias == null ? 0 : bias[o]));
            }
    }
}
