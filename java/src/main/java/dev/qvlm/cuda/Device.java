package dev.qvlm.cuda;

/**
 * The driver calls the CUDA backend makes, behind one small interface: {@link JCudaDevice} is the real GPU (JCuda
 * driver API + cuBLAS through FFM); tests substitute a host emulation to check the backend's bookkeeping (layouts,
 * views, launch argument lists, GEMM arguments) on a machine without a GPU. Addresses are raw device addresses;
 * every call is ordered on the device's one stream.
 */
interface Device extends AutoCloseable {
    String name();

    int smCount();

    /** A fresh allocation of {@code bytes}, or 0 when the device is out of memory. */
    long alloc(long bytes);

    void free(long address);

    void memsetZero(long address, long bytes);

    void upload(long dst, short[] src);

    void upload(long dst, float[] src);

    void upload(long dst, int[] src);

    /** Waits for the stream, then copies src.length elements. */
    void download(long src, short[] dst);

    void download(long src, float[] dst);

    void download(long src, int[] dst);

    void download(long src, double[] dst);

    void copy(long dst, long src, long bytes);

    /** Launches {@code symbol} of the fatbin; {@code args} already checked against its {@link Kernel} signature. */
    void launch(String symbol, LaunchGeometry.Launch geometry, Object[] args);

    void gemm(Gemm call);

    /** cublasGemmStridedBatchedEx. */
    void gemm(Gemm.Batched call);

    /** Waits until the stream is idle. */
    void synchronize();

    /**
     * Starts timing every op enqueued from now on with a pair of events around it (launches, GEMMs, copies,
     * memsets), until {@link #endOpTiming}. A device that cannot time ops ignores it.
     */
    default void beginOpTiming() {}

    /** Waits for the stream and returns the ops timed since {@link #beginOpTiming}, in order; empty if none. */
    default java.util.List<CudaBackend.TimedOp> endOpTiming() {
        return java.util.List.of();
    }

    /** A captured and instantiated sequence of ops (a CUDA graph); its kernel launches are numbered in capture order. */
    interface Graph {}

    /** Whether {@link #beginCapture} works here. */
    default boolean canCapture() {
        return false;
    }

    /**
     * Starts recording the ops enqueued from now on instead of running them (stream capture), until
     * {@link #endCapture}. Uploads, downloads and synchronize are not allowed meanwhile.
     */
    default void beginCapture() {
        throw new UnsupportedOperationException(name() + " cannot capture");
    }

    /** Ends the capture and instantiates what it recorded; the device is no longer capturing even if this throws. */
    default Graph endCapture() {
        throw new UnsupportedOperationException(name() + " cannot capture");
    }

    /** Enqueues the whole graph on the stream. */
    default void launchGraph(Graph g) {
        throw new UnsupportedOperationException(name() + " cannot capture");
    }

    /** Captured kernel launch {@code index} of g runs with this geometry and these arguments from the next launch on. */
    default void patchKernel(Graph g, int index, String symbol, LaunchGeometry.Launch geometry, Object[] args) {
        throw new UnsupportedOperationException(name() + " cannot capture");
    }

    /** Frees the graph (after the work already enqueued from it). */
    default void destroyGraph(Graph g) {
        throw new UnsupportedOperationException(name() + " cannot capture");
    }

    /** {free, total} bytes of device memory (cuMemGetInfo). */
    long[] memInfo();

    @Override
    void close();
}
