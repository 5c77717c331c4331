package dev.qvlm.cuda;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * A host stand-in for the GPU: device memory is byte arrays at fake addresses, copies are real, cuBLAS GemmEx is
 * emulated with its column-major semantics (FP16/FP32 operands, FP32 accumulation), and so are the kernels a linear
 * layer launches: bias add, FP32→FP16, the int4 GEMV and dequantisation (through {@link Int4Layout}'s emulation of
 * q4.cuh) and the synthetic-weight fills (through {@link dev.qvlm.tensor.GeneratedMatrix}). Other launches are
 * recorded, not run. It lets the tests
 * check the backend's layouts, views, launch argument lists and GEMM arguments without a GPU.
 */
final class EmulatedDevice implements Device {
    record Launched(String symbol, LaunchGeometry.Launch geometry, Object[] args) {}

    private final TreeMap<Long, ByteBuffer> memory = new TreeMap<>();
    private long next = 0x7f00_0000_0000L;
    final List<Launched> launches = new ArrayList<>();
    final List<Gemm> gemms = new ArrayList<>();
    int allocations, frees;
    boolean closed;
    /** Allocations fail (out of memory) beyond this many live bytes. */
    long capacity = Long.MAX_VALUE;
    long live;

    @Override
    public String name() {
        return "emulated";
    }

    @Override
    public int smCount() {
        return 132;
    }

    @Override
    public long alloc(long bytes) {
        if (live + bytes > capacity) return 0;
        long a = next;
        next += (bytes + 255) / 256 * 256 + 256; // a gap, so an overrun lands outside every block
        memory.put(a, ByteBuffer.allocate(Math.toIntExact(bytes)).order(ByteOrder.LITTLE_ENDIAN));
        allocations++;
        live += bytes;
        return a;
    }

    @Override
    public void free(long address) {
        ByteBuffer b = memory.remove(address);
        if (b == null) throw new IllegalStateException(String.format("double free of 0x%x", address));
        frees++;
        live -= b.capacity();
    }

    int liveBlocks() {
        return memory.size();
    }

    /** The buffer holding [address, address+bytes), positioned at address. */
    ByteBuffer at(long address, long bytes) {
        Map.Entry<Long, ByteBuffer> e = memory.floorEntry(address);
        if (e == null) throw new IllegalStateException(String.format("0x%x is not device memory", address));
        long off = address - e.getKey();
        if (off + bytes > e.getValue().capacity())
            throw new IllegalStateException(String.format("0x%x + %d overruns a block of %d", address, bytes, e.getValue().capacity()));
        ByteBuffer b = e.getValue().duplicate().order(ByteOrder.LITTLE_ENDIAN);
        b.position((int) off);
        return b;
    }

    @Override
    public void memsetZero(long address, long bytes) {
        ByteBuffer b = at(address, bytes);
        for (long i = 0; i < bytes; i++) b.put((byte) 0);
    }

    @Override
    public void upload(long dst, short[] src) {
        at(dst, 2L * src.length).asShortBuffer().put(src);
    }

    @Override
    public void upload(long dst, float[] src) {
        at(dst, 4L * src.length).asFloatBuffer().put(src);
    }

    @Override
    public void upload(long dst, int[] src) {
        at(dst, 4L * src.length).asIntBuffer().put(src);
    }

    @Override
    public void download(long src, short[] dst) {
        at(src, 2L * dst.length).asShortBuffer().get(dst);
    }

    @Override
    public void download(long src, float[] dst) {
        at(src, 4L * dst.length).asFloatBuffer().get(dst);
    }

    @Override
    public void download(long src, int[] dst) {
        at(src, 4L * dst.length).asIntBuffer().get(dst);
    }

    @Override
    public void copy(long dst, long src, long bytes) {
        byte[] tmp = new byte[Math.toIntExact(bytes)];
        at(src, bytes).get(tmp);
        at(dst, bytes).put(tmp);
    }

    float read(long base, long index, int type) {
        return type == Gemm.CUDA_R_16F ? Float.float16ToFloat(at(base + 2 * index, 2).getShort())
                : at(base + 4 * index, 4).getFloat();
    }

    void write(long base, long index, int type, float v) {
        if (type == Gemm.CUDA_R_16F) at(base + 2 * index, 2).putShort(Float.floatToFloat16(v));
        else at(base + 4 * index, 4).putFloat(v);
    }

