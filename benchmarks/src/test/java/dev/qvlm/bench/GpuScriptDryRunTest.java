package dev.qvlm.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.qvlm.cuda.CudaRuntime;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.File;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The prepared GPU script, run here at toy sizes (QVLM_DRY_RUN=1) with this JVM and the test class path, so it
 * cannot rot between the rare sessions that have a GPU: every step runs, the CPU steps succeed with real output,
 * and without a GPU every cuda step ends with one clean message (no stack trace) instead of hanging or crashing
 * the script.
 */
class GpuScriptDryRunTest {
    static final Path ROOT = Path.of(System.getProperty("qvlm.root", "..")).toAbsolutePath().normalize();
    static final List<String> STEPS = List.of("gpu-tests", "bench", "bench-eager", "bench-jcuda", "jmh-decode", "jmh-decode-cpu", "jmh-gemv", "gemv-times",
            "quantize-w4", "generate-cuda", "eval-fp-cuda", "eval-w4-cuda", "generate-cpu", "eval-fp-cpu",
            "eval-w4-cpu", "quantize-cuda", "quantize-cpu", "calib-13b-extrapolate", "bench-batch");

    @Test
    void everyStepRunsAndTheCpuStepsProduceResults(@TempDir Path packed) throws Exception {
        Path testClasses = ROOT.resolve("java/target/test-classes"); // the *GpuTest classes of the library
        assertTrue(Files.isDirectory(testClasses), "build the library's tests first: " + testClasses);
        String cp = System.getProperty("java.class.path") + File.pathSeparator + testClasses;
        ProcessBuilder pb = new ProcessBuilder("bash", ROOT.resolve("benchmarks/gpu/run.sh").toString())
                .directory(ROOT.toFile()).redirectErrorStream(true).redirectOutput(packed.resolve("run.log").toFile());
        Map<String, String> env = pb.environment();
        env.put("OUT", packed.toString());
        env.put("QVLM_PACK", "1"); // as on the GPU host: an archive and the summaries come back
        env.put("QVLM_DRY_RUN", "1");
        env.put("QVLM_CUDA_REQUIRED", "false");
        env.put("QVLM_JAVA", Path.of(System.getProperty("java.home"), "bin", "java").toString());
        env.put("QVLM_CP", cp);
        env.put("QVLM_BENCH_CP", cp);
        Process p = pb.start();
        if (!p.waitFor(400, TimeUnit.SECONDS)) {
            p.descendants().forEach(ProcessHandle::destroyForcibly);
            p.destroyForcibly();
            fail("run.sh did not finish in 400 s:\n" + tail(packed.resolve("run.log")));
        }
        String log = tail(packed.resolve("run.log"));
        assertEquals(0, p.exitValue(), "the GPU tests skip without a GPU, so the script exits 0:\n" + log);
        try (var files = Files.list(packed)) {
            assertEquals(List.of("device.txt", "gpu-report.md", "results.tar.gz", "run.log", "summary.json"),
                    files.map(f -> f.getFileName().toString()).sorted().toList(), "what the device tool would bring back");
        }
        Path out = packed.resolve("unpacked");
        Files.createDirectories(out);
        assertEquals(0, new ProcessBuilder("tar", "xzf", packed.resolve("results.tar.gz").toString(), "-C", out.toString())
                .inheritIO().start().waitFor(), "results.tar.gz unpacks");
        assertEquals(Files.readString(packed.resolve("summary.json")), Files.readString(out.resolve("summary.json")));

        JsonNode steps = new ObjectMapper().readTree(out.resolve("summary.json").toFile()).path("steps");
        for (String s : STEPS) assertTrue(steps.has(s), "step " + s + " missing from summary.json:\n" + log);
        for (String s : List.of("gpu-tests", "jmh-decode-cpu", "quantize-w4", "generate-cpu", "eval-fp-cpu", "eval-w4-cpu", "quantize-cpu", "calib-13b-extrapolate"))
            assertEquals(0, steps.path(s).path("exit").asInt(), s + " failed:\n" + tail(out.resolve(s + ".log")));

        var found = java.util.regex.Pattern.compile("\\[\\s*(\\d+) tests found").matcher(Files.readString(out.resolve("gpu-tests.log")));
        assertTrue(found.find() && Integer.parseInt(found.group(1)) > 0, "the GPU-test step selected no test:\n"
                + tail(out.resolve("gpu-tests.log")));
        ObjectMapper json = new ObjectMapper();
        assertEquals(4, json.readTree(out.resolve("eval-fp-cpu.json").toFile()).path("n").asInt(-1),
                "eval-fp-cpu.json:\n" + Files.readString(out.resolve("eval-fp-cpu.json")));
        assertTrue(Files.isRegularFile(out.resolve("w4a16g128/config.json")), "the W4 checkpoint was saved");
        String report = Files.readString(out.resolve("gpu-report.md"));
        assertTrue(report.contains("| tiny | cpu | W4A16 g128 | 16 |"), "decode row in gpu-report.md:\n" + report);

        if (CudaRuntime.probe() != null)
            for (String s : List.of("bench", "bench-eager", "bench-jcuda", "gemv-times", "generate-cuda", "eval-fp-cuda", "eval-w4-cuda", "quantize-cuda", "bench-batch")) {
                String stepLog = Files.readString(out.resolve(s + ".log"));
                assertEquals(2, steps.path(s).path("exit").asInt(), s + " without a GPU:\n" + stepLog);
                assertFalse(stepLog.contains("\tat "), s + " printed a stack trace:\n" + stepLog);
            }
    }

    private static String tail(Path f) throws IOException {
        if (!Files.exists(f)) return "(no " + f.getFileName() + ")";
        List<String> lines = Files.readAllLines(f);
        return String.join("\n", lines.subList(Math.max(0, lines.size() - 40), lines.size()));
    }
}
