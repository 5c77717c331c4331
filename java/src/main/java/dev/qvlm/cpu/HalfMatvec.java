package dev.qvlm.cpu;

import dev.qvlm.tensor.HalfMatrix;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * One-token product with 16-bit float weights (F16 or BF16), converting to FP32 in registers: the weights are read
 * once, straight from the (mapped) segment, with no decoded row written to and read back from a scratch array.
 *
 * <p>The numeric contract of the exact path (see {@link Matmul}): per output, lane partial sums over i in chunks of
 * {@code F.length()} in ascending order, each an FMA of the exact FP32 weight and x; then {@link VectorMath#sum};
 * then the scalar tail in order; then the bias. That is what {@link VectorMath#dot4} computes on decoded rows, and
 * F16/BF16 → FP32 is exact, so the results are bit-identical to the decode-then-dot4 path (and to batched rows).
 */
public final class HalfMatvec {
    private HalfMatvec() {}

    static final VectorSpecies<Float> F = VectorMath.F;
    static final VectorSpecies<Integer> I = VectorSpecies.of(int.class, F.vectorShape());
    static final VectorSpecies<Short> S = VectorSpecies.of(short.class, VectorShape.forBitSize(F.vectorBitSize() / 2));
    private static final ValueLayout.OfShort LE = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** out[o] = Σ_i W[o, i]·x[xOff + i] + bias[o] for one token. */
    public static void matvec(float[] out, int outOff, float[] x, int xOff, HalfMatrix w, float[] bias) {
        final int rows = w.rows(), cols = w.cols();
        final MemorySegment seg = w.segment();
        final boolean f16 = w.kind() == HalfMatrix.Kind.F16;
        // grain: 256k weights per chunk (the decode-then-dot4 path's effective grain): the bundled model's F16
        // layers (up to 768×256) and LM head stay on the caller; with 64k, their ~20 µs matvecs split over the
        // pool measured 15–25 % slower per token (wake-ups on a shared machine cost more than the split saved)
        int grain = Math.max(1, (1 << 18) / Math.max(1, cols));
        Parallel.forRange(rows, grain, (r0, r1) -> {
            // F16: four rows at a time, a quarter chunk apart (four independent FMA chains, four weight streams the
            // prefetcher follows; adjacent rows measured half as fast from memory, see below); the rest (and BF16)
            // two rows half the remainder apart. Each row keeps its own chain, so the bits do not change.
            float[] lanes = new float[4 * F.length()];
            int q4 = f16 && cols % F.length() == 0 ? (r1 - r0) / 4 : 0;
            for (int r = r0; r < r0 + q4; r++) {
                dot4F16(seg, r, q4, cols, x, xOff, lanes);
                for (int k = 0; k < 4; k++) out[outOff + r + k * q4] = VectorMath.sumLanes(lanes, k * F.length());
            }
            r0 += 4 * q4;
            int half = (r1 - r0) / 2;
            for (int r = r0; r < r0 + half; r++) {
                if (f16) dot2F16(seg, r, r + half, cols, x, xOff, out, outOff, lanes);
                else dot2Bf16(seg, r, r + half, cols, x, xOff, out, outOff, lanes);
            }
            for (int r = r0 + 2 * half; r < r1; r++)
                out[outOff + r] = f16 ? dotF16(seg, r, cols, x, xOff, lanes) : dotBf16(seg, r, cols, x, xOff, lanes);
        });
        if (bias != null) for (int r = 0; r < rows; r++) out[outOff + r] += bias[r];
    }


    // The F16 → FP32 conversion is written out in each loop below rather than called: a method returning a vector
    // that C2 does not inline (it decides per compilation; at 63 bytes of bytecode this one was refused in some
    // compiles) returns it boxed on the heap, per call (see VectorCallsTest). Sign-extended S2I keeps the F16 sign
    // in bit 31; shifted left 13, exponent and mantissa sit in float position, masked, × 2^112 rebiases (also right
    // for subnormals), then the sign is or-ed back: exact. BF16 is the upper half of a float: shift left 16.
    private static final int F16_MAG = 0x0fffe000, SIGN = 0x80000000;
    private static final float REBIAS = 0x1p112f;

    /**
     * The lane partials of rows r, r + d, r + 2d, r + 3d (cols a multiple of L) into lanes[0..4L), each its own chain
     * in the contract's order, sharing each x load; the caller sums them. Kept to the loop: C2 stops inlining at a
     * node count this loop comes close to (sums called from here were refused), and a Vector API call refused inside
     * the loop would box every vector.
     */
    private static void dot4F16(MemorySegment seg, int r, int d, int cols, float[] x, int xo, float[] lanes) {
        final int L = F.length();
        final long b0 = 2L * r * cols, st = 2L * d * cols, b1 = b0 + st, b2 = b1 + st, b3 = b2 + st;
        FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
        for (int i = 0; i < cols; i += L) {
            FloatVector xv = FloatVector.fromArray(F, x, xo + i);
            long o = 2L * i;
            IntVector h0 = (IntVector) ShortVector.fromMemorySegment(S, seg, b0 + o, ByteOrder.LITTLE_ENDIAN).convertShape(VectorOperators.S2I, I, 0);
            IntVector h1 = (IntVector) ShortVector.fromMemorySegment(S, seg, b1 + o, ByteOrder.LITTLE_ENDIAN).convertShape(VectorOperators.S2I, I, 0);
            IntVector h2 = (IntVector) ShortVector.fromMemorySegment(S, seg, b2 + o, ByteOrder.LITTLE_ENDIAN).convertShape(VectorOperators.S2I, I, 0);
            IntVector h3 = (IntVector) ShortVector.fromMemorySegment(S, seg, b3 + o, ByteOrder.LITTLE_ENDIAN).convertShape(VectorOperators.S2I, I, 0);
            a0 = h0.lanewise(VectorOperators.LSHL, 13).and(F16_MAG).reinterpretAsFloats().mul(REBIAS).reinterpretAsInts()
                    .or(h0.and(SIGN)).reinterpretAsFloats().fma(xv, a0);
            a1 = h1.lanewise(VectorOperators.LSHL, 13).and(F16_MAG).reinterpretAsFloats().mul(REBIAS).reinterpretAsInts()
                    .or(h1.and(SIGN)).reinterpretAsFloats().fma(xv, a1);
            a2 = h2.lanewise(VectorOperators.LSHL, 13).and(F16_MAG).reinterpretAsFloats().mul(REBIAS).reinterpretAsInts()
                    .or(h2.and(SIGN)).reinterpretAsFloats().fma(xv, a2);
            a3 = h3.lanewise(VectorOperators.LSHL, 13).and(F16_MAG).reinterpretAsFloats().mul(REBIAS).reinterpretAsInts()
                    .or(h3.and(SIGN)).reinterpretAsFloats().fma(xv, a3);
        }
        a0.intoArray(lanes, 0);
        a1.intoArray(lanes, L);
        a2.intoArray(lanes, 2 * L);
        a3.intoArray(lanes, 3 * L);
    }

    /** Rows r and q (far apart), each its own chain in the contract's order, sharing each x load. */
    private static void dot2F16(MemorySegment seg, int r, int q, int cols, float[] x, int xo, float[] out, int outOff, float[] lanes) {
        final int L = F.length();
        final long br = 2L * r * cols, bq = 2L * q * cols;
        FloatVector a = FloatVector.zero(F), c = FloatVector.zero(F);
        int i = 0;
        for (int upper = cols - L; i <= upper; i += L) {
            FloatVector xv = FloatVector.fromArray(F, x, xo + i);
            IntVector h = (IntVector) ShortVector.fromMemorySegment(S, seg, br + 2L * i, ByteOrder.LITTLE_ENDIAN).convertShape(VectorOperators.S2I, I, 0);
            IntVector g = (IntVector) ShortVector.fromMemorySegment(S, seg, bq + 2L * i, ByteOrder.LITTLE_ENDIAN).convertShape(VectorOperators.S2I, I, 0);
            a = h.lanewise(VectorOperators.LSHL, 13).and(F16_MAG).reinterpretAsFloats().mul(REBIAS).reinterpretAsInts()
                    .or(h.and(SIGN)).reinterpretAsFloats().fma(xv, a);
            c = g.lanewise(VectorOperators.LSHL, 13).and(F16_MAG).reinterpretAsFloats().mul(REBIAS).reinterpretAsInts()
                    .or(g.and(SIGN)).reinterpretAsFloats().fma(xv, c);
        }
        a.intoArray(lanes, 0);
        c.intoArray(lanes, L);
        float sa = VectorMath.sumLanes(lanes, 0), sc = VectorMath.sumLanes(lanes, L);
        for (; i < cols; i++) {
            sa += Float.float16ToFloat(seg.get(LE, br + 2L * i)) * x[xo + i];
            sc += Float.float16ToFloat(seg.get(LE, bq + 2L * i)) * x[xo + i];
        }
        out[outOff + r] = sa;
        out[outOff + q] = sc;
    }

    private static void dot2Bf16(MemorySegment seg, int r, int q, int cols, float[] x, int xo, float[] out, int outOff, float[] lanes) {
        final int L = F.length();
        final long br = 2L * r * cols, bq = 2L * q * cols;
        FloatVector a = FloatVector.zero(F), c = FloatVector.zero(F);
        int i = 0;
        for (int upper = cols - L; i <= upper; i += L) {
            FloatVector xv = FloatVector.fromArray(F, x, xo + i);
            IntVector h = (IntVector) ShortVector.fromMemorySegment(S, seg, br + 2L * i, ByteOrder.LITTLE_ENDIAN).convertShape(VectorOperators.S2I, I, 0);
            IntVector g = (IntVector) ShortVector.fromMemorySegment(S, seg, bq + 2L * i, ByteOrder.LITTLE_ENDIAN).convertShape(VectorOperators.S2I, I, 0);
            a = h.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats().fma(xv, a);
            c = g.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats().fma(xv, c);
        }
        a.intoArray(lanes, 0);
        c.intoArray(lanes, L);
        float sa = VectorMath.sumLanes(lanes, 0), sc = VectorMath.sumLanes(lanes, L);
        for (; i < cols; i++) {
            sa += Float.intBitsToFloat(seg.get(LE, br + 2L * i) << 16) * x[xo + i];
            sc += Float.intBitsToFloat(seg.get(LE, bq + 2L * i) << 16) * x[xo + i];
        }
        out[outOff + r] = sa;
        out[outOff + q] = sc;
    }

    /*
     * Which form (4096×4096 F16, one thread, Zen 5, shared, noisy; /tmp scratch bench, interleaved, best of 24):
     * one row at a time 19–29 GB/s of weights; four adjacent rows sharing each x load (dot4's structure) 13–23 GB/s
     * with the sign-extending conversion and 2–9 GB/s with a zero-extending one (C2 spilled); decode rows to scratch
     * + dot4 (the path before) 6–9 GB/s. The sign-extending S2I keeps the F16 sign in bit 31, so the conversion is
     * shift, mask, multiply, and, or. Later (2026-11-27, quiet machine, one thread, weights from DRAM, best of 20):
     *                                  2048×2048  5632×2048  2048×5632  32000×2048  4096×4096  4096×11008  11008×4096
     *   one row                             20.2       18.6       15.3        18.8       20.5        11.4        20.4
     *   two adjacent rows                   10.5       10.3       10.9        10.6       11.9        12.6        12.0
     *   two rows half a chunk apart         23.5       22.0       19.5        21.9       25.0        18.2        24.8
     *   four rows a quarter apart (now)     28.4       27.1       16.5        29.0       22.2        24.0        26.7
     * Adjacent rows (their streams one row, 4 KB here, apart) halve the bandwidth: the prefetcher does not follow
     * them. Rows far apart do. On two threads (DecodeKernels, same machine, same hour) four rows a quarter chunk
     * apart beat two at every shape: 2048×2048 56–58 GB/s against 35.5, 5632×2048 60–62 against 37, 32000×2048
     * 63–64 against 40, 2048×5632 47 against 41–44, 4096×11008 54, 4096×4096 59; the machine reads 61–77 GB/s
     * with two threads (two streams each), so one or two streams per thread had left half of it unused.
     */
    private static float dotF16(MemorySegment seg, int r, int cols, float[] x, int xo, float[] lanes) {
        final int L = F.length();
        final long b = 2L * r * cols;
        FloatVector a = FloatVector.zero(F);
        int i = 0;
        for (int upper = cols - L; i <= upper; i += L) {
            IntVector h = (IntVector) ShortVector.fromMemorySegment(S, seg, b + 2L * i, ByteOrder.LITTLE_ENDIAN).convertShape(VectorOperators.S2I, I, 0);
            a = h.lanewise(VectorOperators.LSHL, 13).and(F16_MAG).reinterpretAsFloats().mul(REBIAS).reinterpretAsInts()
                    .or(h.and(SIGN)).reinterpretAsFloats().fma(FloatVector.fromArray(F, x, xo + i), a);
        }
        a.intoArray(lanes, 0);
        float s = VectorMath.sumLanes(lanes, 0);
        for (; i < cols; i++) s += Float.float16ToFloat(seg.get(LE, b + 2L * i)) * x[xo + i];
        return s;
    }

    private static float dotBf16(MemorySegment seg, int r, int cols, float[] x, int xo, float[] lanes) {
        final int L = F.length();
        final long b = 2L * r * cols;
        FloatVector a = FloatVector.zero(F);
        int i = 0;
        for (int upper = cols - L; i <= upper; i += L) {
            IntVector h = (IntVector) ShortVector.fromMemorySegment(S, seg, b + 2L * i, ByteOrder.LITTLE_ENDIAN).convertShape(VectorOperators.S2I, I, 0);
            a = h.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats().fma(FloatVector.fromArray(F, x, xo + i), a);
        }
        a.intoArray(lanes, 0);
        float s = VectorMath.sumLanes(lanes, 0);
        for (; i < cols; i++) s += Float.intBitsToFloat(seg.get(LE, b + 2L * i) << 16) * x[xo + i];
        return s;
    }
}
