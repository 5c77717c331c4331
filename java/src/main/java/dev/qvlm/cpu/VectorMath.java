package dev.qvlm.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/** Vectorised FP32 primitives (Vector API, preferred species of the running CPU) with scalar twins for tests. */
public final class VectorMath {
    static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;

    private VectorMath() {}

    /**
     * Sum of the lanes in a fixed left-to-right order. {@code reduceLanes(ADD)} may add in a different order in
     * the interpreter and in compiled code, which made the first forward pass differ in the last bits from later
     * ones; a fixed order keeps every pass bit-identical. Kept under C2's always-inline size (35 bytes of
     * bytecode, see {@code VectorCallsTest}): a method taking or returning a vector that is not inlined gets it
     * boxed on the heap, per call.
     */
    public static float sum(FloatVector v) {
        float[] lanes = LANES.get();
        v.intoArray(lanes, 0);
        return sumLanes(lanes, 0);
    }

    /**
     * Per-thread lanes for {@link #sum}: a new array per call (what {@code toArray} does) was not scalar-replaced,
     * and at one call per matrix row it allocated 38 MB of heap per TinyLlama decode step. Hot kernels pass their own.
     */
    private static final ThreadLocal<float[]> LANES = ThreadLocal.withInitial(() -> new float[F.length()]);

    /** {@link #sum} of the F.length() lanes a kernel stored at lanes[off..]: the same order, so the same bits. */
    public static float sumLanes(float[] lanes, int off) {
        float s = 0;
        for (int i = off, end = off + F.length(); i < end; i++) s += lanes[i];
        return s;
    }

    public static float dot(float[] a, int ao, float[] b, int bo, int n) {
        FloatVector s0 = FloatVector.zero(F), s1 = FloatVector.zero(F);
        int L = F.length();
        int i = 0;
        for (int upper = n - 2 * L; i <= upper; i += 2 * L) {
            s0 = FloatVector.fromArray(F, a, ao + i).fma(FloatVector.fromArray(F, b, bo + i), s0);
            s1 = FloatVector.fromArray(F, a, ao + i + L).fma(FloatVector.fromArray(F, b, bo + i + L), s1);
        }
        for (int upper = n - L; i <= upper; i += L)
            s0 = FloatVector.fromArray(F, a, ao + i).fma(FloatVector.fromArray(F, b, bo + i), s0);
        float s = sum(s0.add(s1));
        for (; i < n; i++) s += a[ao + i] * b[bo + i];
        return s;
    }

    public static float dotScalar(float[] a, int ao, float[] b, int bo, int n) {
        float s = 0;
        for (int i = 0; i < n; i++) s += a[ao + i] * b[bo + i];
        return s;
    }

    /**
     * Four dot products of four weight rows (w at w0..w3 offsets) with one activation row x: x is loaded once
     * for all four, which is what makes the blocked matmul faster than four separate dots.
     */
    public static void dot4(float[] w, int w0, int w1, int w2, int w3, float[] x, int xo, int n, float[] out, int oo, int stride) {
        FloatVector a0 = FloatVector.zero(F), a1 = FloatVector.zero(F), a2 = FloatVector.zero(F), a3 = FloatVector.zero(F);
        int L = F.length();
        int i = 0;
        for (int upper = n - L; i <= upper; i += L) {
            FloatVector xv = FloatVector.fromArray(F, x, xo + i);
            a0 = FloatVector.fromArray(F, w, w0 + i).fma(xv, a0);
            a1 = FloatVector.fromArray(F, w, w1 + i).fma(xv, a1);
            a2 = FloatVector.fromArray(F, w, w2 + i).fma(xv, a2);
            a3 = FloatVector.fromArray(F, w, w3 + i).fma(xv, a3);
        }
        float s0 = sum(a0), s1 = sum(a1), s2 = sum(a2), s3 = sum(a3);
        for (; i < n; i++) {
            float xi = x[xo + i];
            s0 += w[w0 + i] * xi;
            s1 += w[w1 + i] * xi;
            s2 += w[w2 + i] * xi;
            s3 += w[w3 + i] * xi;
        }
        out[oo] = s0;
        out[oo + stride] = s1;
        out[oo + 2 * stride] = s2;
        out[oo + 3 * stride] = s3;
    }

