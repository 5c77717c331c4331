package dev.qvlm.config;

import dev.qvlm.QvlmException;
import dev.qvlm.util.Json;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;

/**
 * Shapes of published LLaVA-1.5 checkpoints (llava-hf configs), for analytic sizes and synthetic benchmarks.
 * {@code tinyllama-1.1b} is the text model of TinyLlama-1.1B (hidden 2048, 22 layers, 32 heads, 4 KV heads, vocab
 * 32000) with the small vision tower of {@code tiny}: a common llama.cpp comparison shape, for decode and prefill of
 * text (benchmarks/llamacpp runs it with --image-tokens 0).
 */
public final class KnownModels {
    public static final String[] NAMES = {"llava-1.5-7b", "llava-1.5-13b", "tinyllama-1.1b", "tiny"};

    private KnownModels() {}

    public static LlavaConfig config(String name) {
        String res = switch (name) {
            case "llava-1.5-7b", "llava-1.5-13b", "tinyllama-1.1b", "tiny" -> name + ".json";
            default -> throw new QvlmException("unknown model shape '" + name + "' (known: " + String.join(", ", NAMES) + ")");
        };
        try (InputStream in = KnownModels.class.getResourceAsStream(res)) {
            if (in == null) throw new IllegalStateException("missing resource " + res);
            return LlavaConfig.parse(Json.parse(new String(in.readAllBytes(), StandardCharsets.UTF_8), res), name);
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }
}
