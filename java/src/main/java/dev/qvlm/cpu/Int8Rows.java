package dev.qvlm.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * Activation rows quantized to 8 bits per block of {@value #BLOCK} columns, as llama.cpp's Q8_0:
 * {@code d = max|x| / 127}, {@code q = rint(x / d)} (ties to even) in −127..127, {@code x ≈ d·q}.
 *
 * <p>Why blocks of 32 and not one scale per weight group (128) or per row: one outlier channel (LLaMA has a few
 * with 10–100× the typical magnitude) then coarsens only its 31 neighbours, not 127 or the whole row; the cost is
 * one float multiply-add per 32 products in {@link Int8Matmul}, which is not what bounds it (memory is).
 *
 * <p>Layout, for {@link Int8Matmul}: codes are bytes (widened to int16 in the kernel: a 4096×11008 matvec streamed
 * its weights 1.3–2.5× faster than with int16 codes, whose 22 KB per row no longer stayed in L1 next to the
 * streaming weights), and within each step of {@link #STEP} = 4·(int16 lanes)
 * columns (128 with AVX-512) they are nibble-major: a 16-bit lane k of the packed int4 weights holds columns 4k..4k+3
 * (nibble j = column 4k + j), so the kernel's nibble-j lanes meet {@code codes[step + j·lanes + k]} with plain
 * vector loads. A row's columns beyond the last whole step keep natural order (the kernel does not take such shapes;
 * the scalar reference reads them through {@link #code}). {@link #laneScales} repeats each block scale once per 8
 * columns: the kernel's int32 lane m sums columns step + 8m .. step + 8m + 7, inside one block.
 */
public final class Int8Rows {
    public static final int BLOCK = 32;
    static final VectorSpecies<Short> S = ShortVector.SPECIES_PREFERRED;
    static final VectorSpecies<Float> F = VectorSpecies.of(float.class, VectorShape.forBitSize(S.vectorBitSize()));
    /** Columns of one kernel step: one vector of int16 lanes, four nibbles each. */
    public static final int STEP = 4 * S.length();
    /** Columns per int32 lane of the kernel's sums (two int16 lanes of four nibbles): one lane scale each. */
    static final int LANE_COLS = 8;
    private static final float ROUND = 12582912f; // 1.5·2^23: adding and subtracting it rounds to an integer (even ties)

    private final int n, cols;
    private final byte[] codes; // [n, cols], step-permuted
    private final float[] scales; // [n, ceil(cols / BLOCK)]
    private final float[] laneScales; // [n, ceil(cols / LANE_COLS)]: scales[block of column 8m] at m

    private Int8Rows(int n, int cols) {
        this.n = n;
        this.cols = cols;
        this.codes = new byte[n * cols];
        this.scales = new float[n * blocksPerRow(cols)];
        this.laneScales = new float[n * lanesPerRow(cols)];
    }

    static int lanesPerRow(int cols) {
        return (cols + LANE_COLS - 1) / LANE_COLS;
    }

    static int blocksPerRow(int cols) {
        return (cols + BLOCK - 1) / BLOCK;
    }

    public int rows() {
        return n;
    }

    public int cols() {
        return cols;
    }

    byte[] codes() {
        return codes;
    }

    float[] scales() {
        return scales;
    }

    float[] laneScales() {
        return laneScales;
    }

    /** Block scale d of block b (columns 32b..32b+31) of row t. */
    public float scale(int t, int b) {
        return scales[t * blocksPerRow(cols) + b];
    }

    /** The int8 code of column c of row t (undoing the step permutation). */
    public int code(int t, int c) {
        return codes[t * cols + position(c, cols)];
    }

    /** Index within a row of column c's code. */
    static int position(int c, int cols) {
        int s0 = c - c % STEP;
        if (s0 + STEP > cols) return c; // tail beyond the last whole step: natural order
        int k = c - s0;
        return s0 + (k & 3) * (STEP / 4) + (k >> 2);
    }

    /** Quantizes rows x[xOff + t·cols ..] for t in [0, n). Each row is quantized on its own (batched rows = single). */
    public static Int8Rows quantize(float[] x, int xOff, int n, int cols) {
        Int8Rows q = new Int8Rows(n, cols);
        int bpr = blocksPerRow(cols);
        int[] tmp = new int[BLOCK];
        // AVX-512: whole steps of 128 columns through quantizeStep; a last partial step block by block
        int whole = STEP == 128 && F.length() == 16 ? cols - cols % STEP : 0;
        for (int t = 0; t < n; t++) {
            for (int s0 = 0; s0 < whole; s0 += STEP)
                quantizeStep(x, xOff + t * cols + s0, q.codes, t * cols + s0, q.scales, t * bpr + s0 / BLOCK);
            for (int b = whole / BLOCK; b < bpr; b++) {
                int c0 = b * BLOCK, len = Math.min(BLOCK, cols - c0);
                int xo = xOff + t * cols + c0;
                float d = len == BLOCK ? quantizeBlock(x, xo, tmp) : quantizeScalar(x, xo, len, tmp);
                q.scales[t * bpr + b] = d;
                for (int k = 0; k < len; k++) q.codes[t * cols + position(c0 + k, cols)] = (byte) tmp[k];
            }
        }
        int lpr = lanesPerRow(cols);
        for (int t = 0; t < n; t++)
            for (int m = 0; m < lpr; m++) q.laneScales[t * lpr + m] = q.scales[t * bpr + m * LANE_COLS / BLOCK];
        return q;
    }

    /** Lanes m of a step's nibble-j codes read column 4m + j: gather offsets of 16 such columns. */
    private static final int[] STRIDE4 = {0, 4, 8, 12, 16, 20, 24, 28, 32, 36, 40, 44, 48, 52, 56, 60};

    /**
     * The four blocks of one step (128 columns at x[xo..]) with {@link #quantizeBlock}'s operations: their scales into
     * scales[so..so+4), their codes straight into the step's nibble-major order (codes[co + 32j + m] = column 4m + j),
     * gathered with stride 4 instead of written one by one through {@link #position} (a row of 2048 columns: 4.6 →
     * 2.5 µs, 5632 columns: 10.4 → 6.1 µs, mean of 20,000 calls).
     */
    private static void quantizeStep(float[] x, int xo, byte[] codes, int co, float[] scales, int so) {
        for (int b = 0; b < 4; b++) {
            int o = xo + b * BLOCK;
            float amax = FloatVector.fromArray(F, x, o).abs().max(FloatVector.fromArray(F, x, o + 16).abs()).reduceLanes(VectorOperators.MAX);
            scales[so + b] = amax / 127f;
        }
        // lanes m (16 at a time) of nibble j: column 4m + j of block m / 8, so lanes 0-7 take one block's 1/d, 8-15 the next's
        FloatVector id01 = FloatVector.broadcast(F, inverse(scales[so])).blend(inverse(scales[so + 1]), UPPER8);
        FloatVector id23 = FloatVector.broadcast(F, inverse(scales[so + 2])).blend(inverse(scales[so + 3]), UPPER8);
        for (int j = 0; j < 4; j++)
            for (int h = 0; h < 2; h++) {
                FloatVector v = FloatVector.fromArray(F, x, xo + 64 * h + j, STRIDE4, 0).mul(h == 0 ? id01 : id23)
                        .add(ROUND).sub(ROUND).max(-127f).min(127f);
                ((IntVector) v.convert(VectorOperators.F2I, 0)).convertShape(VectorOperators.I2B, B16, 0)
                        .reinterpretAsBytes().intoArray(codes, co + 32 * j + 16 * h);
            }
    }

    private static final VectorSpecies<Byte> B16 = jdk.incubator.vector.ByteVector.SPECIES_128;
    /** Lanes 8..15 of a 16-lane float vector (used only where F has 16 lanes). */
    private static final jdk.incubator.vector.VectorMask<Float> UPPER8 = jdk.incubator.vector.VectorMask.fromLong(F, 0xFF00L);

    /** 1/d, or 0 for an all-zero block: {@link #quantizeBlock}'s factor. */
    private static float inverse(float d) {
        return d != 0 ? 1f / d : 0f;
    }

    /** One block with the Vector API: the same operations as {@link #quantizeScalar}, so the same codes and scale. */
    private static float quantizeBlock(float[] x, int xo, int[] out) {
        if (F.length() > BLOCK || BLOCK % F.length() != 0) return quantizeScalar(x, xo, BLOCK, out);
        FloatVector m = FloatVector.zero(F);
        for (int k = 0; k < BLOCK; k += F.length()) m = m.max(FloatVector.fromArray(F, x, xo + k).abs());
        float amax = m.reduceLanes(VectorOperators.MAX); // max is exact in any order
        float d = amax / 127f, id = inverse(d);
        for (int k = 0; k < BLOCK; k += F.length()) {
            FloatVector v = FloatVector.fromArray(F, x, xo + k).mul(id).add(ROUND).sub(ROUND).max(-127f).min(127f);
            ((IntVector) v.convert(VectorOperators.F2I, 0)).intoArray(out, k);
        }
        return d;
    }

    /** The scalar reference of the block quantization (also used for a short last block). */
    static float quantizeScalar(float[] x, int xo, int len, int[] out) {
        float amax = 0;
        for (int k = 0; k < len; k++) amax = Math.max(amax, Math.abs(x[xo + k]));
        float d = amax / 127f, id = d != 0 ? 1f / d : 0f;
        for (int k = 0; k < len; k++) out[k] = (int) Math.min(127f, Math.max(-127f, (x[xo + k] * id + ROUND) - ROUND));
        return d;
    }
}
