package dev.qvlm.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.qvlm.TestPaths;
import dev.qvlm.calib.CheckpointSaver;
import dev.qvlm.calib.Method;
import dev.qvlm.calib.QuantRun;
import dev.qvlm.calib.QuantSettings;
import dev.qvlm.cli.CliTest;
import dev.qvlm.cpu.CpuBackend;
import dev.qvlm.model.Linear;
import dev.qvlm.quant.QuantArgs;
import dev.qvlm.quant.SaveTarget;
import dev.qvlm.runtime.Llava;
import dev.qvlm.safetensors.DType;
import dev.qvlm.safetensors.SafeTensors;
import dev.qvlm.safetensors.SafeTensorsWriter;
import dev.qvlm.safetensors.TensorInfo;
import dev.qvlm.safetensors.WeightStore;
import dev.qvlm.util.Json;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.EnumSet;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The real-size pipeline on a folder with the real layout but narrow widths, fast enough for every CI run: the
 * published llava-1.5-7b-hf config.json with the text stack narrowed to 2 layers of width 256 and the vision tower
 * to 2 layers of width 128 (image size, patch size, vocabulary, tokenizer and key names as in the real model),
 * sharded at 6 MB so the index path is exercised. {@link RealSizePipelineTest} runs the same steps on 2 layers of
 * the real 7B width (slow; run by benchmarks/real-size/run.sh --test).
 */
class RealLayoutPipelineTest {
    @TempDir
    static Path tmp;
    static Path fp16;
    static final long SHARD = 6_000_000;

    static ObjectNode narrowConfig() {
        ObjectNode c = SyntheticFolder.config("llava-1.5-7b");
        ObjectNode t = (ObjectNode) c.get("text_config");
        t.put("hidden_size", 256).put("intermediate_size", 768).put("num_attention_heads", 4)
                .put("num_key_value_heads", 4).put("num_hidden_layers", 2);
        ObjectNode v = (ObjectNode) c.get("vision_config");
        v.put("hidden_size", 128).put("intermediate_size", 512).put("num_attention_heads", 2).put("num_hidden_layers", 2);
        return c;
    }

    static Path tokenizerDir() {
        return TestPaths.root().resolve("models/llava-1.5-tokenizer");
    }

    @BeforeAll
    static void writeFolder() {
        fp16 = tmp.resolve("fp16");
        SyntheticFolder.write(narrowConfig(), tokenizerDir(), fp16, SHARD, 7, null);
    }

    @Test
    void folderHasTheLlavaHfLayout() throws IOException {
        for (String f : List.of("config.json", "model.safetensors.index.json", "tokenizer.json", "tokenizer_config.json",
                "preprocessor_config.json", "generation_config.json"))
            assertTrue(Files.isRegularFile(fp16.resolve(f)), f);
        assertEquals(narrowConfig(), Json.read(fp16.resolve("config.json")), "config.json is the published one, narrowed");
        assertArrayEquals(Files.readAllBytes(tokenizerDir().resolve("tokenizer.json")), Files.readAllBytes(fp16.resolve("tokenizer.json")));

        JsonNode index = Json.read(fp16.resolve("model.safetensors.index.json"));
        Set<String> shards = new HashSet<>();
        index.get("weight_map").forEach(n -> shards.add(n.asText()));
        assertTrue(shards.size() >= 3, "several shards: " + shards);
        long total = 0;
        Set<String> inFiles = new HashSet<>();
        for (String s : shards) {
            assertTrue(s.matches("model-\\d{5}-of-\\d{5}\\.safetensors"), s);
            try (SafeTensors st = SafeTensors.open(fp16.resolve(s))) {
                long bytes = 0;
                for (String n : st.names()) {
                    TensorInfo t = st.info(n);
                    assertEquals(DType.F16, t.dtype(), n);
                    assertEquals(s, index.get("weight_map").get(n).asText(), n);
                    bytes += t.end() - t.begin();
                    inFiles.add(n);
                }
                assertTrue(bytes <= SHARD || st.names().size() == 1, s + " holds " + bytes + " bytes");
                total += bytes;
            }
        }
        assertEquals(total, index.get("metadata").get("total_size").asLong());
        Set<String> listed = new HashSet<>();
        index.get("weight_map").fieldNames().forEachRemaining(listed::add);
        assertEquals(listed, inFiles, "the index lists exactly the stored tensors");
        for (String k : List.of("language_model.model.embed_tokens.weight", "language_model.model.layers.1.mlp.down_proj.weight",
                "language_model.lm_head.weight", "multi_modal_projector.linear_2.bias",
                "vision_tower.vision_model.encoder.layers.1.self_attn.q_proj.bias",
                "vision_tower.vision_model.pre_layrnorm.weight", "vision_tower.vision_model.post_layernorm.weight"))
            assertTrue(listed.contains(k), k);
        try (WeightStore ws = WeightStore.open(fp16)) {
            TensorInfo e = ws.info("language_model.model.embed_tokens.weight");
            assertArrayEquals(new long[]{32064, 256}, e.shape());
            assertArrayEquals(new long[]{128, 3, 14, 14}, ws.info("vision_tower.vision_model.embeddings.patch_embedding.weight").shape());
            assertArrayEquals(new long[]{577, 128}, ws.info("vision_tower.vision_model.embeddings.position_embedding.weight").shape());
        }
    }

