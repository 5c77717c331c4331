package dev.qvlm.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.qvlm.config.KnownModels;
import dev.qvlm.config.TextConfig;
import dev.qvlm.cuda.Int4Layout;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Markdown summary of {@link GpuGemvBench} and {@link DecodeStepBench} JMH JSON results: per GEMV shape the
 * achieved weight bandwidth of the int4 kernel and of cuBLAS FP16 next to the cuMemcpyDtoD bandwidth of the same
 * run; per decode configuration the time per token, the weight bytes each token streams (decoder + lm_head, as the
 * device stores them), the streaming limit those bytes give at the copy bandwidth, and W4 / FP16 speedups.
 *
 * <pre>java --add-modules jdk.incubator.vector -cp benchmarks/target/benchmarks.jar dev.qvlm.bench.GpuReport A.json [B.json ...]</pre>
 */
public final class GpuReport {
    private GpuReport() {}

    record Gemv(int rows, int cols, String kernel, double seconds) {
        long bytes() {
            if (kernel.startsWith("int4")) return Int4Layout.deviceBytes(rows, cols, 128); // int4, int4-wN
            return kernel.equals("f16") ? 2L * rows * cols
                    : 4L * rows * cols; // copy: read + write of an FP16 buffer of the weight's size
        }
    }

    record Decode(String shape, int wbits, String device, int context, double seconds) {}

    public static void main(String[] args) throws IOException {
        JmhRun.requireArgs(args, "GpuReport");
        JmhRun run = new JmhRun();
        List<Gemv> gemv = new ArrayList<>();
        List<Decode> decode = new ArrayList<>();
        for (String file : args)
            for (JsonNode b : new ObjectMapper().readTree(Path.of(file).toFile())) {
                run.note(b);
                String name = b.path("benchmark").asText();
                JsonNode p = b.path("params"), m = b.path("primaryMetric"), pct = m.path("scorePercentiles");
                double sec = (pct.has("50.0") ? pct.path("50.0").asDouble() : m.path("score").asDouble())
                        * JmhRun.secondsPerUnit(m.path("scoreUnit").asText());
                if (name.endsWith("GpuGemvBench.run")) {
                    int[] rc = JmhRun.shape(p);
                    gemv.add(new Gemv(rc[0], rc[1], p.path("kernel").asText(), sec));
                } else if (name.endsWith("DecodeStepBench.step"))
                    decode.add(new Decode(p.path("shape").asText(), p.path("wbits").asInt(), p.path("device").asText(),
                            p.path("context").asInt(), sec));
            }
        double copyBw = 0; // the best cuMemcpyDtoD bandwidth of the run, bytes read + written per second
        for (Gemv g : gemv) if (g.kernel().equals("copy")) copyBw = Math.max(copyBw, g.bytes() / g.seconds());

        StringBuilder sb = new StringBuilder("### GPU GEMV and decode step (JMH: ").append(String.join(", ", args)).append(")\n\n");
        sb.append(run.header("run.sh"));
        sb.append("- cuMemcpyDtoD bandwidth (best shape, read + write): ")
                .append(copyBw > 0 ? JmhRun.fmt("%.0f GB/s", copyBw / 1e9) : "not measured").append("\n\n");
        if (!gemv.isEmpty()) {
            sb.append("| shape | kernel | µs/call | weight GB/s | % of copy bandwidth |\n|---|---|---:|---:|---:|\n");
            for (Gemv g : gemv) {
                double bw = g.bytes() / g.seconds();
                sb.append("| ").append(g.rows()).append("x").append(g.cols()).append(" | ").append(g.kernel())
                        .append(" | ").append(JmhRun.fmt("%.1f", g.seconds() * 1e6))
                        .append(" | ").append(JmhRun.fmt("%.0f", bw / 1e9))
                        .append(" | ").append(copyBw > 0 ? JmhRun.fmt("%.0f %%", 100 * bw / copyBw) : "n/a").append(" |\n");
            }
            sb.append("\n");
        }
        if (!decode.isEmpty()) {
            Map<String, Decode> fp16 = new LinkedHashMap<>();
            for (Decode d : decode) if (d.wbits() == 16) fp16.put(d.shape() + "|" + d.device() + "|" + d.context(), d);
            sb.append("| shape | device | weights | context | ms/token (median) | weight MB/token | limit ms/token at copy bandwidth | % of limit | speedup vs FP16 |\n");
            sb.append("|---|---|---|---:|---:|---:|---:|---:|---:|\n");
            for (Decode d : decode) {
                long bytes = decodeWeightBytes(d.shape(), d.wbits());
                double limit = copyBw > 0 && d.device().equals("cuda") ? bytes / copyBw : Double.NaN;
                Decode base = fp16.get(d.shape() + "|" + d.device() + "|" + d.context());
                sb.append("| ").append(d.shape()).append(" | ").append(d.device()).append(" | ")
                        .append(d.wbits() == 4 ? "W4A16 g128" : "FP16").append(" | ").append(d.context())
                        .append(" | ").append(JmhRun.fmt("%.3f", d.seconds() * 1e3))
                        .append(" | ").append(JmhRun.fmt("%.1f", bytes / 1e6))
                        .append(" | ").append(Double.isNaN(limit) ? "n/a" : JmhRun.fmt("%.3f", limit * 1e3))
                        .append(" | ").append(Double.isNaN(limit) ? "n/a" : JmhRun.fmt("%.0f %%", 100 * limit / d.seconds()))
                        .append(" | ").append(base == null ? "n/a" : JmhRun.fmt("%.2fx", base.seconds() / d.seconds())).append(" |\n");
            }
            sb.append("\nweight MB/token: every decoder linear and lm_head read once per token, in the device layout "
                    + "(FP16, or Int4Layout.deviceBytes for W4A16 g128; lm_head stays FP16). The copy bandwidth counts read + "
                    + "write, so the limit is optimistic for a kernel that only reads.\n");
        }
        System.out.print(sb);
    }

    /** Bytes of the decoder's linears and lm_head as the GPU stores them (what one decode step streams). */
    static long decodeWeightBytes(String shape, int wbits) {
        TextConfig t = KnownModels.config(shape).text();
        int d = t.hiddenSize(), i = t.intermediateSize();
        int[][] shapes = {{t.qDim(), d}, {t.kvDim(), d}, {t.kvDim(), d}, {d, t.qDim()}, {i, d}, {i, d}, {d, i}};
        long layer = 0;
        for (int[] s : shapes) layer += wbits == 4 ? Int4Layout.deviceBytes(s[0], s[1], 128) : 2L * s[0] * s[1];
        return layer * t.numLayers() + 2L * t.vocabSize() * d;
    }
}
