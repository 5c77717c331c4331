package dev.qvlm.calib;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.qvlm.QvlmException;
import dev.qvlm.config.ConfigSpellings;
import dev.qvlm.model.Linear;
import dev.qvlm.model.WeightNames;
import dev.qvlm.quant.ActQuantizer;
import dev.qvlm.quant.CompressedTensors;
import dev.qvlm.quant.QuantArgs;
import dev.qvlm.quant.QuantizedWeight;
import dev.qvlm.quant.SaveTarget;
import dev.qvlm.runtime.Llava;
import dev.qvlm.safetensors.SafeTensors;
import dev.qvlm.safetensors.SafeTensorsWriter;
import dev.qvlm.safetensors.TensorInfo;
import dev.qvlm.safetensors.WeightStore;
import dev.qvlm.util.Files2;
import dev.qvlm.util.Json;
import dev.qvlm.util.OutputPaths;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Consumer;
import java.util.stream.Stream;

/**
 * Saves a quantized model as a Hugging Face folder in the compressed-tensors layout: config.json with a
 * {@code quantization_config}, model.safetensors (or shards with an index) where every quantized linear has
 * weight_packed/weight_scale/weight_zero_point/weight_shape ("pack-quantized") or an int8 weight with scales
 * ("naive-quantized", "int-quantized") plus input_scale/input_zero_point for static activations, all other tensors
 * as they were, the tokenizer and preprocessor files, and the quantization report. Whatever the input's key layout,
 * keys are written in the llava-hf layout ({@link WeightNames#llavaHf}) and the config carries the transformers-4
 * and -5 spellings of its fields; the {@code ignore} list holds {@code re:} patterns that match under every naming
 * ({@link WeightNames#anyLayoutRegex}); scales take the dtype of the weight they replace. Saving streams: each
 * linear is quantized when its shard is written and its source pages are released after, so a model larger than
 * RAM is saved with about one shard of memory. Everything is written into a temporary sibling folder that is
 * renamed at the end (and deleted if the run fails or is interrupted), so no half-written folder is ever left.
 */
public final class CheckpointSaver {
    private CheckpointSaver() {}

    /** The quantized form of each in-scope linear, produced when the saver reaches it (so only one is held at a time). */
    public interface Quantized {
        QuantizedWeight weight(Linear l);

        /** Its static input quantizer, or null (weight-only, or dynamic activations: nothing stored). */
        ActQuantizer input(Linear l);

        /** Tensors other than quantized weights with new values (scales folded into norms), by canonical name. */
        default Map<String, float[]> modifiedTensors() {
            return Map.of();
        }
    }

    /** Largest shard written; the quantized tensors of one shard are what the saver holds in memory at once. */
    public static final long DEFAULT_SHARD_BYTES = 2_000_000_000L;

    /** {@link #save(Llava, QuantRun.Result, QuantSettings, SaveTarget, Path, boolean)} for our own loader (refuses nothing). */
    public static void save(Llava llava, QuantRun.Result r, QuantSettings st, Path out, boolean force) {
        save(llava, r, st, SaveTarget.QVLM, out, force);
    }

    /** Saves the result of a calibration run (the chosen quantizers of its in-scope linears) for {@code runtime}. */
    public static void save(Llava llava, QuantRun.Result r, QuantSettings st, SaveTarget runtime, Path out, boolean force) {
        Map<Linear, LinearState> states = r.calibrator().states();
        save(llava, r.report(), st, runtime, new Quantized() {
            public QuantizedWeight weight(Linear l) {
                LinearState s = states.get(l);
                return s == null ? null : s.chosenQuantized();
            }

            public ActQuantizer input(Linear l) {
                LinearState s = states.get(l);
                return s != null && s.actQuantizer(s.aLo, s.aHi) instanceof ActQuantizer a ? a : null;
            }

            public Map<String, float[]> modifiedTensors() {
                return r.calibrator().modifiedTensors();
            }
        }, out, force, DEFAULT_SHARD_BYTES, null);
    }

