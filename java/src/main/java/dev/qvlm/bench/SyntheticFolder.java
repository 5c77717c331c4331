package dev.qvlm.bench;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.qvlm.QvlmException;
import dev.qvlm.config.LlavaConfig;
import dev.qvlm.config.TextConfig;
import dev.qvlm.config.VisionConfig;
import dev.qvlm.safetensors.DType;
import dev.qvlm.safetensors.SafeTensorsWriter;
import dev.qvlm.safetensors.SafeTensorsWriter.Spec;
import dev.qvlm.util.Files2;
import dev.qvlm.util.Json;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;

/**
 * Writes a synthetic LLaVA folder in the llava-hf (transformers 4) layout: the published config.json, FP16 weights
 * with random values in sharded safetensors files plus {@code model.safetensors.index.json}, the real LLaVA-1.5
 * tokenizer and a CLIPImageProcessor preprocessor config. Same names, shapes, dtypes and file structure as a real
 * download, so loading, memory use and speed can be measured without one; the answers are noise.
 *
 * <p>Values: linear weights and embeddings uniform with standard deviation 0.02 (the config's initializer_range),
 * biases uniform with std 0.02, norm weights 1 ± 0.02·√3. Each tensor is produced in chunks from a table of 65,536
 * FP16 values indexed by a seeded xorshift stream, so a 14 GB folder is written with a few MB of memory.
 * Everything goes to a temporary sibling folder renamed at the end.
 */
public final class SyntheticFolder {
    /** Shapes with a published llava-hf config bundled as a resource. */
    public static final String[] SHAPES = {"llava-1.5-7b", "llava-1.5-13b"};
    /** The Hub's own limit per shard. */
    public static final long DEFAULT_SHARD_BYTES = 5_000_000_000L;
    private static final float STD = 0.02f;

    private SyntheticFolder() {}

