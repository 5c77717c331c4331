package dev.qvlm.cuda;

import jcuda.Pointer;
import jcuda.driver.CUcontext;
import jcuda.driver.CUdevice;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUevent;
import jcuda.driver.CUfunction;
import jcuda.driver.CUmodule;
import jcuda.driver.CUstream;
import jcuda.CudaException;
import jcuda.driver.JCudaDriver;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

import static jcuda.driver.CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT;
import static jcuda.driver.JCudaDriver.*;

/**
 * The GPU through the JCuda driver API: the device's primary context (shared with cuBLAS, which uses the runtime
 * API), one stream, the fatbin loaded with cuModuleLoadData (cuModuleLoadFatBinary misbehaves on the CUDA 13
 * hosts). Host↔device copies use Java arrays and are synchronous (after a stream synchronise for downloads);
 * everything else is asynchronous on the stream. Callers serialise access ({@link CudaBackend} is synchronized) and
 * {@link #bind} makes the context current on the calling thread.
 */
final class JCudaDevice implements Device {
    /** Exposes the raw address JCuda keeps in a CUdeviceptr (protected in NativePointerObject). */
    static final class DevPtr extends CUdeviceptr {
        long address() {
            return getNativePointer();
        }
    }

    static final class Stream extends CUstream {
        long address() {
            return getNativePointer();
        }
    }

    static final class Function extends CUfunction {
        long address() {
            return getNativePointer();
        }
    }

    private final CUdevice device = new CUdevice();
    private final CUcontext context = new CUcontext();
    private final Stream stream = new Stream();
    private final CUmodule module = new CUmodule();
    private final Map<String, Function> functions = new HashMap<>();
    /** cuLaunchKernel through FFM (see {@link FfmLauncher}); null with -Dqvlm.cuda.launch=jcuda. */
    private final FfmLauncher ffm;
    /** CUDA graphs through FFM (decode steps; see {@link StepGraphs}); null with -Dqvlm.cuda.graphs=false. */
    private final DriverGraphs graphs;
    private boolean capturing;
    /** The thread the context was last made current on: binding again from it is skipped. */
    private Thread bound;
    /** Live allocations by base address: device pointers for the JCuda calls that take a CUdeviceptr. */
    private final TreeMap<Long, DevPtr> allocations = new TreeMap<>();
    private final Cublas cublas;
    private final DevPtr cublasWorkspace = new DevPtr();
    private final String name;
    private final int smCount;
    private boolean closed;

    JCudaDevice(int ordinal, byte[] fatbin) {
        JCudaDriver.setExceptionsEnabled(true);
        cuInit(0);
        cuDeviceGet(device, ordinal);
        cuDevicePrimaryCtxRetain(context, device);
        try {
            cuCtxSetCurrent(context);
            cuStreamCreate(stream, 0); // a blocking stream: ordered with the legacy-stream memcpys below
            cuModuleLoadData(module, fatbin);
            byte[] nm = new byte[256];
            cuDeviceGetName(nm, nm.length, device);
            int len = 0;
            while (len < nm.length && nm[len] != 0) len++;
            name = new String(nm, 0, len, java.nio.charset.StandardCharsets.US_ASCII);
            int[] v = new int[1];
            cuDeviceGetAttribute(v, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, device);
            smCount = v[0];
            cuMemAlloc(cublasWorkspace, Cublas.WORKSPACE_BYTES);
            cublas = new Cublas(stream.address(), cublasWorkspace.address());
            ffm = "jcuda".equals(System.getProperty("qvlm.cuda.launch")) ? null : optional("FFM kernel launch", FfmLauncher::new);
            graphs = StepGraphs.enabled() ? optional("CUDA graphs", DriverGraphs::new) : null;
        } catch (RuntimeException e) {
            cuDevicePrimaryCtxRelease(device);
            throw e;
        }
    }

    /** A driver binding that is a speed-up, not a need: without it (a symbol missing), one line and the plain path. */
    private static <T> T optional(String what, java.util.function.Supplier<T> make) {
        try {
            return make.get();
        } catch (RuntimeException e) {
            System.err.println("[qvlm] " + what + " unavailable (" + e.getMessage() + "); continuing without");
            return null;
        }
    }

    void bind() {
        if (closed) throw new IllegalStateException("the CUDA backend is closed");
        Thread t = Thread.currentThread();
        if (t == bound) return; // callers are serialised, and nothing else here makes another context current
        cuCtxSetCurrent(context);
        bound = t;
    }


