package dev.qvlm.cuda;

import dev.qvlm.QvlmException;
import dev.qvlm.backend.Backend;
import dev.qvlm.backend.Tensor;
import dev.qvlm.config.Activation;
import dev.qvlm.model.Linear;
import dev.qvlm.tensor.Matrix;

import java.util.IdentityHashMap;
import java.util.Map;

/**
 * The LLaVA forward pass on an NVIDIA GPU: activations in device memory ({@link Storage}, FP16 by default), weights
 * converted to FP16 and uploaded once per {@link Matrix} / float[] object (kept by identity until {@link #close}),
 * dense linears through cuBLAS (GemmEx, FP16 in, FP32 compute), every other op a kernel of cuda-kernels/. Semantics
 * are those of {@link dev.qvlm.cpu.CpuBackend}, the reference the GPU tests compare against.
 *
 * <p>Weight vectors (norm gammas and betas, biases) stay FP32 on the device: they are tiny and this keeps the
 * norms exact. Linears with an input quantizer (fake-quantized activations) take a host round trip: the quantizer
 * is Java code; a device version belongs with the 4-bit kernels. Q4 weights are refused with a message.
 *
 * <p>Thread-safe by serialisation: every op is synchronized and binds the context to the calling thread.
 */
public final class CudaBackend implements Backend {
    private final Device device;
    private final DeviceMemory memory;
    private final Storage storage;
    private final Map<Matrix, Long> matrices = new IdentityHashMap<>();
    private final Map<float[], Long> vectors = new IdentityHashMap<>();
    private final int smCount;
    private boolean closed;

    /** Opens device -Dqvlm.cuda.device (default 0) with -Dqvlm.cuda.activations storage; see {@link CudaRuntime#probe}. */
    public static CudaBackend open() {
        return open(Storage.fromProperty());
    }

    public static CudaBackend open(Storage storage) {
        String why = CudaRuntime.probe();
        if (why != null) throw new QvlmException("--device cuda: " + why + "; use --device cpu");
        return new CudaBackend(new JCudaDevice(CudaRuntime.ordinal(), Fatbin.load()), storage);
    }

    CudaBackend(Device device, Storage storage) {
        this.device = device;
        this.storage = storage;
        this.memory = new DeviceMemory(device);
        this.smCount = device.smCount();
    }

    @Override
    public String name() {
        return "cuda (" + device.name() + ", " + storage.suffix() + " activations)";
    }

    public Storage storage() {
        return storage;
    }

    /** Bytes of device memory: weights, live activations and scratch, pooled for reuse, and the peak of the first two. */
    public synchronized String memoryReport() {
        return String.format("weights %.1f MiB, activations %.1f MiB, pooled %.1f MiB, peak %.1f MiB",
                memory.permanentBytes() / 1048576.0, memory.liveBytes() / 1048576.0, memory.pooledBytes() / 1048576.0,
                memory.peakBytes() / 1048576.0);
    }

    // ---------------------------------------------------------------- tensors

    private CudaTensor c(Tensor t) {
        if (!(t instanceof CudaTensor x) || x.owner != this)
            throw new IllegalArgumentException("tensor " + t + " does not belong to this CUDA backend");
        if (closed) throw new IllegalStateException("the CUDA backend is closed");
        return x;
    }

    @Override
    public synchronized Tensor allocate(int rows, int cols) {
        if (rows < 0 || cols < 0) throw new IllegalArgumentException("allocate " + rows + "x" + cols);
        long bytes = (long) rows * cols * storage.bytes();
        DeviceMemory.Allocation a = memory.allocTracked(bytes);
        device.memsetZero(a.address, bytes); // as the CPU backend: fresh tensors read as zeros
        return new CudaTensor(this, a, 0, rows, cols, storage);
    }

    @Override
    public synchronized Tensor upload(float[] data, int rows, int cols) {
        if (data.length < (long) rows * cols)
            throw new IllegalArgumentException("upload: " + data.length + " < " + rows + "x" + cols);
        CudaTensor t = (CudaTensor) allocate(rows, cols);
        write(t, data, 0);
        return t;
    }

    private void write(CudaTensor t, float[] data, int off) {
        int n = Math.toIntExact(t.size());
        if (storage == Storage.F16) device.upload(t.address(), Half.fromFloats(data, off, n));
        else if (off == 0 && data.length == n) device.upload(t.address(), data);
        else device.upload(t.address(), java.util.Arrays.copyOfRange(data, off, off + n));
    }

