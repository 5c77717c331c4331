package dev.qvlm.calib;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.qvlm.QvlmException;
import dev.qvlm.model.Linear;
import dev.qvlm.model.WeightNames;
import dev.qvlm.quant.ActQuantizer;
import dev.qvlm.quant.CompressedTensors;
import dev.qvlm.runtime.Llava;
import dev.qvlm.safetensors.SafeTensorsWriter;
import dev.qvlm.safetensors.TensorInfo;
import dev.qvlm.safetensors.WeightStore;
import dev.qvlm.util.Json;
import dev.qvlm.util.OutputPaths;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Stream;

/**
 * Saves a quantized model as a Hugging Face folder in the compressed-tensors layout: config.json with a
 * {@code quantization_config}, one model.safetensors where every quantized linear has weight_packed/weight_scale/
 * weight_zero_point/weight_shape (4-bit "pack-quantized") or an int8 weight with scales ("int-quantized") plus
 * input_scale/input_zero_point for static activations, all other tensors as they were, the tokenizer and
 * preprocessor files, and the quantization report. Everything is written into a temporary sibling folder that is
 * renamed at the end (and deleted if the run fails or is interrupted), so no half-written folder is ever left.
 */
public final class CheckpointSaver {
    private CheckpointSaver() {}

    public static void save(Llava llava, QuantRun.Result r, QuantSettings st, Path out, boolean force) {
        if (st.weights() == null)
            throw new QvlmException("--out: saving needs quantized weights (--wbits 2..8); activation-only settings are evaluated in memory only");
        Path target = out.toAbsolutePath().normalize();
        OutputPaths.checkCheckpointDir(out, force, "--out");
        Path tmp = target.resolveSibling(target.getFileName() + OutputPaths.TMP_INFIX + ProcessHandle.current().pid());
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
        SafeTensorsWriter w = new SafeTensorsWriter().metadata("format", "pt").metadata("quantized_by", "qvlm");
        Set<String> replaced = new HashSet<>();
        List<String> ignore = new ArrayList<>();
        for (Linear l : llava.model().weights().linears()) {
            String key = names.get(l.name() + ".weight");
            if (key == null) {
                if (l.part() == Linear.Part.LM_HEAD) continue; // tied to the embeddings: nothing stored
                throw new IllegalStateException("no stored weight for " + l.name());
            }
            String prefix = key.substring(0, key.length() - ".weight".length());
            LinearState s = states.get(l);
            if (s == null) {
                ignore.add(prefix);
                continue;
            }
            Linear.InputQuantizer iq = s.actQuantizer(s.aLo, s.aHi);
            CompressedTensors.writeLinear(w, prefix, s.quantized(s.wClip), iq instanceof ActQuantizer a ? a : null);
            replaced.add(key);
        }
        for (String k : store.names()) {
            if (replaced.contains(k)) continue;
            TensorInfo t = store.info(k);
            w.add(k, t.dtype(), t.shape(), store.segment(k));
        }
        w.write(dir.resolve("model.safetensors"));

        ObjectNode cfg = (ObjectNode) Json.read(llava.checkpoint().dir().resolve("config.json"));
        cfg.set("quantization_config", CompressedTensors.quantizationConfig(st.weights(), st.activations(), st.actDynamic(), ignore));
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
