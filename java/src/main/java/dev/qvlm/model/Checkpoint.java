package dev.qvlm.model;

import dev.qvlm.QvlmException;
import dev.qvlm.config.LlavaConfig;
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
        LlavaConfig cfg = LlavaConfig.load(cfgFile);
        WeightStore store = WeightStore.open(dir);
        try {
            return new Checkpoint(dir, cfg, store, WeightLoader.load(store, cfg));
        } catch (RuntimeException e) {
            store.close();
            throw e;
        }
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
