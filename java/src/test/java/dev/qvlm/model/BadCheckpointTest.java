package dev.qvlm.model;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.qvlm.QvlmException;
import dev.qvlm.model.TinyModelFixtures.Recode;
import dev.qvlm.safetensors.DType;
import dev.qvlm.safetensors.SafeTensors;
import dev.qvlm.safetensors.SafeTensorsWriter;
import dev.qvlm.safetensors.TensorInfo;
import dev.qvlm.util.Json;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Comparator;

import static dev.qvlm.model.TinyModelFixtures.copyNonWeights;
import static dev.qvlm.model.TinyModelFixtures.openOriginalWeights;
import static dev.qvlm.model.TinyModelFixtures.original;
import static dev.qvlm.model.TinyModelFixtures.variant;
import static dev.qvlm.model.TinyModelFixtures.withConfig;
import static dev.qvlm.model.TinyModelFixtures.without;
import static dev.qvlm.model.TinyModelFixtures.writeWeights;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Broken model folders must be refused by {@link Checkpoint#open} with a {@link QvlmException} whose message names
 * the culprit: the file, the tensor, the config key or the JSON line, and what was expected.
 */
class BadCheckpointTest {
    @TempDir
    Path dir;

    static QvlmException assertOpenFails(Path modelDir, String... fragments) {
        QvlmException e = assertThrows(QvlmException.class, () -> Checkpoint.open(modelDir).close(),
                "opening " + modelDir + " must fail");
        String m = e.getMessage();
        for (String f : fragments) assertTrue(m.contains(f), "message should contain '" + f + "': " + m);
        return e;
    }

    @Test
    void theUntouchedCopyOpens() {
        // control for everything below: the fixture itself is a valid model folder
        try (Checkpoint c = Checkpoint.open(variant(dir, n -> n, Recode.AS_IS))) {
            assertEquals(4, c.weights().text.layers().length);
        }
    }

    // ---------------------------------------------------------------- weights

    @Test
    void missingTensor() {
        without(dir, "language_model.model.layers.1.mlp.up_proj.weight");
        assertOpenFails(dir, dir.toString(), "missing tensor", "layers.1.mlp.up_proj.weight");
    }

    @Test
    void missingTensorIsNamedInTheCheckpointsOwnLayout() {
        without(dir, "language_model.model.layers.1.mlp.up_proj.weight");
        assertOpenFails(dir, "language_model.model.layers.1.mlp.up_proj.weight");
    }

    @Test
    void missingVisionTensor() {
        without(dir, "vision_tower.encoder.layers.2.self_attn.k_proj.bias");
        assertOpenFails(dir, "missing tensor", "layers.2.self_attn.k_proj.bias");
    }

    @Test
    void missingLmHeadWithoutTiedEmbeddings() {
        without(dir, "language_model.lm_head.weight");
        assertOpenFails(dir, "missing tensor", "lm_head.weight");
    }

    @Test
    void tensorShapeDisagreesWithConfig() {
        withConfig(dir, c -> ((ObjectNode) c.get("text_config")).put("intermediate_size", 512));
        QvlmException e = assertOpenFails(dir, "language_model.model.layers.0.mlp.gate_proj.weight",
                "[768, 256]", "[512, 256]", "config.json");
        assertTrue(e.getMessage().contains(dir.resolve("model.safetensors").toString()), e.getMessage());
    }

    @Test
    void visionShapeDisagreesWithConfig() {
        // image_size 128 / patch 8 → 257 positions, the file has 65
        withConfig(dir, c -> ((ObjectNode) c.get("vision_config")).put("image_size", 128));
        assertOpenFails(dir, "vision_tower.embeddings.position_embedding.weight", "[65, 128]", "[257, 128]");
    }

    @Test
    void integerTensorWhereAWeightMatrixBelongs() {
        copyNonWeights(dir);
        String victim = "language_model.model.layers.2.self_attn.q_proj.weight";
        try (SafeTensors src = openOriginalWeights()) {
            SafeTensorsWriter w = new SafeTensorsWriter();
            for (String n : src.names()) {
                TensorInfo t = src.info(n);
                w.add(n, n.equals(victim) ? DType.I16 : t.dtype(), t.shape(), src.segment(n)); // same byte size
            }
            w.write(dir.resolve("model.safetensors"));
        }
        assertOpenFails(dir, victim, "I16", "F16");
    }

    @Test
    void integerTensorWhereANormBelongs() {
        copyNonWeights(dir);
        String victim = "language_model.model.layers.0.input_layernorm.weight";
        try (SafeTensors src = openOriginalWeights()) {
            SafeTensorsWriter w = new SafeTensorsWriter();
            for (String n : src.names()) {
                TensorInfo t = src.info(n);
                w.add(n, n.equals(victim) ? DType.I16 : t.dtype(), t.shape(), src.segment(n));
            }
            w.write(dir.resolve("model.safetensors"));
        }
        assertOpenFails(dir, victim, "I16", "float");
    }

    @Test
    void truncatedWeightFile() throws IOException {
        variant(dir, n -> n, Recode.AS_IS);
        Path f = dir.resolve("model.safetensors");
        String last;
        try (SafeTensors st = SafeTensors.open(f)) {
            last = st.names().stream().max(Comparator.comparingLong(n -> st.info(n).end())).orElseThrow();
        }
        byte[] b = Files.readAllBytes(f);
        Files.write(f, Arrays.copyOf(b, b.length - 2));
        assertOpenFails(dir, f.toString(), "'" + last + "'", "truncated");
    }

    @Test
    void noWeightFilesAtAll() {
        copyNonWeights(dir);
        assertOpenFails(dir, dir.toString(), "no model.safetensors");
    }

    // ---------------------------------------------------------------- shards

    Path sharded(String indexJson) throws IOException {
        copyNonWeights(dir);
        try (SafeTensors src = openOriginalWeights()) {
            writeWeights(src, dir.resolve("model-00001-of-00002.safetensors"), n -> n.startsWith("vision_tower."),
                    n -> n, Recode.AS_IS);
        }
        Files.writeString(dir.resolve("model.safetensors.index.json"), indexJson);
        return dir;
    }

    @Test
    void indexPointsAtAMissingShard() throws IOException {
        ObjectNode idx = Json.MAPPER.createObjectNode();
        ObjectNode wm = idx.putObject("weight_map");
        try (SafeTensors src = openOriginalWeights()) {
            for (String n : src.names())
                wm.put(n, n.startsWith("vision_tower.") ? "model-00001-of-00002.safetensors"
                        : "model-00002-of-00002.safetensors");
        }
        sharded(Json.write(idx));
        assertOpenFails(dir, "model-00002-of-00002.safetensors", "model.safetensors.index.json", "missing");
    }

    @Test
    void malformedIndex() throws IOException {
        sharded("{\"weight_map\": {\"a\": \"model-00001-of-00002.safetensors\",}");
        assertOpenFails(dir, "model.safetensors.index.json", "malformed JSON");
    }

    @Test
    void indexWithoutWeightMap() throws IOException {
        sharded("{\"metadata\": {\"total_size\": 1}}");
        assertOpenFails(dir, "model.safetensors.index.json", "weight_map");
    }

    @Test
    void indexWhoseShardsLackATensor() throws IOException {
        // the index lists only the vision shard, which exists: the decoder weights are then missing
        ObjectNode idx = Json.MAPPER.createObjectNode();
        idx.putObject("weight_map").put("vision_tower.embeddings.class_embedding", "model-00001-of-00002.safetensors");
        sharded(Json.write(idx));
        assertOpenFails(dir, "missing tensor", "projector.linear_1.weight");
    }

    // ---------------------------------------------------------------- config.json

    @Test
    void unsupportedModelType() {
        withConfig(dir, c -> c.put("model_type", "gpt2"));
        assertOpenFails(dir, dir.resolve("config.json").toString(), "unsupported model_type 'gpt2'", "llava");
    }

    @Test
    void unsupportedTextModelType() {
        withConfig(dir, c -> ((ObjectNode) c.get("text_config")).put("model_type", "mistral"));
        assertOpenFails(dir, "config.json", "text_config.model_type 'mistral'");
    }

    @Test
    void unsupportedRopeScaling() {
        withConfig(dir, c -> ((ObjectNode) c.get("text_config").get("rope_parameters")).put("rope_type", "linear"));
        assertOpenFails(dir, "config.json", "rope type 'linear'");
    }

    @Test
    void nonPositiveOrNonIntegerSizes() throws IOException {
        withConfig(dir, c -> ((ObjectNode) c.get("text_config")).put("intermediate_size", 0));
        assertOpenFails(dir, "config.json", "text_config.intermediate_size", "positive integer");
        TinyModelFixtures.editConfig(dir, c -> ((ObjectNode) c.get("text_config")).put("intermediate_size", "768"));
        assertOpenFails(dir, "config.json", "text_config.intermediate_size");
    }

    @Test
    void headsNotAMultipleOfKvHeads() {
        withConfig(dir, c -> ((ObjectNode) c.get("text_config")).put("num_key_value_heads", 3));
        assertOpenFails(dir, "config.json", "num_attention_heads 8", "num_key_value_heads 3");
    }

    @Test
    void malformedConfigNamesTheLine() throws IOException {
        variant(dir, n -> n, Recode.AS_IS);
        // a missing comma at the end of line 4: the parser trips over the key that starts line 5
        Files.writeString(dir.resolve("config.json"), """
                {
                  "model_type": "llava",
                  "text_config": {
                    "hidden_size": 256
                    "intermediate_size": 768
                  }
                }
                """);
        assertOpenFails(dir, dir.resolve("config.json").toString(), "malformed JSON", "line 5");
    }

    @Test
    void truncatedConfig() throws IOException {
        variant(dir, n -> n, Recode.AS_IS);
        String text = Files.readString(original().resolve("config.json"));
        Files.writeString(dir.resolve("config.json"), text.substring(0, text.length() / 2));
        assertOpenFails(dir, "config.json", "malformed JSON", "line ");
    }

    @Test
    void emptyConfig() throws IOException {
        variant(dir, n -> n, Recode.AS_IS);
        Files.writeString(dir.resolve("config.json"), "");
        assertOpenFails(dir, "config.json");
    }

    @Test
    void configIsNotAnObject() throws IOException {
        variant(dir, n -> n, Recode.AS_IS);
        Files.writeString(dir.resolve("config.json"), "[\"llava\"]");
        assertOpenFails(dir, "config.json", "JSON object");
    }

    @Test
    void missingConfig() throws IOException {
        variant(dir, n -> n, Recode.AS_IS);
        Files.delete(dir.resolve("config.json"));
        assertOpenFails(dir, dir.toString(), "no config.json");
    }

    @Test
    void missingModelFolder() {
        Path absent = dir.resolve("no-such-model");
        assertOpenFails(absent, absent.toString(), "not found");
    }

    @Test
    void aFileInsteadOfAFolder() throws IOException {
        Path f = Files.writeString(dir.resolve("model.safetensors"), "x");
        assertOpenFails(f, f.toString(), "is a file");
    }
}