    @Override
    public String name() {
        return name;
    }

    @Override
    public int smCount() {
        return smCount;
    }

    String cublasLibrary() {
        return cublas.library();
    }

    private CUdeviceptr ptr(long address) {
        Map.Entry<Long, DevPtr> e = allocations.floorEntry(address);
        if (e == null) throw new IllegalArgumentException(String.format("0x%x is not device memory of this backend", address));
        return address == e.getKey() ? e.getValue() : e.getValue().withByteOffset(address - e.getKey());
    }

    @Override
    public long alloc(long bytes) {
        bind();
        DevPtr p = new DevPtr();
        try {
            cuMemAlloc(p, Math.max(1, bytes));
        } catch (CudaException e) {
            if (String.valueOf(e.getMessage()).contains("OUT_OF_MEMORY")) return 0;
            throw e;
        }
        allocations.put(p.address(), p);
        return p.address();
    }

    @Override
    public void free(long address) {
        bind();
        DevPtr p = allocations.remove(address);
        if (p == null) throw new IllegalArgumentException(String.format("free of 0x%x: not an allocation", address));
        cuMemFree(p);
    }

    @Override
    public void memsetZero(long address, long bytes) {
        bind();
        if (bytes <= 0) return;
        CUevent t0 = before();
        cuMemsetD8Async(ptr(address), (byte) 0, bytes, stream);
        after(t0, "memset");
    }

    @Override
    public void upload(long dst, short[] src) {
        bind();
        if (src.length > 0) cuMemcpyHtoD(ptr(dst), Pointer.to(src), 2L * src.length);
    }

    @Override
    public void upload(long dst, float[] src) {
        bind();
        if (src.length > 0) cuMemcpyHtoD(ptr(dst), Pointer.to(src), 4L * src.length);
    }

    @Override
    public void upload(long dst, int[] src) {
        bind();
        if (src.length > 0) cuMemcpyHtoD(ptr(dst), Pointer.to(src), 4L * src.length);
    }

    @Override
    public void download(long src, short[] dst) {
        bind();
        cuStreamSynchronize(stream);
        if (dst.length > 0) cuMemcpyDtoH(Pointer.to(dst), ptr(src), 2L * dst.length);
    }

    @Override
    public void download(long src, float[] dst) {
        bind();
        cuStreamSynchronize(stream);
        if (dst.length > 0) cuMemcpyDtoH(Pointer.to(dst), ptr(src), 4L * dst.length);
    }

    @Override
    public void download(long src, double[] dst) {
        bind();
        cuStreamSynchronize(stream);
        if (dst.length > 0) cuMemcpyDtoH(Pointer.to(dst), ptr(src), 8L * dst.length);
    }

    @Override
    public void download(long src, int[] dst) {
        bind();
        cuStreamSynchronize(stream);
        if (dst.length > 0) cuMemcpyDtoH(Pointer.to(dst), ptr(src), 4L * dst.length);
    }

    @Override
    public void copy(long dst, long src, long bytes) {
        bind();
        if (bytes <= 0) return;
        CUevent t0 = before();
        cuMemcpyDtoDAsync(ptr(dst), ptr(src), bytes, stream);
        after(t0, "copy");
    }

    // ---------------------------------------------------------------- op timing (qvlm bench --profile-ops)

    /** Events of the ops timed since beginOpTiming: label, start, end; null when not timing. */
    private List<Object[]> timed;
    private final ArrayDeque<CUevent> eventPool = new ArrayDeque<>();

    private CUevent event() {
        CUevent e = eventPool.poll();
        if (e == null) {
            e = new CUevent();
            cuEventCreate(e, 0);
        }
        return e;
    }

    /** Records an event before the op when timing; returns it (or null) for {@link #after}. */
    private CUevent before() {
        if (timed == null) return null;
        CUevent e = event();
        cuEventRecord(e, stream);
        return e;
    }

    private void after(CUevent start, String label) {
        if (start == null) return;
        CUevent e = event();
        cuEventRecord(e, stream);
        timed.add(new Object[]{label, start, e});
    }

    @Override
    public void beginOpTiming() {
        bind();
        timed = new ArrayList<>();
    }

