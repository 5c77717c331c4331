package dev.qvlm.generate;

import dev.qvlm.backend.Tensor;
import dev.qvlm.model.KvCache;
import dev.qvlm.model.LlavaModel;
import dev.qvlm.tokenizer.Tokenizer;

import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;

/** Prefill then token-by-token decode with the KV cache, stopping at EOS or the token limit, streaming text. */
public final class Generator {
    public record Result(int[] tokens, String text, int promptTokens, double prefillSeconds, double decodeSeconds,
                         String stopReason) {
        public double decodeTokensPerSecond() {
            return tokens.length <= 1 ? 0 : (tokens.length - 1) / decodeSeconds;
        }
    }

    private final LlavaModel model;
    private final Tokenizer tokenizer;

    public Generator(LlavaModel model, Tokenizer tokenizer) {
        this.model = model;
        this.tokenizer = tokenizer;
    }

    /**
     * @param promptIds prompt with image tokens already expanded
     * @param imageEmbeds embeddings for the image tokens, or null
     * @param stream receives each new piece of text as soon as it decodes to complete characters (may be null)
     */
    public Result generate(int[] promptIds, Tensor imageEmbeds, SamplingOptions opts, Consumer<String> stream) {
        int vocab = model.config().text().vocabSize();
        int[] eos = model.config().text().eosTokenIds();
        LlavaModel.checkContext(promptIds.length, opts.maxTokens(), model.contextLength());
        try (KvCache cache = model.newCache(promptIds.length + opts.maxTokens())) {
            return generate(cache, promptIds, imageEmbeds, opts, stream, vocab, eos);
        }
    }

    private Result generate(KvCache cache, int[] promptIds, Tensor imageEmbeds, SamplingOptions opts, Consumer<String> stream,
                            int vocab, int[] eos) {
        Sampler sampler = new Sampler(opts);
        long t0 = System.nanoTime();
        float[] logits = model.forward(cache, promptIds, imageEmbeds, false);
        long t1 = System.nanoTime();
        List<Integer> out = new ArrayList<>();
        String printed = "";
        String stop = "max_tokens";
        for (int step = 0; step < opts.maxTokens(); step++) {
            int next = sampler.next(logits, 0, vocab);
            boolean isEos = false;
            for (int e : eos) isEos |= e == next;
            if (isEos) {
                stop = "eos";
                break;
            }
            out.add(next);
            if (stream != null) {
                String text = tokenizer.decode(out.stream().mapToInt(Integer::intValue).toArray());
                // hold back a trailing partial UTF-8 sequence (byte-fallback tokens) until it completes
                if (!text.endsWith("\uFFFD") && text.length() > printed.length() && text.startsWith(printed)) {
                    stream.accept(text.substring(printed.length()));
                    printed = text;
                }
            }
            if (step + 1 < opts.maxTokens()) logits = model.forward(cache, new int[]{next}, null, false);
        }
        long t2 = System.nanoTime();
        int[] toks = out.stream().mapToInt(Integer::intValue).toArray();
        String text = tokenizer.decode(toks);
        if (stream != null && text.length() > printed.length() && text.startsWith(printed))
            stream.accept(text.substring(printed.length()));
        return new Result(toks, text, promptIds.length, (t1 - t0) / 1e9, (t2 - t1) / 1e9, stop);
    }
}
