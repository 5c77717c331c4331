package dev.qvlm.quant;

import dev.qvlm.model.Linear;
import dev.qvlm.tensor.HalfMatrix;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * Fake quantization of a linear's input activations (in place, rows = tokens × cols = features), with the
 * numerics of the PyTorch references: static per tensor from calibrated bounds (static_reference.py: range forced
 * to include 0, scale = max(hi − lo, 1e-8)/(2^b − 1), zero = round(−lo/scale)), or dynamic per token (act_q in
 * make_fixtures.py: the same per row from that row's min/max), or dynamic per tensor. Symmetric variants use
 * amax/(2^(b−1) − 1). x ← (clamp(rint(x/scale) + zero, 0, 2^b − 1) − zero) · scale, in FP32, bit-identical to the
 * scalar formula: the vector path rounds with the 1.5·2^23 trick (ties to even, exact for |x/scale| ≤ 2^22; larger
 * quotients are clamped first, which the final clamp makes harmless).
 */
public final class ActQuantizer implements Linear.InputQuantizer {
    public enum Mode { STATIC_TENSOR, DYNAMIC_TENSOR, DYNAMIC_TOKEN }

    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    private static final float ROUND_MAGIC = 0x1.8p23f;
    private static final float ROUND_LIMIT = 0x1p22f;

    private final QuantArgs args;
    private final Mode mode;
    private final float scale; // static only
    private final int zero;    // static only, unsigned

    private ActQuantizer(QuantArgs args, Mode mode, float scale, int zero) {
        this.args = args;
        this.mode = mode;
        this.scale = scale;
        this.zero = zero;
    }

    private static QuantArgs as(QuantArgs a, QuantArgs.Granularity g) {
        return new QuantArgs(a.bits(), a.symmetric(), g, 0);
    }

    /** Static per-tensor quantizer from calibrated bounds lo ≤ hi (widened to include 0 when asymmetric). */
    public static ActQuantizer staticPerTensor(QuantArgs a, float lo, float hi) {
        QuantArgs t = as(a, QuantArgs.Granularity.TENSOR);
        float s = Uniform.scale(lo, hi, t);
        return new ActQuantizer(t, Mode.STATIC_TENSOR, s, Uniform.zero(lo, s, t));
    }

    /** Static per-tensor quantizer from a stored scale and unsigned zero point (e.g. read from a checkpoint). */
    public static ActQuantizer fromScale(QuantArgs a, float scale, int zeroPoint) {
        QuantArgs t = as(a, QuantArgs.Granularity.TENSOR);
        if (!(scale > 0) || !Float.isFinite(scale))
            throw new IllegalArgumentException("activation scale must be positive and finite, got " + scale);
        if (zeroPoint < 0 || zeroPoint > t.maxCode())
            throw new IllegalArgumentException("zero point " + zeroPoint + " out of 0.." + t.maxCode());
        if (t.symmetric() && zeroPoint != t.symmetricZero())
            throw new IllegalArgumentException("symmetric quantizer needs zero point " + t.symmetricZero() + ", got " + zeroPoint);
        return new ActQuantizer(t, Mode.STATIC_TENSOR, scale, zeroPoint);
    }

    /** Per-row (per-token) min/max at run time, as act_q. */
    public static ActQuantizer dynamicPerToken(QuantArgs a) {
        return new ActQuantizer(as(a, QuantArgs.Granularity.TOKEN), Mode.DYNAMIC_TOKEN, Float.NaN, -1);
    }

    /** One min/max over the whole input of each call, at run time. */
    public static ActQuantizer dynamicPerTensor(QuantArgs a) {
        return new ActQuantizer(as(a, QuantArgs.Granularity.TENSOR), Mode.DYNAMIC_TENSOR, Float.NaN, -1);
    }

    public QuantArgs args() {
        return args;
    }

    public Mode mode() {
        return mode;
    }

    public boolean isStatic() {
        return mode == Mode.STATIC_TENSOR;
    }

    /** The static scale (what checkpoints store as input_scale). */
    public float scale() {
        requireStatic();
        return scale;
    }

    /** The static unsigned zero point 0..2^b − 1 (checkpoints store the signed zeroPoint − 2^(b−1)). */
    public int zeroPoint() {
        requireStatic();
        return zero;
    }

    private void requireStatic() {
        if (mode != Mode.STATIC_TENSOR) throw new IllegalStateException("a " + mode + " quantizer has no fixed scale");
    }

    @Override
    public void apply(float[] x, int off, int rows, int cols) {
        switch (mode) {
            case STATIC_TENSOR -> fakeQuant(x, off, off + rows * cols, scale, zero, args.maxCode());
            case DYNAMIC_TENSOR -> range(x, off, off + rows * cols);
            case DYNAMIC_TOKEN -> {
                for (int r = 0; r < rows; r++) range(x, off + r * cols, off + (r + 1) * cols);
            }
        }
    }

    @Override
    public boolean rowIndependent() {
        return mode != Mode.DYNAMIC_TENSOR;
    }

    private void range(float[] x, int from, int to) {
        if (to <= from) return;
        float mn = Float.POSITIVE_INFINITY, mx = Float.NEGATIVE_INFINITY;
        int i = from;
        if (!HalfMatrix.SCALAR && to - from >= F.length()) {
            FloatVector vmn = FloatVector.broadcast(F, Float.POSITIVE_INFINITY), vmx = FloatVector.broadcast(F, Float.NEGATIVE_INFINITY);
            for (int upper = to - F.length(); i <= upper; i += F.length()) {
                FloatVector v = FloatVector.fromArray(F, x, i);
                vmn = vmn.min(v);
                vmx = vmx.max(v);
            }
            mn = vmn.reduceLanes(VectorOperators.MIN);
            mx = vmx.reduceLanes(VectorOperators.MAX);
        }
        for (; i < to; i++) {
            mn = Math.min(mn, x[i]);
            mx = Math.max(mx, x[i]);
        }
        float s = Uniform.scale(mn, mx, args);
        fakeQuant(x, from, to, s, Uniform.zero(mn, s, args), args.maxCode());
    }

    /** x[from..to) ← (clamp(rint(x/scale) + zero, 0, maxCode) − zero) · scale, vectorised. */
    static void fakeQuant(float[] x, int from, int to, float scale, int zero, int maxCode) {
        int i = from;
        float z = zero, hiCode = maxCode;
        if (!HalfMatrix.SCALAR) {
            FloatVector sv = FloatVector.broadcast(F, scale);
            for (int upper = to - F.length(); i <= upper; i += F.length()) {
                FloatVector v = FloatVector.fromArray(F, x, i).div(sv).max(-ROUND_LIMIT).min(ROUND_LIMIT);
                FloatVector q = v.add(ROUND_MAGIC).sub(ROUND_MAGIC).add(z).max(0f).min(hiCode);
                q.sub(z).mul(sv).intoArray(x, i);
            }
        }
        for (; i < to; i++) x[i] = Uniform.value(Uniform.code(x[i], scale, zero, maxCode), zero, scale);
    }

    @Override
    public String toString() {
        return switch (mode) {
            case STATIC_TENSOR -> "ActQuantizer[" + args.label() + ", static, scale " + scale + ", zero " + zero + "]";
            case DYNAMIC_TENSOR -> "ActQuantizer[" + args.label() + ", dynamic per tensor]";
            case DYNAMIC_TOKEN -> "ActQuantizer[" + args.label() + ", dynamic per token]";
        };
    }
}
