package dev.qvlm.model;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.qvlm.QvlmException;
import dev.qvlm.config.LlavaConfig;
import dev.qvlm.model.TinyModelFixtures.Recode;
import dev.qvlm.model.TinyModelFixtures.Sample;
import dev.qvlm.safetensors.DType;
import dev.qvlm.safetensors.SafeTensors;
import dev.qvlm.safetensors.TensorInfo;
import dev.qvlm.util.Json;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.function.UnaryOperator;

import static dev.qvlm.model.TinyModelFixtures.copyNonWeights;
import static dev.qvlm.model.TinyModelFixtures.editConfig;
import static dev.qvlm.model.TinyModelFixtures.logits;
import static dev.qvlm.model.TinyModelFixtures.openOriginalWeights;
import static dev.qvlm.model.TinyModelFixtures.original;
import static dev.qvlm.model.TinyModelFixtures.variant;
import static dev.qvlm.model.TinyModelFixtures.withConfig;
import static dev.qvlm.model.TinyModelFixtures.writeWeights;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The same tiny model written in every layout a Hugging Face LLaVA folder comes in — transformers-4 and -5 tensor
 * names, with and without the CLIP {@code vision_model.} level, a transformers-4 config.json, HF defaults, shards,
 * F32 and BF16 re-encodings — must load and give the original's logits for golden sample s0 at every position.
 * Where the weights are bit-identical the logits must be too (exact float equality: the same kernels run on the
 * same FP32 values in the same order).
 */
class CheckpointLayoutTest {
    static Sample s0;
    static float[] reference;
    static int vocab;

    @BeforeAll
    static void reference() {
        s0 = Sample.load("s0");
        try (Checkpoint c = Checkpoint.open(original())) {
            vocab = c.config().text().vocabSize();
            // The CPU kernels are not bit-reproducible across JIT tiers: VectorMath.dot/dot4 end in
            // FloatVector.reduceLanes(ADD), whose lane order differs between the interpreted fallback and the C2
            // intrinsic, so the very first forward pass in a JVM can differ in the last bits from later ones.
            // Take the reference once two consecutive passes agree bit for bit (see the report on this test).
            float[] prev = logits(c, s0);
            for (int run = 1; ; run++) {
                float[] next = logits(c, s0);
                if (Arrays.equals(prev, next)) break;
                if (run == 6) throw new AssertionError("the original's logits change from run to run even when warm");
                prev = next;
            }
            reference = prev;
        }
        assertEquals(s0.ids().length * vocab, reference.length);
        for (float f : reference) assertTrue(Float.isFinite(f), "reference logits must be finite");
    }

    static void assertIdentical(String what, float[] actual) {
        assertEquals(reference.length, actual.length, what + ": logits length");
        for (int i = 0; i < reference.length; i++)
            if (Float.floatToIntBits(reference[i]) != Float.floatToIntBits(actual[i]))
                throw new AssertionError(what + ": logits differ at position " + i / vocab + ", token " + i % vocab
                        + ": " + actual[i] + " vs original " + reference[i]);
    }

