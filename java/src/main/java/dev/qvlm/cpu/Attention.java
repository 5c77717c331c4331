package dev.qvlm.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * Softmax attention of one query row and one head over a key/value cache, the CPU kernel behind
 * {@link CpuBackend#attention}. A decode step runs it once per head and per sequence over a short cache with a small
 * head dimension (32 in the bundled model), so what matters is the cost per key, not per FLOP:
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
     * whose key/value head starts at column kvCol of k and v (row strides ks and vs).
     */
    static void head(float[] q, int qo, float[] k, int ko, int ks, float[] v, int vo, int vs, int kvCol, int len, int hd,
                     float scale, float[] out, int oo) {
        if (hd % L != 0 || L < 4) {
            headScalar(q, qo, k, ko, ks, v, vo, vs, kvCol, len, hd, scale, out, oo);
            return;
        }
        float[] scores = scores(len), blk = SCRATCH.get()[1];
        FloatVector sc = FloatVector.broadcast(F, scale);
        FloatVector mx = FloatVector.broadcast(F, Float.NEGATIVE_INFINITY);
        int j0 = 0;
        for (; j0 + L <= len; j0 += L) {
            blockScores(q, qo, k, ko + kvCol, ks, j0, L, hd, blk);
            FloatVector s = FloatVector.fromArray(F, blk, 0).mul(sc);
            s.intoArray(scores, j0);
            mx = mx.max(s);
        }
        float max = Float.NEGATIVE_INFINITY;
        if (j0 < len) {
            blockScores(q, qo, k, ko + kvCol, ks, j0, len - j0, hd, blk);
            for (int i = 0; i < len - j0; i++) {
                float s = blk[i] * scale;
                scores[j0 + i] = s;
                if (s > max) max = s;
            }
        }
        // the max only shifts the exponent (any order gives the same value)
        max = Math.max(max, mx.reduceLanes(VectorOperators.MAX));
        double sum = VectorMath.expShiftSum(scores, 0, len, max);
        float inv = (float) (1.0 / sum);
        // two chunks per pass over the keys: two independent accumulation chains (each in key order)
        int c = 0;
        for (; c + 2 * L <= hd; c += 2 * L) {
            FloatVector acc0 = FloatVector.zero(F), acc1 = FloatVector.zero(F);
            for (int j = 0, vr = vo + kvCol + c; j < len; j++, vr += vs) {
                FloatVector w = FloatVector.broadcast(F, scores[j] * inv);
                acc0 = FloatVector.fromArray(F, v, vr).fma(w, acc0);
                acc1 = FloatVector.fromArray(F, v, vr + L).fma(w, acc1);
            }
            acc0.intoArray(out, oo + c);
            acc1.intoArray(out, oo + c + L);
        }
        if (c < hd) {
            FloatVector acc = FloatVector.zero(F);
            for (int j = 0, vr = vo + kvCol + c; j < len; j++, vr += vs)
                acc = FloatVector.fromArray(F, v, vr).fma(FloatVector.broadcast(F, scores[j] * inv), acc);
            acc.intoArray(out, oo + c);
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
