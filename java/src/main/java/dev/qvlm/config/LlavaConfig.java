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
            theta = positive(rp, "rope_theta", theta, where + ": text_config.rope_parameters.");
            checkRopeType(rp.path("rope_type").asText(rp.path("type").asText("default")), where);
        } else {
            theta = positive(t, "rope_theta", theta, where + ": text_config.");
        }
        if (t.hasNonNull("rope_scaling") && t.get("rope_scaling").isObject()) {
            JsonNode rs = t.get("rope_scaling");
            checkRopeType(rs.path("rope_type").asText(rs.path("type").asText("default")), where);
        }
        boolean tieText = bool(t, "tie_word_embeddings", bool(root, "tie_word_embeddings", false, where + ": "), where + ": text_config.");
        int[] eos;
        JsonNode e = t.path("eos_token_id");
        if (e.isArray()) {
            eos = new int[e.size()];
            for (int i = 0; i < eos.length; i++) eos[i] = tokenId(e.get(i), where + ": text_config.eos_token_id");
        } else {
            eos = new int[]{e.isMissingNode() || e.isNull() ? 2 : tokenId(e, where + ": text_config.eos_token_id")};
        }
        TextConfig text = new TextConfig(
                hidden,
                integer(t, "intermediate_size", 11008, where),
                integer(t, "num_hidden_layers", 32, where),
                heads, kvHeads, headDim,
                integer(t, "vocab_size", 32000, where),
                integer(t, "max_position_embeddings", 2048, where),
                (float) positive(t, "rms_norm_eps", 1e-6, where + ": text_config."),
                theta,
                Activation.parse(t.path("hidden_act").asText("silu"), where + ": text_config.hidden_act"),
                bool(t, "attention_bias", false, where + ": text_config."),
                bool(t, "mlp_bias", false, where + ": text_config."),
                tieText,
                t.hasNonNull("bos_token_id") ? tokenId(t.get("bos_token_id"), where + ": text_config.bos_token_id") : 1,
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
                (float) positive(v, "layer_norm_eps", 1e-5, where + ": vision_config."),
                Activation.parse(v.path("hidden_act").asText("quick_gelu"), where + ": vision_config.hidden_act"));
        if ((long) heads * headDim > Integer.MAX_VALUE || (long) hidden * 4 > Integer.MAX_VALUE)
            throw new QvlmException(where + ": text_config sizes (num_attention_heads x head_dim, hidden_size) are too large");
        if (vision.patchSize() > vision.imageSize() || vision.imageSize() / vision.patchSize() > 4096)
            throw new QvlmException(where + ": vision_config image_size " + vision.imageSize() + " and patch_size "
                    + vision.patchSize() + " give " + (vision.imageSize() / vision.patchSize())
                    + " patches per side (expected 1..4096)");
        if (vision.hiddenSize() % vision.numHeads() != 0)
            throw new QvlmException(where + ": vision hidden_size " + vision.hiddenSize()
                    + " is not divisible by num_attention_heads " + vision.numHeads());

        JsonNode fl = root.path("vision_feature_layer");
        if (fl.isArray())
            throw new QvlmException(where + ": vision_feature_layer as a list (multi-layer features) is not supported");
        int featureLayer = fl.isMissingNode() || fl.isNull() ? -2 : signedInt(fl, where + ": vision_feature_layer");
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
        int imageToken = root.hasNonNull("image_token_index") ? tokenId(root.get("image_token_index"), where + ": image_token_index")
                : root.hasNonNull("image_token_id") ? tokenId(root.get("image_token_id"), where + ": image_token_id") : 32000;
        int seqLen = integer(root, "image_seq_length", vision.numPatches() + (drop ? 0 : 1), where);
        String dtype = root.path("dtype").asText(root.path("torch_dtype").asText(t.path("torch_dtype").asText("float32")));
        return new LlavaConfig(text, vision, imageToken,
                Activation.parse(root.path("projector_hidden_act").asText("gelu"), where + ": projector_hidden_act"),
                bool(root, "multimodal_projector_bias", true, where + ": "),
                resolved, drop, seqLen, dtype);
    }

    private static void checkRopeType(String type, String where) {
        if (!type.equals("default"))
            throw new QvlmException(where + ": rope type '" + type + "' is not supported (only 'default' RoPE)");
    }

    /** A float setting that must be a finite positive JSON number (a string such as "1e-5" is refused, not defaulted). */
    private static double positive(JsonNode n, String key, double dflt, String prefix) {
        JsonNode v = n.get(key);
        if (v == null || v.isNull()) return dflt;
        if (!v.isNumber() || !Double.isFinite(v.asDouble()) || v.asDouble() <= 0)
            throw new QvlmException(prefix + key + " must be a positive number, got " + v);
        return v.asDouble();
    }

    private static boolean bool(JsonNode n, String key, boolean dflt, String prefix) {
        JsonNode v = n.get(key);
        if (v == null || v.isNull()) return dflt;
        if (!v.isBoolean()) throw new QvlmException(prefix + key + " must be true or false, got " + v);
        return v.asBoolean();
    }

    private static int tokenId(JsonNode v, String what) {
        if (v == null || !v.isIntegralNumber() || !v.canConvertToInt() || v.asInt() < 0)
            throw new QvlmException(what + " must be a non-negative integer token id, got " + v);
        return v.asInt();
    }

    private static int signedInt(JsonNode v, String what) {
        if (!v.isIntegralNumber() || !v.canConvertToInt()) throw new QvlmException(what + " must be an integer, got " + v);
        return v.asInt();
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
