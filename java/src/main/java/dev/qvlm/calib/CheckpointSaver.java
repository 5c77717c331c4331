package dev.qvlm.calib;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.qvlm.QvlmException;
import dev.qvlm.model.Linear;
import dev.qvlm.model.WeightNames;
import dev.qvlm.quant.ActQuantizer;
import dev.qvlm.quant.CompressedTensors;
import dev.qvlm.runtime.Llava;
import dev.qvlm.quant.QuantArgs;
import dev.qvlm.quant.QuantizedWeight;
import dev.qvlm.safetensors.DType;
import dev.qvlm.safetensors.SafeTensors;
import dev.qvlm.safetensors.SafeTensorsWriter;
import dev.qvlm.safetensors.TensorInfo;
import dev.qvlm.safetensors.WeightStore;
import dev.qvlm.util.Json;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Consumer;
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

    /** The quantized form of each linear, produced when the saver reaches it (so only one is held at a time). */
    public interface Quantized {
        /** The quantized weight, or null to keep this linear in full precision (it is then listed in "ignore"). */
        QuantizedWeight weight(Linear l);

        /** Its static input quantizer, or null (weight-only, or dynamic activations: nothing stored). */
        ActQuantizer input(Linear l);
    }

    /** Largest shard written; the quantized tensors of one shard are what the saver holds in memory at once. */
    public static final long DEFAULT_SHARD_BYTES = 2_000_000_000L;

    /** Saves the result of a calibration run (the chosen quantizers of its in-scope linears). */
    public static void save(Llava llava, QuantRun.Result r, QuantSettings st, Path out, boolean force) {
        Map<Linear, LinearState> states = r.calibrator().states();
        save(llava, r.report(), st, new Quantized() {
            public QuantizedWeight weight(Linear l) {
                LinearState s = states.get(l);
                return s == null ? null : s.chosenQuantized();
            }

            public ActQuantizer input(Linear l) {
                LinearState s = states.get(l);
                return s != null && s.actQuantizer(s.aLo, s.aHi) instanceof ActQuantizer a ? a : null;
            }
        }, out, force, DEFAULT_SHARD_BYTES, null);
    }

    /**
     * Saves {@code llava} with its linears quantized by {@code q}, streaming: shards of at most {@code shardBytes}
     * are filled and written one after the other (one {@code model.safetensors} when everything fits in one, else
     * {@code model-0000i-of-0000N.safetensors} with an index), and the source tensors of a written shard are
     * released from memory, so a model larger than RAM is saved with about one shard of memory.
     */
    public static void save(Llava llava, QuantReport report, QuantSettings st, Quantized q, Path out, boolean force,
                            long shardBytes, Consumer<String> log) {
        if (st.weights() == null)
            throw new QvlmException("--out: saving needs quantized weights (--wbits 2..8); activation-only settings are evaluated in memory only");
        Path target = out.toAbsolutePath().normalize();
        if (Files.exists(target) && !force)
            throw new QvlmException("--out " + out + " already exists (use --force to replace it)");
        Path tmp = target.resolveSibling(target.getFileName() + ".tmp-" + ProcessHandle.current().pid());
        Thread cleanup = new Thread(() -> deleteQuietly(tmp), "qvlm-cleanup");
        Runtime.getRuntime().addShutdownHook(cleanup);
        try {
            deleteQuietly(tmp);
            Files.createDirectories(tmp);
            write(llava, report, st, q, tmp, shardBytes, log == null ? x -> {} : log);
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

    /** One thing to store: a quantized linear (its stored weight key and the linear) or a tensor copied as it is. */
    private record Item(String key, Linear linear, long bytes) {}

    private static void write(Llava llava, QuantReport report, QuantSettings st, Quantized q, Path dir, long shardBytes,
                              Consumer<String> log) throws IOException {
        WeightStore store = llava.checkpoint().store();
        Map<String, String> names = WeightNames.index(store.names());
        Set<String> replaced = new HashSet<>();
        List<String> ignore = new ArrayList<>();
        List<Item> items = new ArrayList<>();
        for (Linear l : llava.model().weights().linears()) {
            String key = names.get(l.name() + ".weight");
            if (key == null) {
                if (l.part() == Linear.Part.LM_HEAD) continue; // tied to the embeddings: nothing stored
                throw new IllegalStateException("no stored weight for " + l.name());
            }
            if (!st.scope().contains(l.part())) {
                ignore.add(key.substring(0, key.length() - ".weight".length()));
                continue;
            }
            items.add(new Item(key, l, quantizedBytes(l, st.weights())));
            replaced.add(key);
        }
        for (String k : store.names()) {
            if (replaced.contains(k)) continue;
            TensorInfo t = store.info(k);
            items.add(new Item(k, null, t.end() - t.begin()));
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
            // the packed words of this shard live in this arena until the shard is on disk
            try (Arena arena = Arena.ofShared()) {
                for (Item it : shards.get(s)) {
                    if (it.linear() == null) {
                        TensorInfo t = store.info(it.key());
                        w.add(it.key(), t.dtype(), t.shape(), store.segment(it.key()));
                        continue;
                    }
                    String prefix = it.key().substring(0, it.key().length() - ".weight".length());
                    QuantizedWeight qw = q.weight(it.linear());
                    if (qw == null) throw new IllegalStateException("no quantized weight for in-scope " + it.linear().name());
                    CompressedTensors.writeLinear(w, prefix, qw, q.input(it.linear()), DType.F32, arena);
                    store.release(it.key()); // packed now: its FP16 pages are not needed again
                }
                w.write(dir.resolve(file));
            }
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
        Json.writeAtomically(dir.resolve("quantization_report.json"), report);
    }

    /** Stored size of a quantized linear, for planning shards: packed codes plus FP32 scales and zero points. */
    private static long quantizedBytes(Linear l, QuantArgs a) {
        long rows = l.out(), cols = l.in();
        long groups = a.granularity() == QuantArgs.Granularity.GROUP ? rows * ((cols + a.groupSize() - 1) / a.groupSize()) : rows;
        long codes = a.bits() == 4 ? rows * ((cols + 7) / 8) * 4 : rows * cols;
        return codes + 8 * groups;
    }

    static void deleteQuietly(Path p) {
        dev.qvlm.util.Files2.deleteTree(p);
    }

    /** Whether a config.json describes a quantized model (for messages). */
    public static boolean isQuantized(JsonNode config) {
        return config.has("quantization_config");
    }
}
