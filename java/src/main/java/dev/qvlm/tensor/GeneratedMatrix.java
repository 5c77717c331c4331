package dev.qvlm.tensor;

import dev.qvlm.quant.Q4Matrix;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * Deterministic random weights defined by a hash of (seed, index), for synthetic benchmarks: the GPU makes them in
 * place with a fill kernel (qvlm_fill_f16 / qvlm_fill_q4 of cuda-kernels/q4.cuh, the same hash and the same float
 * operations), so a 26 GB model never exists on the host; the CPU {@link #materialize}s them into ordinary
 * {@link HalfMatrix} / {@link Q4Matrix} storage. {@link #get} is the scalar definition both follow.
 *
 * <pre>
 * F16: W[r, c] = FP16(((hash(seed, r·cols + c) &gt;&gt;&gt; 8) · 2^-23 − 1) · amp)                    uniform in ±amp
 * Q4:  word (r, k) of the standard packed layout = hash(seed, r·cols/8 + k) (every nibble random);
 *      h = hash(seed ^ 0x5bd1e995, r·groups + g): scale = FP16(amp · (1 + (h &amp; 255)/256)), zero = (h &gt;&gt;&gt; 8) &amp; 15
 *      (8 when symmetric); W = (nibble − zero) · scale
 * </pre>
 */
public final class GeneratedMatrix extends Matrix {
    public enum Format { F16, Q4 }

    private static final ValueLayout.OfInt INT_LE = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort SHORT_LE = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private final Format format;
    private final int seed, groupSize;
    private final float amp;
    private final boolean symmetric;

    private GeneratedMatrix(int rows, int cols, Format format, int seed, float amp, int groupSize, boolean symmetric) {
        super(rows, cols);
        this.format = format;
        this.seed = seed;
        this.amp = amp;
        this.groupSize = groupSize;
        this.symmetric = symmetric;
    }

    /** FP16 weights uniform in ±amp. */
    public static GeneratedMatrix f16(int rows, int cols, int seed, float amp) {
        return new GeneratedMatrix(rows, cols, Format.F16, seed, amp, 0, true);
    }

    /** 4-bit weights, group size {@code groupSize} (cols for per channel), scales in [amp, 2·amp). */
    public static GeneratedMatrix q4(int rows, int cols, int seed, float amp, int groupSize, boolean symmetric) {
        if (cols % 8 != 0 || groupSize <= 0 || cols % groupSize != 0)
            throw new IllegalArgumentException("q4 " + rows + "x" + cols + " with group size " + groupSize);
        return new GeneratedMatrix(rows, cols, Format.Q4, seed, amp, groupSize, symmetric);
    }

    public Format format() {
        return format;
    }

    public int seed() {
        return seed;
    }

    public float amp() {
        return amp;
    }

    public int groupSize() {
        return groupSize;
    }

    public boolean symmetric() {
        return symmetric;
    }

    public int groups() {
        return cols / groupSize;
    }

    /** splitmix64's finaliser of seed·C + (i + 1)·golden, low 32 bits: qvlm_hash of q4.cuh. */
    public static int hash(int seed, long i) {
        long z = (seed & 0xffffffffL) * 0xD1B54A32D192ED03L + (i + 1) * 0x9E3779B97F4A7C15L;
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        z ^= z >>> 31;
        return (int) z;
    }

    public static short f16Bits(int seed, long i, float amp) {
        float u = (float) (hash(seed, i) >>> 8) * 0x1p-23f;
        return Float.floatToFloat16((u - 1f) * amp);
    }

    int word(int r, int k) {
        return hash(seed, (long) r * (cols >>> 3) + k);
    }

    float scale(int r, int g) {
        int h = hash(seed ^ 0x5bd1e995, (long) r * groups() + g);
        return Float.float16ToFloat(Float.floatToFloat16(amp * (1f + (h & 255) * 0.00390625f)));
    }

    int zero(int r, int g) {
        return symmetric ? 8 : (hash(seed ^ 0x5bd1e995, (long) r * groups() + g) >>> 8) & 15;
    }

    @Override
    public float get(int r, int c) {
        if (format == Format.F16) return Float.float16ToFloat(f16Bits(seed, (long) r * cols + c, amp));
        int nib = (word(r, c >>> 3) >>> (4 * (c & 7))) & 0xf;
        int g = c / groupSize;
        return (float) (nib - zero(r, g)) * scale(r, g);
    }

    /** The same weights in host memory (native, off-heap, garbage-collected): a HalfMatrix or a Q4Matrix. */
    public Matrix materialize() {
        return materialize(Arena.ofAuto());
    }

    /**
     * The same weights in native memory owned by {@code arena}. Real-size models need an explicit arena
     * (ofShared/ofConfined): {@link Arena#ofAuto()} memory counts against the JVM's direct-memory limit (the max
     * heap by default), which 14 GB of FP16 7B weights exceed.
     */
    public Matrix materialize(Arena arena) {
        if (format == Format.F16) {
            MemorySegment seg = arena.allocate((long) rows * cols * 2, 64);
            dev.qvlm.cpu.Parallel.forRange(rows, 16, (r0, r1) -> {
                for (int r = r0; r < r1; r++)
                    for (int c = 0; c < cols; c++) {
                        long i = (long) r * cols + c;
                        seg.setAtIndex(SHORT_LE, i, f16Bits(seed, i, amp));
                    }
            });
            return new HalfMatrix(rows, cols, seg, HalfMatrix.Kind.F16);
        }
        int wpr = cols >>> 3, gpr = groups();
        MemorySegment seg = arena.allocate((long) rows * wpr * 4, 64);
        float[] scales = new float[rows * gpr];
        byte[] zeros = symmetric ? null : new byte[rows * gpr];
        dev.qvlm.cpu.Parallel.forRange(rows, 16, (r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                for (int k = 0; k < wpr; k++) seg.setAtIndex(INT_LE, (long) r * wpr + k, word(r, k));
                for (int g = 0; g < gpr; g++) {
                    scales[r * gpr + g] = scale(r, g);
                    if (zeros != null) zeros[r * gpr + g] = (byte) zero(r, g);
                }
            }
        });
        return new Q4Matrix(rows, cols, groupSize, seg, scales, zeros);
    }

    /** Bytes the same weights take as stored: FP16, or what {@link Q4Matrix#storageBytes} reports. */
    @Override
    public long storageBytes() {
        return format == Format.F16 ? (long) rows * cols * 2 : Q4Matrix.storageBytes(rows, cols, groupSize, symmetric);
    }

    @Override
    public String storageName() {
        return format == Format.F16 ? "f16" : (groupSize == cols ? "q4ch" : "q4g" + groupSize);
    }
}
