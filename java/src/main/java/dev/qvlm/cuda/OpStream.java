package dev.qvlm.cuda;

import dev.qvlm.cuda.StepGraphs.Mode;
import dev.qvlm.cuda.StepGraphs.Recording;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Supplier;

/**
 * The ops' one path to the device: every kernel launch, GEMM, memset, upload, download and activation or scratch
 * block of {@link CudaBackend}'s ops goes through here, and here alone it matters whether a step runs eagerly, is
 * being captured into a CUDA graph, or replays one ({@link StepGraphs} has the rules). In eager mode each call is
 * the device call.
 */
final class OpStream {
    private final Device device;
    private final DeviceMemory memory;
    private final Storage storage;
    private final int smCount;
    final StepGraphs graphs = new StepGraphs();
    /** Repeated steps run eagerly while set (op-by-op profiling times each op's own launch). */
    boolean eagerOnly;

    OpStream(Device device, DeviceMemory memory, Storage storage) {
        this.device = device;
        this.memory = memory;
        this.storage = storage;
        this.smCount = device.smCount();
    }

    int smCount() {
        return smCount;
    }

    /** The 1-D grid-stride geometry over n elements on this device. */
    LaunchGeometry.Launch elementwise(long n) {
        return LaunchGeometry.elementwise(n, smCount);
    }

    // ---------------------------------------------------------------- memory

    /**
     * A block for an activation tensor: the step's own while capturing or replaying; when eager, the innermost open
     * {@link #scope}'s (given back when it closes), or, outside any scope, pooled by reachability.
     */
    DeviceMemory.Allocation activation(long bytes) {
        if (graphs.mode == Mode.EAGER) {
            List<Long> owner = scopes.get().peek();
            if (owner == null) return memory.allocTracked(bytes);
            long a = memory.take(bytes);
            owner.add(a);
            return new DeviceMemory.Allocation(a, DeviceMemory.round(bytes));
        }
        return new DeviceMemory.Allocation(take(bytes), DeviceMemory.round(bytes));
    }

    /** Each thread's open scopes (innermost first): the eager blocks allocated in each. */
    private final ThreadLocal<ArrayDeque<List<Long>>> scopes = ThreadLocal.withInitial(ArrayDeque::new);

    /**
     * {@link dev.qvlm.backend.Backend#scope} on the device: eager activations allocated inside go back to the pool at
     * the close (every later use of the block is ordered after the kernels that read it, on the one stream). A
     * captured or replayed step's blocks stay the graph's, whatever scope they were allocated in.
     */
    dev.qvlm.backend.Backend.Scope scope() {
        ArrayDeque<List<Long>> stack = scopes.get();
        List<Long> owned = new ArrayList<>();
        stack.push(owned);
        return () -> {
            if (stack.peek() != owned) throw new IllegalStateException("scopes closed out of order");
            stack.pop();
            for (long a : owned) memory.give(a);
            owned.clear();
        };
    }

    /** A scratch block for one op; hand it back with {@link #give}. */
    long take(long bytes) {
        return switch (graphs.mode) {
            case EAGER -> memory.take(bytes);
            case CAPTURE -> {
                long a = memory.take(bytes);
                graphs.captured(a, DeviceMemory.round(bytes));
                yield a;
            }
            case REPLAY -> graphs.replayBlock(bytes);
        };
    }

    /** Whether the ops are being captured into a CUDA graph or replayed from one (not eager). */
    boolean graphing() {
        return graphs.mode != Mode.EAGER;
    }

    /**
     * A device address holding {@code values}, for a kernel that reads them; hand it back with {@link #give}. Eager:
     * a scratch block, uploaded now. In a captured or replayed step: a slot of the step's one int block, at the same
     * address in every replay and uploaded with the step's other ints just before the graph launches, so that values
     * that change every step (token ids, positions, key counts) change no node of the graph.
     */
    long deviceInts(int... values) {
        if (graphs.mode == Mode.EAGER) {
            long a = take(4L * values.length);
            upload(a, values);
            return a;
        }
        if (graphs.intCount + values.length > StepGraphs.STEP_INTS)
            throw new StepGraphs.Mismatch("a step of more than " + StepGraphs.STEP_INTS + " device ints");
        if (graphs.intBlock == 0) graphs.intBlock = take(4L * StepGraphs.STEP_INTS);
        long a = graphs.intBlock + 4L * graphs.intCount;
        System.arraycopy(values, 0, graphs.ints, graphs.intCount, values.length);
        graphs.intCount += values.length;
        return a;
    }

    /** Returns a scratch block; a no-op for blocks of a captured step (they stay the graph's). */
    void give(long address) {
        if (graphs.mode == Mode.EAGER) memory.give(address);
    }

    // ---------------------------------------------------------------- ops

    /** Launches kernel k in the activation storage's variant, its arguments checked against its signature first. */
    void launch(Kernel k, LaunchGeometry.Launch g, Object... args) {
        k.check(args);
        launch(k.symbol(storage), g, args);
    }

    void launch(String symbol, LaunchGeometry.Launch g, Object[] args) {
        switch (graphs.mode) {
            case EAGER -> device.launch(symbol, g, args);
            case CAPTURE -> {
                device.launch(symbol, g, args);
                graphs.captured(new StepGraphs.Launched(symbol, g, args.clone()));
            }
            case REPLAY -> {
                int i = graphs.replayLaunch(symbol, g, args);
                if (i >= 0) device.patchKernel(graphs.current.graph, i, symbol, g, args);
            }
        }
    }

    void gemm(Gemm g) {
        cublas(g, () -> device.gemm(g));
    }

