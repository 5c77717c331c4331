package dev.qvlm.model;

import dev.qvlm.backend.Backend;
import dev.qvlm.backend.Tensor;

/**
 * Keys and values of every decoder layer for one sequence: [capacity x kvHeads*headDim] per layer. The owner closes
 * it when the sequence is done ({@link Backend#free}: a GPU takes the memory back at once, ~0.8 MB per token of
 * LLaVA-13B context in FP16); using a closed cache is an error.
 */
public final class KvCache implements AutoCloseable {
    final Tensor[] keys;
    final Tensor[] values;
    final int capacity;
    int length;
    private final Backend backend;
    private boolean closed;

    public KvCache(Backend backend, int layers, int capacity, int kvDim) {
        this.backend = backend;
        this.capacity = capacity;
        keys = new Tensor[layers];
        values = new Tensor[layers];
        for (int i = 0; i < layers; i++) {
            keys[i] = backend.allocate(capacity, kvDim);
            values[i] = backend.allocate(capacity, kvDim);
        }
    }

    public int length() {
        return length;
    }

    public int capacity() {
        return capacity;
    }

    /** Forget everything after the first {@code n} tokens (e.g. to reuse a cached prefix). */
    public void truncate(int n) {
        if (n < 0 || n > length) throw new IllegalArgumentException("truncate " + n + " of " + length);
        length = n;
    }

    /** Throws if the cache was closed. */
    void checkOpen() {
        if (closed) throw new IllegalStateException("KV cache used after close");
    }

    /** Frees the keys and values now; idempotent. */
    @Override
    public void close() {
        if (closed) return;
        closed = true;
        for (Tensor t : keys) backend.free(t);
        for (Tensor t : values) backend.free(t);
    }
}
