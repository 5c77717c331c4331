package dev.qvlm.model;

import dev.qvlm.QvlmException;
import com.fasterxml.jackson.databind.JsonNode;
import dev.qvlm.config.LlavaConfig;
import dev.qvlm.quant.CompressedTensors;
import dev.qvlm.quant.TensorSource;
import dev.qvlm.tensor.Matrix;
import dev.qvlm.util.Json;
import java.util.HashMap;
import java.util.Map;
import dev.qvlm.safetensors.WeightStore;

import java.nio.file.Files;
import java.nio.file.Path;

/** A model directory in HF format, opened: config, the mapped weight files, and typed weights over them. */
public final class Checkpoint implements AutoCloseable {
    private final Path dir;
    private final LlavaConfig config;
    private final WeightStore store;
    private final LlavaWeights weights;

    private Checkpoint(Path dir, LlavaConfig config, WeightStore store, LlavaWeights weights) {
        this.dir = dir;
        this.config = config;
        this.store = store;
        this.weights = weights;
    }

    public static Checkpoint open(Path dir) {
        if (Files.isRegularFile(dir)) throw new QvlmException(dir + ": is a file; --model expects a model folder");
        if (!Files.isDirectory(dir)) throw new QvlmException(dir + ": model directory not found");
        Path cfgFile = dir.resolve("config.json");
        if (!Files.exists(cfgFile)) throw new QvlmException(dir + ": no config.json (is this a Hugging Face model folder?)");
        JsonNode root = Json.read(cfgFile);
        LlavaConfig cfg = LlavaConfig.parse(root, cfgFile.toString());
        WeightStore store = WeightStore.open(dir);
        try {
            JsonNode qc = root.get("quantization_config");
            if (qc == null) return new Checkpoint(dir, cfg, store, WeightLoader.load(store, cfg));
            return new Checkpoint(dir, cfg, store, loadQuantized(store, cfg, CompressedTensors.Config.parse(qc, cfgFile.toString())));
        } catch (RuntimeException e) {
            store.close();
            throw e;
        }
    }

    /**
     * A compressed-tensors checkpoint: quantized linears come as packed int4 ({@link dev.qvlm.quant.Q4Matrix}, run
     * from the packed weights) or dequantised int-quantized weights, with their input quantizers attached.
     */
    private static LlavaWeights loadQuantized(WeightStore store, LlavaConfig cfg, CompressedTensors.Config qc) {
        Map<String, String> names = WeightNames.index(store.names());
        TensorSource src = TensorSource.of(store);
        Map<String, String> prefixes = new HashMap<>();
        WeightLoader.MatrixSource quantized = (canonical, rows, cols) -> {
            if (!canonical.endsWith(".weight")) return null;
            String c = canonical.substring(0, canonical.length() - ".weight".length());
            String key = names.get(c + ".weight_packed");
            if (key == null) key = names.get(c + ".weight_scale");
            if (key == null) return null;
            String prefix = key.substring(0, key.lastIndexOf('.'));
            prefixes.put(c, prefix);
            Matrix m = CompressedTensors.readWeight(src, prefix, qc);
            if (m.rows() != rows || m.cols() != cols)
                throw new QvlmException(store.dir() + ": quantized weight '" + prefix + "' is " + m.rows() + "x" + m.cols()
                        + " but config.json implies " + rows + "x" + cols);
            return m;
        };
        LlavaWeights w = WeightLoader.load(store, cfg, quantized);
        for (Linear l : w.linears()) {
            String prefix = prefixes.get(l.name());
            if (prefix != null) l.setInputQuantizer(CompressedTensors.readInputQuantizer(src, prefix, qc));
        }
        return w;
    }

    public Path dir() {
        return dir;
    }

    public LlavaConfig config() {
        return config;
    }

    public WeightStore store() {
        return store;
    }

    public LlavaWeights weights() {
        return weights;
    }

    @Override
    public void close() {
        store.close();
    }
}
