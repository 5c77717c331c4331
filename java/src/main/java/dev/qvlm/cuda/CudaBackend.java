package dev.qvlm.cuda;

import dev.qvlm.QvlmException;
import dev.qvlm.backend.Backend;
import dev.qvlm.backend.Tensor;
import dev.qvlm.config.Activation;
import dev.qvlm.model.Linear;
import dev.qvlm.quant.ActQuantizer;
import dev.qvlm.tensor.Matrix;

import java.util.List;

/**
 * The LLaVA forward pass on an NVIDIA GPU: activations in device memory ({@link Storage}, FP16 by default), every
 * op a kernel of cuda-kernels/ or a cuBLAS call, semantics those of {@link dev.qvlm.cpu.CpuBackend} (the reference
 * the GPU tests compare against). The work is split by concern:
 * <ul>
 *   <li>{@link DeviceWeights}: weights uploaded once per model object (FP16 dense, int4 re-laid into
 *       {@link Int4Layout}, FP32 vectors; FP32 everything on the calibration's exact path, {@link #openExact});</li>
 *   <li>{@link DeviceLinears}: dense GEMMs, the W4A16 GEMV (and dequantise + GEMM beyond 8 tokens), several
 *       4-bit linears of one input in one launch, input quantizers (static on the device);</li>
 *   <li>{@link DeviceAttention}: split-sequence decode, cuBLAS prefill, the tiled kernel for long prompts;</li>
 *   <li>{@link OpStream}: every device call of every op, eager or captured / replayed as a CUDA graph
 *       ({@link StepGraphs}, for {@link #repeatedStep}); {@link DeviceMemory}: blocks and their lifetimes.</li>
 * </ul>
 * This class checks shapes and runs the remaining ops (norms, activations, RoPE, embedding, copies).
 *
 * <p>Thread-safe by serialisation: every op is synchronized and binds the context to the calling thread.
 */
public final class CudaBackend implements Backend {
    private final CountingDevice device;
    private final DeviceMemory memory;
    /** Every op's device calls: eager, or captured / replayed as a CUDA graph (decode steps). */
    private final OpStream ops;
    private final Storage storage;
    /** Weights on the device, uploaded on first use and kept by identity until {@link #close}. */
    private final DeviceWeights weights;
    private final DeviceAttention attention;
    private final DeviceLinears linears;
    private final int smCount;
    private boolean closed;

    /** Opens device -Dqvlm.cuda.device (default 0) with -Dqvlm.cuda.activations storage; see {@link CudaRuntime#probe}. */
    public static CudaBackend open() {
        return open(Storage.fromProperty());
    }

    public static CudaBackend open(Storage storage) {
        return open(storage, false);
    }

    /**
     * The calibration's backend: FP32 activations, FP32 weights (4-bit ones decoded exactly) and FP32 GEMMs, so the
     * quantization search sees the CPU's numbers up to summation order (twice the weight memory of FP16).
     */
    public static CudaBackend openExact() {
        return open(Storage.F32, true);
    }

    private static CudaBackend open(Storage storage, boolean exact) {
        String why = CudaRuntime.probe();
        if (why != null) throw new QvlmException("--device cuda: " + why + "; use --device cpu");
        return new CudaBackend(new JCudaDevice(CudaRuntime.ordinal(), Fatbin.load()), storage, exact);
    }

    CudaBackend(Device device, Storage storage) {
        this(device, storage, false);
    }

    CudaBackend(Device device, Storage storage, boolean exact) {
        if (exact && storage != Storage.F32) throw new IllegalArgumentException("exact linears need FP32 activations");
        this.device = new CountingDevice(device);
        this.storage = storage;
        this.memory = new DeviceMemory(this.device);
        this.ops = new OpStream(this.device, memory, storage);
        this.weights = new DeviceWeights(ops, memory, exact);
        this.attention = new DeviceAttention(ops, storage);
        this.linears = new DeviceLinears(this, ops, weights, storage);
        this.smCount = device.smCount();
    }

    @Override
    public String name() {
        return "cuda (" + device.name() + ", " + storage.suffix() + " activations" + (weights.exact() ? ", FP32 weights" : "") + ")";
    }

    public Storage storage() {
        return storage;
    }