    static double maxAbsDiff(float[] a, float[] b) {
        double m = 0;
        for (int i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
        return m;
    }

    static double maxAbs(float[] a) {
        double m = 0;
        for (float f : a) m = Math.max(m, Math.abs(f));
        return m;
    }

    static Set<String> storedNames(Path file) {
        try (SafeTensors st = SafeTensors.open(file)) {
            return new HashSet<>(st.names());
        }
    }

    /** transformers-4 (bundled) key → transformers-5 key. */
    static String toV5(String k, boolean visionModelLevel) {
        if (k.startsWith("language_model.model.")) return "model.language_model." + k.substring("language_model.model.".length());
        if (k.startsWith("language_model.lm_head.")) return k.substring("language_model.".length());
        if (k.startsWith("vision_tower."))
            return "model.vision_tower." + (visionModelLevel ? "vision_model." : "") + k.substring("vision_tower.".length());
        if (k.startsWith("multi_modal_projector.")) return "model." + k;
        throw new AssertionError("unexpected key in the bundled model: " + k);
    }

    @Test
    void bundledModelIsInTheTransformers4Layout() {
        // the premise of the renames below: every key is in the transformers-4 layout without vision_model.
        Set<String> names = storedNames(original().resolve("model.safetensors"));
        assertTrue(names.contains("language_model.lm_head.weight"));
        assertTrue(names.contains("vision_tower.embeddings.patch_embedding.weight"));
        for (String n : names) toV5(n, false);
    }

    @Test
    void sameBytesUnderTheSameNamesGiveIdenticalLogits(@TempDir Path dir) {
        // control: rewriting through SafeTensorsWriter alone changes nothing
        assertIdentical("rewritten copy", logits(variant(dir, n -> n, Recode.AS_IS), s0));
    }

    @Test
    void transformers5Layout(@TempDir Path dir) {
        variant(dir, n -> toV5(n, false), Recode.AS_IS);
        Set<String> names = storedNames(dir.resolve("model.safetensors"));
        assertTrue(names.contains("model.language_model.layers.0.self_attn.q_proj.weight"));
        assertTrue(names.contains("lm_head.weight"));
        assertTrue(names.contains("model.vision_tower.embeddings.patch_embedding.weight"));
        assertTrue(names.contains("model.multi_modal_projector.linear_1.weight"));
        assertFalse(names.stream().anyMatch(n -> n.startsWith("language_model.") || n.startsWith("vision_tower.")
                || n.startsWith("multi_modal_projector.")), "no transformers-4 key left");
        assertIdentical("transformers-5 layout", logits(dir, s0));
    }

    @Test
    void transformers5LayoutWithVisionModelLevel(@TempDir Path dir) {
        // what transformers 5 writes for a real CLIP tower: model.vision_tower.vision_model.*
        variant(dir, n -> toV5(n, true), Recode.AS_IS);
        assertTrue(storedNames(dir.resolve("model.safetensors"))
                .contains("model.vision_tower.vision_model.encoder.layers.3.mlp.fc2.weight"));
        assertIdentical("transformers-5 layout with vision_model.", logits(dir, s0));
    }

    @Test
    void llavaHfLayoutWithVisionModelLevel(@TempDir Path dir) {
        // llava-hf/llava-1.5-7b-hf: language_model.model.*, language_model.lm_head.*, vision_tower.vision_model.*
        UnaryOperator<String> r = n -> n.startsWith("vision_tower.") ? "vision_tower.vision_model." + n.substring(13) : n;
        variant(dir, r, Recode.AS_IS);
        Set<String> names = storedNames(dir.resolve("model.safetensors"));
        assertTrue(names.contains("vision_tower.vision_model.embeddings.class_embedding"));
        assertTrue(names.contains("language_model.lm_head.weight"));
        assertTrue(names.contains("multi_modal_projector.linear_2.bias"));
        assertIdentical("llava-hf layout", logits(dir, s0));
    }

    @Test
    void unrelatedExtraTensorsAreIgnored(@TempDir Path dir) {
        // older checkpoints carry buffers such as rotary_emb.inv_freq and CLIP's position_ids; they are not weights
        copyNonWeights(dir);
        try (SafeTensors src = openOriginalWeights()) {
            var w = new dev.qvlm.safetensors.SafeTensorsWriter();
            for (String n : src.names()) w.add(n, src.info(n).dtype(), src.info(n).shape(), src.segment(n));
            w.addF32("language_model.model.layers.0.self_attn.rotary_emb.inv_freq", new long[]{16}, new float[16]);
            w.addI64("vision_tower.embeddings.position_ids", new long[]{1, 65}, new long[65]);
            w.write(dir.resolve("model.safetensors"));
        }
        assertIdentical("with extra buffers", logits(dir, s0));
    }

    @Test
    void aSingleChangedWeightIsNoticed(@TempDir Path dir) {
        // the exact comparison above is sharp: one F16 weight moved by one ulp must change the logits
        copyNonWeights(dir);
        String victim = "language_model.model.layers.3.mlp.down_proj.weight";
        try (SafeTensors src = openOriginalWeights()) {
            var w = new dev.qvlm.safetensors.SafeTensorsWriter();
            for (String n : src.names()) {
                java.lang.foreign.MemorySegment seg = src.segment(n);
                if (n.equals(victim)) {
                    seg = java.lang.foreign.MemorySegment.ofArray(seg.toArray(java.lang.foreign.ValueLayout.JAVA_BYTE));
                    seg.set(java.lang.foreign.ValueLayout.JAVA_BYTE, 0, (byte) (seg.get(java.lang.foreign.ValueLayout.JAVA_BYTE, 0) ^ 1));
                }
                w.add(n, src.info(n).dtype(), src.info(n).shape(), seg);
            }
            w.write(dir.resolve("model.safetensors"));
        }
        float[] l = logits(dir, s0);
        assertThrows(AssertionError.class, () -> assertIdentical("one changed weight", l));
    }

    // ---------------------------------------------------------------- config.json forms

    /** The bundled transformers-5 config rewritten the way transformers 4 saved it. */
    static void toV4Config(ObjectNode c) {
        c.set("torch_dtype", c.remove("dtype"));
        ObjectNode t = (ObjectNode) c.get("text_config");
        ObjectNode rp = (ObjectNode) t.remove("rope_parameters");
        t.set("rope_theta", rp.get("rope_theta"));
        t.putNull("rope_scaling");
        t.put("torch_dtype", "float16");
        c.put("transformers_version", "4.45.2");
    }

    @Test
    void transformers4Config(@TempDir Path dir) {
        withConfig(dir, CheckpointLayoutTest::toV4Config);
        ObjectNode c = TinyModelFixtures.readConfig(dir);
        assertFalse(c.has("dtype"));
        assertFalse(c.get("text_config").has("rope_parameters"));
        try (Checkpoint ck = Checkpoint.open(dir)) {
            assertEquals("float16", ck.config().dtype());
            assertEquals(10000.0, ck.config().text().ropeTheta());
            assertIdentical("transformers-4 config.json", logits(ck, s0));
        }
    }

    @Test
    void transformers4RopeThetaIsRead(@TempDir Path dir) {
        // guards the test above against a loader that ignores text_config.rope_theta and uses the 10000 default
        withConfig(dir, c -> {
            toV4Config(c);
            ((ObjectNode) c.get("text_config")).put("rope_theta", 500000.0);
        });
        try (Checkpoint ck = Checkpoint.open(dir)) {
            assertEquals(500000.0, ck.config().text().ropeTheta());
            float[] l = logits(ck, s0);
            assertTrue(maxAbsDiff(reference, l) > 1e-3, "a different rope_theta must change the logits");
        }
    }

    @Test
    void transformers5RopeThetaIsRead(@TempDir Path dir) {
        withConfig(dir, c -> ((ObjectNode) c.get("text_config").get("rope_parameters")).put("rope_theta", 500000.0));
        try (Checkpoint ck = Checkpoint.open(dir)) {
            assertEquals(500000.0, ck.config().text().ropeTheta());
            assertTrue(maxAbsDiff(reference, logits(ck, s0)) > 1e-3, "a different rope_theta must change the logits");
        }
    }

    @Test
    void minimalConfigRelyingOnHfDefaults(@TempDir Path dir) {
        // every key dropped here is at the value HF's LlavaConfig / LlamaConfig / CLIPVisionConfig default to
        withConfig(dir, c -> {
            for (String k : List.of("dtype", "image_seq_length", "multimodal_projector_bias", "projector_hidden_act",
                    "tie_word_embeddings", "vision_feature_layer", "vision_feature_select_strategy", "architectures",
                    "transformers_version"))
                c.remove(k);
            ObjectNode t = (ObjectNode) c.get("text_config");
            // head_dim 32 = hidden_size 256 / num_attention_heads 8; rope_theta 10000 is LlamaConfig's default
            for (String k : List.of("head_dim", "rope_parameters", "attention_bias", "mlp_bias", "hidden_act",
                    "model_type", "tie_word_embeddings", "attention_dropout", "initializer_range", "pretraining_tp",
                    "use_cache", "bos_token_id", "eos_token_id", "pad_token_id"))
                assertTrue(t.remove(k) != null, "fixture: text_config." + k + " present");
            ObjectNode v = (ObjectNode) c.get("vision_config");
            for (String k : List.of("hidden_act", "layer_norm_eps", "num_channels", "model_type", "attention_dropout",
                    "initializer_factor", "initializer_range", "projection_dim"))
                assertTrue(v.remove(k) != null, "fixture: vision_config." + k + " present");
        });
        try (Checkpoint ck = Checkpoint.open(dir)) {
            LlavaConfig cfg = ck.config();
            assertEquals(32, cfg.text().headDim());
            assertEquals(4, cfg.text().numKvHeads(), "num_key_value_heads kept");
            assertEquals(10000.0, cfg.text().ropeTheta());
            assertEquals(1e-5f, cfg.text().rmsNormEps(), "rms_norm_eps kept (its default 1e-6 differs)");
            assertEquals(3, cfg.visionFeatureLayer(), "vision_feature_layer -2 of 4 layers = hidden state 4 + 1 - 2");
            assertEquals(64, cfg.imageSeqLength());
            assertTrue(cfg.dropClsToken());
            assertTrue(cfg.projectorBias());
            assertEquals("float32", cfg.dtype(), "HF's default dtype when none is saved");
            assertIdentical("config relying on defaults", logits(ck, s0));
        }
    }

    @Test
    void droppedRmsNormEpsTakesLlamaDefault(@TempDir Path dir) {
        // LlamaConfig's rms_norm_eps default is 1e-6, not the 1e-5 the tiny model was saved with: dropping it must
        // change the model, which shows the default is really applied (and that this comparison can fail)
        withConfig(dir, c -> ((ObjectNode) c.get("text_config")).remove("rms_norm_eps"));
        try (Checkpoint ck = Checkpoint.open(dir)) {
            assertEquals(1e-6f, ck.config().text().rmsNormEps());
            float[] l = logits(ck, s0);
            assertTrue(maxAbsDiff(reference, l) > 0, "rms_norm_eps 1e-6 must change the logits");
        }
    }

    @Test
    void droppedNumKeyValueHeadsDefaultsToHeadsAndClashesWithTheWeights(@TempDir Path dir) {
        // num_key_value_heads defaults to num_attention_heads (8), so k_proj would be [256, 256]; the tiny model's
        // is [128, 256] (4 kv heads): the folder must be rejected, naming the tensor and both shapes
        withConfig(dir, c -> ((ObjectNode) c.get("text_config")).remove("num_key_value_heads"));
        QvlmException e = assertThrows(QvlmException.class, () -> Checkpoint.open(dir).close());
        assertTrue(e.getMessage().contains("language_model.model.layers.0.self_attn.k_proj.weight"), e.getMessage());
        assertTrue(e.getMessage().contains("[128, 256]") && e.getMessage().contains("[256, 256]"), e.getMessage());
    }

    @Test
    void imageTokenIdSpellingOfTransformers5(@TempDir Path dir) {
        // transformers 5 may save image_token_id instead of image_token_index
        withConfig(dir, c -> c.set("image_token_id", c.remove("image_token_index")));
        try (Checkpoint ck = Checkpoint.open(dir)) {
            assertEquals(579, ck.config().imageTokenIndex());
            assertIdentical("image_token_id", logits(ck, s0));
        }
    }

    // ---------------------------------------------------------------- shards

    @Test
    void shardedWithIndex(@TempDir Path dir) throws IOException {
        copyNonWeights(dir);
        Set<String> first = new HashSet<>();
        List<String> all = new ArrayList<>();
        try (SafeTensors src = openOriginalWeights()) {
            all.addAll(src.names());
            // split in the middle of the decoder and across stacks: vision + half the decoder, then the rest
            for (String n : all)
                if (n.startsWith("vision_tower.") || n.contains("layers.0.") || n.contains("layers.1.")
                        || n.equals("language_model.lm_head.weight"))
                    first.add(n);
            writeWeights(src, dir.resolve("model-00001-of-00002.safetensors"), first::contains, n -> n, Recode.AS_IS);
            writeWeights(src, dir.resolve("model-00002-of-00002.safetensors"), n -> !first.contains(n), n -> n, Recode.AS_IS);
        }
        ObjectNode idx = Json.MAPPER.createObjectNode();
        idx.putObject("metadata").put("total_size", 8741888);
        ObjectNode wm = idx.putObject("weight_map");
        for (String n : all) wm.put(n, first.contains(n) ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors");
        Files.writeString(dir.resolve("model.safetensors.index.json"), Json.write(idx));

        assertFalse(Files.exists(dir.resolve("model.safetensors")));
        assertTrue(first.size() > 10 && first.size() < all.size() - 10, "both shards hold a real share");
        assertEquals(all.size(), storedNames(dir.resolve("model-00001-of-00002.safetensors")).size()
                + storedNames(dir.resolve("model-00002-of-00002.safetensors")).size());
        try (Checkpoint ck = Checkpoint.open(dir)) {
            // weights really come from both files
            assertEquals("model-00001-of-00002.safetensors",
                    ck.store().info("language_model.model.layers.0.mlp.up_proj.weight").file().getFileName().toString());
            assertEquals("model-00002-of-00002.safetensors",
                    ck.store().info("language_model.model.layers.3.mlp.up_proj.weight").file().getFileName().toString());
            assertIdentical("sharded with index", logits(ck, s0));
        }
    }

    @Test
    void shardedTransformers5LayoutWithoutIndex(@TempDir Path dir) {
        // no index: every *.safetensors in the folder is read
        copyNonWeights(dir);
        try (SafeTensors src = openOriginalWeights()) {
            writeWeights(src, dir.resolve("a.safetensors"), n -> n.startsWith("language_model."), n -> toV5(n, true), Recode.AS_IS);
            writeWeights(src, dir.resolve("b.safetensors"), n -> !n.startsWith("language_model."), n -> toV5(n, true), Recode.AS_IS);
        }
        assertIdentical("two shards, no index", logits(dir, s0));
    }

    // ---------------------------------------------------------------- re-encodings

    @Test
    void f32ReencodingGivesIdenticalLogits(@TempDir Path dir) {
        // every F16 value is exactly representable in FP32 and the kernels compute in FP32 either way
        variant(dir, n -> n, Recode.F32);
        try (SafeTensors st = SafeTensors.open(dir.resolve("model.safetensors"))) {
            for (String n : st.names()) assertEquals(DType.F32, st.info(n).dtype(), n);
        }
        assertIdentical("F32 re-encoding", logits(dir, s0));
    }

    @Test
    void bf16ReencodingMatchesItsExactF32Equivalent(@TempDir Path bf16Dir, @TempDir Path f32Dir) {
        variant(bf16Dir, n -> n, Recode.BF16);
        variant(f32Dir, n -> n, Recode.BF16_AS_F32);
        try (SafeTensors st = SafeTensors.open(bf16Dir.resolve("model.safetensors"))) {
            TensorInfo t = st.info("language_model.model.layers.2.self_attn.q_proj.weight");
            assertEquals(DType.BF16, t.dtype());
        }
        float[] bf16 = logits(bf16Dir, s0);
        float[] f32OfBf16 = logits(f32Dir, s0);
        // 1. BF16 decoding is exact: the BF16 folder computes the same as FP32 weights holding the BF16 values
        assertArrayEquals(f32OfBf16, bf16, 0f, "BF16 weights vs FP32 weights with the same (BF16-rounded) values");

        // 2. and is close to the F16 original. BF16 keeps 8 significant bits against F16's 11, so each weight
        // moves by up to 2^-9 relative (≈0.2%); through 4 CLIP + 4 LLaMA layers the measured logit error is
        // 8.5e-2 against max|logit| 20.5 (0.4%), i.e. about twice the per-weight error. The bound 2% of max|logit|
        // leaves 5x room, and is still far below what a mis-decoded tensor (wrong byte order, F16 bits read as
        // BF16: values off by orders of magnitude) produces.
        double diff = maxAbsDiff(reference, bf16), range = maxAbs(reference);
        System.out.printf("BF16 re-encoding: max|Δ logits| %.3e of max|logit| %.3f%n", diff, range);
        assertTrue(diff > 0, "rounding to BF16 must change something, else the re-encoding did not happen");
        assertTrue(diff <= 0.02 * range, "BF16 logits off by " + diff + " (max |logit| " + range + ")");
        // the prediction at every position survives the rounding except near-ties
        int agree = 0, n = s0.ids().length;
        for (int p = 0; p < n; p++) if (argmax(reference, p) == argmax(bf16, p)) agree++;
        assertTrue(agree >= n * 0.95, "argmax agrees at only " + agree + " of " + n + " positions");
    }

    static int argmax(float[] logits, int pos) {
        int b = 0;
        for (int i = 1; i < vocab; i++) if (logits[pos * vocab + i] > logits[pos * vocab + b]) b = i;
        return b;
    }

    // ---------------------------------------------------------------- tied embeddings

    @Test
    void tiedEmbeddingsWithoutLmHead(@TempDir Path tied, @TempDir Path explicit) {
        // tie_word_embeddings: true and no lm_head tensor → lm_head is embed_tokens. Compare with a folder whose
        // lm_head.weight is a byte copy of embed_tokens: identical logits.
        copyNonWeights(tied);
        copyNonWeights(explicit);
        try (SafeTensors src = openOriginalWeights()) {
            writeWeights(src, tied.resolve("model.safetensors"), n -> !n.equals("language_model.lm_head.weight"),
                    n -> n, Recode.AS_IS);
            var w = new dev.qvlm.safetensors.SafeTensorsWriter();
            for (String n : src.names()) {
                String from = n.equals("language_model.lm_head.weight") ? "language_model.model.embed_tokens.weight" : n;
                w.add(n, src.info(from).dtype(), src.info(from).shape(), src.segment(from));
            }
            w.write(explicit.resolve("model.safetensors"));
        }
        editConfig(tied, c -> {
            c.put("tie_word_embeddings", true);
            ((ObjectNode) c.get("text_config")).put("tie_word_embeddings", true);
        });
        float[] a = logits(tied, s0), b = logits(explicit, s0);
        assertArrayEquals(b, a, 0f, "tied lm_head vs explicit copy of embed_tokens");
        assertTrue(maxAbsDiff(reference, a) > 0, "tied head must differ from the model's own lm_head");
    }
}
