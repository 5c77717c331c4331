package dev.qvlm.cli;

import dev.qvlm.TestPaths;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;

import static dev.qvlm.cli.CliTest.assertUserError;
import static dev.qvlm.cli.CliTest.run;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Bad input to quantize/compare: one clear line, exit code 2, nothing written. */
class QuantizeCliTest {
    static final String MODEL = TestPaths.tinyModel().toString();
    static final String CALIB = TestPaths.data().resolve("calib.jsonl").toString();

    static String[] quantize(String... extra) {
        String[] base = {"quantize", "--model", MODEL, "--calib", CALIB, "--calib-samples", "2", "--method", "rtn"};
        String[] all = new String[base.length + extra.length];
        System.arraycopy(base, 0, all, 0, base.length);
        System.arraycopy(extra, 0, all, base.length, extra.length);
        return all;
    }

    @Test
    void bitsOutOfRange() {
        assertUserError(run(quantize("--wbits", "9")), "--wbits", "9", "2–8");
        assertUserError(run(quantize("--wbits", "1")), "--wbits", "1");
        assertUserError(run(quantize("--abits", "0")), "--abits");
    }

    @Test
    void groupThatDoesNotDivideTheWidth() {
        assertUserError(run(quantize("--group", "100")), "100");
    }

    @Test
    void unknownMethodAndScope() {
        assertUserError(run("quantize", "--model", MODEL, "--calib", CALIB, "--method", "gptq"), "gptq");
        assertUserError(run(quantize("--scope", "everything")), "everything");
    }

    @Test
    void emptyAndMalformedCalibFiles(@TempDir Path tmp) throws Exception {
        Path empty = Files.writeString(tmp.resolve("empty.jsonl"), "");
        assertUserError(run("quantize", "--model", MODEL, "--calib", empty.toString()), "empty.jsonl");
        Path bad = Files.writeString(tmp.resolve("bad.jsonl"), Files.readAllLines(Path.of(CALIB)).get(0) + "\n{oops\n");
        assertUserError(run("quantize", "--model", MODEL, "--calib", bad.toString(), "--calib-samples", "2"), "bad.jsonl:2");
        Path noImage = Files.writeString(tmp.resolve("noimg.jsonl"),
                "{\"question\": \"q\", \"choices\": [\"a\", \"b\"], \"answer\": 0, \"image\": \"gone.png\"}\n");
        assertUserError(run("quantize", "--model", MODEL, "--calib", noImage.toString(), "--calib-samples", "1"), "noimg.jsonl:1", "gone.png");
        assertUserError(run("quantize", "--model", MODEL, "--calib", CALIB, "--calib-samples", "100000"), "calib.jsonl", "256");
    }

    @Test
    void existingOutputIsRefusedWithoutForce(@TempDir Path tmp) throws Exception {
        Path out = Files.createDirectories(tmp.resolve("q"));
        Files.writeString(out.resolve("keep.txt"), "mine");
        assertUserError(run(quantize("--out", out.toString())), "already exists", "--force");
        assertEquals("mine", Files.readString(out.resolve("keep.txt")));
    }

    @Test
    void targetRefusesWhatItsRuntimeCannotRunBeforeAnyWork(@TempDir Path tmp) {
        Path out = tmp.resolve("q");
        // the default target with --out is vllm: static W4A4 has no vLLM scheme
        assertUserError(run(quantize("--wbits", "4", "--abits", "4", "--out", out.toString())),
                "--target vllm", "W4A4", "--target transformers", "--target qvlm");
        assertUserError(run(quantize("--wbits", "8", "--abits", "8", "--no-wsym", "--target", "vllm", "--out", out.toString())),
                "symmetric", "--no-wsym");
        assertUserError(run(quantize("--wbits", "4", "--abits", "8", "--target", "vllm")), "--act-dynamic");
        assertUserError(run(quantize("--target", "onnx", "--out", out.toString())), "--target", "onnx");
        assertFalse(Files.exists(out), "nothing written");
    }

    @Test
    void savesAndLoadsWithForce(@TempDir Path tmp) throws Exception {
        Path out = Files.createDirectories(tmp.resolve("q"));
        String data = TestPaths.data().resolve("eval.jsonl").toString();
        CliTest.Run r = run(quantize("--wbits", "4", "--group", "128", "--out", out.toString(), "--force", "--quiet",
                "--eval", data, "--limit", "6"));
        assertEquals(0, r.code(), r.err());
        String cfg = Files.readString(out.resolve("config.json"));
        assertTrue(cfg.contains("pack-quantized") && cfg.contains("\"symmetric\" : true") && cfg.contains("re:"), cfg);
        assertTrue(Files.readString(out.resolve("model.safetensors"), java.nio.charset.StandardCharsets.ISO_8859_1)
                .contains("vision_tower.vision_model.encoder.layers.0.self_attn.q_proj.weight_packed"), "llava-hf vision keys");
        try (var l = Files.list(tmp)) {
            assertEquals(1, l.count(), "no temporary folder left next to the output");
        }
        Path rep = tmp.resolve("eval.json");
        CliTest.Run e = run("eval", "--model", out.toString(), "--data", data, "--limit", "6", "--quiet", "--out", rep.toString());
        assertEquals(0, e.code(), e.err());
        // quantize --eval --out reports the saved folder's accuracy: what eval of that folder gives
        var om = new com.fasterxml.jackson.databind.ObjectMapper();
        assertEquals(om.readTree(rep.toFile()).get("accuracy").asDouble(),
                om.readTree(out.resolve("quantization_report.json").toFile()).get("accuracy").asDouble());
        assertEquals("saved folder", om.readTree(out.resolve("quantization_report.json").toFile()).get("evaluated").asText());
    }
}
