package dev.qvlm.cuda;

import dev.qvlm.quant.Q4Matrix;
import dev.qvlm.tensor.GeneratedMatrix;
import dev.qvlm.tensor.Matrix;

import java.util.IdentityHashMap;
import java.util.Map;

/**
 * The weights of {@link CudaBackend}'s ops on the device, put there on first use and kept by identity of the model
 * object until {@link #clear} (the backend's close): dense matrices as FP16, 4-bit ones ({@link Q4Matrix}, or a
 * {@link GeneratedMatrix} in Q4 format) re-laid once into the {@link Int4Layout} layout, vectors (norm gammas and
 * betas, biases) as FP32. Generated (synthetic) weights are filled on the device by a kernel, never through the host.
 */
final class DeviceWeights {
    /** A 4-bit weight on the device in the {@link Int4Layout} layout. */
    record Q4(long words, long params, int rows, int cols, int groupSize, int groups, long bytes) {}

    private final OpStream ops;
    private final DeviceMemory memory;
    /** FP32 copies of every linear's weight, 4-bit ones decoded (the calibration's exact path); see {@link #exact}. */
    private final boolean exact;
    private final Map<Matrix, Long> matrices32 = new IdentityHashMap<>();
    private final Map<Matrix, Long> matrices = new IdentityHashMap<>();
    private final Map<float[], Long> vectors = new IdentityHashMap<>();
    private final Map<Matrix, Q4> q4 = new IdentityHashMap<>();

    DeviceWeights(OpStream ops, DeviceMemory memory, boolean exact) {
        this.ops = ops;
        this.memory = memory;
        this.exact = exact;
    }

    /**
     * Whether linears run on FP32 weights (every weight, 4-bit ones decoded on the host to their exact FP32 values) and
     * FP32 GEMMs: the CPU's arithmetic up to summation order, for calibration, whose choices between near-equal
     * candidates flip with FP16 rounding (the bundled model's W4A4 search on an H200 in FP16 matched the CPU's blocks
     * but only 32 of its 48 percentiles).
     */
    boolean exact() {
        return exact;
    }

    /** A linear's weight as FP32 [rows, cols] on the device (the exact path). */
    long matrix32(Matrix m, String what) {
        Long a = matrices32.get(m);
        if (a != null) return a;
        long addr = memory.allocPermanent(4L * m.rows() * m.cols());
        if (m instanceof Q4Matrix q) { // a 4-bit candidate: its packed codes cross the bus (1/8 of FP32), decoded here
            decode32(q, addr);
            matrices32.put(m, addr);
            return addr;
        }
        Matrix src = m instanceof GeneratedMatrix g ? g.materialize() : m;
        int step = Math.max(1, uploadChunkRows(src.cols()) / 2);
        for (int r = 0; r < src.rows(); r += step) {
            int count = Math.min(step, src.rows() - r);
            float[] rows = new float[count * src.cols()];
            for (int i = 0; i < count; i++) src.rowToFloat(r + i, rows, i * src.cols());
            ops.upload(addr + 4L * r * src.cols(), rows);
        }
        matrices32.put(m, addr);
        return addr;
    }

    /**
     * A Q4Matrix's exact FP32 values into [rows, cols] at {@code out}: its packed words, FP32 scales and byte zero
     * points uploaded as they are, qvlm_q4_decode32 computes (code − zero) · scale as {@link Q4Matrix#get} does.
     */
    private void decode32(Q4Matrix q, long out) {
        int rows = q.rows(), cols = q.cols(), wordsPerRow = (cols + 7) >>> 3;
        int[] words = q.packed().asSlice(0, 4L * rows * wordsPerRow)
                .toArray(java.lang.foreign.ValueLayout.JAVA_INT_UNALIGNED.withOrder(java.nio.ByteOrder.LITTLE_ENDIAN));
        long w = ops.take(4L * words.length), s = ops.take(4L * q.scales().length), z = 0;
        ops.upload(w, words);
        ops.upload(s, q.scales());
        if (q.zeros() != null) { // bytes, four to an int in memory order (little-endian)
            byte[] b = q.zeros();
            int[] packed = new int[(b.length + 3) / 4];
            for (int i = 0; i < b.length; i++) packed[i >> 2] |= (b[i] & 0xff) << (8 * (i & 3));
            z = ops.take(4L * packed.length);
            ops.upload(z, packed);
        }
        ops.launch(Kernel.Q4_DECODE32, ops.elementwise((long) rows * cols), out, w, s, z, rows, cols, q.groupSize());
        ops.give(w);
        ops.give(s);
        if (z != 0) ops.give(z);
    }

