package dev.qvlm.model;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;

/**
 * Maps the three checkpoint layouts to one canonical naming:
 * <ul>
 *   <li>transformers 4: {@code language_model.model.*}, {@code language_model.lm_head.*}, {@code vision_tower.*},
 *       {@code multi_modal_projector.*}</li>
 *   <li>transformers 5: {@code model.language_model.*}, {@code lm_head.*}, {@code model.vision_tower.*},
 *       {@code model.multi_modal_projector.*}</li>
 *   <li>vision keys with or without the {@code vision_model.} level (llava-hf checkpoints have it).</li>
 * </ul>
 * Canonical names: {@code text.layers.0.self_attn.q_proj.weight}, {@code lm_head.weight},
 * {@code vision.encoder.layers.0...}, {@code vision.embeddings...}, {@code projector.linear_1.weight}.
 */
public final class WeightNames {
    private WeightNames() {}

    public static String canonical(String key) {
        String k = key;
        if (k.startsWith("model.language_model.")) return "text." + k.substring("model.language_model.".length());
        if (k.startsWith("language_model.model.")) return "text." + k.substring("language_model.model.".length());
        if (k.startsWith("language_model.lm_head.")) return "lm_head." + k.substring("language_model.lm_head.".length());
        if (k.startsWith("lm_head.")) return k;
        if (k.startsWith("model.vision_tower.")) k = k.substring("model.".length());
        if (k.startsWith("vision_tower.")) {
            k = k.substring("vision_tower.".length());
            if (k.startsWith("vision_model.")) k = k.substring("vision_model.".length());
            return "vision." + k;
        }
        if (k.startsWith("model.multi_modal_projector.")) return "projector." + k.substring("model.multi_modal_projector.".length());
        if (k.startsWith("multi_modal_projector.")) return "projector." + k.substring("multi_modal_projector.".length());
        return null;
    }

    /**
     * The key a canonical name would have in a checkpoint whose other keys are {@code keys} (for messages about
     * a missing tensor, in the checkpoint's own layout).
     */
    public static String expectedKey(String canonical, Set<String> keys) {
        boolean v5 = keys.stream().anyMatch(k -> k.startsWith("model.language_model.") || k.startsWith("model.vision_tower."));
        boolean visionModel = keys.stream().anyMatch(k -> k.contains("vision_tower.vision_model."));
        String vt = (v5 ? "model." : "") + "vision_tower." + (visionModel ? "vision_model." : "");
        if (canonical.startsWith("text.")) return (v5 ? "model.language_model." : "language_model.model.") + canonical.substring(5);
        if (canonical.startsWith("lm_head.")) return (v5 ? "" : "language_model.") + canonical;
        if (canonical.startsWith("vision.")) return vt + canonical.substring(7);
        if (canonical.startsWith("projector.")) return (v5 ? "model." : "") + "multi_modal_projector." + canonical.substring(10);
        return canonical;
    }

    /**
     * The key of a canonical name in the llava-hf layout, which is what we save: transformers 4 names with the
     * {@code vision_model.} level ({@code language_model.model.*}, {@code language_model.lm_head.*},
     * {@code vision_tower.vision_model.*}, {@code multi_modal_projector.*}). vLLM's LlavaForConditionalGeneration
     * reads these as they are (its CLIP loader needs {@code vision_model.}); transformers ≥ 4.52 renames them with
     * LlavaForConditionalGeneration._checkpoint_conversion_mapping.
     */
    public static String llavaHf(String canonical) {
        if (canonical.startsWith("text.")) return "language_model.model." + canonical.substring(5);
        if (canonical.startsWith("lm_head.") || canonical.equals("lm_head")) return "language_model." + canonical;
        if (canonical.startsWith("vision.")) return "vision_tower.vision_model." + canonical.substring(7);
        if (canonical.startsWith("projector.")) return "multi_modal_projector." + canonical.substring(10);
        throw new IllegalArgumentException("not a canonical weight name: " + canonical);
    }

    /**
     * A Python regex (compressed-tensors' {@code re:} targets, applied with re.match) matching the module named by
     * {@code canonical} (a layer such as "vision.encoder.layers.0.self_attn.q_proj", or a whole part: "text",
     * "vision", "projector", "lm_head") under every naming it meets: checkpoint keys and vLLM modules
     * ({@code language_model.model.layers.0.mlp.up_proj}, {@code language_model.lm_head}) and transformers ≥ 4.52
     * modules ({@code model.language_model.layers.0.mlp.up_proj}, {@code lm_head}), with or without the vision
     * tower's {@code vision_model.} level. Only '.' needs escaping in our names, and the syntax used (groups, '?',
     * '.*', '$') means the same in Python and Java.
     */
    public static String anyLayoutRegex(String canonical) {
        int dot = canonical.indexOf('.');
        String part = dot < 0 ? canonical : canonical.substring(0, dot);
        String rest = dot < 0 ? null : canonical.substring(dot + 1).replace(".", "\\.") + "$";
        return switch (part) {
            case "text" -> "(.*\\.)?language_model\\.(model\\.)?" + (rest == null ? "layers\\..*" : rest);
            case "vision" -> "(.*\\.)?vision_tower\\." + (rest == null ? ".*" : "(vision_model\\.)?" + rest);
            case "projector" -> "(.*\\.)?multi_modal_projector\\." + (rest == null ? ".*" : rest);
            case "lm_head" -> "(.*\\.)?lm_head$";
            default -> throw new IllegalArgumentException("not a canonical weight name: " + canonical);
        };
    }

    /** canonical name → stored key, for all recognised keys. */
    public static Map<String, String> index(Set<String> keys) {
        Map<String, String> m = new LinkedHashMap<>();
        for (String k : keys) {
            String c = canonical(k);
            if (c != null) m.put(c, k);
        }
        return m;
    }
}
