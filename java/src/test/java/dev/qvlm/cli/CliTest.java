package dev.qvlm.cli;

import dev.qvlm.TestPaths;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The CLI end to end: real runs on the bundled model, and bad input → one clear line, exit code 2. */
public class CliTest {
    public record Run(int code, String out, String err) {}

    public static synchronized Run run(String... args) {
        PrintStream o = System.out, e = System.err;
        ByteArrayOutputStream ob = new ByteArrayOutputStream(), eb = new ByteArrayOutputStream();
        System.setOut(new PrintStream(ob, true));
        System.setErr(new PrintStream(eb, true));
        try {
            int code = Main.execute(args);
            return new Run(code, ob.toString(), eb.toString());
        } finally {
            System.setOut(o);
            System.setErr(e);
        }
    }

    static final String MODEL = TestPaths.tinyModel().toString();
    static final String DATA = TestPaths.data().resolve("eval.jsonl").toString();

    public static void assertUserError(Run r, String... mustContain) {
        assertEquals(2, r.code(), "exit code; stderr was: " + r.err());
        for (String s : mustContain) assertTrue(r.err().contains(s), "stderr should mention '" + s + "': " + r.err());
        assertFalse(r.err().contains("\tat "), "no stack trace: " + r.err());
        assertFalse(r.err().contains("Exception"), "no exception names: " + r.err());
    }

    @Test
    void generateAnswersTheGoldenQuestion() {
        // golden sample s0: eval_00000.png, the count question; HF's greedy answer is "C"
        Path img = TestPaths.data().resolve("images/eval_00000.png");
        Run r = run("generate", "--model", MODEL, "--image", img.toString(), "--quiet", "--max-tokens", "4",
                "--prompt", "How many objects are in the image?\nA. one\nB. two\nC. three\nD. four\nAnswer with the option's letter from the given choices directly.");
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().strip().startsWith("C"), r.out());
    }

    @Test
    void generateJsonIsParseable() throws Exception {
        Path img = TestPaths.data().resolve("images/eval_00001.png");
        Run r = run("generate", "--model", MODEL, "--image", img.toString(), "--json", "--max-tokens", "3",
                "--temperature", "0.7", "--seed", "5", "--prompt", "Describe the image.");
        assertEquals(0, r.code(), r.err());
        var node = new com.fasterxml.jackson.databind.ObjectMapper().readTree(r.out());
        assertTrue(node.get("tokens").size() >= 1);
        assertTrue(node.has("decode_tokens_per_s"));
        // the same seed gives the same sample
        Run again = run("generate", "--model", MODEL, "--image", img.toString(), "--json", "--max-tokens", "3",
                "--temperature", "0.7", "--seed", "5", "--prompt", "Describe the image.");
        assertEquals(node.get("tokens"), new com.fasterxml.jackson.databind.ObjectMapper().readTree(again.out()).get("tokens"));
    }

    @Test
    void evalWritesReport(@TempDir Path tmp) throws Exception {
        Path out = tmp.resolve("r.json");
        Run r = run("eval", "--model", MODEL, "--data", DATA, "--limit", "8", "--quiet", "--out", out.toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("overall"), r.out());
        var node = new com.fasterxml.jackson.databind.ObjectMapper().readTree(out.toFile());
        assertEquals(8, node.get("n").asInt());
        assertEquals(8, node.get("predictions").size());
        assertTrue(node.get("per_task").size() >= 1);
        assertFalse(Files.exists(tmp.resolve("r.json.tmp")));
    }

    @Test
    void unknownFlag() {
        assertUserError(run("eval", "--model", MODEL, "--data", DATA, "--bogus"), "--bogus");
    }

    @Test
    void missingModelDir(@TempDir Path tmp) {
        assertUserError(run("eval", "--model", tmp.resolve("nope").toString(), "--data", DATA, "--limit", "1"), "nope");
    }

    @Test
    void missingImageForGenerate(@TempDir Path tmp) {
        assertUserError(run("generate", "--model", MODEL, "--image", tmp.resolve("x.png").toString(), "--prompt", "hi"), "x.png");
    }

    @Test
    void imageThatIsNotAnImage(@TempDir Path tmp) throws Exception {
        Path bad = tmp.resolve("bad.png");
        Files.writeString(bad, "not a png");
        assertUserError(run("generate", "--model", MODEL, "--image", bad.toString(), "--prompt", "hi"), "bad.png");
    }

    @Test
    void malformedJsonlNamesLine(@TempDir Path tmp) throws Exception {
        Path data = tmp.resolve("d.jsonl");
        String good = Files.readAllLines(Path.of(DATA)).get(0);
        Files.writeString(data, good + "\n" + good + "\n{\"question\": \"x\", \"choices\": [\"a\", \n");
        assertUserError(run("eval", "--model", MODEL, "--data", data.toString()), "d.jsonl:3");
    }

    @Test
    void badAnswerIndexNamesLine(@TempDir Path tmp) throws Exception {
        Path data = tmp.resolve("d.jsonl");
        Files.writeString(data, "{\"question\": \"q\", \"choices\": [\"a\", \"b\"], \"answer\": 5}\n");
        assertUserError(run("eval", "--model", MODEL, "--data", data.toString()), "d.jsonl:1", "answer");
    }

    @Test
    void missingImageInDataNamesLine(@TempDir Path tmp) throws Exception {
        Path data = tmp.resolve("d.jsonl");
        Files.writeString(data, "\n{\"question\": \"q\", \"choices\": [\"a\", \"b\"], \"answer\": 1, \"image\": \"missing.png\"}\n");
        assertUserError(run("eval", "--model", MODEL, "--data", data.toString()), "d.jsonl:2", "missing.png");
    }

    @Test
    void emptyDataFile(@TempDir Path tmp) throws Exception {
        Path data = tmp.resolve("empty.jsonl");
        Files.writeString(data, "\n");
        assertUserError(run("eval", "--model", MODEL, "--data", data.toString()), "empty.jsonl");
    }

    @Test
    void unsupportedModelType(@TempDir Path tmp) throws Exception {
        Path dir = tmp.resolve("m");
        Files.createDirectories(dir);
        for (String f : new String[]{"model.safetensors", "tokenizer.json", "preprocessor_config.json"})
            Files.copy(TestPaths.tinyModel().resolve(f), dir.resolve(f));
        String cfg = Files.readString(TestPaths.tinyModel().resolve("config.json")).replace("\"model_type\": \"llava\"", "\"model_type\": \"blip\"");
        Files.writeString(dir.resolve("config.json"), cfg);
        assertUserError(run("eval", "--model", dir.toString(), "--data", DATA, "--limit", "1"), "model_type", "blip");
    }

    @Test
    void badNumbers() {
        assertUserError(run("generate", "--model", MODEL, "--prompt", "x", "--max-tokens", "0"), "--max-tokens");
        assertUserError(run("generate", "--model", MODEL, "--prompt", "x", "--top-p", "1.5"), "--top-p");
        assertUserError(run("eval", "--model", MODEL, "--data", DATA, "--limit", "abc"), "--limit");
        assertUserError(run("eval", "--model", MODEL, "--data", DATA, "--device", "tpu"), "tpu");
    }

    @Test
    void cudaWithoutBackendIsOneClearMessage() {
        assertUserError(run("eval", "--model", MODEL, "--data", DATA, "--limit", "1", "--device", "cuda"), "cuda");
    }

    @Test
    void helpExplains() {
        Run r = run("eval", "--help");
        assertEquals(0, r.code());
        assertTrue(r.out().contains("--limit") && r.out().contains("ScienceQA"), r.out());
    }
}
