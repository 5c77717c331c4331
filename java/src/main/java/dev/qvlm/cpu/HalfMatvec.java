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
 * Four rows share each x load, as in dot4.
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
        // grain: about 64k weights per chunk, in blocks of 4 rows
        int grain = Math.max(1, 65536 / Math.max(1, cols) / 4);
        Parallel.forRange((rows + 3) / 4, grain, (b0, b1) -> {
            for (int b = b0; b < b1; b++) {
                int r = 4 * b;
                if (r + 4 <= rows) dot4(seg, f16, r, cols, x, xOff, out, outOff + r, bias);
                else
                    for (; r < rows; r++) out[outOff + r] = dot1(seg, f16, r, cols, x, xOff) + (bias == null ? 0 : bias[r]);
            }
        });
    }

    /** 16-bit lanes at byte offset o → FP32 (exact): F16 by rebuilding the bits, BF16 by a shift. */
    private static FloatVector load(MemorySegment seg, long o, boolean f16) {
        IntVector h = (IntVector) ShortVector.fromMemorySegment(S, seg, o, ByteOrder.LITTLE_ENDIAN)
                .convertShape(VectorOperators.ZERO_EXTEND_S2I, I, 0);
        if (!f16) return h.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
        // |h| << 13 puts exponent and mantissa in float position; × 2^112 rebiases (subnormals too), then the sign
        FloatVector mag = h.and(0x7fff).lanewise(VectorOperators.LSHL, 13).reinterpretAsFloats().mul(0x1p112f);
        return mag.reinterpretAsInts().or(h.and(0x8000).lanewise(VectorOperators.LSHL, 16)).reinterpretAsFloats();
    }

    private static float scalar(MemorySegment seg, long o, boolean f16) {
        short h = seg.get(LE, o);
        return f16 ? Float.float16ToFloat(h) : Float.intBitsToFloat(h << 16);
    }

    private static void dot4(MemorySegment seg, boolean f16, int r, int cols, float[] x, int xo, float[] out, int oo, float[] bias) {
        final int L = F.length();
        final long row = 2L * cols;
        final long b0 = r * row, b1 = b0 + row, b2 = b1 + row, b3 = b2 + row;
        FloatVector a0 = FloatVector.zero(F), a1 = FloatVector.zero(F), a2 = FloatVector.zero(F), a3 = FloatVector.zero(F);
        int i = 0;
        for (int upper = cols - L; i <= upper; i += L) {
            FloatVector xv = FloatVector.fromArray(F, x, xo + i);
            long o = 2L * i;
            a0 = load(seg, b0 + o, f16).fma(xv, a0);
            a1 = load(seg, b1 + o, f16).fma(xv, a1);
            a2 = load(seg, b2 + o, f16).fma(xv, a2);
            a3 = load(seg, b3 + o, f16).fma(xv, a3);
        }
        float s0 = VectorMath.sum(a0), s1 = VectorMath.sum(a1), s2 = VectorMath.sum(a2), s3 = VectorMath.sum(a3);
        for (; i < cols; i++) {
            float xi = x[xo + i];
            long o = 2L * i;
            s0 += scalar(seg, b0 + o, f16) * xi;
            s1 += scalar(seg, b1 + o, f16) * xi;
            s2 += scalar(seg, b2 + o, f16) * xi;
            s3 += scalar(seg, b3 + o, f16) * xi;
        }
        out[oo] = s0 + (bias == null ? 0 : bias[r]);
        out[oo + 1] = s1 + (bias == null ? 0 : bias[r + 1]);
        out[oo + 2] = s2 + (bias == null ? 0 : bias[r + 2]);
        out[oo + 3] = s3 + (bias == null ? 0 : bias[r + 3]);
    }

    /**
     * The last rows (rows % 4): one accumulator chain, the contract's order (as dot4 gives each of its rows; the
     * decode-then-{@link VectorMath#dot} path used two chains for these rows).
     */
    private static float dot1(MemorySegment seg, boolean f16, int r, int cols, float[] x, int xo) {
        final int L = F.length();
        final long b = 2L * r * cols;
        FloatVector a = FloatVector.zero(F);
        int i = 0;
        for (int upper = cols - L; i <= upper; i += L)
            a = load(seg, b + 2L * i, f16).fma(FloatVector.fromArray(F, x, xo + i), a);
        float s = VectorMath.sum(a);
        for (; i < cols; i++) s += scalar(seg, b + 2L * i, f16) * x[xo + i];
        return s;
    }
}
