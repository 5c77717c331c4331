package dev.qvlm.cuda;

/**
 * A {@link Device} that counts the calls made to another and the host time they take, split into the calls that
 * only enqueue work (launches, GEMMs, async copies and memsets, uploads) and the ones that wait for the stream
 * (downloads, synchronize). A decode step whose enqueue time is close to its wall time is bound by the host (one
 * launch after another from Java), not by the GPU: the first run on a card (H200) gave FP16 and W4A16 decode of
 * 13B nearly the same ms/token although the 4-bit GEMVs read 3.6x fewer bytes, which is what this is here to tell.
 * Two {@code System.nanoTime} calls per device call: tens of nanoseconds against microseconds of driver time.
 */
final class CountingDevice implements Device {
    private final Device d;
    private long enqueueCalls, enqueueNanos, waitCalls, waitNanos;

    CountingDevice(Device d) {
        this.d = d;
    }

    CudaBackend.DeviceCalls counts() {
        return new CudaBackend.DeviceCalls(enqueueCalls, enqueueNanos, waitCalls, waitNanos);
    }

    private void enqueued(long t0) {
        enqueueNanos += System.nanoTime() - t0;
        enqueueCalls++;
    }

    private void waited(long t0) {
        waitNanos += System.nanoTime() - t0;
        waitCalls++;
    }

    @Override public String name() { return d.name(); }

    @Override public int smCount() { return d.smCount(); }

    @Override public long alloc(long bytes) { return d.alloc(bytes); }

    @Override public void free(long address) { d.free(address); }

    @Override public void memsetZero(long address, long bytes) {
        long t0 = System.nanoTime();
        d.memsetZero(address, bytes);
        enqueued(t0);
    }

    @Override public void upload(long dst, short[] src) {
        long t0 = System.nanoTime();
        d.upload(dst, src);
        enqueued(t0);
    }

    @Override public void upload(long dst, float[] src) {
        long t0 = System.nanoTime();
        d.upload(dst, src);
        enqueued(t0);
    }

    @Override public void upload(long dst, int[] src) {
        long t0 = System.nanoTime();
        d.upload(dst, src);
        enqueued(t0);
    }

    @Override public void download(long src, short[] dst) {
        long t0 = System.nanoTime();
        d.download(src, dst);
        waited(t0);
    }

    @Override public void download(long src, float[] dst) {
        long t0 = System.nanoTime();
        d.download(src, dst);
        waited(t0);
    }

    @Override public void download(long src, double[] dst) {
        long t0 = System.nanoTime();
        d.download(src, dst);
        waited(t0);
    }

    @Override public void download(long src, int[] dst) {
        long t0 = System.nanoTime();
        d.download(src, dst);
        waited(t0);
    }

    @Override public void copy(long dst, long src, long bytes) {
        long t0 = System.nanoTime();
        d.copy(dst, src, bytes);
        enqueued(t0);
    }

    @Override public void launch(String symbol, LaunchGeometry.Launch geometry, Object[] args) {
        long t0 = System.nanoTime();
        d.launch(symbol, geometry, args);
        enqueued(t0);
    }

    @Override public void gemm(Gemm.Batched call) {
        long t0 = System.nanoTime();
        d.gemm(call);
        enqueued(t0);
    }

    @Override public void gemm(Gemm call) {
        long t0 = System.nanoTime();
        d.gemm(call);
        enqueued(t0);
    }

    @Override public void synchronize() {
        long t0 = System.nanoTime();
        d.synchronize();
        waited(t0);
    }

    @Override public boolean canCapture() { return d.canCapture(); }

    @Override public void beginCapture() { d.beginCapture(); }

    @Override public Graph endCapture() { return d.endCapture(); }

    @Override public void launchGraph(Graph g) {
        long t0 = System.nanoTime();
        d.launchGraph(g);
        enqueued(t0);
    }

    @Override public void patchKernel(Graph g, int index, String symbol, LaunchGeometry.Launch geometry, Object[] args) {
        long t0 = System.nanoTime();
        d.patchKernel(g, index, symbol, geometry, args);
        enqueued(t0);
    }

    @Override public void destroyGraph(Graph g) { d.destroyGraph(g); }

    @Override public void beginOpTiming() { d.beginOpTiming(); }

    @Override public java.util.List<CudaBackend.TimedOp> endOpTiming() { return d.endOpTiming(); }

    @Override public long[] memInfo() { return d.memInfo(); }

    @Override public void close() { d.close(); }
}
