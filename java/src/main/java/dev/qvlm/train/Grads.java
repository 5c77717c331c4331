package dev.qvlm.train;

import java.util.IdentityHashMap;
import java.util.Map;
import java.util.Set;

/**
 * Gradient accumulators of one backward pass, keyed by the parameter they belong to (a {@link dev.qvlm.model.Linear}
 * for its weight, the model's own float[] for a bias or a LayerNorm γ/β). Only keys in the trainable set get an
 * accumulator; for the others {@link #of} returns null and the backward skips that parameter's gradient (the
 * frozen LLM costs no dW work).
 */
public final class Grads {
    private final Set<Object> trainable;
    private final Map<Object, float[]> acc = new IdentityHashMap<>();

    public Grads(Set<Object> trainable) {
        this.trainable = trainable;
    }

    /** The accumulator of {@code key} (size {@code n}), or null when the key is not trained. */
    public float[] of(Object key, int n) {
        if (key == null || !trainable.contains(key)) return null;
        return acc.computeIfAbsent(key, k -> new float[n]);
    }

    public float[] get(Object key) {
        return acc.get(key);
    }

    /** this += other. */
    public void add(Grads other) {
        other.acc.forEach((k, g) -> {
            float[] a = acc.computeIfAbsent(k, x -> new float[g.length]);
            for (int i = 0; i < g.length; i++) a[i] += g[i];
        });
    }
}
