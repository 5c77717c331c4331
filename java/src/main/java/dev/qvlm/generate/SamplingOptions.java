package dev.qvlm.generate;

/**
 * Decoding settings. temperature 0 means greedy (argmax); otherwise softmax(logits / T) restricted to the
 * smallest set of tokens whose probability reaches topP, sampled with a seeded generator.
 */
public record SamplingOptions(int maxTokens, float temperature, float topP, long seed) {
    public static SamplingOptions greedy(int maxTokens) {
        return new SamplingOptions(maxTokens, 0f, 1f, 0L);
    }
}
