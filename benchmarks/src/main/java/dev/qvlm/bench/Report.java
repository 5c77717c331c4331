package dev.qvlm.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import jdk.incubator.vector.FloatVector;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ForkJoinPool;

/**
 * Turns a JMH JSON result ({@code -rf json -rff FILE}) of {@link MatvecBench}, {@link MatmulBench} and
 * {@link MatmulLargeBench} into a Markdown table: time per call, GFLOP/s (2*rows*cols*n / time), weight
 * traffic in GB/s (weight storage bytes / time, each weight is read once per call) and the vectorised/scalar
 * speedup for the same n, shape and dtype, headed by the machine it ran on.
 *
 * <pre>java --add-modules jdk.incubator.vector -cp benchmarks/target/benchmarks.jar dev.qvlm.bench.Report FILE.json</pre>
 */
public final class Report {
    private Report() {}

    record Row(String bench, int n, int rows, int cols, String dtype, String impl, int fjp, double seconds,
               double errSeconds) {
        String shape() {
            return rows + "x" + cols;
        }

        /** Rows with the same key are the same problem; scalar is single-threaded whatever the pool size. */
        String key() {
            return n + "|" + shape() + "|" + dtype;
        }

        double flops() {
            return 2.0 * rows * cols * n;
        }

        double weightBytes() {
            return (double) rows * cols * switch (dtype) {
                case "f32" -> 4;
                case "f16", "bf16" -> 2;
                default -> throw new IllegalArgumentException("unknown dtype " + dtype);
            };
        }
    }

    private static final String FJP_PROP = "-Djava.util.concurrent.ForkJoinPool.common.parallelism=";

    public static void main(String[] args) throws IOException {
        if (args.length == 0) {
            System.err.println("usage: Report JMH_RESULT.json [MORE.json ...]");
            System.exit(2);
        }
        List<Row> rows = new ArrayList<>();
        String jvm = "?", jmh = "?";
        List<String> argSets = new ArrayList<>();
        int defaultFjp = ForkJoinPool.getCommonPoolParallelism();
        for (String file : args) {
            JsonNode root = new ObjectMapper().readTree(Path.of(file).toFile());
            for (JsonNode b : root) {
                String name = b.path("benchmark").asText(); // dev.qvlm.bench.MatvecBench.run
                String[] parts = name.split("\\.");
                String bench = parts.length >= 2 ? parts[parts.length - 2] : name;
                JsonNode p = b.path("params");
                if (!p.has("shape") || !p.has("n")) continue; // not one of ours
                String[] rc = p.path("shape").asText().toLowerCase(Locale.ROOT).split("x");
                JsonNode m = b.path("primaryMetric");
                double toSec = secondsPerUnit(m.path("scoreUnit").asText());
                double score = m.path("score").asDouble(), err = m.path("scoreError").asDouble(Double.NaN);
                List<String> ja = new ArrayList<>();
                b.path("jvmArgs").forEach(a -> ja.add(a.asText()));
                int fjp = defaultFjp;
                for (String a : ja) if (a.startsWith(FJP_PROP)) fjp = Integer.parseInt(a.substring(FJP_PROP.length()));
                String impl = p.path("impl").asText();
                rows.add(new Row(bench, p.path("n").asInt(), Integer.parseInt(rc[0]), Integer.parseInt(rc[1]),
                        p.path("dtype").asText(), impl, fjp, score * toSec, err * toSec));
                jvm = b.path("vmName").asText() + " " + b.path("vmVersion").asText();
                jmh = b.path("jmhVersion").asText();
                String joined = "`" + String.join(" ", ja) + "`";
                if (!argSets.contains(joined)) argSets.add(joined);
            }
        }
        List<String> benchOrder = List.of("MatvecBench", "MatmulBench", "MatmulLargeBench");
        List<String> dtypeOrder = List.of("f32", "f16", "bf16");
        rows.sort(Comparator.comparingInt((Row r) -> rank(benchOrder, r.bench()))
                .thenComparingInt(Row::n)
                .thenComparingLong(r -> (long) r.rows() * r.cols())
                .thenComparingInt(r -> rank(dtypeOrder, r.dtype()))
                .thenComparing(r -> !r.impl().equals("scalar"))
                .thenComparingInt(Row::fjp));
        Map<String, Row> scalar = new HashMap<>();
        for (Row r : rows) if (r.impl().equals("scalar")) scalar.put(r.key(), r);

        Map<String, String> cpu = cpuInfo();
        StringBuilder sb = new StringBuilder();
        List<String> names = new ArrayList<>();
        for (String a : args) names.add(Path.of(a).getFileName().toString());
        sb.append("### CPU matmul kernels (JMH: ").append(String.join(", ", names)).append(")\n\n");
        sb.append("- CPU: ").append(cpu.getOrDefault("model name", "?"));
        if (cpu.containsKey("cpu family"))
            sb.append(" (family ").append(cpu.get("cpu family")).append(", model ").append(cpu.get("model")).append(")");
        sb.append(", ").append(cpu.getOrDefault("processors", "?")).append(" logical CPUs in /proc/cpuinfo, ")
                .append(Runtime.getRuntime().availableProcessors()).append(" available to the JVM")
                .append(", SIMD: ").append(cpu.getOrDefault("simd", "?"))
                .append(", Vector API preferred species: ").append(FloatVector.SPECIES_PREFERRED.vectorBitSize())
                .append("-bit (").append(FloatVector.SPECIES_PREFERRED.length()).append(" floats)\n");
        sb.append("- Default fork-join common-pool parallelism here (what `Matmul.matmul` splits rows over): ")
                .append(defaultFjp).append("\n");
        sb.append("- JVM: ").append(jvm).append(", JMH ").append(jmh).append(", fork JVM args: ")
                .append(String.join(" / ", argSets)).append("\n");
        sb.append("- Load average (1/5/15 min) before the run: ").append(System.getProperty("qvlm.loadBefore", "?"))
                .append(", after: ").append(loadAvg());
        if (System.getProperty("qvlm.wallSeconds") != null)
            sb.append("; run-cpu.sh wall time ").append(System.getProperty("qvlm.wallSeconds")).append(" s");
        sb.append(" (").append(Runtime.getRuntime().availableProcessors())
                .append(" cores shared with other work: expect noise)\n\n");

        sb.append("| benchmark | n | shape (rows x cols) | dtype | impl | FJ par. | time/call (ms) | GFLOP/s | weight GB/s | vector / scalar |\n");
        sb.append("|---|---:|---|---|---|---:|---:|---:|---:|---:|\n");
        for (Row r : rows) {
            double ms = r.seconds() * 1e3, errMs = r.errSeconds() * 1e3;
            String speed;
            Row s = scalar.get(r.key());
            if (r.impl().equals("scalar")) speed = "1.0x (ref)";
            else if (s != null) speed = fmt("%.1fx", s.seconds() / r.seconds());
            else speed = "n/a";
            sb.append("| ").append(r.bench()).append(" | ").append(r.n()).append(" | ").append(r.shape())
                    .append(" | ").append(r.dtype()).append(" | ").append(r.impl())
                    .append(" | ").append(r.impl().equals("scalar") ? "(1 thread)" : Integer.toString(r.fjp()))
                    .append(" | ").append(fmt(ms < 10 ? "%.3f" : "%.1f", ms))
                    .append(Double.isFinite(errMs) ? fmt(ms < 10 ? " ± %.3f" : " ± %.1f", errMs) : "")
                    .append(" | ").append(fmt("%.2f", r.flops() / r.seconds() / 1e9))
                    .append(" | ").append(fmt("%.2f", r.weightBytes() / r.seconds() / 1e9))
                    .append(" | ").append(speed).append(" |\n");
        }
        sb.append("\nGFLOP/s = 2·rows·cols·n / time; weight GB/s = weight storage bytes (4 B f32, 2 B f16) / time, "
                + "i.e. each weight read once per call (activations, bias and output not counted). "
                + "± is JMH's 99.9% confidence half-width over the measurement iterations. "
                + "vector / scalar = scalar time / vectorised time for the same n, shape and dtype. "
                + "FJ par. = fork-join common-pool parallelism in the benchmark JVM; the scalar reference is always one thread.\n");
        System.out.print(sb);
    }

