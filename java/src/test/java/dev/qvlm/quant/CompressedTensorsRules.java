package dev.qvlm.quant;

import com.fasterxml.jackson.databind.JsonNode;

import java.util.Iterator;
import java.util.Map;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * The field rules of compressed-tensors' pydantic models, transcribed for the tests (vllm-project/compressed-tensors,
 * {@code src/compressed_tensors/quantization/}): QuantizationArgs ({@code quant_args.py}) and QuantizationScheme
 * ({@code quant_scheme.py}) are {@code extra="forbid"} since 0.11.0; QuantizationConfig ({@code quant_config.py})
 * ignores unknown keys, which we still refuse so that nothing unexpected is written. Allowed fields are those every
 * release from 0.9 to 0.18 accepts: {@code scale_dtype}/{@code zp_dtype} (added in 0.13) would be rejected by
 * 0.11–0.12, and a scheme-level {@code format} (0.11) is not needed, so both are refused here. Value rules: the
 * validators of those files (strategy/group_size consistency, token strategy only dynamic, input strategies).
 */
public final class CompressedTensorsRules {
    private CompressedTensorsRules() {}

    static final Set<String> CONFIG_FIELDS = Set.of("config_groups", "quant_method", "kv_cache_scheme", "format",
            "quantization_status", "global_compression_ratio", "ignore");
    static final Set<String> SCHEME_FIELDS = Set.of("targets", "weights", "input_activations", "output_activations");
    static final Set<String> ARGS_FIELDS = Set.of("num_bits", "type", "symmetric", "group_size", "strategy",
            "block_structure", "dynamic", "actorder", "observer", "observer_kwargs");
    static final Set<String> FORMATS = Set.of("dense", "sparse-bitmask", "sparse-24-bitmask", "int-quantized",
            "float-quantized", "naive-quantized", "pack-quantized", "marlin-24", "mixed-precision",
            "nvfp4-pack-quantized", "mxfp4-pack-quantized", "mxfp8-quantized");
    static final Set<String> STATUSES = Set.of("initialized", "calibration", "frozen", "compressed", "decompressed");
    static final Set<String> STRATEGIES = Set.of("tensor", "channel", "group", "block", "token", "tensor_group", "attn_head");
    static final Set<String> INPUT_STRATEGIES = Set.of("token", "tensor", "group", "tensor_group", "attn_head");
    static final Set<String> DYNAMIC_STRATEGIES = Set.of("token", "tensor", "tensor_group", "group");

    /** Fails the test, naming the field, if {@code qc} would not validate as a QuantizationConfig. */
    public static void validate(JsonNode qc) {
        onlyFields(qc, CONFIG_FIELDS, "quantization_config");
        assertEquals("compressed-tensors", qc.path("quant_method").asText(), "quant_method");
        assertTrue(FORMATS.contains(qc.path("format").asText()), "format " + qc.path("format"));
        assertTrue(STATUSES.contains(qc.path("quantization_status").asText()), "quantization_status");
        JsonNode ignore = qc.path("ignore");
        assertTrue(ignore.isArray(), "ignore is a list");
        ignore.forEach(n -> assertTrue(n.isTextual(), "ignore entries are strings: " + n));
        if (qc.hasNonNull("kv_cache_scheme")) args(qc.get("kv_cache_scheme"), "kv_cache_scheme", false);
        JsonNode groups = qc.path("config_groups");
        assertTrue(groups.isObject() && !groups.isEmpty(), "config_groups");
        for (Iterator<Map.Entry<String, JsonNode>> it = groups.fields(); it.hasNext(); ) {
            var e = it.next();
            String w = "config_groups." + e.getKey();
            JsonNode s = e.getValue();
            onlyFields(s, SCHEME_FIELDS, w);
            assertTrue(s.path("targets").isArray() && !s.path("targets").isEmpty(), w + ".targets");
            if (s.hasNonNull("weights")) args(s.get("weights"), w + ".weights", false);
            if (s.hasNonNull("input_activations")) args(s.get("input_activations"), w + ".input_activations", true);
            if (s.hasNonNull("output_activations")) args(s.get("output_activations"), w + ".output_activations", true);
        }
    }

    private static void args(JsonNode a, String w, boolean activation) {
        onlyFields(a, ARGS_FIELDS, w);
        assertTrue(a.path("num_bits").isInt(), w + ".num_bits is an int");
        String type = a.path("type").asText("int");
        assertTrue(type.equals("int") || type.equals("float"), w + ".type " + type);
        assertTrue(!a.has("symmetric") || a.get("symmetric").isBoolean(), w + ".symmetric is a bool");
        JsonNode gs = a.get("group_size");
        Integer group = gs == null || gs.isNull() ? null : gs.asInt();
        if (group != null) assertTrue(group > 0 || group == -1, w + ".group_size " + group);
        String strategy = a.hasNonNull("strategy") ? a.get("strategy").asText()
                : group == null ? "tensor" : group > 0 ? "group" : "channel";
        assertTrue(STRATEGIES.contains(strategy), w + ".strategy " + strategy);
        JsonNode dyn = a.get("dynamic");
        boolean dynamic = dyn != null && (dyn.isBoolean() ? dyn.asBoolean() : dyn.isTextual());
        if (dyn != null && !dyn.isBoolean()) assertEquals("local", dyn.asText(), w + ".dynamic");
        if (strategy.equals("token")) assertTrue(dynamic, w + ": static token quantization is refused");
        if (strategy.equals("group") || strategy.equals("tensor_group"))
            assertTrue(group != null && group > 0, w + ": strategy group needs a positive group_size");
        if (group != null && group > 0)
            assertTrue(strategy.equals("group") || strategy.equals("tensor_group"), w + ": group_size needs strategy group");
        boolean block = a.hasNonNull("block_structure");
        assertEquals(strategy.equals("block"), block, w + ": block_structure iff strategy block");
        if (dynamic) assertTrue(DYNAMIC_STRATEGIES.contains(strategy), w + ": dynamic strategy " + strategy);
        if (activation) {
            assertTrue(INPUT_STRATEGIES.contains(strategy), w + ": activation strategy " + strategy);
            assertTrue(!a.hasNonNull("actorder") || !a.get("actorder").asBoolean(true), w + ": no actorder on activations");
        }
        if (a.hasNonNull("observer")) assertTrue(a.get("observer").isTextual(), w + ".observer is a string");
        if (a.has("observer_kwargs")) assertTrue(a.get("observer_kwargs").isObject(), w + ".observer_kwargs is a dict");
    }

    private static void onlyFields(JsonNode n, Set<String> allowed, String where) {
        assertTrue(n.isObject(), where + " is an object");
        n.fieldNames().forEachRemaining(f -> {
            if (!allowed.contains(f)) fail(where + ": field '" + f + "' is not allowed (extra=\"forbid\"); allowed: " + allowed);
        });
    }
}
