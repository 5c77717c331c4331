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
            int r = r0;
            // short rows: four rows at once, four independent FMA chains (one row's chain of cols/L dependent FMAs
            // is latency-bound there); long rows: one row at a time (see below). Each row's chain is the same.
            if (f16 && cols < SHORT_ROW)
                for (float[] tmp = new float[4]; r + 4 <= r1; r += 4) {
                    dot4F16(seg, r, cols, x, xOff, tmp);
                    for (int k = 0; k < 4; k++) out[outOff + r + k] = tmp[k] + (bias == null ? 0 : bias[r + k]);
                }
            for (; r < r1; r++) {
                float s = f16 ? dotF16(seg, r, cols, x, xOff) : dotBf16(seg, r, cols, x, xOff);
                out[outOff + r] = s + (bias == null ? 0 : bias[r]);
            }
        });
    }

    /** Rows shorter than this take the four-row form. */
    static final int SHORT_ROW = 2048;

    /** F16 lanes at byte offset o → FP32, exact (see {@link #dotF16}). */
    private static FloatVector f16(MemorySegment seg, long o) {
        IntVector h = (IntVector) ShortVector.fromMemorySegment(S, seg, o, ByteOrder.LITTLE_ENDIAN)
                .convertShape(VectorOperators.S2I, I, 0);
        return h.lanewise(VectorOperators.LSHL, 13).and(0x0fffe000).reinterpretAsFloats().mul(0x1p112f)
                .reinterpretAsInts().or(h.and(0x80000000)).reinterpretAsFloats();
    }

    private static void dot4F16(MemorySegment seg, int r, int cols, float[] x, int xo, float[] out) {
        final int L = F.length();
        final long row = 2L * cols, b0 = r * row, b1 = b0 + row, b2 = b1 + row, b3 = b2 + row;
        FloatVector a0 = FloatVector.zero(F), a1 = FloatVector.zero(F), a2 = FloatVector.zero(F), a3 = FloatVector.zero(F);
        int i = 0;
        for (int upper = cols - L; i <= upper; i += L) {
            FloatVector xv = FloatVector.fromArray(F, x, xo + i);
            long o = 2L * i;
            a0 = f16(seg, b0 + o).fma(xv, a0);
            a1 = f16(seg, b1 + o).fma(xv, a1);
            a2 = f16(seg, b2 + o).fma(xv, a2);
            a3 = f16(seg, b3 + o).fma(xv, a3);
        }
        float s0 = VectorMath.sum(a0), s1 = VectorMath.sum(a1), s2 = VectorMath.sum(a2), s3 = VectorMath.sum(a3);
        for (; i < cols; i++) {
            float xi = x[xo + i];
            long o = 2L * i;
            s0 += Float.float16ToFloat(seg.get(LE, b0 + o)) * xi;
            s1 += Float.float16ToFloat(seg.get(LE, b1 + o)) * xi;
            s2 += Float.float16ToFloat(seg.get(LE, b2 + o)) * xi;
            s3 += Float.float16ToFloat(seg.get(LE, b3 + o)) * xi;
        }
        out[0] = s0;
        out[1] = s1;
        out[2] = s2;
        out[3] = s3;
    }

    /*
     * One row at a time, one accumulator chain (the contract's order). Measured on 4096×4096 F16, one thread, Zen 5
     * (shared, noisy; /tmp scratch bench, interleaved, best of 24): this form 19–29 GB/s of weights; four rows
     * sharing each x load (dot4's structure) 13–23 GB/s with the sign-extending conversion below and 2–9 GB/s with
     * the zero-extending one (more live constants and vectors: C2 spilled); decode rows to scratch + dot4 (the
     * path before) 6–9 GB/s. The sign-extending S2I keeps the F16 sign in bit 31, so the conversion is
     * shift, mask, multiply, and, or. End to end (TinyLlama-1.1B F16 decode, 2 threads, 3 interleaved rounds, quiet
     * machine, 2026-11-27): the four-row form also for 2048-column rows gave 12.5–13.9 tokens/s against 15.0–15.8
     * for this one, and a two-row form (two chains sharing each x load) 9.6–9.7 against 14.6–15.2.
     */
    private static float dotF16(MemorySegment seg, int r, int cols, float[] x, int xo) {
        final int L = F.length();
        final long b = 2L * r * cols;
        FloatVector a = FloatVector.zero(F);
        int i = 0;
        // exponent and mantissa to float position (× 2^112 rebiases, subnormals too), then the sign (bit 31)
        for (int upper = cols - L; i <= upper; i += L) a = f16(seg, b + 2L * i).fma(FloatVector.fromArray(F, x, xo + i), a);
        float s = VectorMath.sum(a);
        for (; i < cols; i++) s += Float.float16ToFloat(seg.get(LE, b + 2L * i)) * x[xo + i];
        return s;
    }

    private static float dotBf16(MemorySegment seg, int r, int cols, float[] x, int xo) {
        final int L = F.length();
        final long b = 2L * r * cols;
        FloatVector a = FloatVector.zero(F);
        int i = 0;
        for (int upper = cols - L; i <= upper; i += L) {
            IntVector h = (IntVector) ShortVector.fromMemorySegment(S, seg, b + 2L * i, ByteOrder.LITTLE_ENDIAN)
                    .convertShape(VectorOperators.S2I, I, 0);
            a = h.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats().fma(FloatVector.fromArray(F, x, xo + i), a);
        }
        float s = VectorMath.sum(a);
        for (; i < cols; i++) s += Float.intBitsToFloat(seg.get(LE, b + 2L * i) << 16) * x[xo + i];
        return s;
    }
}