    @Override
    public List<CudaBackend.TimedOp> endOpTiming() {
        bind();
        List<Object[]> t = timed;
        timed = null;
        if (t == null || t.isEmpty()) return List.of();
        cuStreamSynchronize(stream);
        CUevent first = (CUevent) t.get(0)[1];
        List<CudaBackend.TimedOp> out = new ArrayList<>(t.size());
        float[] ms = new float[1];
        for (Object[] o : t) {
            cuEventElapsedTime(ms, first, (CUevent) o[1]);
            double s = ms[0];
            cuEventElapsedTime(ms, first, (CUevent) o[2]);
            out.add(new CudaBackend.TimedOp((String) o[0], s, ms[0]));
        }
        for (Object[] o : t) {
            eventPool.push((CUevent) o[1]);
            eventPool.push((CUevent) o[2]);
        }
        return out;
    }

    @Override
    public void launch(String symbol, LaunchGeometry.Launch g, Object[] args) {
        bind();
        CUevent t0 = before();
        launchNow(symbol, g, args);
        after(t0, symbol);
    }

    private void launchNow(String symbol, LaunchGeometry.Launch g, Object[] args) {
        Function f = functions.get(symbol);
        if (f == null) {
            f = new Function();
            cuModuleGetFunction(f, module, symbol);
            functions.put(symbol, f);
        }
        if (ffm != null) ffm.launch(f.address(), symbol, g, stream.address(), args);
        else launchJCuda(f, symbol, g, args);
        if (capturing) graphs.lastNode(stream.address(), f.address());
    }

    private void launchJCuda(Function f, String symbol, LaunchGeometry.Launch g, Object[] args) {
        Pointer[] params = new Pointer[args.length];
        for (int i = 0; i < args.length; i++)
            params[i] = switch (args[i]) {
                case Long l -> Pointer.to(new long[]{l});
                case Integer n -> Pointer.to(new int[]{n});
                case Float x -> Pointer.to(new float[]{x});
                case Double d -> Pointer.to(new double[]{d});
                default -> throw new IllegalArgumentException(symbol + ": argument " + i + " of type " + args[i].getClass());
            };
        cuLaunchKernel(f, g.gridX(), g.gridY(), 1, g.block(), 1, 1, g.sharedBytes(), stream, Pointer.to(params), null);
    }

    @Override
    public void gemm(Gemm call) {
        bind();
        CUevent t0 = before();
        cublas.gemm(call);
        if (t0 != null) after(t0, "cublasGemmEx " + call.m() + "x" + call.n() + "x" + call.k());
    }

    @Override
    public void gemm(Gemm.Batched call) {
        bind();
        CUevent t0 = before();
        cublas.gemm(call);
        if (t0 != null) after(t0, "cublasGemmStridedBatchedEx " + call.g().m() + "x" + call.g().n() + "x" + call.g().k() + " x" + call.batch());
    }

    @Override
    public boolean canCapture() {
        return graphs != null;
    }

    @Override
    public void beginCapture() {
        bind();
        graphs.beginCapture(stream.address());
        capturing = true;
    }

    @Override
    public Graph endCapture() {
        bind();
        capturing = false;
        return graphs.endCapture(stream.address());
    }

    @Override
    public void launchGraph(Graph g) {
        bind();
        graphs.launch((DriverGraphs.Graph) g, stream.address());
    }

    @Override
    public void patchKernel(Graph g, int index, String symbol, LaunchGeometry.Launch geometry, Object[] args) {
        bind();
        graphs.patch((DriverGraphs.Graph) g, index, symbol, geometry, args);
    }

    @Override
    public void destroyGraph(Graph g) {
        bind();
        cuStreamSynchronize(stream);
        graphs.destroy((DriverGraphs.Graph) g);
    }

    /** Waits for the stream; surfaces asynchronous kernel faults here rather than at some later call. */
    @Override
    public void synchronize() {
        bind();
        cuStreamSynchronize(stream);
    }

    @Override
    public long[] memInfo() {
        bind();
        long[] free = new long[1], total = new long[1];
        cuMemGetInfo(free, total);
        return new long[]{free[0], total[0]};
    }

    @Override
    public void close() {
        if (closed) return;
        bind();
        try {
            cuStreamSynchronize(stream);
            cublas.close();
            cuMemFree(cublasWorkspace);
            if (ffm != null) ffm.close();
            if (graphs != null) graphs.close();
            for (CUevent e : eventPool) cuEventDestroy(e);
            eventPool.clear();
            for (DevPtr p : allocations.values()) cuMemFree(p);
            allocations.clear();
            cuModuleUnload(module);
            cuStreamDestroy(stream);
        } finally {
            closed = true;
            cuDevicePrimaryCtxRelease(device);
        }
    }
}