    /**
     * Device calls since the backend opened and the host time spent in them: enqueueing (launches, GEMMs, copies,
     * memsets, uploads) and waiting for the stream (downloads, synchronize). Differences of two snapshots
     * ({@link #minus}) give a decode step's share; see {@link CountingDevice}.
     */
    public record DeviceCalls(long enqueueCalls, long enqueueNanos, long waitCalls, long waitNanos) {
        public DeviceCalls minus(DeviceCalls o) {
            return new DeviceCalls(enqueueCalls - o.enqueueCalls, enqueueNanos - o.enqueueNanos,
                    waitCalls - o.waitCalls, waitNanos - o.waitNanos);
        }
    }

    public synchronized DeviceCalls deviceCalls() {
        return device.counts();
    }

    /**
     * Runs {@code step} with every op it enqueues timed on the GPU (a pair of events around each), after holding the
     * stream for {@code holdNanos} with a spinning kernel: the host enqueues the whole step meanwhile, so the GPU
     * then runs the ops back to back and their times are the GPU's own, not the host's launch rate. The hold must
     * outlast the host's enqueueing (a decode step of 13B: ~10 ms). The step runs op by op even where it would replay
     * a CUDA graph. Empty on a device that cannot time ops.
     */
    public synchronized List<TimedOp> profileOps(Runnable step, long holdNanos) {
        launch(Kernel.SPIN, new LaunchGeometry.Launch(1, 1, 32, 0), holdNanos);
        device.beginOpTiming();
        ops.eagerOnly = true; // op by op, not a graph replay
        try {
            step.run();
        } catch (RuntimeException e) {
            device.endOpTiming();
            throw e;
        } finally {
            ops.eagerOnly = false;
        }
        return device.endOpTiming();
    }

    /** One op timed by {@link #profileOps}: kernel symbol, "cublasGemmEx m×n×k", "copy" or "memset", and its GPU start and end in ms since the first op began. */
    public record TimedOp(String label, double startMs, double endMs) {}

    /** Bytes of device memory: weights, live activations and scratch, pooled for reuse, and the peak of the first two. */
    public synchronized String memoryReport() {
        return String.format("weights %.1f MiB, activations %.1f MiB, pooled %.1f MiB, peak %.1f MiB",
                memory.permanentBytes() / 1048576.0, memory.liveBytes() / 1048576.0, memory.pooledBytes() / 1048576.0,
                memory.peakBytes() / 1048576.0);
    }

    // ---------------------------------------------------------------- tensors

    private void c0() {
        if (closed) throw new IllegalStateException("the CUDA backend is closed");
    }

    private CudaTensor c(Tensor t) {
        if (!(t instanceof CudaTensor x) || x.owner != this)
            throw new IllegalArgumentException("tensor " + t + " does not belong to this CUDA backend");
        if (closed) throw new IllegalStateException("the CUDA backend is closed");
        if (x.allocation.freed) throw new IllegalStateException("tensor " + t + " used after Backend.free");
        return x;
    }

    /** A tracked tensor's block back to the pool now ({@link DeviceMemory#free}); views of it are refused. */
    @Override
    public synchronized void free(Tensor t) {
        CudaTensor x = c(t);
        if (x.byteOffset != 0) throw new IllegalArgumentException("free: " + t + " is a view");
        memory.free(x.allocation);
    }

    @Override
    public synchronized Tensor allocate(int rows, int cols) {
        CudaTensor t = (CudaTensor) uninitialized(rows, cols);
        ops.memsetZero(t.address(), t.bytes()); // as the CPU backend: fresh tensors read as zeros
        return t;
    }

    /** Eager activations allocated inside go back to the pool at the close ({@link OpStream#scope}). */
    @Override
    public Scope scope() {
        Scope s = ops.scope();
        return () -> {
            synchronized (this) { // the pool is the backend's, like every op's
                s.close();
            }
        };
    }

    /** No memset: the caller's next op writes the whole tensor (see {@link Backend#uninitialized}). */
    @Override
    public synchronized Tensor uninitialized(int rows, int cols) {
        if (rows < 0 || cols < 0) throw new IllegalArgumentException("allocate " + rows + "x" + cols);
        DeviceMemory.Allocation a = ops.activation((long) rows * cols * storage.bytes());
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
        if (storage == Storage.F16) ops.upload(t.address(), Half.fromFloats(data, off, n));
        else if (off == 0 && data.length == n) ops.upload(t.address(), data);
        else ops.upload(t.address(), java.util.Arrays.copyOfRange(data, off, off + n));
    }

