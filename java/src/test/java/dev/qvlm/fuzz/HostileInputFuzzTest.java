package dev.qvlm.fuzz;

import com.code_intelligence.jazzer.junit.FuzzTest;
import com.fasterxml.jackson.databind.JsonNode;
import dev.qvlm.QvlmException;
import dev.qvlm.TestPaths;
import dev.qvlm.config.LlavaConfig;
import dev.qvlm.eval.Evaluator;
import dev.qvlm.eval.McDataset;
import dev.qvlm.eval.McQuestion;
import dev.qvlm.image.ImageDecoder;
import dev.qvlm.image.ImageProcessor;
import dev.qvlm.image.ImageProcessorConfig;
import dev.qvlm.model.LlavaWeights;
import dev.qvlm.model.WeightLoader;
import dev.qvlm.quant.CompressedTensors;
import dev.qvlm.safetensors.SafeTensors;
import dev.qvlm.safetensors.SafeTensorsHeader;
import dev.qvlm.safetensors.ShardIndex;
import dev.qvlm.safetensors.TensorInfo;
import dev.qvlm.safetensors.WeightStore;
import dev.qvlm.tokenizer.Tokenizer;
import dev.qvlm.util.Json;

import java.awt.image.BufferedImage;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;

/**
 * Coverage-guided fuzz targets (Jazzer) for every parser of untrusted input. The contract each checks: any input
 * either parses into something that satisfies the invariants asserted here, or fails with our own
 * {@link QvlmException} (one clean message); any other exception, an {@link Error} (OutOfMemoryError under the
 * 1 GB heap of {@code benchmarks/fuzz/run.sh}), or a broken invariant is a finding.
 *
 * <p>In the normal test run each target replays its committed inputs
 * ({@code src/test/resources/dev/qvlm/fuzz/HostileInputFuzzTestInputs/<target>/}: hand-made seeds plus every past
 * finding); {@code JAZZER_FUZZ=1} (see {@code benchmarks/fuzz/run.sh}) fuzzes one target for a set time.
 */
class HostileInputFuzzTest {
    private static final Path MODEL = TestPaths.tinyModel();
    private static final Path DATA_DIR = TestPaths.data();
    private static WeightStore store;
    private static ImageProcessor processor;

    private static synchronized WeightStore store() {
        if (store == null) store = WeightStore.open(MODEL);
        return store;
    }

    private static synchronized ImageProcessor processor() {
        if (processor == null)
            processor = new ImageProcessor(ImageProcessorConfig.load(MODEL.resolve("preprocessor_config.json")));
        return processor;
    }

    private static String utf8(byte[] b) {
        return new String(b, StandardCharsets.UTF_8);
    }

    /**
     * A safetensors file (header + data) or, when the bytes start with '{', a model.safetensors.index.json. Every
     * accepted tensor lies inside the data section and is readable; every accepted shard is a file directly inside
     * the model folder.
     */
    @FuzzTest(maxDuration = "10m")
    void safetensors(byte[] data) {
        try {
            if (data.length > 0 && data[0] == '{') {
                Path dir = Path.of("/fuzz/model").toAbsolutePath();
                List<Path> shards = ShardIndex.shards(dir, Json.parse(utf8(data), "index"), dir.resolve("model.safetensors.index.json"));
                for (Path p : shards)
                    if (!dir.equals(p.getParent()) || !p.getFileName().toString().endsWith(".safetensors"))
                        throw new AssertionError("shard escapes the model folder: " + p);
                return;
            }
            MemorySegment all = MemorySegment.ofArray(data);
            SafeTensorsHeader h = SafeTensorsHeader.parse(Path.of("fuzz.safetensors"), all);
            MemorySegment section = all.asSlice(h.dataStart());
            long covered = 0;
            for (TensorInfo t : h.tensors().values()) {
                if (t.begin() < 0 || t.end() > section.byteSize() || t.end() - t.begin() != t.numel() * t.dtype().bytes)
                    throw new AssertionError("accepted tensor outside the data section: " + t);
                covered += t.end() - t.begin();
                if (t.dtype().isFloat() && t.numel() <= 1 << 16)
                    SafeTensors.toFloatArray(t, section.asSlice(t.begin(), t.end() - t.begin()));
            }
            if (covered != section.byteSize()) throw new AssertionError("data section not tiled exactly");
        } catch (QvlmException expected) {
            // a clean refusal
        }
    }

    /**
     * config.json, then the weight loader against the bundled model's tensors: every size config.json gives must
     * be checked against the tensors before it sizes an allocation.
     */
    @FuzzTest(maxDuration = "10m")
    void configJson(byte[] data) {
        try {
            JsonNode root = Json.parse(utf8(data), "config.json");
            LlavaConfig cfg = LlavaConfig.parse(root, "config.json");
            LlavaWeights w = WeightLoader.load(store(), cfg);
            if (w.text.layers().length != cfg.text().numLayers()) throw new AssertionError("layer count");
            if (root.get("quantization_config") != null) CompressedTensors.Config.parse(root.get("quantization_config"), "config.json");
        } catch (QvlmException expected) {
        }
    }

