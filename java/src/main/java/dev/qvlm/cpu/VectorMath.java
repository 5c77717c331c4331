package dev.qvlm.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/** Vectorised FP32 primitives (Vector API, preferred species of the running CPU) with scalar twins for tests. */
public final class VectorMath {
    static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;

    private VectorMath() {}

    /**
     * Sum of the lanes in a fixed left-to-right order. {@code reduceLanes(ADD)} may add in a different order in
     * the interpreter and in compiled code, which made the first forward pass differ in the last bits from later
     * ones; a fixed order keeps every pass bit-identical.
     */
    static float sum(FloatVector v) {
        float[] t = new float[v.length()];
        v.intoArray(t, 0);
        float s = 0;
        for (float x : t) s += x;
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

    /** x[i] = exp(x[i] - shift) over [off, off+n); returns the sum (double accumulation, fixed order). */
    public static double expShiftSum(float[] x, int off, int n, float shift) {
        int i = 0;
        double sum = 0;
        FloatVector sh = FloatVector.broadcast(F, shift);
        for (int upper = F.loopBound(n); i < upper; i += F.length()) {
            FloatVector e = FloatVector.fromArray(F, x, off + i).sub(sh).lanewise(VectorOperators.EXP);
            e.intoArray(x, off + i);
            sum += sum(e);
        }
        for (; i < n; i++) {
            float e = (float) Math.exp(x[off + i] - shift);
            x[off + i] = e;
            sum += e;
        }
        return sum;
    }

    /** SiLU (x·σ(x)) or quick-GELU (x·σ(1.702x)) in place, optionally times {@code mul}: σ via the vector exp. */
    public static void sigmoidGate(float[] x, int off, int n, float alpha, float[] mul, int mulOff) {
        int i = 0;
        FloatVector one = FloatVector.broadcast(F, 1f), na = FloatVector.broadcast(F, -alpha);
        for (int upper = F.loopBound(n); i < upper; i += F.length()) {
            FloatVector v = FloatVector.fromArray(F, x, off + i);
            FloatVector r = v.div(one.add(v.mul(na).lanewise(VectorOperators.EXP)));
            if (mul != null) r = r.mul(FloatVector.fromArray(F, mul, mulOff + i));
            r.intoArray(x, off + i);
        }
        for (; i < n; i++) {
            float v = x[off + i];
            float r = v / (1f + (float) Math.exp(-alpha * v));
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
