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
 * round times enough calls for about {@code --round-ms}, and the table shows the median round (and the best).
 *
 * <pre>
 * prefill   TinyLlama-1.1B shapes (2048x2048 q/o, 256x2048 k/v, 5632x2048 gate/up, 2048x5632 down), n = 128,
 *           F16 and int4 (symmetric, group 128): GFLOP/s, % of the FMA peak, Gemm / legacy
 * batched   the bundled model's shapes (256x256, 768x256, 256x768), F16 and F32, n = 1, 2, 4, 8: µs per call and
 *           per token, and per-token cost relative to n = 1 (what batching 8 sequences saves in the matmuls)
 * </pre>
 *
 * Peak = cores x 2 FMA pipes x lanes (512-bit: 16 floats) x 2 flops x clock ({@code --ghz}, default 2.6: the
 * TSC rate this VM reports; the real boost clock is not visible from inside it).
 *
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
        System.out.printf(Locale.ROOT, "# GemmBench: %d cores, vector %d bits; peak %.1f GFLOP/s assumed (%d x 2 FMA x %d lanes x 2 x %.2f GHz); load %s%n",
                cores, jdk.incubator.vector.FloatVector.SPECIES_PREFERRED.vectorBitSize(), b.peak(), cores,
                jdk.incubator.vector.FloatVector.SPECIES_PREFERRED.length(), b.ghz, loadavg());
        if (suite.equals("prefill") || suite.equals("all")) b.prefill();
        if (suite.equals("batched") || suite.equals("all")) b.batched();
        System.out.printf(Locale.ROOT, "# load after: %s%n", loadavg());
    }

    private double peak() {
        int cores = Runtime.getRuntime().availableProcessors();
        return cores * 2.0 * jdk.incubator.vector.FloatVector.SPECIES_PREFERRED.length() * 2 * ghz;
    }

    private void prefill() {
        int n = 128;
        System.out.println();
        System.out.println("| shape (out x in) | weights | n | Gemm ms | Gemm GFLOP/s | best | best % of peak | legacy ms | legacy GFLOP/s | Gemm / legacy |");
        System.out.println("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        double[] sum = new double[4]; // F16 gemm, F16 legacy, int4 gemm, int4 legacy: ms of one layer's seven matmuls
        int[][] shapes = {{2048, 2048, 2}, {256, 2048, 2}, {5632, 2048, 2}, {2048, 5632, 1}}; // count per layer
        for (String dtype : List.of("f16", "q4g128")) {
            for (int[] s : shapes) {
                Matrix w = matrix(dtype, s[0], s[1]);
                double[] r = compare(w, n);
                double flop = 2.0 * s[0] * s[1] * n;
                System.out.printf(Locale.ROOT, "| %dx%d | %s | %d | %.2f | %.1f | %.1f | %.0f %% | %.2f | %.1f | %.2fx |%n",
                        s[0], s[1], dtype, n, r[0], flop / r[0] / 1e6, flop / r[2] / 1e6, 100 * flop / r[2] / 1e6 / peak(),
                        r[1], flop / r[1] / 1e6, r[1] / r[0]);
                int k = dtype.equals("f16") ? 0 : 2;
                sum[k] += s[2] * r[0];
                sum[k + 1] += s[2] * r[1];
            }
        }
        // one TinyLlama layer = q, o (2048x2048), k, v (256x2048), gate, up (5632x2048), down (2048x5632)
        double layerFlop = 2.0 * n * (2 * 2048 * 2048 + 2 * 256 * 2048 + 3 * 5632 * 2048);
        for (int k = 0; k < 4; k += 2)
            System.out.printf(Locale.ROOT, "| one layer (7 matmuls, medians) | %s | %d | %.2f | %.1f | | | %.2f | %.1f | %.2fx |%n",
                    k == 0 ? "f16" : "q4g128", n, sum[k], layerFlop / sum[k] / 1e6,
                    sum[k + 1], layerFlop / sum[k + 1] / 1e6, sum[k + 1] / sum[k]);
    }

    private void batched() {
        System.out.println();
        System.out.println("| shape (out x in) | weights | n | Gemm µs/call | best | µs/token | per-token cost vs n=1 | legacy µs/call | Gemm / legacy |");
        System.out.println("|---|---|---:|---:|---:|---:|---:|---:|---:|");
        for (String dtype : List.of("f16", "f32"))
            for (int[] s : new int[][] {{256, 256}, {768, 256}, {256, 768}}) {
                Matrix w = matrix(dtype, s[0], s[1]);
                double one = 0;
                for (int n : new int[] {1, 2, 4, 8}) {
                    double[] r = compare(w, n);
                    if (n == 1) one = r[0];
                    System.out.printf(Locale.ROOT, "| %dx%d | %s | %d | %.1f | %.1f | %.1f | %.2f | %.1f | %.2fx |%n",
                            s[0], s[1], dtype, n, 1e3 * r[0], 1e3 * r[2], 1e3 * r[0] / n, r[0] / n / one, 1e3 * r[1], r[1] / r[0]);
                }
            }
    }

    /** Median ms per call of Gemm and of the legacy kernel, rounds interleaved; checks both against each other first. */
    private double[] compare(Matrix w, int n) {
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
        double[] g = new double[rounds], l = new double[rounds];
        for (int r = 0; r < rounds; r++) {
            if (r % 2 == 0) {
                g[r] = time(GEMM, a, x, n, w, bias, calls);
                l[r] = time(LEGACY, b, x, n, w, bias, calls);
            } else {
                l[r] = time(LEGACY, b, x, n, w, bias, calls);
                g[r] = time(GEMM, a, x, n, w, bias, calls);
            }
        }
        return new double[] {median(g), median(l), min(g), min(l)};
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