    /**
     * tokenizer.json plus text: the first two bytes give the length of the text that follows, the rest is the
     * tokenizer. Encodes the text, decodes the ids back and decodes arbitrary ids.
     */
    @FuzzTest(maxDuration = "10m")
    void tokenizer(byte[] data) {
        if (data.length < 2) return;
        int n = Math.min(((data[0] & 0xff) << 8) | (data[1] & 0xff), data.length - 2);
        String text = new String(data, 2, n, StandardCharsets.UTF_8);
        byte[] json = Arrays.copyOfRange(data, 2 + n, data.length);
        try {
            Tokenizer tok = Tokenizer.fromBytes(json, "tokenizer.json");
            int[] ids = tok.encode(text);
            for (int id : ids) if (id < 0) throw new AssertionError("negative id " + id);
            tok.decode(ids);
            tok.decode(ids, false);
            int[] arbitrary = new int[Math.min(16, data.length / 4)];
            for (int i = 0; i < arbitrary.length; i++)
                arbitrary[i] = ((data[4 * i] & 0xff) << 24) | ((data[4 * i + 1] & 0xff) << 16) | ((data[4 * i + 2] & 0xff) << 8) | (data[4 * i + 3] & 0xff);
            tok.decode(arbitrary, false);
        } catch (QvlmException expected) {
        }
    }

    /**
     * Prompts, the other untrusted half of tokenization: arbitrary text through the real 32k LLaVA-1.5 tokenizer
     * (encode, decode back, ids are in range) and arbitrary ids through its decoder.
     */
    @FuzzTest(maxDuration = "10m")
    void tokenizerText(byte[] data) {
        Tokenizer tok = realTokenizer();
        String text = utf8(data);
        int[] ids = tok.encode(text);
        for (int id : ids) if (id < 0 || id >= tok.vocabSize()) throw new AssertionError("id out of range " + id);
        tok.decode(ids);
        int[] arbitrary = new int[data.length / 4];
        for (int i = 0; i < arbitrary.length; i++)
            arbitrary[i] = ((data[4 * i] & 0xff) << 24) | ((data[4 * i + 1] & 0xff) << 16) | ((data[4 * i + 2] & 0xff) << 8) | (data[4 * i + 3] & 0xff);
        tok.decode(arbitrary, false);
    }

    private static Tokenizer realTokenizerInstance;

    private static synchronized Tokenizer realTokenizer() {
        if (realTokenizerInstance == null) realTokenizerInstance = Tokenizer.load(TestPaths.realTokenizer());
        return realTokenizerInstance;
    }

    /** PNG/JPEG bytes through the decoder and the bundled model's CLIP preprocessing. */
    @FuzzTest(maxDuration = "10m")
    void image(byte[] data) {
        try {
            BufferedImage img = ImageDecoder.decode(data, "image");
            if ((long) img.getWidth() * img.getHeight() > ImageDecoder.MAX_PIXELS) throw new AssertionError("pixel limit");
            float[] px = processor().preprocess(img);
            if (px.length != 3 * 64 * 64) throw new AssertionError("pixel_values length " + px.length);
        } catch (QvlmException expected) {
        }
    }

    /** One ScienceQA JSONL row: an accepted image path always stays inside the data folder. */
    @FuzzTest(maxDuration = "10m")
    void scienceQaRow(byte[] data) {
        Path base = DATA_DIR.toAbsolutePath().normalize();
        try {
            McQuestion q = McDataset.parse(utf8(data), 1, base.resolve("fuzz.jsonl"), base);
            if (q.image() != null) {
                if (!q.image().normalize().startsWith(base)) throw new AssertionError("image outside the data folder: " + q.image());
                Evaluator.checkImages(List.of(q), "fuzz.jsonl");
            }
            if (q.answer() < 0 || q.answer() >= q.choices().size()) throw new AssertionError("answer index");
            q.prompt();
        } catch (QvlmException expected) {
        }
    }

    /** A compressed-tensors quantization_config; the layer names of the bundled model are matched against it. */
    @FuzzTest(maxDuration = "10m")
    void quantizationConfig(byte[] data) {
        try {
            CompressedTensors.Config c = CompressedTensors.Config.parse(Json.parse(utf8(data), "config.json"), "config.json");
            for (String name : List.of("language_model.model.layers.0.mlp.up_proj", "vision_tower.vision_model.encoder.layers.3.self_attn.q_proj", "lm_head"))
                c.schemeFor(name);
        } catch (QvlmException expected) {
        }
    }
}