    @Test
    void randomWeightsHaveTheIntendedScaleAndAreSeeded() {
        try (WeightStore ws = WeightStore.open(fp16)) {
            double[] m = moments(ws.toFloatArray("language_model.model.layers.0.mlp.up_proj.weight"));
            assertEquals(0, m[0], 2e-4, "mean");
            assertEquals(0.02, m[1], 0.0004, "std = initializer_range");
            float[] norm = ws.toFloatArray("language_model.model.layers.0.input_layernorm.weight");
            for (float x : norm) assertTrue(Math.abs(x - 1) <= 0.0347, "norm weight " + x);
        }
        // same seed, same bytes; another seed, other bytes
        Path again = tmp.resolve("again"), other = tmp.resolve("other");
        ObjectNode one = narrowConfig();
        SyntheticFolder.capLayers(one, 1, 1);
        SyntheticFolder.write(one, tokenizerDir(), again, Long.MAX_VALUE, 7, null);
        SyntheticFolder.write(one, tokenizerDir(), other, Long.MAX_VALUE, 8, null);
        try (WeightStore a = WeightStore.open(fp16); WeightStore b = WeightStore.open(again); WeightStore c = WeightStore.open(other)) {
            String k = "language_model.model.layers.0.self_attn.q_proj.weight";
            assertEquals(-1, a.segment(k).mismatch(b.segment(k)));
            assertTrue(a.segment(k).mismatch(c.segment(k)) >= 0);
        }
        assertTrue(Files.isRegularFile(again.resolve("model.safetensors")), "one file when no shard limit is hit");
    }

    private static double[] moments(float[] v) {
        double s = 0, s2 = 0;
        for (float x : v) {
            s += x;
            s2 += (double) x * x;
        }
        double mean = s / v.length;
        return new double[]{mean, Math.sqrt(s2 / v.length - mean * mean)};
    }

    @Test
    void pipelineGenerateQuantizeGenerateEval() throws IOException {
        String img = TestPaths.data().resolve("images/eval_00000.png").toString();
        CliTest.Run g = CliTest.run("generate", "--model", fp16.toString(), "--image", img, "--prompt", "Describe the image.",
                "--max-tokens", "2", "--json");
        assertEquals(0, g.code(), g.err());
        assertEquals(2, Json.parse(g.out(), "generate").get("tokens").size());

        // weight-only RTN without --calib streams from the stored weights ...
        Path w4 = tmp.resolve("w4");
        CliTest.Run q = CliTest.run("quantize", "--model", fp16.toString(), "--method", "rtn", "--wbits", "4", "--group", "128",
                "--out", w4.toString(), "--quiet");
        assertEquals(0, q.code(), q.err());
        // ... and saves exactly what the calibrated path saves for the same setting
        Path calibrated = tmp.resolve("w4-calibrated");
        CliTest.Run qc = CliTest.run("quantize", "--model", fp16.toString(), "--method", "rtn", "--wbits", "4", "--group", "128",
                "--calib", TestPaths.data().resolve("calib.jsonl").toString(), "--calib-samples", "1", "--out", calibrated.toString(), "--quiet");
        assertEquals(0, qc.code(), qc.err());
        assertSameTensors(calibrated, w4);
        JsonNode qcfg = Json.read(w4.resolve("config.json")).get("quantization_config");
        assertEquals("pack-quantized", qcfg.get("format").asText());
        try (WeightStore ws = WeightStore.open(w4)) {
            assertTrue(ws.contains("language_model.model.layers.1.mlp.down_proj.weight_packed"));
            assertTrue(ws.contains("vision_tower.vision_model.encoder.layers.0.mlp.fc1.weight_packed"));
            assertFalse(ws.contains("language_model.model.layers.1.mlp.down_proj.weight"));
            assertEquals(DType.F16, ws.info("language_model.lm_head.weight").dtype());
        }

        CliTest.Run g4 = CliTest.run("generate", "--model", w4.toString(), "--image", img, "--prompt", "Describe the image.",
                "--max-tokens", "2", "--json");
        assertEquals(0, g4.code(), g4.err());
        Path report = tmp.resolve("eval.json");
        CliTest.Run e = CliTest.run("eval", "--model", w4.toString(), "--data", TestPaths.data().resolve("eval.jsonl").toString(),
                "--limit", "2", "--out", report.toString(), "--quiet");
        assertEquals(0, e.code(), e.err());
        assertEquals(2, Json.read(report).get("n").asInt());

        CliTest.Run bad = CliTest.run("quantize", "--model", fp16.toString(), "--method", "qvlm", "--wbits", "4", "--abits", "4", "--target", "qvlm", "--out", tmp.resolve("x").toString());
        CliTest.assertUserError(bad, "--calib is required");
    }

