package dev.qvlm.calib;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.qvlm.QvlmException;
import dev.qvlm.config.ConfigSpellings;
import dev.qvlm.model.Linear;
import dev.qvlm.model.WeightNames;
import dev.qvlm.quant.ActQuantizer;
import dev.qvlm.quant.CompressedTensors;
import dev.qvlm.quant.SaveTarget;
import dev.qvlm.runtime.Llava;
import dev.qvlm.safetensors.SafeTensorsWriter;
import dev.qvlm.safetensors.TensorInfo;
import dev.qvlm.safetensors.WeightStore;
import dev.qvlm.util.Json;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.EnumMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Stream;

/**
 * Saves a quantized model as a Hugging Face folder in the compressed-tensors layout: config.json with a
 * {@code quantization_config}, one model.safetensors where every quantized linear has weight_packed/weight_scale/
 * weight_zero_point/weight_shape ("pack-quantized") or an int8 weight with scales ("naive-quantized",
 * "int-quantized") plus input_scale/input_zero_point for static activations, all other tensors as they were, the
 * tokenizer and preprocessor files, and the quantization report. Whatever the input's key layout, keys are written
 * in the llava-hf layout ({@link WeightNames#llavaHf}) and the config carries the transformers-4 and -5 spellings
 * of its fields; the {@code ignore} list holds {@code re:} patterns that match under every naming
 * ({@link WeightNames#anyLayoutRegex}); scales take the dtype of the weight they replace. Everything is written into
 * a temporary sibling folder that is renamed at the end (and deleted if the run fails or is interrupted), so no
 * half-written folder is ever left.
 */
public final class CheckpointSaver {
    private CheckpointSaver() {}

    /** {@link #save(Llava, QuantRun.Result, QuantSettings, SaveTarget, Path, boolean)} for our own loader (refuses nothing). */
    public static void save(Llava llava, QuantRun.Result r, QuantSettings st, Path out, boolean force) {
        save(llava, r, st, SaveTarget.QVLM, out, force);
    }

    /** Saves for {@code runtime}, which first refuses (QvlmException) a setting it cannot run. */
    public static void save(Llava llava, QuantRun.Result r, QuantSettings st, SaveTarget runtime, Path out, boolean force) {
        runtime.check(st.weights(), st.activations(), st.actDynamic());
        Path target = out.toAbsolutePath().normalize();
        if (Files.exists(target) && !force)
            throw new QvlmException("--out " + out + " already exists (use --force to replace it)");
        Path tmp = target.resolveSibling(target.getFileName() + ".tmp-" + ProcessHandle.current().pid());
        Thread cleanup = new Thread(() -> deleteQuietly(tmp), "qvlm-cleanup");
        Runtime.getRuntime().addShutdownHook(cleanup);
        try {
            deleteQuietly(tmp);
            Files.createDirectories(tmp);
            write(llava, r, st, tmp);
            if (Files.exists(target)) deleteQuietly(target);
            Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            deleteQuietly(tmp);
            throw new QvlmException("--out " + out + ": cannot write (" + e.getMessage() + ")");
        } catch (RuntimeException e) {
            deleteQuietly(tmp);
            throw e;
        } finally {
            try {
                Runtime.getRuntime().removeShutdownHook(cleanup);
            } catch (IllegalStateException ignored) {
                // already shutting down: the hook runs
            }
        }
    }

    private static void write(Llava llava, QuantRun.Result r, QuantSettings st, Path dir) throws IOException {
        WeightStore store = llava.checkpoint().store();
        Map<String, String> names = WeightNames.index(store.names());
        Map<Linear, LinearState> states = r.calibrator().states();
        String format = CompressedTensors.formatFor(st.weights(), st.activations());
        SafeTensorsWriter w = new SafeTensorsWriter().metadata("format", "pt").metadata("quantized_by", "qvlm");
        Set<String> replaced = new HashSet<>();
        Set<String> copied = new HashSet<>();
        Map<Linear.Part, List<String>> keptByPart = new EnumMap<>(Linear.Part.class);
        Map<Linear.Part, Integer> linearsByPart = new EnumMap<>(Linear.Part.class);
        for (Linear l : llava.model().weights().linears()) {
            linearsByPart.merge(l.part(), 1, Integer::sum);
            String key = names.get(l.name() + ".weight");
            if (key == null) {
                if (l.part() == Linear.Part.LM_HEAD) continue; // tied to the embeddings: nothing stored
                throw new IllegalStateException("no stored weight for " + l.name());
            }
            LinearState s = states.get(l);
            if (s == null) {
                keptByPart.computeIfAbsent(l.part(), p -> new ArrayList<>()).add(l.name());
                continue;
            }
            Linear.InputQuantizer iq = s.actQuantizer(s.aLo, s.aHi);
            // compressed-tensors keeps scales in the dtype of the weight they replace (F16 for an FP16 model)
            CompressedTensors.writeLinear(w, WeightNames.llavaHf(l.name()), s.quantized(s.wClip),
                    iq instanceof ActQuantizer a ? a : null, store.info(key).dtype(), format);
            replaced.add(key);
        }
        for (String k : store.names()) {
            if (replaced.contains(k)) continue;
            String canonical = WeightNames.canonical(k);
            String outKey = canonical == null ? k : WeightNames.llavaHf(canonical); // unknown extras keep their name
            if (!copied.add(outKey)) throw new QvlmException(store.info(k).file() + ": tensor '" + k + "' and another one both map to '" + outKey + "'");
            TensorInfo t = store.info(k);
            w.add(outKey, t.dtype(), t.shape(), store.segment(k));
        }
        w.write(dir.resolve("model.safetensors"));

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
        Json.writeAtomically(dir.resolve("quantization_report.json"), r.report());
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

    static void deleteQuietly(Path p) {
        if (!Files.exists(p)) return;
        try (Stream<Path> walk = Files.walk(p)) {
            walk.sorted(Comparator.reverseOrder()).forEach(x -> {
                try {
                    Files.deleteIfExists(x);
                } catch (IOException ignored) {
                }
            });
        } catch (IOException ignored) {
        }
    }

    /** Whether a config.json describes a quantized model (for messages). */
    public static boolean isQuantized(JsonNode config) {
        return config.has("quantization_config");
    }
}
