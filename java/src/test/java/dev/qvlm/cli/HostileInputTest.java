package dev.qvlm.cli;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.qvlm.TestPaths;
import dev.qvlm.cli.CliTest.Run;
import dev.qvlm.util.Json;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import java.util.stream.Stream;

import static dev.qvlm.cli.CliTest.assertUserError;
import static dev.qvlm.cli.CliTest.run;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The issue-9 classes of hostile input, end to end through the CLI: each must give one clean line and exit code 2
 * (never a read outside the given folders, an unbounded allocation, a stack trace, or a silently altered model).
 */
class HostileInputTest {
    static final Path MODEL = TestPaths.tinyModel();
    static final Path IMAGES = TestPaths.data().resolve("images");
    static final Path FUZZ = TestPaths.root().resolve("java/src/test/resources/dev/qvlm/fuzz/HostileInputFuzzTestInputs");

    @TempDir
    Path tmp;

    /** A copy of the bundled model (every file) in {@code dir}. */
    static Path copyModel(Path dir) throws IOException {
        Files.createDirectories(dir);
        try (Stream<Path> s = Files.list(MODEL)) {
            for (Path p : s.toList()) Files.copy(p, dir.resolve(p.getFileName()));
        }
        return dir;
    }

    static Path withConfig(Path dir, Consumer<ObjectNode> edit) throws IOException {
        ObjectNode cfg = (ObjectNode) Json.read(dir.resolve("config.json"));
        edit.accept(cfg);
        Files.writeString(dir.resolve("config.json"), Json.write(cfg));
        return dir;
    }

    static Run generate(Path model, String... extra) {
        List<String> a = new ArrayList<>(List.of("generate", "--model", model.toString(), "--quiet", "--max-tokens", "2",
                "--prompt", "How many objects?"));
        a.addAll(List.of(extra));
        return run(a.toArray(String[]::new));
    }

    static String row(String image) {
        return "{\"question\": \"How many objects are in the image?\", \"choices\": [\"one\", \"two\"], \"answer\": 0"
                + (image == null ? "" : ", \"image\": \"" + image + "\"") + "}\n";
    }

    // ------------------------------------------------------------------ 1. reads outside the given folders

    @Test
    void indexShardOutsideTheModelFolderIsRefusedUnopened() throws IOException {
        // a perfectly valid weight file one folder up: the old loader opened it and ran the model from it
        Path model = copyModel(tmp.resolve("m"));
        Files.move(model.resolve("model.safetensors"), tmp.resolve("elsewhere.safetensors"));
        ObjectNode idx = Json.MAPPER.createObjectNode();
        idx.putObject("weight_map").put("language_model.lm_head.weight", "../elsewhere.safetensors");
        Files.writeString(model.resolve("model.safetensors.index.json"), Json.write(idx));
        assertUserError(generate(model), "model.safetensors.index.json", "../elsewhere.safetensors", "plain file name");

        idx.putObject("weight_map").put("language_model.lm_head.weight", tmp.resolve("elsewhere.safetensors").toString());
        Files.writeString(model.resolve("model.safetensors.index.json"), Json.write(idx));
        assertUserError(generate(model), "model.safetensors.index.json", "plain file name");
    }

    @Test
    void aFileThatIsNotSafetensorsIsNotEchoed() throws IOException {
        Path model = copyModel(tmp.resolve("m"));
        String passwd = "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n";
        Files.writeString(model.resolve("model.safetensors"), passwd);
        long asLength = ByteBuffer.wrap(passwd.getBytes()).order(ByteOrder.LITTLE_ENDIAN).getLong();
        Run r = generate(model);
        assertUserError(r, "model.safetensors", "not a safetensors file");
        assertFalse(r.err().contains(Long.toString(asLength)), "the file's bytes, read as a length, are echoed: " + r.err());
    }

