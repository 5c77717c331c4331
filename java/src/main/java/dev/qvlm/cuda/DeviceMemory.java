package dev.qvlm.cuda;

import dev.qvlm.QvlmException;

import java.lang.ref.PhantomReference;
import java.lang.ref.Reference;
import java.lang.ref.ReferenceQueue;
import java.util.ArrayDeque;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

/**
 * Device memory of one backend, with explicit lifetimes per kind:
 * <ul>
 *   <li>weights: {@link #allocPermanent}, freed by {@link #freePermanent} (Backend.release / evict) or
 *       {@link #close};</li>
 *   <li>scratch (ids, split-attention partials, FP16 copies of GEMM inputs): {@link #take} / {@link #give} around
 *       one op; giving back right after enqueueing is safe because every later use is ordered on the same stream;</li>
 *   <li>activations inside a Backend.scope (every layer and step of the forward pass): {@link #take} when allocated,
 *       {@link #give} when the scope closes ({@link OpStream#scope}); a captured or replayed step's: the graph's;</li>
 *   <li>activations outside any scope (KV caches, image embeddings, the calibrator's lists): {@link #allocTracked},
 *       given back by their owner through Backend.free ({@link #free}), or else when the {@link Allocation} (the
 *       tensor and all its views) becomes unreachable.</li>
 * </ul>
 * Blocks are recycled by size (best fit within 2x). When the device is full the pool is trimmed, and as a last
 * resort the collector is asked to find unreachable activations (as the JDK does for direct buffers) before
 * giving up with a message.
 */
final class DeviceMemory implements AutoCloseable {
    /** A device block owned by tensors (the root tensor and its views hold it). */
    static final class Allocation {
        final long address, bytes;
        /** Returned by reachability ({@link #allocTracked}); freed by {@link #free}. */
        boolean tracked, freed;

        Allocation(long address, long bytes) {
            this.address = address;
            this.bytes = bytes;
        }
    }

    private static final class BlockRef extends PhantomReference<Allocation> {
        final long address, bytes;

        BlockRef(Allocation a, ReferenceQueue<Allocation> q) {
            super(a, q);
            address = a.address;
            bytes = a.bytes;
        }
    }

    private final Device device;
    private final TreeMap<Long, ArrayDeque<Long>> free = new TreeMap<>();
    private final ReferenceQueue<Allocation> unreachable = new ReferenceQueue<>();
    private final Set<BlockRef> tracked = new HashSet<>();
    /** Weights: address → bytes, until {@link #freePermanent} or {@link #close}. */
    private final Map<Long, Long> permanent = new java.util.HashMap<>();
    private long pooledBytes, liveBytes, permanentBytes, peakBytes;
    private boolean closed;

    DeviceMemory(Device device) {
        this.device = device;
    }

    /** Sizes are rounded so that blocks recycle across slightly different shapes. */
    static long round(long bytes) {
        long b = Math.max(bytes, 1);
        long unit = b <= (1 << 20) ? 512 : (64 << 10);
        return (b + unit - 1) / unit * unit;
    }

    long allocPermanent(long bytes) {
        long a = fresh(bytes);
        permanent.put(a, bytes);
        permanentBytes += bytes;
        peakPermanentBytes = Math.max(peakPermanentBytes, permanentBytes);
        return a;
    }

    /** Frees a weight's block now (cuMemFree waits for the work that may still read it). */
    void freePermanent(long address) {
        check();
        Long bytes = permanent.remove(address);
        if (bytes == null) throw new IllegalArgumentException(String.format("0x%x is not a weight of this pool", address));
        permanentBytes -= bytes;
        device.free(address);
    }

    Allocation allocTracked(long bytes) {
        long size = round(bytes);
        long a = take(size);
        Allocation al = new Allocation(a, size);
        al.tracked = true;
        BlockRef ref = new BlockRef(al, unreachable);
        tracked.add(ref);
        trackedAt.put(a, ref);
        trackedAllocations++;
        return al;
    }