    /**
     * {@link #dot4} for two activation rows at once (x at xo0 and xo1, results at oo0 and oo1): each weight vector is
     * loaded once for both rows. Every one of the eight accumulators sees exactly the operations, in the order, that
     * {@link #dot4} gives it, so each row's results are bit-identical to {@link #dot4} of that row alone (a batched
     * decode step must not change a sequence's logits).
     */
    public static void dot4x2(float[] w, int w0, int w1, int w2, int w3, float[] x, int xo0, int xo1, int n,
                              float[] out, int oo0, int oo1, int stride) {
        FloatVector a0 = FloatVector.zero(F), a1 = FloatVector.zero(F), a2 = FloatVector.zero(F), a3 = FloatVector.zero(F);
        FloatVector b0 = FloatVector.zero(F), b1 = FloatVector.zero(F), b2 = FloatVector.zero(F), b3 = FloatVector.zero(F);
        int L = F.length();
        int i = 0;
        for (int upper = n - L; i <= upper; i += L) {
            FloatVector xa = FloatVector.fromArray(F, x, xo0 + i), xb = FloatVector.fromArray(F, x, xo1 + i);
            FloatVector v = FloatVector.fromArray(F, w, w0 + i);
            a0 = v.fma(xa, a0);
            b0 = v.fma(xb, b0);
            v = FloatVector.fromArray(F, w, w1 + i);
            a1 = v.fma(xa, a1);
            b1 = v.fma(xb, b1);
            v = FloatVector.fromArray(F, w, w2 + i);
            a2 = v.fma(xa, a2);
            b2 = v.fma(xb, b2);
            v = FloatVector.fromArray(F, w, w3 + i);
            a3 = v.fma(xa, a3);
            b3 = v.fma(xb, b3);
        }
        float s0 = sum(a0), s1 = sum(a1), s2 = sum(a2), s3 = sum(a3);
        float t0 = sum(b0), t1 = sum(b1), t2 = sum(b2), t3 = sum(b3);
        for (; i < n; i++) {
            float xi = x[xo0 + i], yi = x[xo1 + i];
            s0 += w[w0 + i] * xi;
            s1 += w[w1 + i] * xi;
            s2 += w[w2 + i] * xi;
            s3 += w[w3 + i] * xi;
            t0 += w[w0 + i] * yi;
            t1 += w[w1 + i] * yi;
            t2 += w[w2 + i] * yi;
            t3 += w[w3 + i] * yi;
        }
        out[oo0] = s0;
        out[oo0 + stride] = s1;
        out[oo0 + 2 * stride] = s2;
        out[oo0 + 3 * stride] = s3;
        out[oo1] = t0;
        out[oo1 + stride] = t1;
        out[oo1 + 2 * stride] = t2;
        out[oo1 + 3 * stride] = t3;
    }

    // exp(x) = 2^k · p(r), k = rint(x·log2 e), r = x − k·ln 2 (in two parts), p a degree-6 polynomial (Cephes expf,
    // about 1 ulp). Written with fma in a fixed order, the vector and scalar versions give the same bits in the
    // interpreter and in compiled code; VectorOperators.EXP does not (its intrinsic and its fallback differ).
    private static final float EXP_HI = 88.0f, EXP_LO = -87.3365447504019f; // k stays in [-126, 127]
    private static final float LOG2E = 1.44269504088896341f, LN2_HI = 0.693359375f, LN2_LO = -2.12194440e-4f;
    private static final float P0 = 1.9875691500e-4f, P1 = 1.3981999507e-3f, P2 = 8.3334519073e-3f,
            P3 = 4.1665795894e-2f, P4 = 1.6666665459e-1f, P5 = 5.0000001201e-1f;
    private static final float ROUND = 12582912f; // 1.5 · 2^23: adding and subtracting it rounds to an integer

    /**
     * x[i] = exp(x[i]) for i in [off, off + n), n a multiple of the lane count. Arrays in and out rather than a
     * vector-to-vector method: this body is far above C2's always-inline size, and a call that is not inlined
     * (which C2 decides per compilation, e.g. in an early or on-stack-replacement compile) boxes every vector.
     */
    static void expVectors(float[] x, int off, int n) {
        for (int i = off, end = off + n; i < end; i += F.length()) {
            FloatVector v = FloatVector.fromArray(F, x, i).max(EXP_LO).min(EXP_HI);
            FloatVector k = v.mul(LOG2E).add(ROUND).sub(ROUND);
            FloatVector r = k.fma(FloatVector.broadcast(F, -LN2_HI), v);
            r = k.fma(FloatVector.broadcast(F, -LN2_LO), r);
            FloatVector z = r.mul(r);
            FloatVector y = r.fma(FloatVector.broadcast(F, P0), FloatVector.broadcast(F, P1));
            y = y.fma(r, FloatVector.broadcast(F, P2));
            y = y.fma(r, FloatVector.broadcast(F, P3));
            y = y.fma(r, FloatVector.broadcast(F, P4));
            y = y.fma(r, FloatVector.broadcast(F, P5));
            y = y.fma(z, r).add(1f);
            IntVector e = ((IntVector) k.convert(VectorOperators.F2I, 0)).add(127).lanewise(VectorOperators.LSHL, 23);
            y.mul(e.reinterpretAsFloats()).intoArray(x, i);
        }
    }

