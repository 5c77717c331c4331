package dev.qvlm.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

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

    public static void main(String[] args) throws IOException {
        JmhRun.requireArgs(args, "Report");
        JmhRun run = new JmhRun();
        List<Row> rows = new ArrayList<>();
        for (String file : args) {
            JsonNode root = new ObjectMapper().readTree(Path.of(file).toFile());
            for (JsonNode b : root) {
                String name = b.path("benchmark").asText(); // dev.qvlm.bench.MatvecBench.run
                String[] parts = name.split("\\.");
                String bench = parts.length >= 2 ? parts[parts.length - 2] : name;
                JsonNode p = b.path("params");
                if (!p.has("shape") || !p.has("n")) continue; // not one of ours
                int[] rc = JmhRun.shape(p);
                JsonNode m = b.path("primaryMetric");
                double toSec = JmhRun.secondsPerUnit(m.path("scoreUnit").asText());
                double score = m.path("score").asDouble(), err = m.path("scoreError").asDouble(Double.NaN);
                int fjp = run.note(b);
                rows.add(new Row(bench, p.path("n").asInt(), rc[0], rc[1],
                        p.path("dtype").asText(), p.path("impl").asText(), fjp, score * toSec, err * toSec));
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

        StringBuilder sb = new StringBuilder();
        List<String> names = new ArrayList<>();
        for (String a : args) names.add(Path.of(a).getFileName().toString());
        sb.append("### CPU matmul kernels (JMH: ").append(String.join(", ", names)).append(")\n\n");
        sb.append(run.header("run-cpu.sh")).append("\n");

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

    private static String fmt(String f, double v) {
        return JmhRun.fmt(f, v);
    }
}