    /** Rows per upload chunk: about 16 MiB of FP16 at a time, so huge matrices never need one giant host array. */
    static int uploadChunkRows(int cols) {
        return Math.max(1, (8 << 20) / Math.max(1, cols));
    }

    /** Whether the linear's weight runs through the int4 kernels. */
    boolean runsQ4(Matrix m) {
        return !exact && isQ4(m);
    }

    static boolean isQ4(Matrix m) {
        if (m instanceof Q4Matrix q) return Int4Layout.supported(q);
        return m instanceof GeneratedMatrix g && g.format() == GeneratedMatrix.Format.Q4 && Int4Layout.supported(g.cols(), g.groupSize());
    }

    /** The FP16 copy of a dense weight (a 4-bit one the kernels do not take is dequantised on the host). */
    long matrix(Matrix m, String what) {
        Long a = matrices.get(m);
        if (a != null) return a;
        long addr = memory.allocPermanent((long) m.rows() * m.cols() * 2);
        if (m instanceof GeneratedMatrix g && g.format() == GeneratedMatrix.Format.F16) { // made in place, no host copy
            long n = (long) m.rows() * m.cols();
            ops.launch(Kernel.FILL_F16, ops.elementwise(n), addr, n, g.seed(), g.amp());
        } else {
            Matrix src = m instanceof GeneratedMatrix g ? g.materialize() : m; // a Q4 shape the kernels do not take
            int step = uploadChunkRows(src.cols());
            for (int r = 0; r < src.rows(); r += step) {
                int count = Math.min(step, src.rows() - r);
                ops.upload(addr + (long) r * src.cols() * 2, Half.rows(src, r, count, what));
            }
        }
        matrices.put(m, addr); // by the caller's object, so the next call finds it
        return addr;
    }

    /** The 4-bit weight on the device, re-laid and uploaded (or, for generated weights, filled) on first use. */
    Q4 q4(Matrix m, String what) {
        Q4 w = q4.get(m);
        if (w != null) return w;
        int rows = m.rows(), cols = m.cols();
        if (m instanceof Q4Matrix qm) {
            Int4Layout.Relaid r = Int4Layout.relayout(qm, what);
            long words = memory.allocPermanent(r.wordBytes()), params = memory.allocPermanent(r.paramBytes());
            ops.upload(words, r.words());
            ops.upload(params, r.params());
            w = new Q4(words, params, rows, cols, r.groupSize(), r.groups(), r.bytes());
        } else {
            GeneratedMatrix g = (GeneratedMatrix) m;
            long nw = Int4Layout.wordCount(rows, cols), np = Int4Layout.paramCount(rows, cols, g.groupSize());
            long words = memory.allocPermanent(4 * nw), params = memory.allocPermanent(4 * np);
            ops.launch(Kernel.FILL_Q4, ops.elementwise(nw), words, params, rows, cols, g.groupSize(), g.seed(), g.amp(),
                    g.symmetric() ? 1 : 0);
            w = new Q4(words, params, rows, cols, g.groupSize(), g.groups(), 4 * (nw + np));
        }
        q4.put(m, w);
        return w;
    }

    /** An FP32 vector on the device. */
    long vector(float[] v) {
        Long a = vectors.get(v);
        if (a != null) return a;
        long addr = memory.allocPermanent(4L * v.length);
        ops.upload(addr, v);
        vectors.put(v, addr);
        return addr;
    }

    /** Frees the device copy of a weight, if there is one (Backend.release); true if there was. */
    boolean release(Matrix m) {
        Long a = matrices.remove(m), a32 = matrices32.remove(m);
        if (a != null) memory.freePermanent(a);
        if (a32 != null) memory.freePermanent(a32);
        Q4 w = q4.remove(m);
        if (w != null) {
            memory.freePermanent(w.words());
            memory.freePermanent(w.params());
        }
        return a != null || a32 != null || w != null;
    }

    /** Forgets every weight (their memory is freed with the backend's). */
    void clear() {
        matrices.clear();
        matrices32.clear();
        vectors.clear();
        q4.clear();
    }
}
