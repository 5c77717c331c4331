package dev.qvlm.model;

import dev.qvlm.backend.Backend;
import dev.qvlm.backend.Tensor;

/** Keys and values of every decoder layer for one sequence: [capacity x kvHeads*headDim] per layer. */
public final class KvCache {
    final Tensor[] keys;
    final Tensor[] values;
    final int capacity;
    int length;

    public KvCache(Backend backend, int layers, int capacity, int kvDim) {
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
}
