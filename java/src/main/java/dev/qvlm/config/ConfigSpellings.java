package dev.qvlm.config;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

/**
 * Makes a LLaVA config.json readable by transformers 4 and 5 alike (and so by vLLM, which parses it with whichever
 * transformers it ships), for a folder saved in the llava-hf key layout: where a field has a version-4 and a
 * version-5 spelling and only one is present, the other is added with the same value. The fields are those
 * {@link LlavaConfig} reads in either form: {@code torch_dtype}/{@code dtype}, {@code image_token_index}/
 * {@code image_token_id}, and {@code text_config.rope_theta}/{@code text_config.rope_parameters.rope_theta}
 * (transformers 4's LlamaConfig ignores rope_parameters and would fall back to θ = 10000).
 */
public final class ConfigSpellings {
    private ConfigSpellings() {}

    public static void addBoth(ObjectNode cfg) {
        both(cfg, "torch_dtype", "dtype");
        both(cfg, "image_token_index", "image_token_id");
        if (!cfg.has("architectures")) cfg.putArray("architectures").add("LlavaForConditionalGeneration");
        if (cfg.get("text_config") instanceof ObjectNode t) {
            JsonNode rp = t.get("rope_parameters");
            if (rp instanceof ObjectNode rpo) {
                if (!t.has("rope_theta") && rpo.has("rope_theta")) t.set("rope_theta", rpo.get("rope_theta"));
            } else if (t.has("rope_theta") && (rp == null || rp.isNull()) && !t.hasNonNull("rope_scaling")) {
                ObjectNode n = t.putObject("rope_parameters");
                n.set("rope_theta", t.get("rope_theta"));
                n.put("rope_type", "default");
            }
        }
    }

    private static void both(ObjectNode cfg, String v4, String v5) {
        if (cfg.hasNonNull(v4) && !cfg.hasNonNull(v5)) cfg.set(v5, cfg.get(v4));
        else if (cfg.hasNonNull(v5) && !cfg.hasNonNull(v4)) cfg.set(v4, cfg.get(v5));
    }
}
