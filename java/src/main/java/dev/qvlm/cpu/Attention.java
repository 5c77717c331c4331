package dev.qvlm.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * Softmax attention of one query row over a key/value cache, the CPU kernel behind {@link CpuBackend#attention}:
 * the query heads that share a key/value head together ({@link #group}). A decode step runs it once per key/value
 * head and per sequence over a short cache with a small head dimension (32 in the bundled model), so what matters
 * is the cost per key, not per FLOP:
 * <ul>
 *   <li>Scores, L keys at a time (L = lanes of the preferred species): each key's products q·k are summed lane-wise
 *       into one vector, and the L vectors are then summed across lanes together by a transposing tree (log2 L
 *       levels of two-vector lane selections and adds) instead of one horizontal sum per key; the keys are placed
 *       so that the tree leaves their scores in key order in one vector. The order of additions is fixed by the
 *       key's index alone, so every call gives the same bits (a sequence's logits do not depend on the batch).</li>
 *   <li>Output: each head-dimension chunk of the output is accumulated in a register over the keys in key order
 *       (the same fused multiply-adds, in the same order, as an axpy per key into a zeroed row).</li>
 * </ul>
 * Head dimensions that are not a multiple of L take the plain loop ({@link #headScalar}).
 */
final class Attention {
    private static final VectorSpecies<Float> F = VectorMath.F;
    private static final int L = F.length();
    /** Per tree level (half-width w = L/2, L/4, ..., 1): lane indexes into (u, v) of the two addends. */
    private static final FloatVector[] SEL_X, SEL_Y;
    /** Key of a block whose sum sits in slot s at the start of the tree, so that the tree ends with key i in lane i. */
    private static final int[] KEY_OF_SLOT;
    private static final int LEVELS = Integer.numberOfTrailingZeros(L);

    static {
        SEL_X = new FloatVector[LEVELS];
        SEL_Y = new FloatVector[LEVELS];
        // labels[s][i]: which slot's sum lane i of the vector now at position s carries
        int[][] labels = new int[L][L];
        for (int s = 0; s < L; s++) java.util.Arrays.fill(labels[s], s);
        int count = L;
        for (int lev = 0, w = L / 2; w >= 1; lev++, w /= 2) {
            float[] x = new float[L], y = new float[L];
            for (int i = 0; i < L; i++) {
                int b = i / (2 * w) * (2 * w), r = i - b;
                // selectFrom over (u, v): index < L takes u's lane, index >= L takes v's lane index - L
                x[i] = r < w ? b + r : L + b + r - w;
                y[i] = r < w ? b + r + w : L + b + r;
            }
            SEL_X[lev] = FloatVector.fromArray(F, x, 0);
            SEL_Y[lev] = FloatVector.fromArray(F, y, 0);
            int[][] next = new int[count / 2][L];
            for (int p = 0; p < count / 2; p++)
                for (int i = 0; i < L; i++) {
                    int b = i / (2 * w) * (2 * w), r = i - b;
                    next[p][i] = r < w ? labels[2 * p][b + r] : labels[2 * p + 1][b + r - w];
                }
            labels = next;
            count /= 2;
        }
        KEY_OF_SLOT = new int[L];
        for (int i = 0; i < L; i++) KEY_OF_SLOT[labels[0][i]] = i;
    }

    /** Per-thread scores and block scratch, grown on demand (owned by the thread, reused by every call). */
    private static final ThreadLocal<float[][]> SCRATCH = ThreadLocal.withInitial(() -> new float[][]{new float[0], new float[L * L]});

    private Attention() {}

    static float[] scores(int kvLen) {
        float[][] s = SCRATCH.get();
        if (s[0].length < kvLen) s[0] = new float[Math.max(kvLen, 2 * s[0].length)];
        return s[0];
    }

    /**
     * out[oo..oo+hd) = softmax(scale · q·Kᵀ) · V over keys 0..len-1, for the head whose query starts at q[qo] and
     * whose key/value head starts at column kvCol of k and v (row strides ks and vs): {@link #group} of one head.
     */
    static void head(float[] q, int qo, float[] k, int ko, int ks, float[] v, int vo, int vs, int kvCol, int len, int hd,
                     float scale, float[] out, int oo) {
        group(q, qo, 1, k, ko, ks, v, vo, vs, kvCol, len, hd, scale, out, oo);
    }

    /**
     * Attention of the {@code g} query heads that share one key/value head (grouped-query attention: query head h
     * at q[qo + h·hd], its output at out[oo + h·hd]), every head with the same operations in the same order as
     * alone (g = 1), so the same bits: scores L keys at a time ({@link #blockScores}), each block scored for all g
     * heads in turn (its key rows are fetched from memory once and read from L1 by the other heads); softmax; the
     * output accumulated per head-dimension chunk in registers over the keys in key order, each value row loaded
     * once for up to four heads (eight accumulation chains). One TinyLlama decode
     * step's attention (32 query heads over 4 key/value heads of 64, 22 layers, 2 threads, Zen 5): 0.58 → 0.39 ms
     * at 160 keys, 1.54 → 0.96 ms at 400 (one head at a time → this).
     */
    static void group(float[] q, int qo, int g, float[] k, int ko, int ks, float[] v, int vo, int vs, int kvCol, int len,
                      int hd, float scale, float[] out, int oo) {
        if (hd % L != 0 || L < 4) {
            for (int h = 0; h < g; h++) headScalar(q, qo + h * hd, k, ko, ks, v, vo, vs, kvCol, len, hd, scale, out, oo + h * hd);
            return;
        }
        float[] sc = scores(g * len), blk = SCRATCH.get()[1];
        float[] inv = new float[g];
        groupScores(q, qo, g, k, ko + kvCol, ks, len, hd, scale, sc, blk, inv);
        for (int h = 0; h < g; h += 4) {
            if (g - h >= 4 && hd % (2 * L) == 0) groupValues4(v, vo + kvCol, vs, len, hd, sc, h * len, len, inv, h, out, oo + h * hd);
            else for (int e = h; e < Math.min(g, h + 4); e++) values(v, vo + kvCol, vs, len, hd, sc, e * len, inv[e], out, oo + e * hd);
        }
    }

    /** Scores of g heads (sc[h·len + j], scaled, then softmax numerators) and their 1 / Σ in inv[h]. */
    private static void groupScores(float[] q, int qo, int g, float[] k, int kc, int ks, int len, int hd, float scale,
                                    float[] sc, float[] blk, float[] inv) {
        float[] max = new float[g];
        java.util.Arrays.fill(max, Float.NEGATIVE_INFINITY);
        FloatVector scv = FloatVector.broadcast(F, scale);
        int j0 = 0;
        for (; j0 + L <= len; j0 += L)
            for (int h = 0; h < g; h++) {
                blockScores(q, qo + h * hd, k, kc, ks, j0, L, hd, blk);
                FloatVector s = FloatVector.fromArray(F, blk, 0).mul(scv);
                s.intoArray(sc, h * len + j0);
                max[h] = Math.max(max[h], s.reduceLanes(VectorOperators.MAX)); // max: exact in any order
            }
        if (j0 < len)
            for (int h = 0; h < g; h++) {
                blockScores(q, qo + h * hd, k, kc, ks, j0, len - j0, hd, blk);
                for (int i = 0; i < len - j0; i++) {
                    float s = blk[i] * scale;
                    sc[h * len + j0 + i] = s;
                    if (s > max[h]) max[h] = s;
                }
            }
        for (int h = 0; h < g; h++) inv[h] = (float) (1.0 / VectorMath.expShiftSum(sc, h * len, len, max[h]));
    }

    /**
     * One head's output: two head-dimension chunks per pass over the keys (two independent chains, each in key order),
     * a last odd chunk alone.
     */
    private static void values(float[] v, int vc, int vs, int len, int hd, float[] sc, int so, float inv, float[] out, int oo) {
        int c = 0;
        for (; c + 2 * L <= hd; c += 2 * L) {
            FloatVector acc0 = FloatVector.zero(F), acc1 = FloatVector.zero(F);
            for (int j = 0, vr = vc + c; j < len; j++, vr += vs) {
                FloatVector w = FloatVector.broadcast(F, sc[so + j] * inv);
                acc0 = FloatVector.fromArray(F, v, vr).fma(w, acc0);
                acc1 = FloatVector.fromArray(F, v, vr + L).fma(w, acc1);
            }
            acc0.intoArray(out, oo + c);
            acc1.intoArray(out, oo + c + L);
        }
        if (c < hd) {
            FloatVector acc = FloatVector.zero(F);
            for (int j = 0, vr = vc + c; j < len; j++, vr += vs)
                acc = FloatVector.fromArray(F, v, vr).fma(FloatVector.broadcast(F, sc[so + j] * inv), acc);
            acc.intoArray(out, oo + c);
        }
    }

    /** {@link #values} of heads h..h+3 (scores at sc[so + e·stride]), each value row's two chunks loaded once for four. */
    private static void groupValues4(float[] v, int vc, int vs, int len, int hd, float[] sc, int so, int stride,
                                     float[] inv, int h, float[] out, int oo) {
        float i0 = inv[h], i1 = inv[h + 1], i2 = inv[h + 2], i3 = inv[h + 3];
        int s0 = so, s1 = so + stride, s2 = so + 2 * stride, s3 = so + 3 * stride;
        for (int c = 0; c < hd; c += 2 * L) {
            FloatVector a0 = FloatVector.zero(F), a1 = FloatVector.zero(F), b0 = FloatVector.zero(F), b1 = FloatVector.zero(F),
                    c0 = FloatVector.zero(F), c1 = FloatVector.zero(F), d0 = FloatVector.zero(F), d1 = FloatVector.zero(F);
            for (int j = 0, vr = vc + c; j < len; j++, vr += vs) {
                FloatVector x = FloatVector.fromArray(F, v, vr), y = FloatVector.fromArray(F, v, vr + L);
                FloatVector w = FloatVector.broadcast(F, sc[s0 + j] * i0);
                a0 = x.fma(w, a0);
                a1 = y.fma(w, a1);
                w = FloatVector.broadcast(F, sc[s1 + j] * i1);
                b0 = x.fma(w, b0);
                b1 = y.fma(w, b1);
                w = FloatVector.broadcast(F, sc[s2 + j] * i2);
                c0 = x.fma(w, c0);
                c1 = y.fma(w, c1);
                w = FloatVector.broadcast(F, sc[s3 + j] * i3);
                d0 = x.fma(w, d0);
                d1 = y.fma(w, d1);
            }
            a0.intoArray(out, oo + c);
            a1.intoArray(out, oo + c + L);
            b0.intoArray(out, oo + hd + c);
            b1.intoArray(out, oo + hd + c + L);
            c0.intoArray(out, oo + 2 * hd + c);
            c1.intoArray(out, oo + 2 * hd + c + L);
            d0.intoArray(out, oo + 3 * hd + c);
            d1.intoArray(out, oo + 3 * hd + c + L);
        }
    }

    /**
     * Unscaled scores of keys j0..j0+n-1 (n ≤ L) into blk[0..n): each key's lane-wise products form one vector (zero
     * for the missing keys of a short block), and the transposing tree sums all L of them across lanes at once.
     */
    private static void blockScores(float[] q, int qo, float[] k, int kc, int ks, int j0, int n, int hd, float[] blk) {
        // the first two tree levels stay in registers: the four keys whose slots meet there are summed at once
        FloatVector x0 = SEL_X[0], y0 = SEL_Y[0], x1 = SEL_X[1], y1 = SEL_Y[1];
        for (int g = 0; g < L / 4; g++) {
            // the four keys' products in one loop (written out here: a call returning a vector that C2 does not
            // inline boxes it on the heap, which made this loop about 5× slower); a slot past the n keys reads key
            // j0 instead and is zeroed, its lane of the tree belongs to it alone
            int ia = KEY_OF_SLOT[4 * g], ib = KEY_OF_SLOT[4 * g + 1], ic = KEY_OF_SLOT[4 * g + 2], id = KEY_OF_SLOT[4 * g + 3];
            int ka = kc + (j0 + (ia < n ? ia : 0)) * ks, kb = kc + (j0 + (ib < n ? ib : 0)) * ks,
                    kq = kc + (j0 + (ic < n ? ic : 0)) * ks, kd = kc + (j0 + (id < n ? id : 0)) * ks;
            FloatVector qv = FloatVector.fromArray(F, q, qo);
            FloatVector a = qv.mul(FloatVector.fromArray(F, k, ka)), b = qv.mul(FloatVector.fromArray(F, k, kb)),
                    c = qv.mul(FloatVector.fromArray(F, k, kq)), d = qv.mul(FloatVector.fromArray(F, k, kd));
            for (int e = L; e < hd; e += L) {
                qv = FloatVector.fromArray(F, q, qo + e);
                a = qv.fma(FloatVector.fromArray(F, k, ka + e), a);
                b = qv.fma(FloatVector.fromArray(F, k, kb + e), b);
                c = qv.fma(FloatVector.fromArray(F, k, kq + e), c);
                d = qv.fma(FloatVector.fromArray(F, k, kd + e), d);
            }
            if (ia >= n) a = FloatVector.zero(F);
            if (ib >= n) b = FloatVector.zero(F);
            if (ic >= n) c = FloatVector.zero(F);
            if (id >= n) d = FloatVector.zero(F);
            FloatVector ab = x0.selectFrom(a, b).add(y0.selectFrom(a, b)), cd = x0.selectFrom(c, d).add(y0.selectFrom(c, d));
            x1.selectFrom(ab, cd).add(y1.selectFrom(ab, cd)).intoArray(blk, g * L);
        }
        for (int lev = 2, count = L / 4; count > 1; lev++, count /= 2) {
            FloatVector sx = SEL_X[lev], sy = SEL_Y[lev];
            for (int p = 0; p < count / 2; p++) {
                FloatVector u = FloatVector.fromArray(F, blk, 2 * p * L), w = FloatVector.fromArray(F, blk, (2 * p + 1) * L);
                sx.selectFrom(u, w).add(sy.selectFrom(u, w)).intoArray(blk, p * L);
            }
        }
    }

    /** The plain loop: one dot product per key, then an axpy per key (any head dimension). */
    static void headScalar(float[] q, int qo, float[] k, int ko, int ks, float[] v, int vo, int vs, int kvCol, int len,
                           int hd, float scale, float[] out, int oo) {
        float[] scores = scores(len);
        float max = Float.NEGATIVE_INFINITY;
        for (int j = 0; j < len; j++) {
            float s = VectorMath.dot(q, qo, k, ko + j * ks + kvCol, hd) * scale;
            scores[j] = s;
            if (s > max) max = s;
        }
        double sum = VectorMath.expShiftSum(scores, 0, len, max);
        float inv = (float) (1.0 / sum);
        java.util.Arrays.fill(out, oo, oo + hd, 0f);
        for (int j = 0; j < len; j++) VectorMath.axpy(scores[j] * inv, v, vo + j * vs + kvCol, out, oo, hd);
    }
}