    /** The scalar twin of {@link #expVectors}: the same operations, so the same bits. */
    public static float exp(float x) {
        x = Math.min(Math.max(x, EXP_LO), EXP_HI);
        float k = (x * LOG2E + ROUND) - ROUND;
        float r = Math.fma(k, -LN2_HI, x);
        r = Math.fma(k, -LN2_LO, r);
        float z = r * r;
        float y = Math.fma(r, P0, P1);
        y = Math.fma(y, r, P2);
        y = Math.fma(y, r, P3);
        y = Math.fma(y, r, P4);
        y = Math.fma(y, r, P5);
        y = Math.fma(y, z, r) + 1f;
        return y * Float.intBitsToFloat(((int) k + 127) << 23);
    }

    /** x[i] = exp(x[i] - shift) over [off, off+n); returns the sum (double accumulation, fixed order). */
    public static double expShiftSum(float[] x, int off, int n, float shift) {
        int upper = F.loopBound(n);
        FloatVector sh = FloatVector.broadcast(F, shift);
        for (int i = 0; i < upper; i += F.length()) FloatVector.fromArray(F, x, off + i).sub(sh).intoArray(x, off + i);
        expVectors(x, off, upper);
        double sum = 0;
        for (int i = 0; i < upper; i += F.length()) sum += sumLanes(x, off + i);
        for (int i = upper; i < n; i++) {
            float e = exp(x[off + i] - shift);
            x[off + i] = e;
            sum += e;
        }
        return sum;
    }

    /** Elements of {@link #sigmoidGate}'s exp scratch per pass (on the stack of calls: one per thread). */
    private static final int GATE_BLOCK = 1024;
    private static final ThreadLocal<float[]> GATE_SCRATCH = ThreadLocal.withInitial(() -> new float[GATE_BLOCK]);

    /** SiLU (x·σ(x)) or quick-GELU (x·σ(1.702x)) in place, optionally times {@code mul}: σ via the vector exp. */
    public static void sigmoidGate(float[] x, int off, int n, float alpha, float[] mul, int mulOff) {
        int upper = F.loopBound(n), L = F.length();
        FloatVector one = FloatVector.broadcast(F, 1f), na = FloatVector.broadcast(F, -alpha);
        float[] t = GATE_SCRATCH.get();
        for (int b = 0; b < upper; b += GATE_BLOCK) {
            int m = Math.min(GATE_BLOCK, upper - b);
            for (int j = 0; j < m; j += L) FloatVector.fromArray(F, x, off + b + j).mul(na).intoArray(t, j);
            expVectors(t, 0, m);
            for (int j = 0; j < m; j += L) {
                FloatVector r = FloatVector.fromArray(F, x, off + b + j).div(one.add(FloatVector.fromArray(F, t, j)));
                if (mul != null) r = r.mul(FloatVector.fromArray(F, mul, mulOff + b + j));
                r.intoArray(x, off + b + j);
            }
        }
        for (int i = upper; i < n; i++) {
            float v = x[off + i];
            float r = v / (1f + exp(-alpha * v));
            x[off + i] = mul != null ? r * mul[mulOff + i] : r;
        }
    }

    /** y[yo..] += a * x[xo..] */
    public static void axpy(float a, float[] x, int xo, float[] y, int yo, int n) {
        int i = 0;
        FloatVector av = FloatVector.broadcast(F, a);
        for (int upper = F.loopBound(n); i < upper; i += F.length())
            FloatVector.fromArray(F, x, xo + i).fma(av, FloatVector.fromArray(F, y, yo + i)).intoArray(y, yo + i);
        for (; i < n; i++) y[yo + i] += a * x[xo + i];
    }
}
