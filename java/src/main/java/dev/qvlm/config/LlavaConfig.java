package dev.qvlm.config;

import com.fasterxml.jackson.databind.JsonNode;
import dev.qvlm.QvlmException;
import dev.qvlm.util.Json;

import java.nio.file.Path;

/**
 * A parsed {@code config.json} of {@code model_type: llava}, in either the transformers-4 form ({@code torch_dtype},
 * {@code text_config.rope_theta}) or the transformers-5 form ({@code dtype}, {@code text_config.rope_parameters}).
 * Missing keys take the defaults HF's LlavaConfig / LlamaConfig / CLIPVisionConfig apply.
 */
public record LlavaConfig(
        TextConfig text,
        VisionConfig vision,
        int imageTokenIndex,
        Activation projectorAct,
        boolean projectorBias,
        int visionFeatureLayer,
        boolean dropClsToken,
        int imageSeqLength,
        String dtype) {

    public static LlavaConfig load(Path file) {
        return parse(Json.read(file), file.toString());
    }

    public static LlavaConfig parse(JsonNode root, String where) {
        if (!root.isObject()) throw new QvlmException(where + ": expected a JSON object");
        String type = root.path("model_type").asText("");
        if (!type.equals("llava"))
            throw new QvlmException(where + ": unsupported model_type '" + type + "' (expected 'llava')");
        JsonNode t = root.path("text_config");
        JsonNode v = root.path("vision_config");
        String tType = t.path("model_type").asText("llama");
        if (!tType.equals("llama"))
            throw new QvlmException(where + ": text_config.model_type '" + tType + "' is not supported (expected 'llama')");
        String vType = v.path("model_type").asText("clip_vision_model");
        if (!vType.equals("clip_vision_model"))
            throw new QvlmException(where + ": vision_config.model_type '" + vType
                    + "' is not supported (expected 'clip_vision_model')");

        int hidden = integer(t, "hidden_size", 4096, where);
        int heads = integer(t, "num_attention_heads", 32, where);
        int kvHeads = t.hasNonNull("num_key_value_heads") ? integer(t, "num_key_value_heads", heads, where) : heads;
        int headDim = t.hasNonNull("head_dim") ? integer(t, "head_dim", hidden / heads, where) : hidden / heads;
        if (heads % kvHeads != 0)
            throw new QvlmException(where + ": num_attention_heads " + heads + " is not a multiple of num_key_value_heads " + kvHeads);
        double theta = 10000.0;
        if (t.has("rope_parameters") && t.get("rope_parameters").isObject()) {
            JsonNode rp = t.get("rope_parameters");
            theta = rp.path("rope_theta").asDouble(theta);
            checkRopeType(rp.path("rope_type").asText(rp.path("type").asText("default")), where);
        } else {
            theta = t.path("rope_theta").asDouble(theta);
        }
        if (t.hasNonNull("rope_scaling") && t.get("rope_scaling").isObject()) {
            JsonNode rs = t.get("rope_scaling");
            checkRopeType(rs.path("rope_type").asText(rs.path("type").asText("default")), where);
        }
        boolean tieText = t.path("tie_word_embeddings").asBoolean(root.path("tie_word_embeddings").asBoolean(false));
        int[] eos;
        JsonNode e = t.path("eos_token_id");
        if (e.isArray()) {
            eos = new int[e.size()];
            for (int i = 0; i < eos.length; i++) eos[i] = e.get(i).asInt();
        } else {
            eos = new int[]{e.asInt(2)};
        }
        TextConfig text = new TextConfig(
                hidden,
                integer(t, "intermediate_size", 11008, where),
                integer(t, "num_hidden_layers", 32, where),
                heads, kvHeads, headDim,
                integer(t, "vocab_size", 32000, where),
                integer(t, "max_position_embeddings", 2048, where),
                (float) t.path("rms_norm_eps").asDouble(1e-6),
                theta,
                Activation.parse(t.path("hidden_act").asText("silu"), where + ": text_config.hidden_act"),
                t.path("attention_bias").asBoolean(false),
                t.path("mlp_bias").asBoolean(false),
                tieText,
                t.path("bos_token_id").asInt(1),
                eos);

        // LlavaConfig's default vision tower is CLIP ViT-L/14-336 (what LLaVA-1.5 uses).
        boolean vDefaults = !v.isObject();
        VisionConfig vision = new VisionConfig(
                integer(v, "hidden_size", vDefaults ? 1024 : 768, where),
                integer(v, "intermediate_size", vDefaults ? 4096 : 3072, where),
                integer(v, "num_hidden_layers", vDefaults ? 24 : 12, where),
                integer(v, "num_attention_heads", vDefaults ? 16 : 12, where),
                integer(v, "num_channels", 3, where),
                integer(v, "image_size", vDefaults ? 336 : 224, where),
                integer(v, "patch_size", vDefaults ? 14 : 32, where),
                (float) v.path("layer_norm_eps").asDouble(1e-5),
                Activation.parse(v.path("hidden_act").asText("quick_gelu"), where + ": vision_config.hidden_act"));
        if (vision.hiddenSize() % vision.numHeads() != 0)
            throw new QvlmException(where + ": vision hidden_size " + vision.hiddenSize()
                    + " is not divisible by num_attention_heads " + vision.numHeads());

        JsonNode fl = root.path("vision_feature_layer");
        if (fl.isArray())
            throw new QvlmException(where + ": vision_feature_layer as a list (multi-layer features) is not supported");
        int featureLayer = fl.asInt(-2);
        int L = vision.numLayers();
        int resolved = featureLayer < 0 ? L + 1 + featureLayer : featureLayer;
        if (resolved < 0 || resolved > L)
            throw new QvlmException(where + ": vision_feature_layer " + featureLayer + " is out of range for "
                    + L + " vision layers");
        String strategy = root.path("vision_feature_select_strategy").asText("default");
        if (!strategy.equals("default") && !strategy.equals("full"))
            throw new QvlmException(where + ": vision_feature_select_strategy '" + strategy
                    + "' is not supported (expected 'default' or 'full')");
        boolean drop = strategy.equals("default");
        int imageToken = root.has("image_token_index") ? root.get("image_token_index").asInt()
                : root.path("image_token_id").asInt(32000);
        int seqLen = root.path("image_seq_length").asInt(vision.numPatches() + (drop ? 0 : 1));
        String dtype = root.path("dtype").asText(root.path("torch_dtype").asText(t.path("torch_dtype").asText("float32")));
        return new LlavaConfig(text, vision, imageToken,
                Activation.parse(root.path("projector_hidden_act").asText("gelu"), where + ": projector_hidden_act"),
                root.path("multimodal_projector_bias").asBoolean(true),
                resolved, drop, seqLen, dtype);
    }

    private static void checkRopeType(String type, String where) {
        if (!type.equals("default"))
            throw new QvlmException(where + ": rope type '" + type + "' is not supported (only 'default' RoPE)");
    }

    private static int integer(JsonNode n, String key, int dflt, String where) {
        JsonNode v = n.get(key);
        if (v == null || v.isNull()) return dflt;
        if (!v.isIntegralNumber() || !v.canConvertToInt() || v.asInt() <= 0)
            throw new QvlmException(where + ": '" + section(n) + key + "' must be a positive integer, got " + v);
        return v.asInt();
    }

    /** "text_config." or "vision_config." for error messages, recognised by the section's own keys. */
    private static String section(JsonNode n) {
        String t = n.path("model_type").asText("");
        if (t.equals("llama") || n.has("rms_norm_eps") || n.has("num_key_value_heads")) return "text_config.";
        if (t.startsWith("clip") || n.has("patch_size") || n.has("image_size")) return "vision_config.";
        return "";
    }

    /** Number of image features spliced per {@code <image>} token. */
    public int imageFeatures() {
        return vision.numPatches() + (dropClsToken ? 0 : 1);
    }
}