    /** A scratch block of at least {@code bytes}; hand it back with {@link #give}. */
    long take(long bytes) {
        check();
        long size = round(bytes);
        reclaim();
        Map.Entry<Long, ArrayDeque<Long>> e = free.ceilingEntry(size);
        long a;
        if (e != null && e.getKey() <= 2 * size) {
            a = e.getValue().pop();
            if (e.getValue().isEmpty()) free.remove(e.getKey());
            pooledBytes -= e.getKey();
            sizes.put(a, e.getKey());
            liveBytes += e.getKey();
        } else {
            a = fresh(size);
            sizes.put(a, size);
            liveBytes += size;
        }
        peakBytes = Math.max(peakBytes, liveBytes + permanentBytes);
        return a;
    }

    private final Map<Long, Long> sizes = new java.util.HashMap<>();

    void give(long address) {
        Long size = sizes.remove(address);
        if (size == null) throw new IllegalArgumentException(String.format("0x%x was not taken from this pool", address));
        liveBytes -= size;
        pooledBytes += size;
        free.computeIfAbsent(size, k -> new ArrayDeque<>()).push(address);
    }

    /** Returns the blocks of activations that became unreachable to the pool. */
    private void reclaim() {
        Reference<? extends Allocation> r;
        while ((r = unreachable.poll()) != null) {
            BlockRef b = (BlockRef) r;
            if (tracked.remove(b)) {
                trackedAt.remove(b.address);
                give(b.address);
            }
        }
    }

    private long fresh(long size) {
        long a = device.alloc(size);
        if (a != 0) return a;
        trim();
        a = device.alloc(size);
        if (a != 0) return a;
        // last resort: unreachable tensors still hold memory until the collector notices them
        System.gc();
        try {
            for (int i = 0; i < 50 && a == 0; i++) {
                Reference<? extends Allocation> r = unreachable.remove(20);
                if (r != null && tracked.remove((BlockRef) r)) {
                    trackedAt.remove(((BlockRef) r).address);
                    give(((BlockRef) r).address);
                }
                if (r == null || i % 8 == 7) {
                    reclaim();
                    trim();
                    a = device.alloc(size);
                }
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        if (a != 0) return a;
        throw new QvlmException(String.format("CUDA out of memory on %s: %.1f MiB requested, %.1f MiB in use "
                        + "(weights %.1f MiB, activations %.1f MiB)", device.name(), size / 1048576.0,
                (liveBytes + permanentBytes) / 1048576.0, permanentBytes / 1048576.0, liveBytes / 1048576.0));
    }

    /** Frees every pooled (unused) block. */
    void trim() {
        for (ArrayDeque<Long> q : free.values()) for (long a : q) device.free(a);
        free.clear();
        pooledBytes = 0;
    }

    /**
     * A tracked activation given back now, before it becomes unreachable (Backend.free); its tensors must not be used
     * again ({@link Allocation#freed}). Scoped and graph-owned blocks are their owners' to return: nothing happens.
     */
    void free(Allocation a) {
        if (!a.tracked || a.freed) return;
        BlockRef ref = trackedAt.remove(a.address);
        if (ref != null && tracked.remove(ref)) {
            ref.clear();
            give(a.address);
            explicitFrees++;
        }
        a.freed = true;
    }

    private final Map<Long, BlockRef> trackedAt = new java.util.HashMap<>();

    /** Activation blocks handed out by {@link #allocTracked} and not yet found unreachable. */
    int trackedBlocks() {
        return tracked.size();
    }

    /** Activation blocks handed out by {@link #allocTracked} so far. */
    long trackedAllocations() {
        return trackedAllocations;
    }

    private long trackedAllocations, explicitFrees;

    /** Tracked activations given back by {@link #free} rather than by reachability. */
    long explicitFrees() {
        return explicitFrees;
    }

    long liveBytes() {
        return liveBytes;
    }

    long pooledBytes() {
        return pooledBytes;
    }

    /** The most weight bytes held at once. */
    long peakPermanentBytes() {
        return peakPermanentBytes;
    }

    private long peakPermanentBytes;

    long permanentBytes() {
        return permanentBytes;
    }

    long peakBytes() {
        return peakBytes;
    }

    private void check() {
        if (closed) throw new IllegalStateException("the CUDA backend is closed");
    }

    /** Frees everything this pool ever handed out, reachable or not. */
    @Override
    public void close() {
        if (closed) return;
        closed = true;
        trim();
        for (long a : sizes.keySet()) device.free(a);
        for (long a : permanent.keySet()) device.free(a);
        sizes.clear();
        permanent.clear();
        tracked.clear();
        trackedAt.clear();
        liveBytes = permanentBytes = 0;
    }
}
