package dev.qvlm.bench;

import com.fasterxml.jackson.databind.JsonNode;
import dev.qvlm.config.KnownModels;
import dev.qvlm.util.Json;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.*;

/** qvlm bench on the CPU with the tiny shapes: a sane report, both widths in one process, clear bad-input errors. */
class BenchCommandTest {
    /** {code, stdout, stderr} of one CLI run, through the shared harness of {@link dev.qvlm.cli.CliTest}. */
    static String[] run(String... args) {
        dev.qvlm.cli.CliTest.Run r = dev.qvlm.cli.CliTest.run(args);
        return new String[]{String.valueOf(r.code()), r.out(), r.err()};
    }

    @Test
    void tinyOnTheCpuGivesSaneJsonWithRatios(@TempDir Path dir) throws Exception {
        Path out = dir.resolve("bench.json");
        String[] r = run("bench", "--synthetic", "tiny", "--device", "cpu", "--wbits", "16,4", "--prompt-tokens", "8",
                "--new-tokens", "6", "--json", "--out", out.toString());
        assertEquals("0", r[0], r[2]);
        JsonNode j = Json.parse(r[1], "stdout");
        assertEquals(j, Json.read(out), "--out holds the printed report");
        assertEquals(64, j.get("image_tokens").asInt(), "tiny's vision tower gives 64 image tokens");
        assertEquals(64, j.get("warmup_tokens").asInt(), "untimed decode steps by default");
        assertEquals(2, j.get("runs").size());
        for (JsonNode run : j.get("runs")) {
            assertEquals(1 + 64 + 8, run.get("prefill_tokens").asInt());
            assertEquals(6, run.get("decode_tokens").asInt());
            for (String f : new String[]{"ttft_ms", "decode_tokens_per_s", "decode_ms_per_token", "weight_bytes_per_token",
                    "weight_bandwidth_gb_s", "bandwidth_limit_gb_s", "limit_ms_per_token", "peak_memory_bytes", "load_s"}) {
                double v = run.get(f).asDouble();
                assertTrue(v > 0 && Double.isFinite(v), f + " = " + v);
            }
            assertEquals(run.get("decode_ms_per_token").asDouble() * run.get("decode_tokens_per_s").asDouble(), 1000, 1e-6);
        }
        JsonNode w16 = j.get("runs").get(0), w4 = j.get("runs").get(1);
        assertEquals(16, w16.get("wbits").asInt());
        assertEquals(4, w4.get("wbits").asInt());
        double bytesRatio = w4.get("weight_bytes_per_token").asDouble() / w16.get("weight_bytes_per_token").asDouble();
        assertTrue(bytesRatio < 0.6, "int4 decoder weights read fewer bytes: " + bytesRatio);
        JsonNode ratio = j.get("ratios").get(0);
        for (String f : new String[]{"decode_speedup", "ms_per_token_ratio", "ttft_ratio", "weight_bytes_per_token_ratio", "peak_memory_ratio"})
            assertTrue(ratio.get(f).asDouble() > 0, f);
        assertEquals(bytesRatio, ratio.get("weight_bytes_per_token_ratio").asDouble(), 1e-9);
    }

    @Test
    void prefillRepeatsAreEachTimedAndTheMedianReported() {
        String[] r = run("bench", "--synthetic", "tiny", "--prompt-tokens", "4", "--new-tokens", "2", "--image-tokens", "0",
                "--wbits", "16,4", "--prefill-repeat", "3", "--json");
        assertEquals("0", r[0], r[2]);
        java.util.regex.Matcher m = java.util.regex.Pattern.compile("first token after ([\\d.]+) ms \\(repeat (\\d) of 3\\)").matcher(r[2]);
        java.util.List<Double> times = new java.util.ArrayList<>();
        StringBuilder order = new StringBuilder();
        while (m.find()) {
            times.add(Double.parseDouble(m.group(1)));
            order.append(m.group(2));
        }
        assertEquals("123123", order.toString(), "three timed prefills per run (FP16 and W4): " + r[2]);
        JsonNode j = Json.parse(r[1], "stdout");
        assertEquals(3, j.get("prefill_repeats").asInt());
        for (int run = 0; run < 2; run++) {
            java.util.List<Double> mine = new java.util.ArrayList<>(times.subList(3 * run, 3 * run + 3));
            java.util.Collections.sort(mine);
            assertEquals(mine.get(1), j.get("runs").get(run).get("ttft_ms").asDouble(), 0.051, "the median of the three, as logged to 0.1 ms");
        }
    }

