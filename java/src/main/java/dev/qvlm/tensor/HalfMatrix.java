package dev.qvlm.tensor;

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
 * 16-bit float weights (IEEE half or bfloat16), usually memory-mapped straight from a safetensors file.
 * The vectorised decode widens 16-bit lanes to 32 and rebuilds the float bits; lane counts follow the CPU's
 * preferred species, so it works on AVX2, AVX-512 and NEON alike.
 */
public final class HalfMatrix extends Matrix {
    public enum Kind { F16, BF16 }

    private static final ValueLayout.OfShort LE = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    static final VectorSpecies<Integer> I = IntVector.SPECIES_PREFERRED;
    static final VectorSpecies<Short> S = VectorSpecies.of(short.class, VectorShape.forBitSize(F.vectorBitSize() / 2));
    /** Set -Dqvlm.scalar=true to force the scalar reference paths everywhere (for A/B checks). */
    public static final boolean SCALAR = Boolean.getBoolean("qvlm.scalar");

    private final MemorySegment seg;
    private final Kind kind;

    public HalfMatrix(int rows, int cols, MemorySegment seg, Kind kind) {
        super(rows, cols);
        if (seg.byteSize() != (long) rows * cols * 2) throw new IllegalArgumentException("size mismatch");
        this.seg = seg;
        this.kind = kind;
    }

    /** The 16-bit values, little-endian [rows, cols] (shared, not copied). */
    public MemorySegment segment() {
        return seg;
    }

    public Kind kind() {
        return kind;
    }

    @Override
    public float get(int r, int c) {
        short h = seg.getAtIndex(LE, (long) r * cols + c);
        return kind == Kind.F16 ? Float.float16ToFloat(h) : Float.intBitsToFloat(h << 16);
    }

    @Override
    public void rowToFloat(int r, float[] dst, int off) {
        long base = (long) r * cols * 2;
        int c = 0;
        if (!SCALAR) {
            int n = F.length();
            int upper = F.loopBound(cols);
            if (kind == Kind.F16) {
                for (; c < upper; c += n) {
                    IntVector h = (IntVector) ShortVector.fromMemorySegment(S, seg, base + 2L * c, ByteOrder.LITTLE_ENDIAN)
                            .convertShape(VectorOperators.ZERO_EXTEND_S2I, I, 0);
                    IntVector sign = h.and(0x8000).lanewise(VectorOperators.LSHL, 16);
                    // |h| << 13 puts exponent and mantissa in float position; x 2^112 rebias (also right for subnormals)
                    FloatVector mag = h.and(0x7fff).lanewise(VectorOperators.LSHL, 13).reinterpretAsFloats().mul(0x1p112f);
                    mag.reinterpretAsInts().or(sign).reinterpretAsFloats().intoArray(dst, off + c);
                }
            } else {
                for (; c < upper; c += n) {
                    ((IntVector) ShortVector.fromMemorySegment(S, seg, base + 2L * c, ByteOrder.LITTLE_ENDIAN)
                            .convertShape(VectorOperators.ZERO_EXTEND_S2I, I, 0))
                            .lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats().intoArray(dst, off + c);
                }
            }
        }
        for (; c < cols; c++) {
            short h = seg.get(LE, base + 2L * c);
            dst[off + c] = kind == Kind.F16 ? Float.float16ToFloat(h) : Float.intBitsToFloat(h << 16);
        }
    }

    @Override
    public long storageBytes() {
        return (long) rows * cols * 2;
    }

    @Override
    public String storageName() {
        return kind == Kind.F16 ? "f16" : "bf16";
    }
}
