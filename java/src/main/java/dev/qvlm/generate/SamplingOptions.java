package dev.qvlm.generate;

import dev.qvlm.QvlmException;

/**
 * Decoding settings. temperature 0 means greedy (argmax); otherwise softmax(logits / T) restricted to the
 * smallest set of tokens whose probability reaches topP, sampled with a seeded generator.
 */
public record SamplingOptions(int maxTokens, float temperature, float topP, long seed) {
    /** Refuses settings that would decode garbage silently (NaN temperature samples nothing but token 0). */
    public SamplingOptions {
        if (maxTokens < 1) throw new QvlmException("max_tokens must be at least 1, got " + maxTokens);
        if (!(temperature >= 0) || Float.isInfinite(temperature))
            throw new QvlmException("temperature must be a finite number >= 0, got " + temperature);
        if (!(topP > 0 && topP <= 1)) throw new QvlmException("top_p must be in (0, 1], got " + topP);
    }

    public static SamplingOptions greedy(int maxTokens) {
        return new SamplingOptions(maxTokens, 0f, 1f, 0L);
    }
}
