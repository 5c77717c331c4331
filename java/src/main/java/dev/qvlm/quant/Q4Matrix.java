package dev.qvlm.quant;

import dev.qvlm.tensor.HalfMatrix;
import dev.qvlm.tensor.Matrix;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * 4-bit weights in the compressed-tensors "pack-quantized" layout, decoded to FP32 one row at a time by the matmul.
 *
 * <pre>
 * packed  int32 LE [rows, ceil(cols/8)]   column c of row r: bits 4·(c%8) .. 4·(c%8)+3 of word [r, c/8]
 *                                         (nibble = unsigned code 0..15 = signed q + 8; little-endian, so byte
 *                                         c/2 of the row holds columns c (low nibble) and c+1 (high nibble))
 * scales  float [rows, cols/groupSize]    groupSize = cols for per-channel (and per-tensor, repeated per row)
 * zeros   byte  [rows, cols/groupSize]    unsigned zero point 0..15, or null for symmetric (zero point 8)
 * W[r, c] = (nibble − zero) · scale
 * </pre>
 *
 * The packed words live off-heap: a memory-mapped checkpoint slice (zero copy) or native memory (heap segments are
 * copied once). {@link #rowToFloat} decodes with the Vector API at the CPU's preferred width: each float lane l of
 * a block starting at column c takes word (c+l)/8 (a lane shuffle of one vector load) shifted right by
 * 4·((c+l)%8), so no lane count is assumed. {@link #matmul} is a fused decode-and-dot kernel for n ≤
 * {@value #FUSED_MAX_TOKENS} tokens, several times faster than decoding rows for {@link dev.qvlm.cpu.Matmul}.
 */
public final class Q4Matrix extends Matrix {
    private static final ValueLayout.OfInt INT_LE = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    static final VectorSpecies<Integer> I = VectorSpecies.of(int.class, F.vectorShape());
    private static final Tables T = new Tables(I);

    private final MemorySegment packed;
    private final int wordsPerRow, groupSize, groupsPerRow;
    private final boolean wordAligned; // every vector block of a group starts at a word: see decodeRowPreferred
    private final float[] scales;
    private final byte[] zeros;

    /**
     * @param packed    int32 little-endian words, [rows, ceil(cols/8)]
     * @param groupSize columns per scale (cols for per-channel); must divide cols
     * @param scales    [rows × cols/groupSize]
     * @param zeros     [rows × cols/groupSize] unsigned 0..15, or null for symmetric quantization (zero point 8)
     */
    public Q4Matrix(int rows, int cols, int groupSize, MemorySegment packed, float[] scales, byte[] zeros) {
        super(rows, cols);
        if (groupSize <= 0 || cols % groupSize != 0)
            throw new IllegalArgumentException("group size " + groupSize + " does not divide cols " + cols);
        this.wordsPerRow = (cols + 7) >>> 3;
        this.groupSize = groupSize;
        this.groupsPerRow = cols / groupSize;
        this.wordAligned = F.length() % 8 == 0 && groupSize % 8 == 0;
        if (packed.byteSize() != (long) rows * wordsPerRow * 4)
            throw new IllegalArgumentException("packed: " + packed.byteSize() + " bytes for " + rows + "x" + cols
                    + " (expected " + (long) rows * wordsPerRow * 4 + ")");
        if (scales.length != rows * groupsPerRow)
            throw new IllegalArgumentException("scales: " + scales.length + ", expected " + rows * groupsPerRow);
        if (zeros != null) {
            if (zeros.length != scales.length)
                throw new IllegalArgumentException("zeros: " + zeros.length + ", expected " + scales.length);
            for (byte z : zeros) if (z < 0 || z > 15) throw new IllegalArgumentException("zero point " + z + " not in 0..15");
        }
        this.packed = packed.isNative() ? packed : offHeap(packed);
        this.scales = scales;
        this.zeros = zeros;
    }

    /**
     * A native copy of a heap segment: the Vector API's loads from heap segments are not intrinsified on JDK 25
     * (about 10x slower here), while native ones (off-heap or memory-mapped) are. The copy lives until unreachable.
     */
    private static MemorySegment offHeap(MemorySegment heap) {
        MemorySegment seg = Arena.ofAuto().allocate(heap.byteSize(), 64);
        seg.copyFrom(heap);
        return seg;
    }

    /** Packs a 4-bit {@link QuantizedWeight} (a per-tensor scale is repeated for every row). */
    public static Q4Matrix from(QuantizedWeight q) {
        return from(q, Arena.ofAuto());
    }

    /**
     * Packs into native memory of {@code arena}, which owns it: an explicit arena (ofShared / ofConfined) is not
     * capped by the JVM's direct-memory limit, unlike the garbage-collected {@link Arena#ofAuto()}.
     */
    public static Q4Matrix from(QuantizedWeight q, Arena arena) {
        if (q.bits() != 4) throw new IllegalArgumentException("Q4Matrix needs 4-bit codes, got " + q.bits() + "-bit");
        int rows = q.rows(), cols = q.cols();
        int wpr = (cols + 7) >>> 3;
        MemorySegment seg = arena.allocate(Math.multiplyExact((long) rows * wpr, 4L), 64);
        byte[] codes = q.codes();
        for (int r = 0; r < rows; r++)
            for (int w = 0; w < wpr; w++) {
                int word = 0;
                for (int j = 0; j < 8 && 8 * w + j < cols; j++) word |= (codes[r * cols + 8 * w + j] & 0xf) << (4 * j);
                seg.setAtIndex(INT_LE, (long) r * wpr + w, word);
            }
        int gs = q.groupsPerRow() == 0 ? cols : q.groupSize();
        int gpr = cols / gs;
        float[] scales = new float[rows * gpr];
        byte[] zeros = q.symmetric() ? null : new byte[rows * gpr];
        for (int r = 0; r < rows; r++)
            for (int g = 0; g < gpr; g++) {
                int src = q.groupIndex(r, g * gs);
                scales[r * gpr + g] = q.scales()[src];
                if (zeros != null) zeros[r * gpr + g] = (byte) q.zeros()[src];
            }
        return new Q4Matrix(rows, cols, gs, seg, scales, zeros);
    }

    /** The packed words, int32 LE [rows, ceil(cols/8)] (shared, not copied). */
    public MemorySegment packed() {
        return packed;
    }

    public int wordsPerRow() {
        return wordsPerRow;
    }

    public int groupSize() {
        return groupSize;
    }

    public int groupsPerRow() {
        return groupsPerRow;
    }

    /** [rows × groupsPerRow] (shared, not copied). */
    public float[] scales() {
        return scales;
    }

    /** Unsigned zero points [rows × groupsPerRow], or null when symmetric (shared, not copied). */
    public byte[] zeros() {
        return zeros;
    }

    public boolean symmetric() {
        return zeros == null;
    }

    /** The nibble (unsigned code) at (r, c). */
    public int code(int r, int c) {
        int word = packed.getAtIndex(INT_LE, (long) r * wordsPerRow + (c >>> 3));
        return (word >>> ((c & 7) << 2)) & 0xf;
    }

    @Override
    public float get(int r, int c) {
        int g = r * groupsPerRow + c / groupSize;
        int z = zeros == null ? 8 : zeros[g];
        return Uniform.value(code(r, c), z, scales[g]);
    }

    @Override
    public void rowToFloat(int r, float[] dst, int off) {
        if (HalfMatrix.SCALAR) {
            for (int c = 0; c < cols; c++) dst[off + c] = get(r, c);
            return;
        }
        decodeRowPreferred(r, dst, off);
    }

    private static final VectorShuffle<Integer> SHUF0 = T.shuffle[0];
    private static final IntVector SHIFT0 = T.shift[0];

    /**
     * The hot path: every block of L columns starts on a word boundary (L and groupSize multiples of 8), and the
     * L-word load of the row's last block stays inside the segment, so the loop needs neither phase tables nor
     * masks. Other cases (L &lt; 8, odd group sizes, the last rows of the segment) take {@link #decodeRow}.
     */
    private void decodeRowPreferred(int r, float[] dst, int off) {
        final int L = F.length();
        final long rowBase = (long) r * wordsPerRow * 4;
        if (!wordAligned || rowBase + 4L * (wordsPerRow + L) > packed.byteSize()) {
            decodeRow(F, I, T, r, dst, off);
            return;
        }
        final MemorySegment seg = packed;
        final int sBase = r * groupsPerRow;
        for (int g = 0; g < groupsPerRow; g++) {
            final float s = scales[sBase + g];
            final int z = zeros == null ? 8 : zeros[sBase + g];
            final FloatVector sv = FloatVector.broadcast(F, s);
            final IntVector zv = IntVector.broadcast(I, z);
            int c = g * groupSize;
            final int end = c + groupSize;
            for (; c + L <= end; c += L) {
                IntVector q = IntVector.fromMemorySegment(I, seg, rowBase + ((long) (c >>> 3) << 2), ByteOrder.LITTLE_ENDIAN)
                        .rearrange(SHUF0).lanewise(VectorOperators.LSHR, SHIFT0).and(0xf).sub(zv);
                ((FloatVector) q.convert(VectorOperators.I2F, 0)).mul(sv).intoArray(dst, off + c);
            }
            for (; c < end; c++) dst[off + c] = Uniform.value(code(r, c), z, s);
        }
    }

    /** Decodes row r with an explicit species (any width, even one the CPU lacks): for tests of other widths. */
    void rowToFloat(VectorSpecies<Float> species, int r, float[] dst, int off) {
        VectorSpecies<Integer> is = VectorSpecies.of(int.class, species.vectorShape());
        decodeRow(species, is, new Tables(is), r, dst, off);
    }

    private void decodeRow(VectorSpecies<Float> fs, VectorSpecies<Integer> is, Tables t, int r, float[] dst, int off) {
        final int L = fs.length();
        final long rowBase = (long) r * wordsPerRow * 4;
        final long limit = packed.byteSize() - 4L * L; // an unmasked L-word load from offset o needs o <= limit
        final int sBase = r * groupsPerRow;
        for (int g = 0; g < groupsPerRow; g++) {
            final float s = scales[sBase + g];
            final int z = zeros == null ? 8 : zeros[sBase + g];
            final FloatVector sv = FloatVector.broadcast(fs, s);
            final IntVector zv = IntVector.broadcast(is, z);
            int c = g * groupSize;
            final int end = c + groupSize;
            for (; c + L <= end; c += L) {
                long o = rowBase + ((long) (c >>> 3) << 2);
                IntVector words = o <= limit
                        ? IntVector.fromMemorySegment(is, packed, o, ByteOrder.LITTLE_ENDIAN)
                        : IntVector.fromMemorySegment(is, packed, o, ByteOrder.LITTLE_ENDIAN,
                                is.indexInRange(0, (int) ((packed.byteSize() - o) >>> 2)));
                int ph = c & 7;
                IntVector q = words.rearrange(t.shuffle[ph]).lanewise(VectorOperators.LSHR, t.shift[ph]).and(0xf).sub(zv);
                ((FloatVector) q.convert(VectorOperators.I2F, 0)).mul(sv).intoArray(dst, off + c);
            }
            for (; c < end; c++) dst[off + c] = Uniform.value(code(r, c), z, s);
        }
    }

    // ------------------------------------------------------------------ fused 4-bit matrix-vector product

    /** Columns per block of the fused kernel: one vector of L packed words = 8·L columns. */
    static final int BLOCK = 8 * F.length();
    /**
     * The fused kernel decodes the weights again for every token; at n = 1 it measured 2–4x faster than
     * rowToFloat + dot. Up to 32 tokens it is used so that a batched decode step (continuous batching, one row
     * per sequence, up to 32 sequences) gives every row the same bits as a one-token step: the fused and the
     * decode-once paths round differently. Beyond that (prefill) decode-once-per-row (Matmul) is used.
     */
    public static final int FUSED_MAX_TOKENS = 32;

    /** Whether {@link #matmul} runs the fused kernel for this shape (groups a whole number of blocks). */
    public boolean fusedSupported() {
        return !HalfMatrix.SCALAR && groupSize % BLOCK == 0;
    }

    /**
     * out[t, o] = Σ_i x[t, i]·W[o, i] + bias[o] (the contract of {@link dev.qvlm.cpu.Matmul#matmul}), for decode-size
     * n with a kernel that never materialises W in FP32. A block of L packed words holds columns 8i + j (word i,
     * nibble j); instead of moving nibbles into column order, x is permuted once per call into nibble-major order
     * (xp[8L·b + L·j + i] = x[8L·b + 8i + j]), so nibble j of all L words, (v &gt;&gt;&gt; 4j) &amp; 15, meets its
     * activations with a plain vector load: per L weights a shift, and, integer subtract of the zero point, convert
     * and FMA; the group scale multiplies the group's partial sums once. Larger n, or
     * group sizes that are not a multiple of 8·L, go through Matmul.matmul (rowToFloat, decode once per row).
     */
    public void matmul(float[] out, int outOff, float[] x, int xOff, int n, float[] bias) {
        if (!fusedSupported() || n > FUSED_MAX_TOKENS) {
            dev.qvlm.cpu.Matmul.matmul(out, outOff, x, xOff, n, this, bias);
            return;
        }
        final float[] xp = scratch(XP, n * cols); // the calling thread's; the workers only read it
        for (int t = 0; t < n; t++) permute(x, xOff + t * cols, xp, t * cols, cols);
        int grain = Math.max(1, 65536 / Math.max(1, cols * n));
        dev.qvlm.cpu.Parallel.forRange(rows, grain, (r0, r1) -> {
            float[] lanes = scratch(LANES, F.length());
            for (int r = r0; r < r1; r++)
                for (int t = 0; t < n; t++)
                    out[outOff + t * rows + r] = dot(r, xp, t * cols, lanes) + (bias == null ? 0 : bias[r]);
        });
    }

    /** Per-thread scratch of {@link #matmul} (the permuted x; lane partials), so a decode step allocates none. */
    private static final ThreadLocal<float[][]> XP = ThreadLocal.withInitial(() -> new float[1][0]),
            LANES = ThreadLocal.withInitial(() -> new float[1][0]);

    private static float[] scratch(ThreadLocal<float[][]> slot, int n) {
        float[][] s = slot.get();
        if (s[0].length < n) s[0] = new float[n];
        return s[0];
    }

    /** x[xo..xo+cols) into nibble-major block order (see {@link #matmul}). */
    static void permute(float[] x, int xo, float[] xp, int po, int cols) {
        final int L = F.length();
        for (int c0 = 0; c0 < cols; c0 += BLOCK)
            for (int i = 0; i < L; i++)
                for (int j = 0; j < 8; j++) xp[po + c0 + j * L + i] = x[xo + c0 + 8 * i + j];
    }

    /**
     * Row r · permuted x. One row at a time with two accumulator chains (even and odd nibbles): measured faster
     * here than sharing x loads between 2 or 4 rows, whose extra live vectors cost more than the saved loads.
     */
    private float dot(int r, float[] xp, int xo, float[] lanes) {
        final int L = F.length();
        final MemorySegment seg = packed;
        final float[] sc = scales;
        final byte[] zs = zeros;
        final int gpr = groupsPerRow, gsz = groupSize;
        final long base = (long) r * wordsPerRow * 4;
        final int gi = r * gpr;
        FloatVector t = FloatVector.zero(F);
        for (int g = 0; g < gpr; g++) {
            final IntVector z = IntVector.broadcast(I, zs == null ? 8 : zs[gi + g]);
            FloatVector a0 = FloatVector.zero(F), a1 = FloatVector.zero(F);
            for (int c = g * gsz, end = c + gsz; c < end; c += BLOCK) {
                final IntVector v = IntVector.fromMemorySegment(I, seg, base + ((long) (c >>> 3) << 2), ByteOrder.LITTLE_ENDIAN);
                final int xc = xo + c;
                for (int j = 0; j < 8; j += 2) {
                    a0 = nibbles(v, 4 * j, z).fma(FloatVector.fromArray(F, xp, xc + j * L), a0);
                    a1 = nibbles(v, 4 * j + 4, z).fma(FloatVector.fromArray(F, xp, xc + j * L + L), a1);
                }
            }
            t = a0.add(a1).fma(FloatVector.broadcast(F, sc[gi + g]), t);
        }
        // fixed lane order: reduceLanes may add in another order once compiled, and a decode step must give the
        // same bits whenever it runs (see VectorMath.sum)
        t.intoArray(lanes, 0);
        return dev.qvlm.cpu.VectorMath.sumLanes(lanes, 0);
    }

    /** (v >>> shift) & 15 − zero, as floats: nibble j of every word minus the zero point, exact. */
    private static FloatVector nibbles(IntVector v, int shift, IntVector zero) {
        return (FloatVector) v.lanewise(VectorOperators.LSHR, shift).and(0xf).sub(zero).convert(VectorOperators.I2F, 0);
    }

    /** Per phase p = c % 8 of a block's first column: lane l reads word (p+l)/8 of the load, shifted by 4·((p+l)%8). */
    private static final class Tables {
        final VectorShuffle<Integer>[] shuffle;
        final IntVector[] shift;

        @SuppressWarnings("unchecked")
        Tables(VectorSpecies<Integer> is) {
            int L = is.length();
            shuffle = new VectorShuffle[8];
            shift = new IntVector[8];
            for (int p = 0; p < 8; p++) {
                int[] idx = new int[L], sh = new int[L];
                for (int l = 0; l < L; l++) {
                    idx[l] = (p + l) >>> 3;
                    sh[l] = 4 * ((p + l) & 7);
                }
                shuffle[p] = VectorShuffle.fromArray(is, idx, 0);
                shift[p] = IntVector.fromArray(is, sh, 0);
            }
        }
    }

    /** Bytes the kernel reads per pass: packed words + FP32 scales + one byte per zero point (asymmetric). */
    @Override
    public long storageBytes() {
        return packed.byteSize() + 4L * scales.length + (zeros == null ? 0 : zeros.length);
    }

    /** {@link #storageBytes()} of a (rows × cols) Q4Matrix with this group size, without building one. */
    public static long storageBytes(int rows, int cols, int groupSize, boolean symmetric) {
        long groups = (long) rows * (cols / groupSize);
        return (long) rows * ((cols + 7) >>> 3) * 4 + 4 * groups + (symmetric ? 0 : groups);
    }

    @Override
    public String storageName() {
        return groupSize == cols ? "q4ch" : "q4g" + groupSize;
    }

    /**
     * Zero points packed like compressed-tensors' weight_zero_point (pack_to_int32 with packed_dim=0): int32
     * [ceil(rows/8), groupsPerRow], zero point of row r at bits 4·(r%8) of word [r/8, g]; padding nibbles are 0.
     * Symmetric matrices have none: returns null.
     */
    public int[] packedZeros() {
        if (zeros == null) return null;
        int prow = (rows + 7) >>> 3;
        int[] out = new int[prow * groupsPerRow];
        for (int r = 0; r < rows; r++)
            for (int g = 0; g < groupsPerRow; g++)
                out[(r >>> 3) * groupsPerRow + g] |= (zeros[r * groupsPerRow + g] & 0xf) << (4 * (r & 7));
        return out;
    }

    /** Inverse of {@link #packedZeros}: unsigned zero points [rows × groups] from int32 [ceil(rows/8), groups]. */
    public static byte[] unpackZeros(int[] packedZeros, int rows, int groups) {
        if (packedZeros.length != ((rows + 7) >>> 3) * groups)
            throw new IllegalArgumentException("packed zeros: " + packedZeros.length + " words for " + rows + " rows x " + groups);
        byte[] z = new byte[rows * groups];
        for (int r = 0; r < rows; r++)
            for (int g = 0; g < groups; g++)
                z[r * groups + g] = (byte) ((packedZeros[(r >>> 3) * groups + g] >>> (4 * (r & 7))) & 0xf);
        return z;
    }
}