    /**
     * Saves {@code llava} with its in-scope linears quantized by {@code q} for {@code runtime}, which first refuses
     * (QvlmException) a setting it cannot run. Shards of at most {@code shardBytes} are filled and written one after
     * the other (one {@code model.safetensors} when everything fits in one, else
     * {@code model-0000i-of-0000N.safetensors} with an index).
     */
    public static void save(Llava llava, QuantReport report, QuantSettings st, SaveTarget runtime, Quantized q, Path out,
                            boolean force, long shardBytes, Consumer<String> log) {
        if (st.weights() == null)
            throw new QvlmException("--out: saving needs quantized weights (--wbits 2..8); activation-only settings are evaluated in memory only");
        runtime.check(st.weights(), st.activations(), st.actDynamic());
        OutputPaths.checkCheckpointDir(out, force, "--out");
        Files2.writeFolderAtomically(out, "--out " + out, true,
                tmp -> write(llava, report, st, q, tmp, shardBytes, log == null ? x -> {} : log));
    }

    /**
     * One thing to store under (the llava-hf name of) its stored key: a quantized linear, a tensor with new values
     * (FP32), or a tensor copied as it is.
     */
    private record Item(String key, Linear linear, long bytes, float[] values) {}

    private static void write(Llava llava, QuantReport report, QuantSettings st, Quantized q, Path dir, long shardBytes,
                              Consumer<String> log) throws IOException {
        WeightStore store = llava.checkpoint().store();
        Map<String, String> names = WeightNames.index(store.names());
        String format = CompressedTensors.formatFor(st.weights(), st.activations());
        Set<String> replaced = new HashSet<>();
        Map<Linear.Part, List<String>> keptByPart = new EnumMap<>(Linear.Part.class);
        Map<Linear.Part, Integer> linearsByPart = new EnumMap<>(Linear.Part.class);
        List<Item> items = new ArrayList<>();
        for (Linear l : llava.model().weights().linears()) {
            linearsByPart.merge(l.part(), 1, Integer::sum);
            String key = names.get(l.name() + ".weight");
            if (key == null) {
                if (l.part() == Linear.Part.LM_HEAD) continue; // tied to the embeddings: nothing stored
                throw new IllegalStateException("no stored weight for " + l.name());
            }
            if (!st.scope().contains(l.part())) {
                keptByPart.computeIfAbsent(l.part(), p -> new ArrayList<>()).add(l.name());
                continue;
            }
            items.add(new Item(key, l, quantizedBytes(l, st.weights()), null));
            replaced.add(key);
        }
        // norms and biases that AWQ / SmoothQuant scales were folded into: their new values, in FP32
        for (Map.Entry<String, float[]> e : q.modifiedTensors().entrySet()) {
            String key = names.get(e.getKey());
            if (key == null) throw new IllegalStateException("no stored tensor for " + e.getKey());
            items.add(new Item(key, null, 4L * e.getValue().length, e.getValue()));
            replaced.add(key);
        }
        Set<String> copied = new HashSet<>();
        for (String k : store.names()) {
            if (replaced.contains(k)) continue;
            String outKey = savedName(k);
            if (!copied.add(outKey)) throw new QvlmException(store.info(k).file() + ": tensor '" + k + "' and another one both map to '" + outKey + "'");
            TensorInfo t = store.info(k);
            items.add(new Item(k, null, t.end() - t.begin(), null));
        }
        // greedy shards in this order (quantized linears first, then the rest, as a single file would hold them)
        List<List<Item>> shards = new ArrayList<>();
        long cur = Long.MAX_VALUE;
        for (Item it : items) {
            if (shards.isEmpty() || cur + it.bytes() > shardBytes) {
                shards.add(new ArrayList<>());
                cur = 0;
            }
            shards.getLast().add(it);
            cur += it.bytes();
        }
        long total = 0;
        long t0 = System.nanoTime();
        for (int s = 0; s < shards.size(); s++) {
            String file = shards.size() == 1 ? "model.safetensors" : String.format("model-%05d-of-%05d.safetensors", s + 1, shards.size());
            SafeTensorsWriter w = new SafeTensorsWriter().metadata("format", "pt").metadata("quantized_by", "qvlm");
            for (Item it : shards.get(s)) {
                if (it.linear() == null) {
                    TensorInfo t = store.info(it.key());
                    String outKey = savedName(it.key());
                    if (it.values() != null) w.addF32(outKey, t.shape(), it.values());
                    else w.add(outKey, t.dtype(), t.shape(), store.segment(it.key()));
                    continue;
                }
                QuantizedWeight qw = q.weight(it.linear());
                if (qw == null) throw new IllegalStateException("no quantized weight for in-scope " + it.linear().name());
                // compressed-tensors keeps scales in the dtype of the weight they replace (F16 for an FP16 model)
                CompressedTensors.writeLinear(w, WeightNames.llavaHf(it.linear().name()), qw, q.input(it.linear()),
                        store.info(it.key()).dtype(), format);
                store.release(it.key()); // packed now: its FP16 pages are not needed again
            }
            w.write(dir.resolve(file));
            for (Item it : shards.get(s)) if (it.linear() == null) store.release(it.key());
            long bytes = Files.size(dir.resolve(file));
            total += bytes;
            log.accept(String.format("  %s: %.2f GB (%d/%d, %.0f s)", file, bytes / 1e9, s + 1, shards.size(),
                    (System.nanoTime() - t0) / 1e9));
        }
        if (shards.size() > 1) {
            Map<String, Object> wm = new LinkedHashMap<>();
            for (int s = 0; s < shards.size(); s++) {
                String file = String.format("model-%05d-of-%05d.safetensors", s + 1, shards.size());
                try (SafeTensors st2 = SafeTensors.open(dir.resolve(file))) {
                    for (String n : st2.names()) wm.put(n, file);
                }
            }
            Map<String, Object> index = new LinkedHashMap<>();
            index.put("metadata", Map.of("total_size", total));
            index.put("weight_map", wm);
            Json.writeAtomically(dir.resolve("model.safetensors.index.json"), index);
        }

        ObjectNode cfg = (ObjectNode) Json.read(llava.checkpoint().dir().resolve("config.json"));
        ConfigSpellings.addBoth(cfg);
        cfg.set("quantization_config", CompressedTensors.quantizationConfig(st.weights(), st.activations(), st.actDynamic(),
                ignorePatterns(keptByPart, linearsByPart)));
        Json.writeAtomically(dir.resolve("config.json"), cfg);
        try (Stream<Path> files = Files.list(llava.checkpoint().dir())) {
            for (Path p : files.toList()) {
                String n = p.getFileName().toString();
                if (n.endsWith(".safetensors") || n.equals("model.safetensors.index.json") || n.equals("config.json")
                        || n.equals("quantization_report.json") || !Files.isRegularFile(p)) continue;
                Files.copy(p, dir.resolve(n));
            }
        }
        Json.writeAtomically(dir.resolve("quantization_report.json"), report);
    }

