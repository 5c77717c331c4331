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
        // grain: about 64k weights per chunk
        int grain = Math.max(1, 65536 / Math.max(1, cols));
        Parallel.forRange(rows, grain, (r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                float s = f16 ? dotF16(seg, r, cols, x, xOff) : dotBf16(seg, r, cols, x, xOff);
                out[outOff + r] = s + (bias == null ? 0 : bias[r]);
            }
        });
    }

    /*
     * One row at a time, one accumulator chain (the contract's order). Measured on 4096×4096 F16, one thread, Zen 5
     * (shared, noisy; /tmp scratch bench, interleaved, best of 24): this form 19–29 GB/s of weights; four rows
     * sharing each x load (dot4's structure) 13–23 GB/s with the sign-extending conversion below and 2–9 GB/s with
     * the zero-extending one (more live constants and vectors: C2 spilled); decode rows to scratch + dot4 (the
     * path before) 6–9 GB/s. The sign-extending S2I keeps the F16 sign in bit 31, so the conversion is
     * shift, mask, multiply, and, or.
     */
    private static float dotF16(MemorySegment seg, int r, int cols, float[] x, int xo) {
        final int L = F.length();
        final long b = 2L * r * cols;
        FloatVector a = FloatVector.zero(F);
        int i = 0;
        for (int upper = cols - L; i <= upper; i += L) {
            IntVector h = (IntVector) ShortVector.fromMemorySegment(S, seg, b + 2L * i, ByteOrder.LITTLE_ENDIAN)
                    .convertShape(VectorOperators.S2I, I, 0);
            // exponent and mantissa to float position (× 2^112 rebiases, subnormals too), then the sign (bit 31)
            FloatVector v = h.lanewise(VectorOperators.LSHL, 13).and(0x0fffe000).reinterpretAsFloats().mul(0x1p112f)
                    .reinterpretAsInts().or(h.and(0x80000000)).reinterpretAsFloats();
            a = v.fma(FloatVector.fromArray(F, x, xo + i), a);
        }
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
