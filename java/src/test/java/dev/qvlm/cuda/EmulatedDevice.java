package dev.qvlm.cuda;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * A host stand-in for the GPU: device memory is byte arrays at fake addresses, copies are real, cuBLAS GemmEx (plain
 * and strided-batched) is emulated with its column-major semantics (FP16/FP32 operands, FP32 accumulation), every
 * kernel of the forward pass runs ({@link EmulatedKernels}), and CUDA graphs are recorded and replayed with their
 * patches when {@link #graphs} is set. It lets the tests check the backend's layouts, views, launch argument lists,
 * GEMM arguments and graph replays without a GPU, down to a whole model's logits against the CPU's.
 */
final class EmulatedDevice implements Device {
    record Launched(String symbol, LaunchGeometry.Launch geometry, Object[] args) {}

    private final TreeMap<Long, ByteBuffer> memory = new TreeMap<>();
    /** What the launched kernels do to this memory (EmulatedKernels). */
    private final EmulatedKernels kernels = new EmulatedKernels(this);
    private long next = 0x7f00_0000_0000L;
    final List<Launched> launches = new ArrayList<>();
    /** Bytes copied device → host so far. */
    long downloadedBytes;
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

    /** The offset of an address inside its block, or -1 when it is not device memory (a plain number). */
    long offsetInBlock(long address) {
        Map.Entry<Long, ByteBuffer> e = memory.floorEntry(address);
        if (e == null || address - e.getKey() > e.getValue().capacity()) return -1;
        return address - e.getKey();
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
        if (capture != null) {
            capture.add(new Object[]{"memset", address, bytes});
            return;
        }
        ByteBuffer b = at(address, bytes);
        for (long i = 0; i < bytes; i++) b.put((byte) 0);
    }

    @Override
    public void upload(long dst, short[] src) {
        notCapturing("upload");
        at(dst, 2L * src.length).asShortBuffer().put(src);
    }

    @Override
    public void upload(long dst, float[] src) {
        notCapturing("upload");
        at(dst, 4L * src.length).asFloatBuffer().put(src);
    }

    @Override
    public void upload(long dst, int[] src) {
        notCapturing("upload");
        at(dst, 4L * src.length).asIntBuffer().put(src);
    }

    @Override
    public void download(long src, short[] dst) {
        notCapturing("download");
        downloadedBytes += 2L * dst.length;
        at(src, 2L * dst.length).asShortBuffer().get(dst);
    }

    @Override
    public void download(long src, float[] dst) {
        notCapturing("download");
        downloadedBytes += 4L * dst.length;
        at(src, 4L * dst.length).asFloatBuffer().get(dst);
    }

    @Override
    public void download(long src, double[] dst) {
        notCapturing("download");
        downloadedBytes += 8L * dst.length;
        at(src, 8L * dst.length).asDoubleBuffer().get(dst);
    }

    @Override
    public void download(long src, int[] dst) {
        notCapturing("download");
        downloadedBytes += 4L * dst.length;
        at(src, 4L * dst.length).asIntBuffer().get(dst);
    }

    @Override
    public void copy(long dst, long src, long bytes) {
        notCapturing("cuMemcpyDtoDAsync"); // the backend copies with a kernel (patchable in a graph)
        byte[] tmp = new byte[Math.toIntExact(bytes)];
        at(src, bytes).get(tmp);
        at(dst, bytes).put(tmp);
    }

    /** A column-major matrix of {@code cols} columns of {@code rows} used rows each, leading dimension ld, as floats. */
    float[] readAll(long base, int type, int ld, int rows, int cols) {
        int n = cols == 0 ? 0 : (cols - 1) * ld + rows;
        float[] out = new float[n];
        if (type == Gemm.CUDA_R_16F) {
            short[] h = new short[n];
            at(base, 2L * n).asShortBuffer().get(h);
            for (int i = 0; i < n; i++) out[i] = Float.float16ToFloat(h[i]);
        } else at(base, 4L * n).asFloatBuffer().get(out);
        return out;
    }

    float read(long base, long index, int type) {
        return type == Gemm.CUDA_R_16F ? Float.float16ToFloat(at(base + 2 * index, 2).getShort())
                : at(base + 4 * index, 4).getFloat();
    }

    void write(long base, long index, int type, float v) {
        if (type == Gemm.CUDA_R_16F) at(base + 2 * index, 2).putShort(Float.floatToFloat16(v));
        else at(base + 4 * index, 4).putFloat(v);
    }

    // ---------------------------------------------------------------- CUDA graphs, emulated
    /** Whether this device captures (off by default: the existing tests count eager launches). */
    boolean graphs;
    private List<Object[]> capture; // {kind, ...}: "launch", symbol, geometry, args | "gemm", g | "memset", address, bytes
    int graphLaunches, liveGraphs;

    static final class Graph implements Device.Graph {
        final List<Object[]> ops;
        final List<Integer> launchAt = new ArrayList<>(); // index in ops of each kernel launch
        boolean destroyed;

        Graph(List<Object[]> ops) {
            this.ops = ops;
            for (int i = 0; i < ops.size(); i++) if (ops.get(i)[0].equals("launch")) launchAt.add(i);
        }

    }

    @Override
    public boolean canCapture() {
        return graphs;
    }

    @Override
    public void beginCapture() {
        if (capture != null) throw new IllegalStateException("already capturing");
        capture = new ArrayList<>();
    }

    @Override
    public Device.Graph endCapture() {
        List<Object[]> ops = capture;
        capture = null;
        liveGraphs++;
        return new Graph(ops);
    }

    @Override
    public void launchGraph(Device.Graph g) {
        Graph e = (Graph) g;
        if (e.destroyed) throw new IllegalStateException("launch of a destroyed graph");
        if (capture != null) throw new IllegalStateException("graph launch while capturing");
        graphLaunches++;
        for (Object[] op : e.ops)
            switch ((String) op[0]) {
                case "launch" -> launch((String) op[1], (LaunchGeometry.Launch) op[2], (Object[]) op[3]);
                case "gemm" -> gemm((Gemm) op[1]);
                case "gemmBatched" -> gemm((Gemm.Batched) op[1]);
                case "memset" -> memsetZero((Long) op[1], (Long) op[2]);
                default -> throw new IllegalStateException((String) op[0]);
            }
    }

    @Override
    public void patchKernel(Device.Graph g, int index, String symbol, LaunchGeometry.Launch geometry, Object[] args) {
        Graph e = (Graph) g;
        checkGeometry(symbol, geometry);
        Object[] op = e.ops.get(e.launchAt.get(index));
        if (!op[1].equals(symbol)) throw new IllegalStateException("patch of " + op[1] + " as " + symbol);
        e.ops.set(e.launchAt.get(index), new Object[]{"launch", symbol, geometry, args.clone()});
    }

    @Override
    public void destroyGraph(Device.Graph g) {
        Graph e = (Graph) g;
        if (e.destroyed) throw new IllegalStateException("graph destroyed twice");
        e.destroyed = true;
        liveGraphs--;
    }

    private void notCapturing(String what) {
        if (capture != null) throw new IllegalStateException(what + " during a capture");
    }

    @Override
    public void launch(String symbol, LaunchGeometry.Launch g, Object[] args) {
        checkGeometry(symbol, g);
        if (capture != null) {
            capture.add(new Object[]{"launch", symbol, g, args.clone()});
            return;
        }
        Object[] used = kernels.resolved(symbol, args.clone());
        launches.add(new Launched(symbol, g, kernels.recorded(symbol, used)));
        kernels.run(symbol, g, used);
    }

    /**
     * What cuLaunchKernel would refuse, or our kernels assume (whole warps): block 32..1024 threads in whole warps,
     * grid within 2^31 − 1 × 65535, dynamic shared memory within the 48 KiB a kernel gets without opting in.
     */
    static void checkGeometry(String symbol, LaunchGeometry.Launch g) {
        if (g.block() < 32 || g.block() > 1024 || g.block() % 32 != 0 || g.gridX() < 1 || g.gridY() < 1
                || g.gridY() > 65535 || g.sharedBytes() < 0 || g.sharedBytes() > 48 * 1024)
            throw new IllegalStateException(symbol + ": a launch the device would refuse: " + g);
    }

    @Override
    public void synchronize() {
        notCapturing("synchronize");
    }

    @Override
    public long[] memInfo() {
        long total = capacity == Long.MAX_VALUE ? 80L << 30 : capacity;
        return new long[]{total - live, total};
    }

    final List<Gemm.Batched> batchedGemms = new ArrayList<>();

    /** cublasGemmStridedBatchedEx: the GEMM batch times, operands advanced by their strides (in elements). */
    @Override
    public void gemm(Gemm.Batched b) {
        if (capture != null) {
            capture.add(new Object[]{"gemmBatched", b});
            return;
        }
        batchedGemms.add(b);
        Gemm g = b.g();
        int sa = g.aType() == Gemm.CUDA_R_16F ? 2 : 4, sb = g.bType() == Gemm.CUDA_R_16F ? 2 : 4, sc = g.cType() == Gemm.CUDA_R_16F ? 2 : 4;
        for (int i = 0; i < b.batch(); i++)
            multiply(new Gemm(g.transA(), g.transB(), g.m(), g.n(), g.k(), g.a() + sa * i * b.strideA(), g.aType(), g.lda(),
                    g.b() + sb * i * b.strideB(), g.bType(), g.ldb(), g.c() + sc * i * b.strideC(), g.cType(), g.ldc()));
    }

    /** cublasGemmEx, column-major: C[m x n] = op(A)[m x k] · op(B)[k x n], FP32 accumulation, alpha 1, beta 0. */
    @Override
    public void gemm(Gemm g) {
        if (capture != null) {
            capture.add(new Object[]{"gemm", g});
            return;
        }
        gemms.add(g);
        multiply(g);
    }

    /**
     * C = op(A) · op(B) of one GEMM on the emulated memory: the rows of op(A) and columns of op(B) gathered into
     * contiguous arrays, multiplied by the CPU backend's matmul (FP32; cuBLAS's summation order is unspecified too),
     * each column of C written in one piece.
     */
    private void multiply(Gemm g) {
        int m = g.m(), n = g.n(), k = g.k();
        // operands read once into arrays (column-major extents: ld x columns, the last column only as far as used)
        float[] A = readAll(g.a(), g.aType(), g.lda(), g.transA() == Gemm.OP_N ? m : k, g.transA() == Gemm.OP_N ? k : m);
        float[] B = readAll(g.b(), g.bType(), g.ldb(), g.transB() == Gemm.OP_N ? k : n, g.transB() == Gemm.OP_N ? n : k);
        float[] rowsA = new float[m * k], colsB = new float[n * k];
        for (int i = 0; i < m; i++)
            for (int p = 0; p < k; p++) rowsA[i * k + p] = A[g.transA() == Gemm.OP_N ? i + p * g.lda() : p + i * g.lda()];
        for (int j = 0; j < n; j++)
            for (int p = 0; p < k; p++) colsB[j * k + p] = B[g.transB() == Gemm.OP_N ? p + j * g.ldb() : j + p * g.ldb()];
        // column j of C = the CPU's matmul of op(B)'s column j (one row of x) with op(A)'s rows (a weight matrix)
        float[] cT = new float[n * m];
        dev.qvlm.cpu.Matmul.matmul(cT, 0, colsB, 0, n, new dev.qvlm.tensor.F32Matrix(m, k, rowsA), null);
        for (int j = 0; j < n; j++) {
            float[] col = java.util.Arrays.copyOfRange(cT, j * m, (j + 1) * m);
            long c = g.c() + (long) j * g.ldc() * (g.cType() == Gemm.CUDA_R_16F ? 2 : 4);
            if (g.cType() == Gemm.CUDA_R_16F) {
                short[] h = new short[m];
                for (int i = 0; i < m; i++) h[i] = Float.floatToFloat16(col[i]);
                at(c, 2L * m).asShortBuffer().put(h);
            } else at(c, 4L * m).asFloatBuffer().put(col);
        }
    }

    @Override
    public void close() {
        closed = true;
    }
}