    void gemm(Gemm.Batched g) {
        cublas(g, () -> device.gemm(g));
    }

    /** A cuBLAS call (plain or batched GEMM): enqueued, recorded while capturing, checked when replayed. */
    private void cublas(Object call, Runnable enqueue) {
        switch (graphs.mode) {
            case EAGER -> enqueue.run();
            case CAPTURE -> {
                enqueue.run();
                graphs.capturedGemm(call);
            }
            case REPLAY -> graphs.replayGemm(call);
        }
    }

    void memsetZero(long address, long bytes) {
        switch (graphs.mode) {
            case EAGER -> device.memsetZero(address, bytes);
            case CAPTURE -> {
                device.memsetZero(address, bytes);
                graphs.capturedMemset(address, bytes);
            }
            case REPLAY -> graphs.replayMemset(address, bytes);
        }
    }

    /**
     * Host → device; while a step is captured or replayed, a copy of the array is held until just before its graph
     * launches (the caller may change or reuse the array meanwhile).
     */
    void upload(long dst, Object array) {
        if (graphs.mode == Mode.EAGER) {
            put(dst, array);
            return;
        }
        Object copy = switch (array) {
            case short[] a -> a.clone();
            case float[] a -> a.clone();
            case int[] a -> a.clone();
            default -> throw new IllegalArgumentException("upload of " + array.getClass());
        };
        graphs.uploads.add(new Object[]{dst, copy});
    }

    private void put(long dst, Object array) {
        switch (array) {
            case short[] a -> device.upload(dst, a);
            case float[] a -> device.upload(dst, a);
            case int[] a -> device.upload(dst, a);
            default -> throw new IllegalArgumentException("upload of " + array.getClass());
        }
    }

    /** Device → host into a short[], float[], double[] or int[]; launches a captured or replayed step's graph first. */
    void download(long src, Object array) {
        flush();
        switch (array) {
            case short[] a -> device.download(src, a);
            case float[] a -> device.download(src, a);
            case double[] a -> device.download(src, a);
            case int[] a -> device.download(src, a);
            default -> throw new IllegalArgumentException("download into " + array.getClass());
        }
    }

    void synchronize() {
        flush();
        device.synchronize();
    }

    // ---------------------------------------------------------------- repeated steps

    /**
     * {@link dev.qvlm.backend.Backend#repeatedStep} on this device: eager the first time, captured the second,
     * replayed after; eager again (and recaptured next time) when a replay does not match its recording.
     */
    float[] repeated(String key, Supplier<float[]> step, Runnable reset) {
        if (!device.canCapture() || eagerOnly || graphs.mode != Mode.EAGER) return step.get();
        Recording r = graphs.recording(key);
        if (r.broken != null || r.eagerRuns < 1) {
            r.eagerRuns++;
            return step.get();
        }
        boolean capture = r.graph == null;
        if (capture && r.captures >= 8 && r.replays < 4 * r.captures) { // the steps keep changing shape
            r.broken = r.captures + " captures for " + r.replays + " replays";
            System.err.println("[qvlm] CUDA graphs off for " + key + ": " + r.broken);
            return step.get();
        }
        graphs.start(capture ? Mode.CAPTURE : Mode.REPLAY, r);
        if (capture) device.beginCapture();
        try {
            float[] out = step.get();
            flush(); // a step that ends without a download still runs
            if (capture) r.captures++;
            else r.replays++;
            return out;
        } catch (RuntimeException e) {
            boolean stillCapturing = graphs.mode == Mode.CAPTURE;
            graphs.stop();
            if (stillCapturing) {
                try {
                    device.destroyGraph(device.endCapture());
                } catch (RuntimeException ignored) {
                    // the capture was invalid anyway
                }
            }
            drop(r);
            reset.run();
            float[] out = step.get(); // eagerly; a genuine error of the step throws again here
            if (capture && !(e instanceof StepGraphs.Mismatch)) {
                r.broken = e.getClass().getSimpleName() + ": " + e.getMessage();
                System.err.println("[qvlm] CUDA graphs off for " + key + " (decode steps run op by op): " + r.broken);
            }
            r.eagerRuns = 1;
            return out;
        }
    }

    /** A captured step: ends the capture; a replayed one: checks it issued every recorded op. Then launches the graph. */
    private void flush() {
        Recording r = graphs.current;
        switch (graphs.mode) {
            case EAGER -> {
                return;
            }
            case CAPTURE -> {
                graphs.mode = Mode.REPLAY; // not capturing any more, whatever endCapture does
                r.graph = device.endCapture();
            }
            case REPLAY -> graphs.checkComplete();
        }
        if (graphs.intCount > 0) put(graphs.intBlock, java.util.Arrays.copyOf(graphs.ints, graphs.intCount));
        for (Object[] u : graphs.uploads) put((Long) u[0], u[1]);
        device.launchGraph(r.graph);
        graphs.stop();
    }

    /** Frees a recording's graph and the blocks its step held; the key captures again. */
    private void drop(Recording r) {
        if (r.graph != null) device.destroyGraph(r.graph);
        else device.synchronize();
        for (long[] b : r.blocks) memory.give(b[0]);
        StepGraphs.clear(r);
    }

    /** Drops every graph: the next step of each key is captured again. */
    void dropGraphs() {
        if (graphs.mode != Mode.EAGER) throw new IllegalStateException("graphs dropped during a captured or replayed step");
        for (Recording r : graphs.all()) if (r.graph != null || !r.blocks.isEmpty()) drop(r);
    }

    /** Drops every graph (before the device memory is freed). */
    void close() {
        dropGraphs();
    }

    String graphSummary() {
        return graphs.summary();
    }
}