    @Override
    public synchronized float[] download(Tensor t) {
        CudaTensor x = c(t);
        int n = Math.toIntExact(x.size());
        if (storage == Storage.F16) {
            short[] h = new short[n];
            device.download(x.address(), h);
            return Half.toFloats(h);
        }
        float[] out = new float[n];
        device.download(x.address(), out);
        return out;
    }

    @Override
    public synchronized Tensor view(Tensor t, int start, int count) {
        CudaTensor x = c(t);
        if (start < 0 || count < 0 || start + count > x.rows())
            throw new IndexOutOfBoundsException("view " + start + "+" + count + " of " + x.rows());
        return new CudaTensor(this, x.allocation, x.byteOffset + (long) start * x.cols() * storage.bytes(), count,
                x.cols(), storage);
    }

    @Override
    public synchronized void copy(Tensor src, Tensor dst) {
        CudaTensor s = c(src), d = c(dst);
        if (s.size() != d.size()) throw new IllegalArgumentException("copy size mismatch");
        device.copy(d.address(), s.address(), s.bytes());
    }

    // ---------------------------------------------------------------- weights (uploaded once, by identity)

    /** Rows per upload chunk: about 16 MiB of FP16 at a time, so huge matrices never need one giant host array. */
    static int uploadChunkRows(int cols) {
        return Math.max(1, (8 << 20) / Math.max(1, cols));
    }

    private long matrix(Matrix m, String what) {
        Long a = matrices.get(m);
        if (a != null) return a;
        long addr = memory.allocPermanent((long) m.rows() * m.cols() * 2);
        int step = uploadChunkRows(m.cols());
        for (int r = 0; r < m.rows(); r += step) {
            int count = Math.min(step, m.rows() - r);
            device.upload(addr + (long) r * m.cols() * 2, Half.rows(m, r, count, what));
        }
        matrices.put(m, addr);
        return addr;
    }

    private long vector(float[] v) {
        Long a = vectors.get(v);
        if (a != null) return a;
        long addr = memory.allocPermanent(4L * v.length);
        device.upload(addr, v);
        vectors.put(v, addr);
        return addr;
    }

    // ---------------------------------------------------------------- ops

    private void launch(Kernel k, LaunchGeometry.Launch g, Object... args) {
        k.check(args);
        device.launch(k.symbol(storage), g, args);
    }

    private LaunchGeometry.Launch elementwise(long n) {
        return LaunchGeometry.elementwise(n, smCount);
    }

    @Override
    public synchronized void embed(Tensor out, Matrix table, int[] ids) {
        CudaTensor o = c(out);
        if (o.rows() < ids.length || o.cols() != table.cols())
            throw new IllegalArgumentException("embed: " + ids.length + " ids of width " + table.cols() + " into " + o);
        for (int i = 0; i < ids.length; i++)
            if (ids[i] < 0 || ids[i] >= table.rows())
                throw new IndexOutOfBoundsException("embed: id " + ids[i] + " at " + i + " outside 0.." + (table.rows() - 1));
        if (ids.length == 0) return;
        long w = matrix(table, "embedding table");
        long idBuf = memory.take(4L * ids.length);
        device.upload(idBuf, ids);
        launch(Kernel.EMBED, LaunchGeometry.embed(ids.length, table.cols()), o.address(), w, idBuf, ids.length,
                table.cols(), table.rows());
        memory.give(idBuf);
    }

