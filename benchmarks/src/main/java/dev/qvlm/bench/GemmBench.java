package dev.qvlm.bench;

import dev.qvlm.cpu.Gemm;
import dev.qvlm.cpu.Matmul;
import dev.qvlm.quant.Q4Matrix;
import dev.qvlm.tensor.F32Matrix;
import dev.qvlm.tensor.HalfMatrix;
import dev.qvlm.tensor.Matrix;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;

/**
 * Matrix-level timing of {@link Gemm} (through {@link Matmul}) against the pre-Gemm kernel ({@link LegacyMatmul}),
 * interleaved in one run so that the shared machine's load hits both alike: rounds alternate the two kernels, each
 * round times enough calls for about {@code --round-ms}. Two figures per kernel: the median wall time per call, and
 * the least process CPU time per call (core time, all threads), which other jobs' preemption inflates far less
 * than the wall time on a shared machine; efficiency is stated against the per-core FMA peak measured at start
 * (12 independent register-only FMA chains, best of 12 runs in thread CPU time: 2 pipes x lanes x 2 flops x the clock the core
 * really runs at).
 *
 * <pre>
 * prefill   TinyLlama-1.1B shapes (2048x2048 q/o, 256x2048 k/v, 5632x2048 gate/up, 2048x5632 down), n = 128,
 *           F16 and int4 (symmetric, group 128), and one layer's seven matmuls
 * batched   the bundled model's shapes (256x256, 768x256, 256x768), F16 and F32, n = 1, 2, 4, 8: per-token cost
 *           relative to n = 1 (what batching 8 sequences saves in the matmuls)
 * </pre>
 *
 * Threads: the JVM's processor count (run with {@code -XX:ActiveProcessorCount=1} for one thread).
 * Usage: {@code GemmBench [--suite prefill|batched|all] [--rounds N] [--round-ms MS] [--warm-ms MS] [--ghz G]}
 */
public final class GemmBench {
    private interface Kernel {
        void run(float[] out, float[] x, int n, Matrix w, float[] bias);
    }

    private static final Kernel GEMM = (o, x, n, w, b) -> Matmul.matmul(o, 0, x, 0, n, w, b);
    private static final Kernel LEGACY = (o, x, n, w, b) -> LegacyMatmul.matmul(o, 0, x, 0, n, w, b);

    private final Arena arena = Arena.ofShared();
    private int rounds = 7;
    private double roundMs = 150;
    private double ghz = 2.6;
    private double warmMs = 500;
    private double peakPerCore;