    @Test
    void savingInSmallShardsWritesAnIndexAndTheSameTensors() {
        QuantSettings st = new QuantSettings(Method.RTN, QuantArgs.perGroup(4, false, 128), null, false,
                EnumSet.of(Linear.Part.VISION, Linear.Part.PROJECTOR, Linear.Part.LLM),
                QuantSettings.PAPER_GRID, Double.NaN, 3, 1, 125, 4, false, 2);
        Path one = tmp.resolve("one"), many = tmp.resolve("many");
        try (Llava llava = Llava.open(fp16, new CpuBackend(false))) {
            CheckpointSaver.save(llava, QuantRun.weightOnlyReport(st, 0), st, SaveTarget.QVLM, QuantRun.weightOnlyRtn(st), one, false, Long.MAX_VALUE, null);
            CheckpointSaver.save(llava, QuantRun.weightOnlyReport(st, 0), st, SaveTarget.QVLM, QuantRun.weightOnlyRtn(st), many, false, 2_000_000, null);
        }
        assertTrue(Files.isRegularFile(one.resolve("model.safetensors")));
        assertFalse(Files.exists(many.resolve("model.safetensors")));
        JsonNode index = Json.read(many.resolve("model.safetensors.index.json"));
        Set<String> shards = new HashSet<>();
        index.get("weight_map").forEach(n -> shards.add(n.asText()));
        assertTrue(shards.size() > 3, "shards: " + shards);
        assertSameTensors(one, many);
    }

    @Test
    void streamingWriterRejectsAProducerThatWritesTheWrongSize() {
        Path f = tmp.resolve("bad.safetensors");
        var specs = List.of(new SafeTensorsWriter.Spec("a", DType.F32, new long[]{4}));
        assertThrows(IllegalStateException.class, () -> SafeTensorsWriter.writeStreaming(f, Map.of(), specs,
                (t, os) -> os.write(new byte[12])));
        assertFalse(Files.exists(f));
        assertFalse(Files.exists(tmp.resolve("bad.safetensors.tmp")), "no half-written file");
        SafeTensorsWriter.writeStreaming(f, Map.of(), specs, (t, os) -> {
            byte[] b = new byte[16];
            MemorySegment.ofArray(b).setAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 2, 1.5f);
            os.write(b);
        });
        try (SafeTensors st = SafeTensors.open(f)) {
            assertArrayEquals(new float[]{0, 0, 1.5f, 0}, st.toFloatArray("a"));
        }
    }

    /** Every tensor of folder a is in folder b with the same dtype, shape and bytes, and vice versa. */
    static void assertSameTensors(Path a, Path b) {
        try (WeightStore x = WeightStore.open(a); WeightStore y = WeightStore.open(b)) {
            assertEquals(x.names(), y.names());
            for (String n : x.names()) {
                assertEquals(x.info(n).dtype(), y.info(n).dtype(), n);
                assertArrayEquals(x.info(n).shape(), y.info(n).shape(), n);
                assertEquals(-1, x.segment(n).mismatch(y.segment(n)), n);
            }
        }
    }
}