    @Override
    public synchronized void linear(Tensor out, Tensor in, Linear w) {
        CudaTensor o = c(out), x = c(in);
        if (x.cols() != w.in() || o.cols() != w.out() || o.rows() != x.rows())
            throw new IllegalArgumentException(w.name() + ": [" + x.rows() + "x" + x.cols() + "] -> ["
                    + o.rows() + "x" + o.cols() + "] does not fit " + w);
        if (x.rows() == 0) return;
        Linear.InputQuantizer q = w.inputQuantizer();
        CudaTensor input = x;
        if (q != null) { // host round trip: the quantizer is Java code (see the class comment)
            float[] h = download(x);
            q.apply(h, 0, x.rows(), x.cols());
            input = (CudaTensor) upload(h, x.rows(), x.cols());
        }
        long wAddr = matrix(w.weight(), w.name());
        if (storage == Storage.F16) {
            device.gemm(Gemm.linear(x.rows(), w.in(), w.out(), wAddr, input.address(), Gemm.CUDA_R_16F, o.address(), Gemm.CUDA_R_16F));
        } else { // cuBLAS wants A and B of one type: round the FP32 input to FP16, keep the FP32 output
            long half = memory.take(2 * input.size());
            device.launch(Kernel.F32_TO_F16.symbol(storage), elementwise(input.size()),
                    checked(Kernel.F32_TO_F16, half, input.address(), input.size()));
            device.gemm(Gemm.linear(x.rows(), w.in(), w.out(), wAddr, half, Gemm.CUDA_R_16F, o.address(), Gemm.CUDA_R_32F));
            memory.give(half);
        }
        if (w.bias() != null)
            launch(Kernel.BIAS_ADD, elementwise(o.size()), o.address(), vector(w.bias()), o.rows(), o.cols());
    }

    private static Object[] checked(Kernel k, Object... args) {
        k.check(args);
        return args;
    }

    @Override
    public synchronized void rmsNorm(Tensor out, Tensor in, float[] gamma, float eps) {
        CudaTensor o = c(out), x = c(in);
        if (o.size() != x.size() || o.cols() != x.cols() || gamma.length != x.cols())
            throw new IllegalArgumentException("rmsNorm: " + x + " -> " + o + " with gamma of " + gamma.length);
        if (x.rows() == 0) return;
        launch(Kernel.RMSNORM, LaunchGeometry.perRow(x.rows(), x.cols()), o.address(), x.address(), vector(gamma),
                x.rows(), x.cols(), eps);
    }

    @Override
    public synchronized void layerNorm(Tensor out, Tensor in, float[] gamma, float[] beta, float eps) {
        CudaTensor o = c(out), x = c(in);
        if (o.size() != x.size() || o.cols() != x.cols() || gamma.length != x.cols() || beta.length != x.cols())
            throw new IllegalArgumentException("layerNorm: " + x + " -> " + o);
        if (x.rows() == 0) return;
        launch(Kernel.LAYERNORM, LaunchGeometry.perRow(x.rows(), x.cols()), o.address(), x.address(), vector(gamma),
                vector(beta), x.rows(), x.cols(), eps);
    }

    @Override
    public synchronized void add(Tensor acc, Tensor x) {
        CudaTensor a = c(acc), b = c(x);
        if (a.size() != b.size()) throw new IllegalArgumentException("add size mismatch");
        if (a.size() == 0) return;
        launch(Kernel.ADD, elementwise(a.size()), a.address(), b.address(), a.size());
    }

    @Override
    public synchronized void activate(Tensor x, Activation act) {
        CudaTensor a = c(x);
        if (a.size() == 0) return;
        launch(Kernel.ACT, elementwise(a.size()), a.address(), a.size(), act.ordinal());
    }

    @Override
    public synchronized void gatedActivate(Tensor gate, Tensor up, Activation act) {
        CudaTensor g = c(gate), u = c(up);
        if (g.size() != u.size()) throw new IllegalArgumentException("gatedActivate size mismatch");
        if (g.size() == 0) return;
        launch(Kernel.GATED_ACT, elementwise(g.size()), g.address(), u.address(), g.size(), act.ordinal());
    }

    @Override
    public synchronized void rope(Tensor x, int heads, int headDim, int startPos, double theta) {
        CudaTensor a = c(x);
        if (headDim % 2 != 0 || (long) heads * headDim > a.cols() || startPos < 0)
            throw new IllegalArgumentException("rope: " + heads + " heads of " + headDim + " in " + a + " at " + startPos);
        long pairs = (long) a.rows() * heads * (headDim / 2);
        if (pairs == 0) return;
        launch(Kernel.ROPE, elementwise(pairs), a.address(), a.rows(), a.cols(), heads, headDim, startPos, theta);
    }