    @Test
    void jsonlImagePathsStayInsideTheDataFolderOrImageRoot() throws IOException {
        Path data = Files.createDirectories(tmp.resolve("data"));
        Files.copy(IMAGES.resolve("eval_00000.png"), tmp.resolve("secret.png"));
        Files.writeString(data.resolve("up.jsonl"), row("../secret.png"));
        assertUserError(run("eval", "--model", MODEL.toString(), "--data", data.resolve("up.jsonl").toString(), "--quiet"),
                "up.jsonl:1", "../secret.png", "outside");
        Files.writeString(data.resolve("abs.jsonl"), row(tmp.resolve("secret.png").toString()));
        assertUserError(run("eval", "--model", MODEL.toString(), "--data", data.resolve("abs.jsonl").toString(), "--quiet"),
                "abs.jsonl:1", "must be relative");
        // --image-root moves the root: the same relative path is found there, and still may not leave it
        Files.writeString(data.resolve("rooted.jsonl"), row("eval_00000.png"));
        Run ok = run("eval", "--model", MODEL.toString(), "--data", data.resolve("rooted.jsonl").toString(), "--quiet",
                "--image-root", IMAGES.toString());
        assertEquals(0, ok.code(), ok.err());
        assertUserError(run("eval", "--model", MODEL.toString(), "--data", data.resolve("up.jsonl").toString(), "--quiet",
                "--image-root", IMAGES.toString()), "outside");
    }

    @Test
    void symbolicLinksInsideTheFolderAreFollowed() throws IOException {
        // what the Hugging Face hub cache looks like: the folder's entries are links the user's tools placed
        Path data = Files.createDirectories(tmp.resolve("data"));
        Files.createSymbolicLink(data.resolve("images"), IMAGES);
        Files.writeString(data.resolve("q.jsonl"), row("images/eval_00000.png"));
        Run r = run("eval", "--model", MODEL.toString(), "--data", data.resolve("q.jsonl").toString(), "--quiet");
        assertEquals(0, r.code(), r.err());
    }

    // ------------------------------------------------------------------ 2. unbounded memory or time

    @Test
    void aPngBombIsRefusedFromItsHeader() throws IOException {
        // 46000 x 46000 grey in 124 bytes: the old decoder allocated 2 GB and died in ArrayIndexOutOfBounds
        Run r = generate(MODEL, "--image", FUZZ.resolve("image/bomb-46000.png").toString());
        assertUserError(r, "bomb-46000.png", "46000x46000", "exceeds the limit of 40 M pixels");
    }

    @Test
    void hugeLayerCountIsCheckedAgainstTheTensorsBeforeAllocating() throws IOException {
        Path model = withConfig(copyModel(tmp.resolve("m")),
                c -> ((ObjectNode) c.get("text_config")).put("num_hidden_layers", Integer.MAX_VALUE));
        assertUserError(generate(model), "num_hidden_layers = 2147483647", "no layer 2147483646");
    }

    @Test
    void aPromptBeyondTheContextIsRefusedBeforeCompute() {
        String prompt = "How many objects are in the image? ".repeat(30_000); // ~1 MB
        Run r = run("generate", "--model", MODEL.toString(), "--quiet", "--prompt", prompt);
        assertUserError(r, "exceeds the model's context of 256 tokens");
        assertUserError(run("generate", "--model", MODEL.toString(), "--quiet", "--prompt", "hi", "--max-tokens", "1000000000"),
                "1000000000 new tokens", "context of 256 tokens");
    }

    @Test
    @Timeout(value = 120, unit = TimeUnit.SECONDS) // guards against the old hang; not a speed assertion
    void aBacktrackingPreTokenizerRegexIsStopped() throws IOException {
        Path model = copyModel(tmp.resolve("m"));
        ObjectNode tok = (ObjectNode) Json.read(model.resolve("tokenizer.json"));
        tok.putObject("pre_tokenizer").put("type", "Split").put("behavior", "Isolated").put("invert", false)
                .putObject("pattern").put("Regex", "(a*)*\\1b"); // backtracks exponentially in java.util.regex
        Files.writeString(model.resolve("tokenizer.json"), Json.write(tok));
        Run r = run("generate", "--model", model.toString(), "--quiet", "--prompt", "a".repeat(64) + "!");
        assertUserError(r, "(a*)*\\1b", "too many steps");
    }