    @Override
    public void launch(String symbol, LaunchGeometry.Launch g, Object[] args) {
        launches.add(new Launched(symbol, g, args.clone()));
        if (symbol.startsWith("qvlm_bias_add_")) {
            int type = symbol.endsWith("f16") ? Gemm.CUDA_R_16F : Gemm.CUDA_R_32F;
            long out = (Long) args[0], bias = (Long) args[1];
            int rows = (Integer) args[2], cols = (Integer) args[3];
            for (long i = 0; i < (long) rows * cols; i++)
                write(out, i, type, read(out, i, type) + read(bias, i % cols, Gemm.CUDA_R_32F));
        } else if (symbol.equals("qvlm_f32_to_f16")) {
            long out = (Long) args[0], in = (Long) args[1], n = (Long) args[2];
            for (long i = 0; i < n; i++) write(out, i, Gemm.CUDA_R_16F, read(in, i, Gemm.CUDA_R_32F));
        } else if (symbol.startsWith("qvlm_q4_gemv")) {
            int type = symbol.endsWith("f16") ? Gemm.CUDA_R_16F : Gemm.CUDA_R_32F;
            int n = (Integer) args[4], rows = (Integer) args[5], cols = (Integer) args[6], gs = (Integer) args[7];
            int bucket = Integer.parseInt(symbol.substring("qvlm_q4_gemv".length(), symbol.indexOf('_', 12)));
            if (n > bucket || Int4Layout.bucket(n) != bucket) throw new IllegalStateException(symbol + " launched for " + n + " tokens");
            if (g.gridX() != Int4Layout.tiles(rows)) throw new IllegalStateException(symbol + ": grid " + g);
            Int4Layout.Relaid m = relaid((Long) args[2], (Long) args[3], rows, cols, gs, (Integer) args[8]);
            short[] x = new short[n * cols];
            download((Long) args[1], x);
            float[] y = Int4Layout.emulateGemv(m, x, n);
            for (int i = 0; i < y.length; i++) write((Long) args[0], i, type, y[i]);
        } else if (symbol.equals("qvlm_q4_dequant")) {
            Int4Layout.Relaid m = relaid((Long) args[1], (Long) args[2], (Integer) args[3], (Integer) args[4],
                    (Integer) args[5], (Integer) args[6]);
            upload((Long) args[0], Int4Layout.emulateDequant(m));
        } else if (symbol.equals("qvlm_fill_f16")) {
            long out = (Long) args[0], n = (Long) args[1];
            int seed = (Integer) args[2];
            float amp = (Float) args[3];
            for (long i = 0; i < n; i++) at(out + 2 * i, 2).putShort(dev.qvlm.tensor.GeneratedMatrix.f16Bits(seed, i, amp));
        } else if (symbol.equals("qvlm_fill_q4")) {
            int rows = (Integer) args[2], cols = (Integer) args[3], gs = (Integer) args[4];
            var gm = dev.qvlm.tensor.GeneratedMatrix.q4(rows, cols, (Integer) args[5], (Float) args[6], gs, (Integer) args[7] != 0);
            Int4Layout.Relaid r = Int4Layout.relayout((dev.qvlm.quant.Q4Matrix) gm.materialize(), "generated");
            upload((Long) args[0], r.words());
            upload((Long) args[1], r.params());
        }
    }

    /** A device int4 weight read back into the host layout record. */
    Int4Layout.Relaid relaid(long words, long params, int rows, int cols, int groupSize, int groups) {
        int[] w = new int[Math.toIntExact(Int4Layout.wordCount(rows, cols))];
        int[] p = new int[Math.toIntExact(Int4Layout.paramCount(rows, cols, groupSize))];
        download(words, w);
        download(params, p);
        return new Int4Layout.Relaid(rows, cols, groupSize, groups, Int4Layout.tiles(rows), cols / Int4Layout.CHUNK_COLS, w, p);
    }

    @Override
    public void synchronize() {}

    @Override
    public long[] memInfo() {
        long total = capacity == Long.MAX_VALUE ? 80L << 30 : capacity;
        return new long[]{total - live, total};
    }

    /** cublasGemmEx, column-major: C[m x n] = op(A)[m x k] · op(B)[k x n], FP32 accumulation, alpha 1, beta 0. */
    @Override
    public void gemm(Gemm g) {
        gemms.add(g);
        for (int j = 0; j < g.n(); j++)
            for (int i = 0; i < g.m(); i++) {
                float acc = 0;
                for (int p = 0; p < g.k(); p++) {
                    long ai = g.transA() == Gemm.OP_N ? i + (long) p * g.lda() : p + (long) i * g.lda();
                    long bi = g.transB() == Gemm.OP_N ? p + (long) j * g.ldb() : j + (long) p * g.ldb();
                    acc += read(g.a(), ai, g.aType()) * read(g.b(), bi, g.bType());
                }
                write(g.c(), i + (long) j * g.ldc(), g.cType(), acc);
            }
    }

    @Override
    public void close() {
        closed = true;
    }
}