    @Test
    void tableByDefault() {
        String[] r = run("bench", "--synthetic", "tiny", "--prompt-tokens", "4", "--new-tokens", "2", "--image-tokens", "0");
        assertEquals("0", r[0], r[2]);
        assertTrue(r[1].contains("decode tokens/s") && r[1].contains("bandwidth limit") && r[1].contains("FP16"), r[1]);
    }

    @Test
    void batchedDecodeIsTimedAgainstBatch1() {
        String[] r = run("bench", "--synthetic", "tiny", "--prompt-tokens", "4", "--new-tokens", "3", "--image-tokens", "0",
                "--batch", "1,4", "--batch-repeat", "3");
        assertEquals("0", r[0], r[2]);
        assertTrue(r[1].contains("FP16 batch 4: ") && r[1].contains("decode tokens/s aggregate"), r[1]);
        assertTrue(r[1].contains("FP16 batch 1: ") && r[1].contains(", 1.00x batch 1 (median of 3)"), r[1]); // the curve's own baseline
        // round-robin: 1, 4, 1, 4, 1, 4
        StringBuilder order = new StringBuilder();
        java.util.regex.Matcher m = java.util.regex.Pattern.compile("batch (\\d+) decode [^\\n]*\\(repeat (\\d) of 3\\)").matcher(r[2]);
        while (m.find()) order.append(m.group(1)).append(m.group(2)).append(' ');
        assertEquals("11 41 12 42 13 43", order.toString().trim(), r[2]);
    }

    @Test
    void badInputIsOneLineAndExitCode2() {
        String[][] bad = {
                {"bench", "--synthetic", "llava-9b"},
                {"bench", "--synthetic", "tiny", "--wbits", "8"},
                {"bench", "--synthetic", "tiny", "--image-tokens", "10"},
                {"bench", "--synthetic", "tiny", "--batch", "0"},
                {"bench", "--synthetic", "tiny", "--batch", "2,40"},
                {"bench", "--synthetic", "tiny", "--batch", "2", "--batch-repeat", "0"},
                {"bench", "--synthetic", "tiny", "--device", "tpu"},
                {"bench", "--synthetic", "tiny", "--warmup-tokens", "-1"},
                {"bench", "--synthetic", "tiny", "--prefill-repeat", "0"},
                {"bench", "--synthetic", "tiny", "--profile-ops", "2"},
                {"bench", "--synthetic", "tiny", "--profile-ops", "-1", "--device", "cuda"},
                {"bench"},
        };
        for (String[] a : bad) {
            String[] r = run(a);
            assertEquals("2", r[0], String.join(" ", a) + ": " + r[2]);
            assertTrue(r[2].startsWith("qvlm: error: "), r[2]);
            assertFalse(r[2].contains("Exception"), r[2]);
        }
        assertTrue(run("bench", "--synthetic", "llava-9b")[2].contains("unknown model shape 'llava-9b'"));
    }

    @Test
    void cpuRunsThatDoNotFitAreRefusedBeforeBuildingAnything() {
        var e = assertThrows(dev.qvlm.QvlmException.class,
                () -> Bench.checkCpuFits("llava-1.5-13b", KnownModels.config("llava-1.5-13b"), 16, 1 << 20));
        assertTrue(e.getMessage().contains("GB") && e.getMessage().contains("--device cuda"), e.getMessage());
        long w16 = SyntheticModel.hostWeightBytes(KnownModels.config("llava-1.5-13b"), 16);
        long w4 = SyntheticModel.hostWeightBytes(KnownModels.config("llava-1.5-13b"), 4);
        assertTrue(w16 > 26e9 && w16 < 27e9, "13B FP16 weights " + w16);
        assertTrue(w4 < 0.35 * w16, "13B W4A16 weights " + w4);
    }
}
