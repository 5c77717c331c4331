package dev.qvlm.runtime;

import dev.qvlm.QvlmException;
import dev.qvlm.config.LlavaConfig;
import dev.qvlm.config.TextConfig;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * What running a model needs in memory, estimated before the first forward pass so a run that cannot fit stops
 * with one message instead of an OutOfMemoryError or a machine paging to death. A forward pass reads every weight
 * for every token, so the memory-mapped weights must be resident; the KV cache (FP32 on the CPU) and the
 * activations live on the Java heap.
 */
public final class MemoryBudget {
    /** JVM, code, tokenizer and the young generation the launcher allows (-XX:MaxNewSize=256m), measured ≈ 0.5 GB. */
    static final long BASE = 512L << 20;
    /** Set to 1 to run anyway (the weights then page in from disk for every token: very slow, but it works). */
    public static final String SKIP_ENV = "QVLM_SKIP_MEMORY_CHECK";

    private MemoryBudget() {}

    /**
     * @param weights tensor data of the folder (mapped, all of it touched by a forward pass)
     * @param kvCache keys and values of every decoder layer, FP32, for every concurrent sequence
     * @param heap    KV cache plus activations of one forward pass per sequence: what the Java heap must hold
     */
    public record Estimate(long weights, long kvCache, long heap) {
        public long total() {
            return weights + heap + BASE;
        }
    }

    /** For {@code sequences} concurrent sequences of up to {@code tokens} tokens each. */
    public static Estimate forRun(Llava llava, int tokens, int sequences) {
        return forRun(llava.model().config(), llava.checkpoint().store().dataBytes(), tokens, sequences);
    }

    /** For a config whose weight files hold {@code weightBytes} of tensor data. */
    public static Estimate forRun(LlavaConfig cfg, long weightBytes, int tokens, int sequences) {
        TextConfig t = cfg.text();
        long kv = 2L * t.numLayers() * t.kvDim() * tokens * Float.BYTES * sequences;
        // hidden state, residual, q/k/v/attention output (≈ 8 x hidden) and gate/up/act (3 x intermediate) per token
        long act = (long) tokens * (8L * t.hiddenSize() + 3L * t.intermediateSize()) * Float.BYTES * sequences;
        return new Estimate(weightBytes, kv, kv + act);
    }

    /** MemAvailable of /proc/meminfo in bytes (free memory plus reclaimable page cache), or -1 where unknown. */
    public static long available() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/meminfo"))) {
                if (line.startsWith("MemAvailable:")) {
                    List<String> f = List.of(line.trim().split("\\s+"));
                    return Long.parseLong(f.get(1)) * 1024;
                }
            }
        } catch (IOException | RuntimeException ignored) {
            // not Linux: no check
        }
        return -1;
    }

    /** Throws a {@link QvlmException} (exit 2) naming what does not fit, before any work is done. */
    public static void check(String command, Estimate e) {
        check(command, e, available(), Runtime.getRuntime().maxMemory());
    }

    static void check(String command, Estimate e, long available, long maxHeap) {
        if ("1".equals(System.getenv(SKIP_ENV))) return;
        String parts = String.format("weights %.2f GB + KV cache %.2f GB + activations %.2f GB + runtime %.2f GB",
                e.weights() / 1e9, e.kvCache() / 1e9, (e.heap() - e.kvCache()) / 1e9, BASE / 1e9);
        if (available >= 0 && e.total() > available)
            throw new QvlmException(String.format("%s needs about %.1f GB of memory (%s) but only %.1f GB is available;"
                    + " quantize the model first (qvlm quantize --method rtn --wbits 4 --group 128 --out DIR streams"
                    + " models larger than memory), free memory, or set %s=1 to run anyway, paging weights from disk",
                    command, e.total() / 1e9, parts, available / 1e9, SKIP_ENV));
        if (e.heap() > maxHeap)
            throw new QvlmException(String.format("%s needs about %.1f GB of Java heap (KV cache %.2f GB + activations"
                    + " %.2f GB) but the heap is limited to %.1f GB; raise it (JAVA_OPTS=-Xmx...) or use fewer tokens/--jobs",
                    command, e.heap() / 1e9, e.kvCache() / 1e9, (e.heap() - e.kvCache()) / 1e9, maxHeap / 1e9));
    }
}