    @Test
    void runningOutOfMemoryIsOneLineNotATrace() throws Exception {
        // a 6000 x 6000 image (36 M pixels, under the pixel limit) decoded in a 12 MB heap: the allocation fails,
        // and the user sees one line and exit code 2
        Path big = bigGreyPng(tmp.resolve("big.png"), 6000, 6000);
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        Process p = new ProcessBuilder(java, "-Xmx12m", "-Xss4m", "--add-modules", "jdk.incubator.vector",
                "-cp", System.getProperty("java.class.path"), "dev.qvlm.cli.Main", "generate", "--model", MODEL.toString(),
                "--image", big.toString(), "--prompt", "hi", "--quiet")
                .redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes());
        int code = p.waitFor();
        assertEquals(2, code, out);
        assertTrue(out.contains("qvlm: error: out of memory"), out);
        assertFalse(out.contains("\tat "), "no stack trace: " + out);
    }

    /** A valid 8-bit grey PNG of zeros, written chunk by chunk (a few KB on disk however large). */
    static Path bigGreyPng(Path file, int w, int h) throws IOException {
        java.io.ByteArrayOutputStream z = new java.io.ByteArrayOutputStream();
        try (var dz = new java.util.zip.DeflaterOutputStream(z)) {
            byte[] rowBytes = new byte[w + 1]; // filter byte 0 + w samples
            for (int y = 0; y < h; y++) dz.write(rowBytes);
        }
        java.io.ByteArrayOutputStream o = new java.io.ByteArrayOutputStream();
        o.write(new byte[]{(byte) 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'});
        ByteBuffer ihdr = ByteBuffer.allocate(13).putInt(w).putInt(h).put((byte) 8).put((byte) 0).put((byte) 0).put((byte) 0).put((byte) 0);
        chunk(o, "IHDR", ihdr.array());
        chunk(o, "IDAT", z.toByteArray());
        chunk(o, "IEND", new byte[0]);
        return Files.write(file, o.toByteArray());
    }

    private static void chunk(java.io.ByteArrayOutputStream o, String type, byte[] data) throws IOException {
        java.util.zip.CRC32 crc = new java.util.zip.CRC32();
        crc.update(type.getBytes(java.nio.charset.StandardCharsets.ISO_8859_1));
        crc.update(data);
        o.write(ByteBuffer.allocate(4).putInt(data.length).array());
        o.write(type.getBytes(java.nio.charset.StandardCharsets.ISO_8859_1));
        o.write(data);
        o.write(ByteBuffer.allocate(4).putInt((int) crc.getValue()).array());
    }

    // ------------------------------------------------------------------ 3. silently wrong, exit code 0

    @Test
    void configNumbersGivenAsStringsAreRefused() throws IOException {
        Path model = withConfig(copyModel(tmp.resolve("m")), c -> ((ObjectNode) c.get("text_config")).put("rms_norm_eps", "1e-5"));
        assertUserError(generate(model), "rms_norm_eps must be a positive number", "\"1e-5\"");
        withConfig(model, c -> {
            ((ObjectNode) c.get("text_config")).put("rms_norm_eps", 1e-5);
            ((ObjectNode) c.get("text_config").get("rope_parameters")).put("rope_theta", "10000.0");
        });
        assertUserError(generate(model), "rope_theta must be a positive number");
    }

    @Test
    void nanTemperatureIsRefused() {
        assertUserError(generate(MODEL, "--temperature", "NaN"), "--temperature", "NaN");
    }

    @Test
    void anUnknownCompressedTensorsFormatIsRefused() throws IOException {
        Path model = withConfig(copyModel(tmp.resolve("m")), c -> c.set("quantization_config", Json.read(FUZZ.resolve("quantizationConfig/unknown-format"))));
        assertUserError(generate(model), "format 'float-quantized' is not supported");
    }

    @Test
    void corruptPngAndTruncatedJpegAreRefused() {
        assertUserError(generate(MODEL, "--image", FUZZ.resolve("image/bad-crc.png").toString()), "bad-crc.png", "bad CRC");
        assertUserError(generate(MODEL, "--image", FUZZ.resolve("image/truncated.jpg").toString()), "truncated.jpg", "not a readable PNG/JPEG image");
        Run good = generate(MODEL, "--image", FUZZ.resolve("image/small.jpg").toString());
        assertEquals(0, good.code(), good.err());
    }

    // ------------------------------------------------------------------ 4. destructive or late failures

    static String[] quantize(Path out, String... extra) {
        List<String> a = new ArrayList<>(List.of("quantize", "--model", MODEL.toString(), "--calib",
                TestPaths.data().resolve("calib.jsonl").toString(), "--method", "rtn", "--wbits", "4", "--abits", "16",
                "--group", "64", "--calib-samples", "2", "--quiet", "--out", out.toString()));
        a.addAll(List.of(extra));
        return a.toArray(String[]::new);
    }

    @Test
    void forceOnlyReplacesACheckpointFolder() throws IOException {
        Path notModel = Files.createDirectories(tmp.resolve("photos"));
        Files.writeString(notModel.resolve("holiday.txt"), "precious");
        assertUserError(run(quantize(notModel, "--force")), "photos", "is not a model checkpoint");
        assertTrue(Files.exists(notModel.resolve("holiday.txt")), "the folder was deleted");
        // a folder we wrote is replaced
        Path ckpt = tmp.resolve("ckpt");
        Run first = run(quantize(ckpt));
        assertEquals(0, first.code(), first.err());
        Run again = run(quantize(ckpt, "--force"));
        assertEquals(0, again.code(), again.err());
        assertTrue(Files.exists(ckpt.resolve("model.safetensors")));
    }

    @Test
    void staleTemporariesOfDeadProcessesAreRemoved() throws IOException {
        Path out = tmp.resolve("q");
        Path stale = Files.createDirectories(tmp.resolve("q.tmp-999999999")); // no such process
        Files.writeString(stale.resolve("model.safetensors"), "half written");
        Path live = Files.createDirectories(tmp.resolve("q.tmp-" + ProcessHandle.current().parent().orElseThrow().pid()));
        Run r = run(quantize(out));
        assertEquals(0, r.code(), r.err());
        assertFalse(Files.exists(stale), "stale temporary left behind");
        assertTrue(Files.exists(live), "a running process's temporary must be left alone");
    }

    @Test
    void anUnwritableOutIsFoundBeforeAnyWork() throws IOException {
        Path file = Files.writeString(tmp.resolve("a-file"), "x");
        Path under = file.resolve("sub/out");
        Run q = run(quantize(under));
        assertUserError(q, "--out", "cannot write");
        assertFalse(q.err().contains("quantizing") || q.out().contains("method"), "work started before the check: " + q.out());
        assertUserError(run("eval", "--model", MODEL.toString(), "--data", TestPaths.data().resolve("eval.jsonl").toString(),
                "--limit", "1", "--quiet", "--out", under.toString()), "--out", "cannot write");
        assertUserError(run("compare", "--model", MODEL.toString(), "--calib", TestPaths.data().resolve("calib.jsonl").toString(),
                "--data", TestPaths.data().resolve("eval.jsonl").toString(), "--quiet", "--out", under.toString()), "--out", "cannot write");
        assertUserError(run("bench", "--synthetic", "tiny", "--out", under.toString()), "--out", "cannot write");
    }

    // ------------------------------------------------------------------ 5. fresh clone papercuts

    @Test
    void evalCreatesTheFoldersOfOut() {
        Path out = tmp.resolve("out/sub/eval.json");
        Run r = run("eval", "--model", MODEL.toString(), "--data", TestPaths.data().resolve("eval.jsonl").toString(),
                "--limit", "2", "--quiet", "--out", out.toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(Files.isRegularFile(out));
    }
}