    public static void main(String[] args) {
        GemmBench b = new GemmBench();
        String suite = "all";
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--suite" -> suite = args[++i];
                case "--rounds" -> b.rounds = Integer.parseInt(args[++i]);
                case "--round-ms" -> b.roundMs = Double.parseDouble(args[++i]);
                case "--ghz" -> b.ghz = Double.parseDouble(args[++i]);
                case "--warm-ms" -> b.warmMs = Double.parseDouble(args[++i]);
                default -> {
                    System.err.println("GemmBench: unknown argument " + args[i]
                            + " (usage: [--suite prefill|batched|all] [--rounds N] [--round-ms MS] [--warm-ms MS] [--ghz G])");
                    System.exit(2);
                }
            }
        }
        int cores = Runtime.getRuntime().availableProcessors();
        int lanes = jdk.incubator.vector.FloatVector.SPECIES_PREFERRED.length();
        b.peakPerCore = measurePeakPerCore();
        System.out.printf(Locale.ROOT, "# GemmBench: %d threads, %d-bit vectors; measured FMA peak %.1f GFLOP/s per core "
                        + "(= 2 FMA pipes x %d lanes x 2 flops x %.2f GHz); nominal %.2f GHz would give %.1f; load %s%n",
                cores, lanes * 32, b.peakPerCore, lanes, b.peakPerCore / (4.0 * lanes), b.ghz, 4.0 * lanes * b.ghz, loadavg());
        b.warmUp();
        if (suite.equals("prefill") || suite.equals("all")) b.prefill();
        if (suite.equals("batched") || suite.equals("all")) b.batched();
        System.out.printf(Locale.ROOT, "# load after: %s%n", loadavg());
    }

    /**
     * Every kernel and tile variant through the JIT before anything is timed (the first timed shape otherwise ran
     * partly interpreted: milliseconds instead of microseconds), about 6 × warmMs.
     */
    private void warmUp() {
        long end = System.nanoTime() + (long) (6 * warmMs * 1e6);
        List<Matrix> ms = List.of(matrix("f16", 256, 512), matrix("f32", 256, 512), matrix("q4g128", 256, 512));
        float[] x = new float[40 * 512], out = new float[40 * 256];
        while (System.nanoTime() < end)
            for (Matrix w : ms)
                for (int n : new int[] {1, 2, 3, 4, 8, 40}) {
                    GEMM.run(out, x, n, w, null);
                    LEGACY.run(out, x, n, w, null);
                }
    }

    private void prefill() {
        int n = 128;
        System.out.println();
        System.out.println("| shape (out x in) | weights | n | Gemm ms | Gemm GFLOP/s | Gemm GFLOP per CPU-s | % of FMA peak | legacy ms | legacy GFLOP/s | legacy GFLOP per CPU-s | Gemm / legacy (CPU) |");
        System.out.println("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        double[] sum = new double[8]; // per format: Gemm wall, legacy wall, Gemm CPU, legacy CPU of one layer's seven matmuls
        int[][] shapes = {{2048, 2048, 2}, {256, 2048, 2}, {5632, 2048, 2}, {2048, 5632, 1}}; // count per layer
        for (String dtype : List.of("f16", "q4g128")) {
            for (int[] s : shapes) {
                Matrix w = matrix(dtype, s[0], s[1]);
                Times r = compare(w, n);
                double flop = 2.0 * s[0] * s[1] * n;
                System.out.printf(Locale.ROOT, "| %dx%d | %s | %d | %.2f | %.1f | %.1f | %.0f %% | %.2f | %.1f | %.1f | %.2fx |%n",
                        s[0], s[1], dtype, n, r.gemmWall, flop / r.gemmWall / 1e6, flop / r.gemmCpu / 1e6,
                        100 * flop / r.gemmCpu / 1e6 / peakPerCore, r.legacyWall, flop / r.legacyWall / 1e6,
                        flop / r.legacyCpu / 1e6, r.legacyCpu / r.gemmCpu);
                int k = dtype.equals("f16") ? 0 : 4;
                sum[k] += s[2] * r.gemmWall;
                sum[k + 1] += s[2] * r.legacyWall;
                sum[k + 2] += s[2] * r.gemmCpu;
                sum[k + 3] += s[2] * r.legacyCpu;
            }
        }
        // one TinyLlama layer = q, o (2048x2048), k, v (256x2048), gate, up (5632x2048), down (2048x5632)
        double f = 2.0 * n * (2 * 2048 * 2048 + 2 * 256 * 2048 + 3 * 5632 * 2048) / 1e6;
        for (int k = 0; k < 8; k += 4)
            System.out.printf(Locale.ROOT, "| one layer (7 matmuls) | %s | %d | %.2f | %.1f | %.1f | %.0f %% | %.2f | %.1f | %.1f | %.2fx |%n",
                    k == 0 ? "f16" : "q4g128", n, sum[k], f / sum[k], f / sum[k + 2], 100 * f / sum[k + 2] / peakPerCore,
                    sum[k + 1], f / sum[k + 1], f / sum[k + 3], sum[k + 3] / sum[k + 2]);
    }

    private void batched() {
        System.out.println();
        System.out.println("| shape (out x in) | weights | n | Gemm µs/call | Gemm CPU-µs/call | CPU-µs per token | per-token cost vs n=1 | legacy CPU-µs/call | Gemm / legacy (CPU) |");
        System.out.println("|---|---|---:|---:|---:|---:|---:|---:|---:|");
        for (String dtype : List.of("f16", "f32"))
            for (int[] s : new int[][] {{256, 256}, {768, 256}, {256, 768}}) {
                Matrix w = matrix(dtype, s[0], s[1]);
                double one = 0;
                for (int n : new int[] {1, 2, 4, 8}) {
                    Times r = compare(w, n);
                    if (n == 1) one = r.gemmCpu;
                    System.out.printf(Locale.ROOT, "| %dx%d | %s | %d | %.1f | %.1f | %.1f | %.2f | %.1f | %.2fx |%n",
                            s[0], s[1], dtype, n, 1e3 * r.gemmWall, 1e3 * r.gemmCpu, 1e3 * r.gemmCpu / n,
                            r.gemmCpu / n / one, 1e3 * r.legacyCpu, r.legacyCpu / r.gemmCpu);
                }
            }
    }

    /**
     * ms per call: the median over rounds of the wall time, and the least process CPU time (all threads: what the
     * call costs in core time, which other jobs' preemption inflates less than the wall time on a shared machine).
     */
    record Times(double gemmWall, double legacyWall, double gemmCpu, double legacyCpu) {}

    private Times compare(Matrix w, int n) {
        SplittableRandom rnd = new SplittableRandom(KernelFixture.SEED + n);
        float[] x = new float[n * w.cols()], bias = new float[w.rows()];
        for (int i = 0; i < x.length; i++) x[i] = KernelFixture.uniform(rnd);
        for (int i = 0; i < bias.length; i++) bias[i] = 0.1f * KernelFixture.uniform(rnd);
        float[] a = new float[n * w.rows()], b = new float[n * w.rows()];
        GEMM.run(a, x, n, w, bias);
        LEGACY.run(b, x, n, w, bias);
        // a benchmark that is fast because it is wrong: both against a double-precision sample
        KernelFixture.check(w, x, bias, a, n == 1 ? new int[] {0} : new int[] {0, n / 2, n - 1}, "Gemm");
        KernelFixture.check(w, x, bias, b, n == 1 ? new int[] {0} : new int[] {0, n / 2, n - 1}, "legacy");
        // warm-up (JIT) of about warmMs each, then calls per round from the last warm-up timings
        double tg = warm(GEMM, a, x, n, w, bias), tl = warm(LEGACY, b, x, n, w, bias);
        int calls = Math.max(1, (int) (roundMs / Math.max(tg, tl)));
        double[] gw = new double[rounds], lw = new double[rounds], gc = new double[rounds], lc = new double[rounds];
        for (int r = 0; r < rounds; r++) {
            // alternate which kernel goes first, so neither always follows the other's cache state
            for (int k = 0; k < 2; k++) {
                boolean gemm = (r + k) % 2 == 0;
                long c0 = cpuNanos(), t0 = System.nanoTime();
                for (int c = 0; c < calls; c++) (gemm ? GEMM : LEGACY).run(gemm ? a : b, x, n, w, bias);
                double wall = (System.nanoTime() - t0) / 1e6 / calls, cpu = (cpuNanos() - c0) / 1e6 / calls;
                if (gemm) {
                    gw[r] = wall;
                    gc[r] = cpu;
                } else {
                    lw[r] = wall;
                    lc[r] = cpu;
                }
            }
        }
        return new Times(median(gw), median(lw), min(gc), min(lc));
    }

    /** CPU time of all the JVM's threads (per-thread clocks: the process clock counts in 10 ms ticks here). */
    private static long cpuNanos() {
        var mx = java.lang.management.ManagementFactory.getThreadMXBean();
        long sum = 0;
        for (long id : mx.getAllThreadIds()) {
            long t = mx.getThreadCpuTime(id);
            if (t > 0) sum += t;
        }
        return sum;
    }

    /**
     * GFLOP/s of one thread running only register-to-register FMAs (12 independent chains: enough to fill two FMA
     * pipes of 4-cycle latency): the machine's real per-core FMA peak at its current clock, best of several runs.
     */
    static double measurePeakPerCore() {
        var sp = SP;
        double best = 0;
        float sink = 0;
        var mx = java.lang.management.ManagementFactory.getThreadMXBean();
        for (int run = 0; run < 12; run++) {
            long iters = 5_000_000;
            long t0 = mx.getCurrentThreadCpuTime();
            sink += fmaChains(iters);
            best = Math.max(best, 12.0 * iters * sp.length() * 2 / (mx.getCurrentThreadCpuTime() - t0));
        }
        if (sink == 42) System.out.print("");
        return best;
    }

    // a constant species: the Vector API compiles to vector instructions only when the species is a constant
    private static final jdk.incubator.vector.VectorSpecies<Float> SP = jdk.incubator.vector.FloatVector.SPECIES_PREFERRED;

    private static float fmaChains(long iters) {
        var sp = SP;
        var m = jdk.incubator.vector.FloatVector.broadcast(sp, 0.999f);
        var c = jdk.incubator.vector.FloatVector.broadcast(sp, 0.001f);
        var a0 = jdk.incubator.vector.FloatVector.broadcast(sp, 1f);
        var a1 = a0.add(1f); var a2 = a0.add(2f); var a3 = a0.add(3f); var a4 = a0.add(4f); var a5 = a0.add(5f);
        var a6 = a0.add(6f); var a7 = a0.add(7f); var a8 = a0.add(8f); var a9 = a0.add(9f); var a10 = a0.add(10f); var a11 = a0.add(11f);
        for (long i = 0; i < iters; i++) {
            a0 = a0.fma(m, c); a1 = a1.fma(m, c); a2 = a2.fma(m, c); a3 = a3.fma(m, c); a4 = a4.fma(m, c); a5 = a5.fma(m, c);
            a6 = a6.fma(m, c); a7 = a7.fma(m, c); a8 = a8.fma(m, c); a9 = a9.fma(m, c); a10 = a10.fma(m, c); a11 = a11.fma(m, c);
        }
        return a0.add(a1).add(a2).add(a3).add(a4).add(a5).add(a6).add(a7).add(a8).add(a9).add(a10).add(a11).lane(0);
    }

    private double warm(Kernel k, float[] out, float[] x, int n, Matrix w, float[] bias) {
        long end = System.nanoTime() + (long) (warmMs * 1e6);
        double t;
        do t = time(k, out, x, n, w, bias, 5); while (System.nanoTime() < end);
        return t;
    }

    private static double time(Kernel k, float[] out, float[] x, int n, Matrix w, float[] bias, int calls) {
        long t0 = System.nanoTime();
        for (int c = 0; c < calls; c++) k.run(out, x, n, w, bias);
        return (System.nanoTime() - t0) / 1e6 / calls;
    }

    private static double min(double[] v) {
        return Arrays.stream(v).min().orElseThrow();
    }

    private static double median(double[] v) {
        double[] s = v.clone();
        Arrays.sort(s);
        return s[s.length / 2];
    }

    /** Weights drawn from the fixture's seed: F32 on the heap, F16 off-heap, or symmetric int4 with group-128 scales. */
    private Matrix matrix(String dtype, int rows, int cols) {
        SplittableRandom rnd = new SplittableRandom(KernelFixture.SEED);
        return switch (dtype) {
            case "f32" -> new F32Matrix(rows, cols, KernelFixture.weights(rows, cols, rnd));
            case "f16" -> KernelFixture.halfMatrix(arena, rows, cols, KernelFixture.weights(rows, cols, rnd), HalfMatrix.Kind.F16);
            case "q4g128" -> {
                int wpr = (cols + 7) / 8;
                MemorySegment packed = arena.allocate((long) rows * wpr * 4, 64);
                for (long i = 0; i < (long) rows * wpr; i++) packed.setAtIndex(java.lang.foreign.ValueLayout.JAVA_INT, i, rnd.nextInt());
                float[] scales = new float[rows * (cols / 128)];
                for (int i = 0; i < scales.length; i++) scales[i] = (float) (0.02 / Math.sqrt(cols) * (1 + rnd.nextDouble()));
                yield new Q4Matrix(rows, cols, 128, packed, scales, null);
            }
            default -> throw new IllegalArgumentException("dtype " + dtype);
        };
    }

    private static String loadavg() {
        try {
            return String.join(" ", Arrays.copyOf(java.nio.file.Files.readString(java.nio.file.Path.of("/proc/loadavg")).split(" "), 3));
        } catch (java.io.IOException e) {
            return "?";
        }
    }
}