    @Override
    public synchronized float[] download(Tensor t) {
        CudaTensor x = c(t);
        int n = Math.toIntExact(x.size());
        if (storage == Storage.F16) {
            short[] h = new short[n];
            ops.download(x.address(), h);
            return Half.toFloats(h);
        }
        float[] out = new float[n];
        ops.download(x.address(), out);
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
        // a kernel rather than cuMemcpyDtoDAsync: a graph replay patches its destination (a KV cache row)
        if (s.size() > 0) launch(Kernel.COPY, elementwise(s.size()), d.address(), s.address(), s.size());
    }

    // ---------------------------------------------------------------- weights (uploaded once, by identity)

    /** Device bytes of a weight as this backend stores it (FP16 dense, or the int4 layout); uploads it if needed. */
    public synchronized long weightBytes(Matrix m) {
        if (weights.exact()) return 4L * m.rows() * m.cols();
        return DeviceWeights.isQ4(m) ? weights.q4(m, "weight").bytes() : 2L * m.rows() * m.cols();
    }

    /** Frees the device copy of a weight the caller is done with (a losing quantization candidate). */
    @Override
    public synchronized void release(Matrix m) {
        c0();
        ops.dropGraphs(); // a recorded step could hold the weight's address; it records again next time
        weights.release(m);
    }

    /** Drops the device copy until the weight's next use uploads it again (the same as {@link #release} here). */
    @Override
    public synchronized void evict(Matrix m) {
        release(m);
    }

    /** Makes sure a weight is on the device (uploaded, re-laid or filled), so that later timings exclude it. */
    public synchronized void prepare(Matrix m, String what) {
        if (weights.exact()) weights.matrix32(m, what);
        else if (DeviceWeights.isQ4(m)) weights.q4(m, what);
        else weights.matrix(m, what);
    }

    // ---------------------------------------------------------------- ops

    private void launch(Kernel k, LaunchGeometry.Launch g, Object... args) {
        ops.launch(k, g, args);
    }

    private LaunchGeometry.Launch elementwise(long n) {
        return ops.elementwise(n);
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
        long w = weights.matrix(table, "embedding table");
        long idBuf = ops.deviceInts(ids); // in a graph's step: changes no node
        launch(Kernel.EMBED, LaunchGeometry.embed(ids.length, table.cols()), o.address(), w, idBuf, ids.length,
                table.cols(), table.rows());
        ops.give(idBuf);
    }

    @Override
    public synchronized void linear(Tensor out, Tensor in, Linear w) {
        CudaTensor o = c(out), x = c(in);
        if (x.cols() != w.in() || o.cols() != w.out() || o.rows() != x.rows())
            throw new IllegalArgumentException(w.name() + ": [" + x.rows() + "x" + x.cols() + "] -> ["
                    + o.rows() + "x" + o.cols() + "] does not fit " + w);
        if (x.rows() == 0) return;
        linears.linear(o, x, w);
    }

    /** Two or three 4-bit linears of one input share one GEMV launch where they can ({@link DeviceLinears#linears}). */
    @Override
    public synchronized void linears(Tensor[] outs, Tensor in, Linear[] ws) {
        CudaTensor x = c(in);
        CudaTensor[] o = new CudaTensor[outs.length];
        for (int i = 0; i < outs.length; i++) o[i] = c(outs[i]);
        if (!linears.linears(o, x, ws)) for (int i = 0; i < ws.length; i++) linear(outs[i], in, ws[i]);
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
        launch(Kernel.RMSNORM, LaunchGeometry.perRow(x.rows(), x.cols()), o.address(), x.address(), weights.vector(gamma),
                x.rows(), x.cols(), eps);
    }

    /** The residual add and RMSNorm in one kernel (qvlm_add_rmsnorm). */
    @Override
    public synchronized void addRmsNorm(Tensor acc, Tensor x, Tensor out, float[] gamma, float eps) {
        CudaTensor a = c(acc), b = c(x), o = c(out);
        if (a.size() != b.size() || a.cols() != b.cols() || o.size() != a.size() || o.cols() != a.cols() || gamma.length != a.cols())
            throw new IllegalArgumentException("addRmsNorm: " + a + " + " + b + " -> " + o + " with gamma of " + gamma.length);
        if (a.rows() == 0) return;
        launch(Kernel.ADD_RMSNORM, LaunchGeometry.perRow(a.rows(), a.cols()), a.address(), b.address(), o.address(),
                weights.vector(gamma), a.rows(), a.cols(), eps);
    }

