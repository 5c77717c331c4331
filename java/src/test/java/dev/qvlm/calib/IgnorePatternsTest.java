package dev.qvlm.calib;

import dev.qvlm.model.Linear;
import dev.qvlm.model.WeightNames;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.EnumMap;
import java.util.EnumSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.function.UnaryOperator;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The saved {@code ignore} list against the module names each runtime matches it with: vLLM (checkpoint keys of the
 * llava-hf layout, after its hf_to_vllm_mapper; fused qkv/gate_up checked shard by shard), transformers ≥ 4.52 and
 * 5 (model.language_model.*, model.vision_tower.vision_model.*, model.multi_modal_projector.*, lm_head), and the
 * bundled model's own keys (no vision_model. level). Matching is compressed-tensors' match_name
 * (utils/match.py) and vLLM's _is_equal_or_regex_match: "re:" → Python re.match (anchored at the start), otherwise
 * exact equality.
 */
class IgnorePatternsTest {
    static final int LAYERS = 4;

    /** Canonical names of every linear of a 4+4-layer LLaVA, by part. */
    static Map<Linear.Part, List<String>> linears() {
        Map<Linear.Part, List<String>> m = new EnumMap<>(Linear.Part.class);
        for (int i = 0; i < LAYERS; i++) {
            for (String p : List.of("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj", "mlp.fc1", "mlp.fc2"))
                m.computeIfAbsent(Linear.Part.VISION, k -> new ArrayList<>()).add("vision.encoder.layers." + i + "." + p);
            for (String p : List.of("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj",
                    "mlp.up_proj", "mlp.down_proj"))
                m.computeIfAbsent(Linear.Part.LLM, k -> new ArrayList<>()).add("text.layers." + i + "." + p);
        }
        m.put(Linear.Part.PROJECTOR, List.of("projector.linear_1", "projector.linear_2"));
        m.put(Linear.Part.LM_HEAD, List.of("lm_head"));
        return m;
    }

    /** canonical module name → the name a runtime matches. */
    static final Map<String, UnaryOperator<String>> NAMINGS = new LinkedHashMap<>();

    static {
        NAMINGS.put("vLLM / llava-hf keys", c -> strip(WeightNames.llavaHf(c + ".weight")));
        NAMINGS.put("transformers >= 4.52 modules", c -> {
            if (c.startsWith("text.")) return "model.language_model." + c.substring(5);
            if (c.equals("lm_head")) return "lm_head";
            if (c.startsWith("vision.")) return "model.vision_tower.vision_model." + c.substring(7);
            return "model.multi_modal_projector." + c.substring(10);
        });
        NAMINGS.put("bundled keys (no vision_model.)", c -> c.startsWith("vision.") ? "vision_tower." + c.substring(7)
                : strip(WeightNames.llavaHf(c + ".weight")));
    }

    static String strip(String key) {
        return key.substring(0, key.length() - ".weight".length());
    }

    /** compressed-tensors match_name / vLLM _is_equal_or_regex_match. */
    static boolean matchName(String name, String target) {
        if (target.startsWith("re:")) return Pattern.compile(target.substring(3)).matcher(name).lookingAt();
        return target.equals(name);
    }

    static Set<String> ignored(List<String> ignore, List<String> canonical, UnaryOperator<String> naming) {
        Set<String> out = new TreeSet<>();
        for (String c : canonical) {
            String n = naming.apply(c);
            if (ignore.stream().anyMatch(t -> matchName(n, t))) out.add(c);
        }
        return out;
    }

    static void check(String what, Set<Linear.Part> quantizedParts, Set<String> alsoKept) {
        Map<Linear.Part, List<String>> all = linears();
        Map<Linear.Part, List<String>> kept = new EnumMap<>(Linear.Part.class);
        Map<Linear.Part, Integer> total = new EnumMap<>(Linear.Part.class);
        List<String> every = new ArrayList<>();
        Set<String> expected = new TreeSet<>();
        for (var e : all.entrySet()) {
            total.put(e.getKey(), e.getValue().size());
            every.addAll(e.getValue());
            for (String c : e.getValue())
                if (!quantizedParts.contains(e.getKey()) || alsoKept.contains(c)) {
                    kept.computeIfAbsent(e.getKey(), k -> new ArrayList<>()).add(c);
                    expected.add(c);
                }
        }
        List<String> ignore = CheckpointSaver.ignorePatterns(kept, total);
        assertTrue(ignore.stream().allMatch(s -> s.startsWith("re:")), what + ": only re: patterns " + ignore);
        for (var naming : NAMINGS.entrySet())
            assertEquals(expected, ignored(ignore, every, naming.getValue()), what + ", " + naming.getKey() + ": " + ignore);
    }

    @Test
    void scopesMatchUnderEveryNaming() {
        EnumSet<Linear.Part> all = EnumSet.of(Linear.Part.VISION, Linear.Part.PROJECTOR, Linear.Part.LLM);
        check("scope all", all, Set.of());
        check("scope llm", EnumSet.of(Linear.Part.LLM), Set.of());
        check("scope vision", EnumSet.of(Linear.Part.VISION), Set.of());
        check("scope projector", EnumSet.of(Linear.Part.PROJECTOR), Set.of());
        // a part only partly quantized: one pattern per kept layer (layer 1 must not catch layers 10+ or 1x)
        check("some layers kept", all, Set.of("text.layers.1.mlp.down_proj", "vision.encoder.layers.2.self_attn.q_proj",
                "vision.encoder.layers.2.self_attn.k_proj", "vision.encoder.layers.2.self_attn.v_proj", "projector.linear_2"));
    }

    @Test
    void exactNamesOfOneLayoutMissTheOther() {
        // why the list holds patterns: the checkpoint key of lm_head is not transformers' module name
        assertFalse(matchName("lm_head", "language_model.lm_head"));
        assertFalse(matchName("model.vision_tower.vision_model.encoder.layers.0.mlp.fc1", "vision_tower.vision_model.encoder.layers.0.mlp.fc1"));
        String p = "re:" + WeightNames.anyLayoutRegex("text.layers.1.mlp.up_proj");
        assertTrue(matchName("language_model.model.layers.1.mlp.up_proj", p));
        assertTrue(matchName("model.language_model.layers.1.mlp.up_proj", p));
        assertFalse(matchName("language_model.model.layers.11.mlp.up_proj", p));
        assertFalse(matchName("language_model.model.layers.1.mlp.up_proj_extra", p));
        assertFalse(matchName("not_lm_head", "re:" + WeightNames.anyLayoutRegex("lm_head")));
    }
}
