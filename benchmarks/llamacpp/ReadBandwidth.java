import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CyclicBarrier;

/**
 * Main-memory read bandwidth of this machine: what a memory-bound decode step can at best stream. T platform threads
 * each sum a disjoint contiguous slice of one off-heap buffer (default 2 GiB, far above any cache) with vector loads
 * and four independent accumulators (so the adds never limit the loads); the pass time is the slowest thread's. Best
 * and median of the passes, in GB/s (1e9 bytes per second), for each thread count.
 *
 * <p>Single-file program (no build):
 * {@code java --add-modules jdk.incubator.vector benchmarks/llamacpp/ReadBandwidth.java [--gib 2] [--threads 1,2] [--passes 7] [--json]}
 */
public final class ReadBandwidth {
    private static final VectorSpecies<Integer> I = IntVector.SPECIES_PREFERRED;

    public static void main(String[] args) throws Exception {
        double gib = 2;
        int passes = 7;
        List<Integer> threads = List.of(1, 2);
        boolean json = false;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--gib" -> gib = Double.parseDouble(args[++i]);
                case "--passes" -> passes = Integer.parseInt(args[++i]);
                case "--threads" -> threads = Arrays.stream(args[++i].split(",")).map(Integer::parseInt).toList();
                case "--json" -> json = true;
                default -> {
                    System.err.println("ReadBandwidth: error: unknown argument " + args[i]
                            + " (expected --gib G, --threads 1,2, --passes N, --json)");
                    System.exit(2);
                }
            }
        }
        if (gib <= 0 || gib > 64 || passes < 1 || threads.stream().anyMatch(t -> t < 1 || t > 1024)) {
            System.err.println("ReadBandwidth: error: --gib in (0, 64], --passes >= 1, --threads in 1..1024");
            System.exit(2);
        }
        long bytes = (long) (gib * (1L << 30)) / (4L * 64 * I.length()) * (4L * 64 * I.length());
        List<String> rows = new ArrayList<>();
        try (Arena arena = Arena.ofShared()) {
            MemorySegment seg = arena.allocate(bytes, 4096);
            seg.fill((byte) 1); // touch every page: the passes time reads, not page faults
            for (int t : threads) {
                double[] gbs = new double[passes];
                for (int p = 0; p < passes; p++) gbs[p] = pass(seg, t) / 1e9;
                double best = Arrays.stream(gbs).max().orElseThrow();
                double[] sorted = gbs.clone();
                Arrays.sort(sorted);
                double median = sorted[passes / 2];
                if (json) rows.add(String.format("{\"threads\":%d,\"best_gb_s\":%.2f,\"median_gb_s\":%.2f}", t, best, median));
                else System.out.printf("read bandwidth, %d thread%s, %.1f GiB buffer, %d-bit vectors: best %.1f GB/s, median %.1f GB/s%n",
                        t, t == 1 ? "" : "s", bytes / (double) (1L << 30), I.vectorBitSize(), best, median);
            }
        }
        if (json) System.out.printf("{\"buffer_bytes\":%d,\"vector_bits\":%d,\"passes\":%d,\"results\":[%s]}%n",
                bytes, I.vectorBitSize(), passes, String.join(",", rows));
    }

    /** Bytes per second of one pass: {@code t} threads, each a contiguous slice, timed from a common start. */
    private static double pass(MemorySegment seg, int t) throws Exception {
        long per = seg.byteSize() / t / (4L * I.vectorByteSize()) * (4L * I.vectorByteSize());
        CyclicBarrier start = new CyclicBarrier(t + 1);
        long[] sink = new long[t];
        Thread[] th = new Thread[t];
        for (int k = 0; k < t; k++) {
            int id = k;
            th[k] = Thread.ofPlatform().start(() -> {
                try {
                    start.await();
                } catch (Exception e) {
                    throw new IllegalStateException(e);
                }
                sink[id] = sum(seg, id * per, per);
            });
        }
        start.await();
        long t0 = System.nanoTime();
        for (Thread x : th) x.join();
        double sec = (System.nanoTime() - t0) / 1e9;
        if (Arrays.stream(sink).anyMatch(s -> s == 42)) System.out.print(""); // keep the sums alive
        return per * t / sec;
    }

    private static long sum(MemorySegment seg, long from, long len) {
        int w = I.vectorByteSize();
        IntVector a = IntVector.zero(I), b = a, c = a, d = a;
        for (long o = from, end = from + len; o < end; o += 4L * w) {
            a = a.add(IntVector.fromMemorySegment(I, seg, o, ByteOrder.LITTLE_ENDIAN));
            b = b.add(IntVector.fromMemorySegment(I, seg, o + w, ByteOrder.LITTLE_ENDIAN));
            c = c.add(IntVector.fromMemorySegment(I, seg, o + 2L * w, ByteOrder.LITTLE_ENDIAN));
            d = d.add(IntVector.fromMemorySegment(I, seg, o + 3L * w, ByteOrder.LITTLE_ENDIAN));
        }
        return a.add(b).add(c).add(d).reduceLanes(VectorOperators.ADD);
    }
}
