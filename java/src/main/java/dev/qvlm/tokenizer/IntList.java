package dev.qvlm.tokenizer;

import java.util.Arrays;

/** A growable int array. */
final class IntList {
    private int[] a;
    private int n;

    IntList(int capacity) {
        a = new int[Math.max(4, capacity)];
    }

    void add(int v) {
        if (n == a.length) {
            a = Arrays.copyOf(a, n * 2);
        }
        a[n++] = v;
    }

    void addAll(int[] v) {
        if (n + v.length > a.length) {
            a = Arrays.copyOf(a, Math.max(n + v.length, a.length * 2));
        }
        System.arraycopy(v, 0, a, n, v.length);
        n += v.length;
    }

    int[] toArray() {
        return Arrays.copyOf(a, n);
    }
}