    /** The published config.json of a shape (llava-hf/llava-1.5-7b-hf; the 13B one with its text dimensions). */
    public static ObjectNode config(String shape) {
        String res = switch (shape) {
            case "llava-1.5-7b", "llava-1.5-13b" -> "/dev/qvlm/config/hf/" + shape + "-hf.json";
            default -> throw new QvlmException("--shape: unknown shape '" + shape + "' (known: " + String.join(", ", SHAPES) + ")");
        };
        try (InputStream in = SyntheticFolder.class.getResourceAsStream(res)) {
            if (in == null) throw new IllegalStateException("missing resource " + res);
            return (ObjectNode) Json.parse(new String(in.readAllBytes(), StandardCharsets.UTF_8), res);
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }

    /** Caps the number of decoder (text) and vision layers of a config; null leaves a count as it is. */
    public static void capLayers(ObjectNode config, Integer textLayers, Integer visionLayers) {
        LlavaConfig c = LlavaConfig.parse(config, "config");
        if (textLayers != null) {
            if (textLayers < 1 || textLayers > c.text().numLayers())
                throw new QvlmException("--layers " + textLayers + ": expected 1.." + c.text().numLayers());
            ((ObjectNode) config.get("text_config")).put("num_hidden_layers", textLayers);
        }
        if (visionLayers != null) {
            if (visionLayers < 1 || visionLayers > c.vision().numLayers())
                throw new QvlmException("--vision-layers " + visionLayers + ": expected 1.." + c.vision().numLayers());
            ((ObjectNode) config.get("vision_config")).put("num_hidden_layers", visionLayers);
        }
    }

    /** Where the value table of a tensor comes from. */
    private enum Init { WEIGHT, BIAS, NORM }

    private record Tensor(Spec spec, Init init) {}

    /** Every tensor of the llava-hf layout for a config, in the order transformers saves them. */
    static List<Tensor> tensors(LlavaConfig cfg) {
        List<Tensor> t = new ArrayList<>();
        VisionConfig v = cfg.vision();
        long D = v.hiddenSize(), I = v.intermediateSize(), P = v.patchSize(), C = v.numChannels();
        String vt = "vision_tower.vision_model.";
        add(t, vt + "embeddings.class_embedding", Init.WEIGHT, D);
        add(t, vt + "embeddings.patch_embedding.weight", Init.WEIGHT, D, C, P, P);
        add(t, vt + "embeddings.position_embedding.weight", Init.WEIGHT, v.numPositions(), D);
        add(t, vt + "pre_layrnorm.weight", Init.NORM, D);
        add(t, vt + "pre_layrnorm.bias", Init.BIAS, D);
        for (int i = 0; i < v.numLayers(); i++) {
            String p = vt + "encoder.layers." + i + ".";
            for (String proj : new String[]{"k_proj", "v_proj", "q_proj", "out_proj"}) {
                add(t, p + "self_attn." + proj + ".weight", Init.WEIGHT, D, D);
                add(t, p + "self_attn." + proj + ".bias", Init.BIAS, D);
            }
            add(t, p + "layer_norm1.weight", Init.NORM, D);
            add(t, p + "layer_norm1.bias", Init.BIAS, D);
            add(t, p + "mlp.fc1.weight", Init.WEIGHT, I, D);
            add(t, p + "mlp.fc1.bias", Init.BIAS, I);
            add(t, p + "mlp.fc2.weight", Init.WEIGHT, D, I);
            add(t, p + "mlp.fc2.bias", Init.BIAS, D);
            add(t, p + "layer_norm2.weight", Init.NORM, D);
            add(t, p + "layer_norm2.bias", Init.BIAS, D);
        }
        add(t, vt + "post_layernorm.weight", Init.NORM, D);
        add(t, vt + "post_layernorm.bias", Init.BIAS, D);
        TextConfig x = cfg.text();
        long H = x.hiddenSize(), It = x.intermediateSize(), V = x.vocabSize();
        add(t, "multi_modal_projector.linear_1.weight", Init.WEIGHT, H, D);
        add(t, "multi_modal_projector.linear_1.bias", Init.BIAS, H);
        add(t, "multi_modal_projector.linear_2.weight", Init.WEIGHT, H, H);
        add(t, "multi_modal_projector.linear_2.bias", Init.BIAS, H);
        add(t, "language_model.model.embed_tokens.weight", Init.WEIGHT, V, H);
        for (int i = 0; i < x.numLayers(); i++) {
            String p = "language_model.model.layers." + i + ".";
            add(t, p + "self_attn.q_proj.weight", Init.WEIGHT, x.qDim(), H);
            add(t, p + "self_attn.k_proj.weight", Init.WEIGHT, x.kvDim(), H);
            add(t, p + "self_attn.v_proj.weight", Init.WEIGHT, x.kvDim(), H);
            add(t, p + "self_attn.o_proj.weight", Init.WEIGHT, H, x.qDim());
            add(t, p + "mlp.gate_proj.weight", Init.WEIGHT, It, H);
            add(t, p + "mlp.up_proj.weight", Init.WEIGHT, It, H);
            add(t, p + "mlp.down_proj.weight", Init.WEIGHT, H, It);
            add(t, p + "input_layernorm.weight", Init.NORM, H);
            add(t, p + "post_attention_layernorm.weight", Init.NORM, H);
        }
        add(t, "language_model.model.norm.weight", Init.NORM, H);
        if (!x.tieWordEmbeddings()) add(t, "language_model.lm_head.weight", Init.WEIGHT, V, H);
        return t;
    }

    private static void add(List<Tensor> t, String name, Init init, long... shape) {
        t.add(new Tensor(new Spec(name, DType.F16, shape), init));
    }

    /**
     * Writes the folder.
     *
     * @param config     a llava config.json (see {@link #config}, {@link #capLayers})
     * @param tokenizer  folder with the LLaVA-1.5 tokenizer.json and tokenizer_config.json
     * @param shardBytes upper bound of one shard's tensor data (a single tensor larger than it gets its own shard)
     * @param log        progress lines, or null
     * @return bytes of tensor data written
     */
    public static long write(ObjectNode config, Path tokenizer, Path out, long shardBytes, long seed, Consumer<String> log) {
        LlavaConfig cfg = LlavaConfig.parse(config, "config");
        for (String f : new String[]{"tokenizer.json", "tokenizer_config.json"})
            if (!Files.isRegularFile(tokenizer.resolve(f)))
                throw new QvlmException("--tokenizer " + tokenizer + ": no " + f);
        if (shardBytes <= 0) throw new QvlmException("--shard-size must be positive");
        Path target = out.toAbsolutePath().normalize();
        Consumer<String> say = log == null ? s -> {} : log;
        List<Tensor> all = tensors(cfg);
        // greedy shards in saving order, each at most shardBytes of data
        List<List<Tensor>> shards = new ArrayList<>();
        long cur = Long.MAX_VALUE, total = 0;
        for (Tensor t : all) {
            long b = t.spec().bytes();
            if (cur + b > shardBytes || shards.isEmpty()) {
                shards.add(new ArrayList<>());
                cur = 0;
            }
            shards.getLast().add(t);
            cur += b;
            total += b;
        }
        final long bytes = total;
        Files2.writeFolderAtomically(out, "--out " + out, false, tmp -> {
            Map<String, Object> weightMap = new LinkedHashMap<>();
            long done = 0;
            long t0 = System.nanoTime();
            for (int s = 0; s < shards.size(); s++) {
                String file = shards.size() == 1 ? "model.safetensors"
                        : String.format("model-%05d-of-%05d.safetensors", s + 1, shards.size());
                List<Tensor> sh = shards.get(s);
                Map<String, Init> init = new LinkedHashMap<>();
                List<Spec> specs = new ArrayList<>();
                for (Tensor t : sh) {
                    specs.add(t.spec());
                    init.put(t.spec().name(), t.init());
                    weightMap.put(t.spec().name(), file);
                }
                SafeTensorsWriter.writeStreaming(tmp.resolve(file), Map.of("format", "pt"), specs,
                        (t, os) -> fill(os, t, init.get(t.name()), seed));
                for (Tensor t : sh) done += t.spec().bytes();
                say.accept(String.format("  %s: %.2f GB (%.0f%% of %.2f GB, %.0f s)", file, sizeOf(sh) / 1e9,
                        100.0 * done / bytes, bytes / 1e9, (System.nanoTime() - t0) / 1e9));
            }
            if (shards.size() > 1) {
                Map<String, Object> index = new LinkedHashMap<>();
                index.put("metadata", Map.of("total_size", bytes));
                index.put("weight_map", weightMap);
                Json.writeAtomically(tmp.resolve("model.safetensors.index.json"), index);
            }
            Json.writeAtomically(tmp.resolve("config.json"), config);
            Json.writeAtomically(tmp.resolve("preprocessor_config.json"), preprocessor(cfg));
            Json.writeAtomically(tmp.resolve("generation_config.json"), Map.of("bos_token_id", cfg.text().bosTokenId(),
                    "eos_token_id", cfg.text().eosTokenIds()[0], "pad_token_id", config.path("pad_token_id").asInt(0)));
            for (String f : new String[]{"tokenizer.json", "tokenizer_config.json"})
                Files.copy(tokenizer.resolve(f), tmp.resolve(f));
        });
        return total;
    }

    private static long sizeOf(List<Tensor> ts) {
        long n = 0;
        for (Tensor t : ts) n += t.spec().bytes();
        return n;
    }

    /** llava-hf's CLIPImageProcessor settings for the tower's image size. */
    private static Map<String, Object> preprocessor(LlavaConfig cfg) {
        int s = cfg.vision().imageSize();
        Map<String, Object> p = new LinkedHashMap<>();
        p.put("crop_size", Map.of("height", s, "width", s));
        p.put("do_center_crop", true);
        p.put("do_convert_rgb", true);
        p.put("do_normalize", true);
        p.put("do_rescale", true);
        p.put("do_resize", true);
        p.put("image_mean", List.of(0.48145466, 0.4578275, 0.40821073));
        p.put("image_processor_type", "CLIPImageProcessor");
        p.put("image_std", List.of(0.26862954, 0.26130258, 0.27577711));
        p.put("processor_class", "LlavaProcessor");
        p.put("resample", 3);
        p.put("rescale_factor", 0.00392156862745098);
        p.put("size", Map.of("shortest_edge", s));
        return p;
    }

    /** FP16 bit patterns of 65,536 evenly spaced values of U(centre − a, centre + a), a = std·√3. */
    private static short[] table(Init init) {
        float a = (float) (STD * Math.sqrt(3));
        float centre = init == Init.NORM ? 1f : 0f;
        short[] t = new short[1 << 16];
        for (int i = 0; i < t.length; i++)
            t[i] = Float.floatToFloat16(centre + a * (2f * (i + 0.5f) / t.length - 1f));
        return t;
    }

    private static final Map<Init, short[]> TABLES = Map.of(Init.WEIGHT, table(Init.WEIGHT), Init.BIAS, table(Init.BIAS),
            Init.NORM, table(Init.NORM));

    private static void fill(OutputStream os, Spec t, Init init, long seed) throws IOException {
        short[] table = TABLES.get(init);
        long x = seed * 0x9E3779B97F4A7C15L ^ t.name().hashCode() * 0xC2B2AE3D27D4EB4FL;
        if (x == 0) x = 1;
        byte[] buf = new byte[1 << 22];
        long n = t.bytes() / 2;
        for (long done = 0; done < n; ) {
            int m = (int) Math.min(buf.length / 2, n - done);
            int i = 0;
            while (i < m) {
                // xorshift64: four 16-bit table indices per step
                x ^= x << 13;
                x ^= x >>> 7;
                x ^= x << 17;
                for (int k = 0; k < 4 && i < m; k++, i++) {
                    short h = table[(int) (x >>> (16 * k)) & 0xffff];
                    buf[2 * i] = (byte) h;
                    buf[2 * i + 1] = (byte) (h >>> 8);
                }
            }
            os.write(buf, 0, 2 * m);
            done += m;
        }
    }
}
