package dev.qvlm.cuda;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Repeated steps (decode) as CUDA graphs, for {@link CudaBackend#repeatedStep}: the host's launches, not the GPU,
 * bounded decode on the first card we ran (13B: ~900 device calls per token at ~10 µs each). A step with a given key
 * runs eagerly once (weights upload on first use), is captured the second time, and is replayed after that.
 *
 * <p>Replay runs the step's Java code again with the device calls turned into checks against the recording, in
 * order: each device block the step asks for is the block the capture got (so every address the graph holds stays
 * valid), each GEMM and memset must be the recorded one, and each of our kernel launches may differ only in its
 * grid and scalar or pointer arguments, which are patched into the graph's node. What changes every step (token
 * ids, positions, key counts) is not an argument but a few ints in device memory ({@link OpStream#deviceInts}: one
 * block per step, the kernels read them), so a decode step of one sequence replays without a patch; patches remain
 * for what changes now and then (the attention's split count, another sequence's cache in a batch). Uploads wait
 * and run just before the graph is launched; the first download or synchronize launches it. Anything else that differs ({@link Mismatch}: another kernel, another GEMM, more
 * memory, fewer or more ops) drops the graph: the step runs eagerly and the next one captures again.
 *
 * <p>Device blocks handed to a graph's step belong to the graph until it is dropped (they never return to the pool:
 * eager work in between must not reuse what a replay will overwrite). {@code -Dqvlm.cuda.graphs=false} (or
 * {@code --no-graphs}) turns the whole mechanism off.
 */
final class StepGraphs {
    static boolean enabled() {
        return !"false".equals(System.getProperty("qvlm.cuda.graphs"));
    }

    /** The replayed step did something its recording did not: drop the graph and run the step eagerly. */
    static final class Mismatch extends RuntimeException {
        Mismatch(String what) {
            super(what, null, false, false);
        }
    }

    enum Mode { EAGER, CAPTURE, REPLAY }

    record Launched(String symbol, LaunchGeometry.Launch geometry, Object[] args) {}

    /** One key's recording: what its capture saw, in order, and the instantiated graph. */
    static final class Recording {
        final String key;
        final List<long[]> blocks = new ArrayList<>(); // {address, bytes}
        final List<Launched> launches = new ArrayList<>();
        final List<Object> gemms = new ArrayList<>(); // Gemm and Gemm.Batched, in order
        final List<long[]> memsets = new ArrayList<>();
        Device.Graph graph;
        int eagerRuns, captures, replays, patches;
        /** Why capturing failed, if it did: the key then stays eager. */
        String broken;

        Recording(String key) {
            this.key = key;
        }
    }

    private final Map<String, Recording> recordings = new HashMap<>();
    Mode mode = Mode.EAGER;
    Recording current;
    private int blockAt, launchAt, gemmAt, memsetAt;
    /** Uploads issued while capturing or replaying: {address, array}, run before the graph launches. */
    final List<Object[]> uploads = new ArrayList<>();
    /** Most ints one step may keep in device memory ({@link OpStream#deviceInts}): 64 KB. */
    static final int STEP_INTS = 1 << 14;
    /** The step's ints (token ids, positions, key counts), uploaded in one copy before the graph launches. */
    final int[] ints = new int[STEP_INTS];
    int intCount;
    /** Their device block (0 until the step's first), at the same point of every replay as of the capture. */
    long intBlock;

    Recording recording(String key) {
        return recordings.computeIfAbsent(key, Recording::new);
    }

    Iterable<Recording> all() {
        return recordings.values();
    }

    void start(Mode m, Recording r) {
        mode = m;
        current = r;
        blockAt = launchAt = gemmAt = memsetAt = 0;
        uploads.clear();
        intCount = 0;
        intBlock = 0;
    }

    void stop() {
        mode = Mode.EAGER;
        current = null;
        uploads.clear();
        intCount = 0;
        intBlock = 0;
    }

    // ---------------------------------------------------------------- capture: note each op

    void captured(long address, long bytes) {
        current.blocks.add(new long[]{address, bytes});
    }

    void captured(Launched l) {
        current.launches.add(l);
    }

    /** A GEMM (Gemm or Gemm.Batched) the capture enqueued. */
    void capturedGemm(Object g) {
        current.gemms.add(g);
    }

    void capturedMemset(long address, long bytes) {
        current.memsets.add(new long[]{address, bytes});
    }

    // ---------------------------------------------------------------- replay: check each op against the recording

    /** The recorded block at this point of the step, if it holds {@code bytes}. */
    long replayBlock(long bytes) {
        if (blockAt >= current.blocks.size()) throw new Mismatch("more device blocks than the capture");
        long[] b = current.blocks.get(blockAt++);
        if (bytes > b[1]) throw new Mismatch("a device block of " + bytes + " bytes where the capture had " + b[1]);
        return b[0];
    }

    /**
     * The index of the recorded launch this one replays, and whether its node needs new arguments (the recording
     * is updated to them); -1 when the node is up to date.
     */
    int replayLaunch(String symbol, LaunchGeometry.Launch g, Object[] args) {
        if (launchAt >= current.launches.size()) throw new Mismatch("more kernel launches than the capture");
        int i = launchAt++;
        Launched l = current.launches.get(i);
        if (!l.symbol().equals(symbol)) throw new Mismatch("launch " + i + " is " + symbol + ", captured " + l.symbol());
        if (l.geometry().equals(g) && Arrays.equals(l.args(), args)) return -1;
        current.launches.set(i, new Launched(symbol, g, args.clone()));
        current.patches++;
        return i;
    }

    /** A GEMM (plain or batched) must be the recorded one: cuBLAS's nodes are never patched. */
    void replayGemm(Object g) {
        if (gemmAt >= current.gemms.size()) throw new Mismatch("more GEMMs than the capture");
        Object r = current.gemms.get(gemmAt++);
        if (!r.equals(g)) throw new Mismatch("GEMM " + (gemmAt - 1) + " differs from the capture: " + g + " vs " + r);
    }

    void replayMemset(long address, long bytes) {
        if (memsetAt >= current.memsets.size()) throw new Mismatch("more memsets than the capture");
        long[] m = current.memsets.get(memsetAt++);
        if (m[0] != address || m[1] != bytes) throw new Mismatch("memset " + (memsetAt - 1) + " differs from the capture");
    }

    /** Before the graph launches: the replay issued exactly the recorded ops. */
    void checkComplete() {
        if (launchAt != current.launches.size() || gemmAt != current.gemms.size() || memsetAt != current.memsets.size())
            throw new Mismatch(String.format("the step issued %d launches, %d GEMMs, %d memsets; the capture %d, %d, %d",
                    launchAt, gemmAt, memsetAt, current.launches.size(), current.gemms.size(), current.memsets.size()));
    }

    /** Forgets a recording's graph and ops (its blocks are the caller's to free); the key captures again next time. */
    static void clear(Recording r) {
        r.blocks.clear();
        r.launches.clear();
        r.gemms.clear();
        r.memsets.clear();
        r.graph = null;
        r.eagerRuns = 0;
    }

    /** A line per key for the logs: captures, replays, patched launches per replay. */
    String summary() {
        StringBuilder b = new StringBuilder();
        for (Recording r : recordings.values()) {
            if (!b.isEmpty()) b.append("; ");
            b.append(String.format("%s: %d captures, %d replays, %.1f patched launches per replay of %d%s", r.key,
                    r.captures, r.replays, r.replays == 0 ? 0.0 : r.patches / (double) r.replays, r.launches.size(),
                    r.broken == null ? "" : " (eager: " + r.broken + ")"));
        }
        return b.toString();
    }
}
