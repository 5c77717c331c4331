package dev.qvlm.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.qvlm.quant.Q4Matrix;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Markdown summary of {@link QuantMatvecBench} and {@link MemReadBench} JMH JSON results (same style as
 * {@link Report}): per shape and fork-join parallelism, time per call, weight bytes, weight traffic in GB/s (storage
 * bytes / time: every weight byte is read once per call), that traffic as a share of the measured memory-read
 * roofline, and the ratio of times against F16 and F32 on the same shape and pool size.
 *
 * <pre>java --add-modules jdk.incubator.vector -cp benchmarks/target/benchmarks.jar dev.qvlm.bench.QuantReport A.json [B.json ...]</pre>
 */
public final class QuantReport {
    private QuantReport() {}

    /** seconds = median time per call (mean when the run was not in sample mode); min = fastest call. */
    record Row(int rows, int cols, String weights, int fjp, double seconds, double minSeconds) {
        String shape() {
            return rows + "x" + cols;
        }

        long bytes() {
            return switch (weights) {
                case "f32" -> 4L * rows * cols;
                case "f16", "bf16" -> 2L * rows * cols;
                case "q4g128", "q4g128-fused" -> Q4Matrix.storageBytes(rows, cols, 128, false);
                default -> throw new IllegalArgumentException("unknown weights " + weights);
            };
        }
    }

    private static final List<String> ORDER = List.of("f32", "f16", "q4g128", "q4g128-fused");

    public static void main(String[] args) throws IOException {
        JmhRun.requireArgs(args, "QuantReport");
        JmhRun run = new JmhRun();
        List<Row> rows = new ArrayList<>();
        Map<Integer, double[]> roofline = new LinkedHashMap<>(); // fjp -> {GB/s median, GB/s best}
        for (String file : args) {
            for (JsonNode b : new ObjectMapper().readTree(Path.of(file).toFile())) {
                String name = b.path("benchmark").asText();
                JsonNode p = b.path("params");
                JsonNode m = b.path("primaryMetric");
                double toSec = JmhRun.secondsPerUnit(m.path("scoreUnit").asText());
                JsonNode pct = m.path("scorePercentiles");
                double sec = (pct.has("50.0") ? pct.path("50.0").asDouble() : m.path("score").asDouble()) * toSec;
                double min = (pct.has("0.0") ? pct.path("0.0").asDouble() : Double.NaN) * toSec;
                int fjp = run.note(b);
                if (name.endsWith("MemReadBench.read")) {
                    double bytes = (double) p.path("mib").asInt() * (1 << 20);
                    roofline.put(fjp, new double[] {bytes / sec / 1e9, bytes / min / 1e9});
                } else if (name.endsWith("QuantMatvecBench.matvec")) {
                    int[] rc = JmhRun.shape(p);
                    rows.add(new Row(rc[0], rc[1], p.path("weights").asText(), fjp, sec, min));
                }
            }
        }
        rows.sort(Comparator.comparingLong((Row r) -> (long) r.rows() * r.cols()).thenComparingInt(Row::fjp)
                .thenComparingInt(r -> ORDER.indexOf(r.weights())));

        StringBuilder sb = new StringBuilder();
        sb.append("### Packed 4-bit vs F16 / F32 CPU matvec, n = 1 (JMH: ").append(String.join(", ", args)).append(")\n\n");
        sb.append(run.header("run-quant.sh"));
        if (!roofline.isEmpty()) {
            sb.append("- Memory-read roofline (MemReadBench, vectorised sum of 512 MiB off-heap, median / best call):");
            roofline.forEach((f, g) -> sb.append(" ").append(fmt("%.2f", g[0])).append(" / ").append(fmt("%.2f", g[1]))
                    .append(" GB/s at FJ par. ").append(f).append(";"));
            sb.setLength(sb.length() - 1);
            sb.append("\n");
        }
        sb.append("\n| shape (rows x cols) | weights | kernel | FJ par. | weight MiB | median ms/call | best ms/call | weight GB/s (median) | % of read roofline (best) | f16 time / this | f32 time / this |\n");
        sb.append("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        for (Row r : rows) {
            Row f16 = find(rows, r, "f16"), f32 = find(rows, r, "f32");
            double ms = r.seconds() * 1e3, minMs = r.minSeconds() * 1e3;
            double gbs = r.bytes() / r.seconds() / 1e9;
            double[] roof = roofline.get(r.fjp());
            sb.append("| ").append(r.shape()).append(" | ").append(r.weights().replace("-fused", ""))
                    .append(" | ").append(r.weights().endsWith("-fused") ? "Q4Matrix.matmul (fused)" : "Matmul.matmul")
                    .append(" | ").append(r.fjp())
                    .append(" | ").append(fmt("%.1f", r.bytes() / 1048576.0))
                    .append(" | ").append(fmt("%.2f", ms)).append(" | ").append(Double.isFinite(minMs) ? fmt("%.2f", minMs) : "n/a")
                    .append(" | ").append(fmt("%.2f", gbs))
                    .append(" | ").append(roof == null ? "n/a" : fmt("%.0f %%", 100 * gbs / roof[1]))
                    .append(" | ").append(f16 == null ? "n/a" : fmt("%.2fx", f16.seconds() / r.seconds()))
                    .append(" | ").append(f32 == null ? "n/a" : fmt("%.2fx", f32.seconds() / r.seconds())).append(" |\n");
        }
        sb.append("\nweight MiB / GB/s: storage bytes read per call (f32 4 B, f16 2 B per weight; q4g128 0.5 B per weight + "
                + "an FP32 scale and a one-byte zero point per group of 128, as `Q4Matrix.storageBytes`) / time. "
                + "`Matmul.matmul` on a Q4Matrix decodes rows through `rowToFloat`; `Q4Matrix.matmul` is the fused kernel. "
                + "Times are the median and the fastest of all timed calls (JMH sample mode); GB/s and the ratios use the "
                + "median; the roofline share divides by the best-call read bandwidth (the machine's peak when nothing else runs). f16 time / this > 1 means faster than F16. "
                + "FJ par. = fork-join common-pool parallelism in the benchmark JVM.\n");
        System.out.print(sb);
    }

    private static Row find(List<Row> rows, Row like, String weights) {
        for (Row r : rows)
            if (r.rows() == like.rows() && r.cols() == like.cols() && r.fjp() == like.fjp() && r.weights().equals(weights)) return r;
        return null;
    }

    private static String fmt(String f, double v) {
        return JmhRun.fmt(f, v);
    }
}