    private static int rank(List<String> order, String v) {
        int i = order.indexOf(v);
        return i < 0 ? order.size() : i;
    }

    private static String loadAvg() {
        try {
            String[] f = Files.readString(Path.of("/proc/loadavg")).trim().split("\\s+");
            return f[0] + " / " + f[1] + " / " + f[2];
        } catch (IOException | RuntimeException e) {
            return "?";
        }
    }

    private static String fmt(String f, double v) {
        return String.format(Locale.ROOT, f, v);
    }

    private static double secondsPerUnit(String unit) {
        return switch (unit) {
            case "s/op" -> 1;
            case "ms/op" -> 1e-3;
            case "us/op" -> 1e-6;
            case "ns/op" -> 1e-9;
            default -> throw new IllegalArgumentException("unsupported score unit " + unit + " (use -bm avgt)");
        };
    }

    /** model name, cpu family, model (first processor), count of processors, SIMD summary from /proc/cpuinfo. */
    private static Map<String, String> cpuInfo() {
        Map<String, String> info = new LinkedHashMap<>();
        try {
            int procs = 0;
            for (String line : Files.readAllLines(Path.of("/proc/cpuinfo"))) {
                int c = line.indexOf(':');
                if (c < 0) continue;
                String k = line.substring(0, c).trim(), v = line.substring(c + 1).trim();
                if (k.equals("processor")) procs++;
                if (k.equals("flags") && !info.containsKey("simd")) {
                    List<String> simd = new ArrayList<>();
                    for (String f : v.split("\\s+"))
                        if (f.equals("avx2") || f.equals("fma") || f.equals("f16c") || f.equals("avx512f")
                                || f.equals("avx512_bf16") || f.equals("avx512_fp16") || f.equals("amx_bf16"))
                            simd.add(f);
                    info.put("simd", String.join(" ", simd));
                }
                if ((k.equals("features") || k.equals("Features")) && !info.containsKey("simd")) info.put("simd", v);
                info.putIfAbsent(k, v);
            }
            info.put("processors", Integer.toString(procs));
        } catch (IOException e) {
            info.put("model name", "unknown (" + e.getMessage() + ")");
        }
        return info;
    }
}
