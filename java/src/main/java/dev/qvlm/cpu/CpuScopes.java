package dev.qvlm.cpu;

import dev.qvlm.backend.Backend;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * One thread's {@link Backend#scope}s on the CPU: the arrays of tensors allocated inside the innermost open scope
 * are kept in a free list by length when it closes, and the next allocation of that length takes one from there
 * (zeroed for {@link CpuBackend#allocate}, as it is for {@link CpuBackend#uninitialized}). A decode step whose layers
 * are scoped thus reuses the same arrays layer after layer and step after step. The free list keeps at most
 * {@link #RETAINED_BYTES}; arrays beyond it are left to the collector. With assertions on (the tests), a released
 * array is filled with NaN first, so a tensor used after its scope closed shows up in the results.
 */
final class CpuScopes {
    /** Most bytes of free arrays one thread keeps between scopes. */
    static final long RETAINED_BYTES = 64L << 20;
    private static final boolean POISON = poisonReleased();

    private final ArrayDeque<List<float[]>> open = new ArrayDeque<>();
    private final Map<Integer, ArrayDeque<float[]>> free = new HashMap<>();
    private long retained;

    @SuppressWarnings("AssertWithSideEffects")
    private static boolean poisonReleased() {
        boolean on = false;
        assert on = true;
        return on;
    }

    Backend.Scope open() {
        List<float[]> owned = new ArrayList<>();
        open.push(owned);
        return () -> close(owned);
    }

    /** An array of n floats for a tensor: from the free list inside a scope (zeroed if asked), else a new one. */
    float[] take(int n, boolean zero) {
        List<float[]> owner = open.peek();
        if (owner == null) return new float[n];
        ArrayDeque<float[]> q = free.get(n);
        float[] a;
        if (q != null && !q.isEmpty()) {
            a = q.pop();
            retained -= 4L * n;
            if (zero) Arrays.fill(a, 0f);
        } else a = new float[n];
        owner.add(a);
        return a;
    }

    private void close(List<float[]> owned) {
        if (open.peek() != owned) throw new IllegalStateException("scopes closed out of order");
        open.pop();
        for (float[] a : owned) {
            if (retained + 4L * a.length > RETAINED_BYTES) continue;
            if (POISON) Arrays.fill(a, Float.NaN);
            free.computeIfAbsent(a.length, k -> new ArrayDeque<>()).push(a);
            retained += 4L * a.length;
        }
        owned.clear();
    }
}