    @Override
    public synchronized void layerNorm(Tensor out, Tensor in, float[] gamma, float[] beta, float eps) {
        CudaTensor o = c(out), x = c(in);
        if (o.size() != x.size() || o.cols() != x.cols() || gamma.length != x.cols() || beta.length != x.cols())
            throw new IllegalArgumentException("layerNorm: " + x + " -> " + o);
        if (x.rows() == 0) return;
        launch(Kernel.LAYERNORM, LaunchGeometry.perRow(x.rows(), x.cols()), o.address(), x.address(), weights.vector(gamma),
                weights.vector(beta), x.rows(), x.cols(), eps);
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

    /** RoPE on the new keys and both copies into the cache in one kernel (qvlm_rope_q_store without queries). */
    @Override
    public synchronized void storeKv(Tensor k, Tensor v, Tensor keys, Tensor values, int kvHeads, int headDim, int pos,
                                     double theta) {
        if (!ropeStore(null, 0, c(k), c(v), c(keys), c(values), kvHeads, headDim, pos, theta))
            Backend.super.storeKv(k, v, keys, values, kvHeads, headDim, pos, theta); // checks and reports as the ops do
    }

    /** The queries' RoPE with {@link #storeKv} in one kernel (qvlm_rope_q_store); else Backend's ops. */
    @Override
    public synchronized void ropeQStoreKv(Tensor q, int heads, Tensor k, Tensor v, Tensor keys, Tensor values,
                                          int kvHeads, int headDim, int pos, double theta) {
        if (!ropeStore(c(q), heads, c(k), c(v), c(keys), c(values), kvHeads, headDim, pos, theta))
            Backend.super.ropeQStoreKv(q, heads, k, v, keys, values, kvHeads, headDim, pos, theta);
    }

    /** qvlm_rope_q_store for q (null: none) and the new keys and values; false, with nothing done, for shapes it does not take. */
    private boolean ropeStore(CudaTensor q, int heads, CudaTensor k, CudaTensor v, CudaTensor keys, CudaTensor values,
                              int kvHeads, int headDim, int pos, double theta) {
        int rows = k.rows(), width = kvHeads * headDim;
        if (headDim % 2 != 0 || k.cols() != width || v.cols() != width || keys.cols() != width || values.cols() != width
                || v.rows() != rows || pos < 0 || pos + rows > keys.rows() || pos + rows > values.rows()
                || q != null && (q.rows() != rows || (long) heads * headDim > q.cols()))
            return false;
        long pairs = (long) rows * (heads + kvHeads) * (headDim / 2);
        if (pairs == 0) return true;
        long posDev = ops.graphing() ? ops.deviceInts(pos) : 0; // a graph's node reads the position from the device
        launch(Kernel.ROPE_Q_STORE, elementwise(pairs), keys.address(), values.address(), k.address(), v.address(),
                q == null ? 0L : q.address(), rows, width, width, q == null ? 0 : q.cols(), heads, kvHeads, headDim,
                posDev == 0 ? pos : 0, posDev, theta);
        return true;
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
        attention.run(o, qq, kk, vv, kvLen, heads, kvHeads, headDim, qPos0, causal, scale);
    }

    /** Replays decode steps as CUDA graphs (see {@link StepGraphs}); eager with -Dqvlm.cuda.graphs=false. */
    @Override
    public synchronized float[] repeatedStep(String key, java.util.function.Supplier<float[]> step, Runnable reset) {
        c0();
        return ops.repeated(key, step, reset);
    }

    /** Per step key: captures, replays, patched launches per replay (for logs). */
    public synchronized String graphSummary() {
        return ops.graphSummary();
    }

    /** {Σ (y − t)², Σ t²} on the device (qvlm_err_sums: FP64 partials per block, added here in order). */
    @Override
    public synchronized double[] errorSums(Tensor y, Tensor t) {
        return CalibKernels.errorSums(this, c(y), c(t));
    }

    /** The calibration's ranges on the device (qvlm_minmax: per-block partials, the last reduction here). */
    @Override
    public synchronized float[] minMax(Tensor t) {
        return CalibKernels.minMax(this, t);
    }

    /** The percentile histogram on the device (qvlm_range_hist); Backend's download beyond the kernel's limits. */
    @Override
    public synchronized void histogram(Tensor t, double lo, double width, long[] hist) {
        if (!CalibKernels.histogram(this, t, lo, width, hist)) Backend.super.histogram(t, lo, width, hist);
    }

    /** Q-VLM's joint level sums on the device (qvlm_soft_joint_hist, FP32 storage); Backend's download otherwise. */
    @Override
    public synchronized void jointLevelSums(Tensor a, Tensor b, double loA, double stepA, int M, double loB, double stepB,
                                            int Mb, double[] sums) {
        if (!CalibKernels.jointLevelSums(this, a, b, loA, stepA, M, loB, stepB, Mb, sums))
            Backend.super.jointLevelSums(a, b, loA, stepA, M, loB, stepB, Mb, sums);
    }

    /** Greedy decoding on the device: the index of each row's largest value (first on ties). Not part of Backend. */
    public synchronized int[] argmax(Tensor x) {
        CudaTensor a = c(x);
        int[] out = new int[a.rows()];
        if (a.rows() == 0) return out;
        long buf = ops.take(4L * a.rows());
        launch(Kernel.ARGMAX, LaunchGeometry.perRow(a.rows(), a.cols()), a.address(), a.rows(), a.cols(), buf);
        ops.download(buf, out);
        ops.give(buf);
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

    /** A static activation quantizer's fake quantisation of {@code values}, on the device (for tests). */
    synchronized float[] fakeQuantOnDevice(float[] values, ActQuantizer q) {
        Tensor x = upload(values, 1, values.length), y = uninitialized(1, values.length);
        launch(Kernel.FAKE_QUANT, elementwise(values.length), c(y).address(), c(x).address(), (long) values.length,
                q.scale(), (float) q.zeroPoint(), (float) q.args().maxCode());
        return download(y);
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
        ops.synchronize();
    }

    /** cuMemGetInfo: {free, total} bytes of the device. */
    public synchronized long[] memInfo() {
        return device.memInfo();
    }

    /**
     * Activation and scratch memory: live and pooled bytes (weights not included), and the activations allocated
     * outside any {@link #scope} so far, of which {@code explicitFrees} their owner freed ({@link #free}) instead of
     * leaving them to reachability.
     */
    record MemoryCounts(long live, long pooled, long trackedAllocations, long explicitFrees, long weights, long peakWeights) {}

    synchronized MemoryCounts memoryCounts() {
        return new MemoryCounts(memory.liveBytes(), memory.pooledBytes(), memory.trackedAllocations(), memory.explicitFrees(),
                memory.permanentBytes(), memory.peakPermanentBytes());
    }

    /** Peak bytes of weights + live activations + scratch this backend has held (its own bookkeeping). */
    public synchronized long peakBytes() {
        return memory.peakBytes();
    }

    /**
     * Device-to-device copy bandwidth in bytes/s, counting read + write (2 · bytes per copy): cuMemcpyDtoD of
     * {@code bytes} repeated {@code reps} times after one warm-up, timed between stream synchronisations. The
     * weight-streaming limit of a memory-bound kernel on this card.
     */
    public synchronized double copyBandwidth(long bytes, int reps) {
        long src = memory.take(bytes), dst = memory.take(bytes);
        try {
            device.copy(dst, src, bytes);
            device.synchronize();
            long t0 = System.nanoTime();
            for (int i = 0; i < reps; i++) device.copy(dst, src, bytes);
            device.synchronize();
            double s = (System.nanoTime() - t0) / 1e9;
            return 2.0 * bytes * reps / Math.max(s, 1e-9);
        } finally {
            memory.give(src);
            memory.give(dst);
            memory.trim();
        }
    }

    // package access for CalibKernels, which launch and download directly: refused inside a captured or replayed step
    Device device() {
        requireEager();
        return device;
    }

    DeviceMemory memory() {
        requireEager();
        return memory;
    }

    private void requireEager() {
        if (ops.graphing()) throw new IllegalStateException("a direct device call inside a captured or replayed step");
    }

    int smCount() {
        return smCount;
    }

    Object[] args(Kernel k, Object... args) {
        return checked(k, args);
    }

    @Override
    public synchronized void close() {
        if (closed) return;
        closed = true;
        try {
            ops.close();
        } finally {
            closeMemory();
        }
    }

    private void closeMemory() {
        try {
            memory.close();
        } finally {
            weights.clear();
            device.close();
        }
    }
}
