package dev.qvlm.bench;

import com.fasterxml.jackson.databind.JsonNode;
import jdk.incubator.vector.FloatVector;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ForkJoinPool;

/**
 * What {@link Report} and {@link QuantReport} share: reading the per-benchmark facts out of a JMH JSON result
 * (time unit, fork-join parallelism of the fork, JVM) and the header that names the machine a table was measured
 * on (CPU, SIMD, JVM, load average before and after), so every table in {@code benchmarks/results} says where
 * its numbers come from in the same words.
 */
final class JmhRun {
    private static final String FJP_PROP = "-Djava.util.concurrent.ForkJoinPool.common.parallelism=";
    static final int DEFAULT_FJP = ForkJoinPool.getCommonPoolParallelism();

    private String jvm = "?", jmh = "?";
    private final List<String> argSets = new ArrayList<>();

    /**
     * Records the JVM, JMH version and fork arguments of one benchmark entry and returns the fork-join common-pool
     * parallelism it ran with (the property in its fork arguments, else this JVM's default).
     */
    int note(JsonNode benchmark) {
        List<String> ja = new ArrayList<>();
        benchmark.path("jvmArgs").forEach(a -> ja.add(a.asText()));
        String joined = "`" + String.join(" ", ja) + "`";
        if (!argSets.contains(joined)) argSets.add(joined);
        jvm = benchmark.path("vmName").asText() + " " + benchmark.path("vmVersion").asText();
        jmh = benchmark.path("jmhVersion").asText();
        int fjp = DEFAULT_FJP;
        for (String a : ja) if (a.startsWith(FJP_PROP)) fjp = Integer.parseInt(a.substring(FJP_PROP.length()));
        return fjp;
    }

    /** The Markdown bullet lines naming the machine, the JVM and the load; {@code script} names the wall time. */
    String header(String script) {
        Map<String, String> cpu = cpuInfo();
        StringBuilder sb = new StringBuilder();
        sb.append("- CPU: ").append(cpu.getOrDefault("model name", "?"));
        if (cpu.containsKey("cpu family"))
            sb.append(" (family ").append(cpu.get("cpu family")).append(", model ").append(cpu.get("model")).append(")");
        sb.append(", ").append(cpu.getOrDefault("processors", "?")).append(" logical CPUs in /proc/cpuinfo, ")
                .append(Runtime.getRuntime().availableProcessors()).append(" available to the JVM")
                .append(", SIMD: ").append(cpu.getOrDefault("simd", "?"))
                .append(", Vector API preferred species: ").append(FloatVector.SPECIES_PREFERRED.vectorBitSize())
                .append("-bit (").append(FloatVector.SPECIES_PREFERRED.length()).append(" floats)\n");
        sb.append("- Default fork-join common-pool parallelism here (what `Matmul.matmul` splits rows over): ")
                .append(DEFAULT_FJP).append("\n");
        sb.append("- JVM: ").append(jvm).append(", JMH ").append(jmh).append(", fork JVM args: ")
                .append(String.join(" / ", argSets)).append("\n");
        sb.append("- Load average (1/5/15 min) before the run: ").append(System.getProperty("qvlm.loadBefore", "?"))
                .append(", after: ").append(loadAvg());
        if (System.getProperty("qvlm.wallSeconds") != null)
            sb.append("; ").append(script).append(" wall time ").append(System.getProperty("qvlm.wallSeconds")).append(" s");
        sb.append(" (").append(Runtime.getRuntime().availableProcessors())
                .append(" cores shared with other work: expect noise)\n");
        return sb.toString();
    }

    static double secondsPerUnit(String unit) {
        return switch (unit) {
            case "s/op" -> 1;
            case "ms/op" -> 1e-3;
            case "us/op" -> 1e-6;
            case "ns/op" -> 1e-9;
            default -> throw new IllegalArgumentException("unsupported score unit " + unit + " (use -bm avgt or sample)");
        };
    }

    /** ROWSxCOLS of a {@code shape} parameter. */
    static int[] shape(JsonNode params) {
        String[] rc = params.path("shape").asText().toLowerCase(Locale.ROOT).split("x");
        return new int[] {Integer.parseInt(rc[0].trim()), Integer.parseInt(rc[1].trim())};
    }

    static String fmt(String f, double v) {
        return String.format(Locale.ROOT, f, v);
    }

    static void requireArgs(String[] args, String tool) {
        if (args.length == 0) {
            System.err.println("usage: " + tool + " JMH_RESULT.json [MORE.json ...]");
            System.exit(2);
        }
    }

    private static String loadAvg() {
        try {
            String[] f = Files.readString(Path.of("/proc/loadavg")).trim().split("\\s+");
            return f[0] + " / " + f[1] + " / " + f[2];
        } catch (IOException | RuntimeException e) {
            return "?";
        }
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