    /** The llava-hf name a stored tensor is saved under; unknown extras keep their name. */
    private static String savedName(String storedKey) {
        String canonical = WeightNames.canonical(storedKey);
        return canonical == null ? storedKey : WeightNames.llavaHf(canonical);
    }

    /** Stored size of a quantized linear, for planning shards: codes plus (at most FP32) scales and zero points. */
    private static long quantizedBytes(Linear l, QuantArgs a) {
        long rows = l.out(), cols = l.in();
        long groups = a.granularity() == QuantArgs.Granularity.GROUP ? rows * ((cols + a.groupSize() - 1) / a.groupSize()) : rows;
        long codes = a.bits() == 4 ? rows * ((cols + 7) / 8) * 4 : rows * cols;
        return codes + 8 * groups;
    }

    /**
     * The {@code ignore} list: lm_head always, then one pattern per part left wholly in full precision (scope), or
     * one per layer where a part is only partly quantized. vLLM and compressed-tensors match non-regex entries by
     * exact module name, which differs between checkpoint keys, vLLM and transformers ≥ 4.52; {@code re:} patterns
     * written for every naming match in all of them (and vLLM's hf_to_vllm_mapper leaves them alone).
     */
    static List<String> ignorePatterns(Map<Linear.Part, List<String>> kept, Map<Linear.Part, Integer> total) {
        List<String> ignore = new ArrayList<>();
        ignore.add("re:" + WeightNames.anyLayoutRegex("lm_head"));
        for (var e : kept.entrySet()) {
            String part = switch (e.getKey()) {
                case LLM -> "text";
                case VISION -> "vision";
                case PROJECTOR -> "projector";
                case LM_HEAD, VISION_EMBEDDING -> null; // lm_head: above; the patch embedding is a Conv2d, never targeted
            };
            if (part == null) continue;
            if (e.getValue().size() == total.get(e.getKey()))
                ignore.add("re:" + WeightNames.anyLayoutRegex(part));
            else
                for (String layer : e.getValue()) ignore.add("re:" + WeightNames.anyLayoutRegex(layer));
        }
        return ignore;
    }

    /** Whether a config.json describes a quantized model (for messages). */
    public static boolean isQuantized(JsonNode config) {
        return config.has("quantization_config");
    }
}