    @Override
    public synchronized void attention(Tensor out, Tensor q, Tensor k, Tensor v, int kvLen, int heads, int kvHeads,
                                       int headDim, int qPos0, boolean causal, float scale) {
        CudaTensor o = c(out), qq = c(q), kk = c(k), vv = c(v);
        int n = qq.rows();
        if (kvHeads < 1 || heads % kvHeads != 0)
            throw new IllegalArgumentException("attention: " + heads + " heads over " + kvHeads + " KV heads");
        if ((long) heads * headDim > qq.cols() || (long) heads * headDim > o.cols() || o.rows() != n
                || (long) kvHeads * headDim > kk.cols() || kk.cols() != vv.cols() || kk.rows() < kvLen || vv.rows() < kvLen)
            throw new IllegalArgumentException("attention: q " + qq + ", k " + kk + ", v " + vv + ", out " + o
                    + " do not fit " + heads + "/" + kvHeads + " heads of " + headDim + " over " + kvLen + " keys");
        if (n == 0) return;
        LaunchGeometry.AttentionPlan p = LaunchGeometry.attention(n, kvLen, heads, headDim, qPos0, causal, smCount,
                LaunchGeometry.DEFAULT_SHARED_LIMIT);
        int cz = causal ? 1 : 0;
        if (p.kind() == LaunchGeometry.AttentionKind.PREFILL) {
            launch(Kernel.ATTN_PREFILL, p.main(), o.address(), qq.address(), kk.address(), vv.address(), n, kvLen,
                    heads, kvHeads, headDim, qPos0, cz, scale, qq.cols(), kk.cols(), o.cols(), p.keyTile());
            return;
        }
        long accFloats = (long) n * heads * p.splits() * headDim;
        long part = p.splits() > 1 ? memory.take(4 * LaunchGeometry.splitScratchFloats(n, heads, p.splits(), headDim)) : 0;
        long partAcc = part, partMl = part == 0 ? 0 : part + 4 * accFloats;
        launch(Kernel.ATTN_SPLIT, p.main(), o.address(), partAcc, partMl, qq.address(), kk.address(), vv.address(), n,
                kvLen, heads, kvHeads, headDim, qPos0, cz, scale, qq.cols(), kk.cols(), o.cols(), p.splits(), p.chunk());
        if (p.combine() != null) {
            launch(Kernel.ATTN_COMBINE, p.combine(), o.address(), partAcc, partMl, n, heads, headDim, p.splits(), o.cols());
            memory.give(part);
        }
    }

    /** Greedy decoding on the device: the index of each row's largest value (first on ties). Not part of Backend. */
    public synchronized int[] argmax(Tensor x) {
        CudaTensor a = c(x);
        int[] out = new int[a.rows()];
        if (a.rows() == 0) return out;
        long buf = memory.take(4L * a.rows());
        launch(Kernel.ARGMAX, LaunchGeometry.perRow(a.rows(), a.cols()), a.address(), a.rows(), a.cols(), buf);
        device.download(buf, out);
        memory.give(buf);
        return out;
    }

    /** FP32 values → a new FP16 device buffer (the device-side conversion kernel), for tests and tools. */
    synchronized short[] convertOnDevice(float[] values) {
        long src = memory.take(4L * values.length), dst = memory.take(2L * values.length);
        device.upload(src, values);
        device.launch(Kernel.F32_TO_F16.symbol(storage), elementwise(values.length),
                checked(Kernel.F32_TO_F16, dst, src, (long) values.length));
        short[] out = new short[values.length];
        device.download(dst, out);
        memory.give(src);
        memory.give(dst);
        return out;
    }

    /** FP16 bits → FP32 through the device's conversion kernel. */
    synchronized float[] convertOnDevice(short[] values) {
        long src = memory.take(2L * values.length), dst = memory.take(4L * values.length);
        device.upload(src, values);
        device.launch(Kernel.F16_TO_F32.symbol(storage), elementwise(values.length),
                checked(Kernel.F16_TO_F32, dst, src, (long) values.length));
        float[] out = new float[values.length];
        device.download(dst, out);
        memory.give(src);
        memory.give(dst);
        return out;
    }

    /** Waits for all queued work (surfaces asynchronous kernel faults). */
    public synchronized void synchronize() {
        if (device instanceof JCudaDevice d) d.synchronize();
    }

    @Override
    public synchronized void close() {
        if (closed) return;
        closed = true;
        try {
            memory.close();
        } finally {
            matrices.clear();
            vectors.clear();
            device.close();
        }
    }
}
