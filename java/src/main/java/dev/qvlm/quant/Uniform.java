package dev.qvlm.quant;

/**
 * The scalar numerics shared by every quantizer here, written to reproduce the PyTorch reference
 * ({@code rtn}/{@code act_q} in make_fixtures.py, static_reference.py) bit for bit: FP32 arithmetic, ε = 1e-8 on
 * the range, torch.round = round half to even = {@link Math#rint}.
 *
 * <p>Codes are unsigned in both modes. Asymmetric: scale = max(max(hi,0) − min(lo,0), ε) / (2^b − 1),
 * zero = rint(−min(lo,0) / scale), code = clamp(rint(w / scale) + zero, 0, 2^b − 1). Symmetric: scale =
 * max(max(|lo|,|hi|), ε) / (2^(b−1) − 1), zero = 2^(b−1), which is the same code formula as clamping the signed
 * q = rint(w / scale) to [−2^(b−1), 2^(b−1) − 1] and adding 2^(b−1). Either way value = (code − zero) · scale.
 */
final class Uniform {
    /** The ε of the reference: torch's clamp(min=1e-8) on an FP32 tensor. */
    static final float EPS = 1e-8f;

    private Uniform() {}

    static float scale(float lo, float hi, QuantArgs a) {
        if (a.symmetric()) {
            float amax = Math.max(Math.abs(lo), Math.abs(hi));
            return Math.max(amax, EPS) / a.qmax();
        }
        float mn = Math.min(lo, 0f), mx = Math.max(hi, 0f);
        return Math.max(mx - mn, EPS) / a.qmax();
    }

    static int zero(float lo, float scale, QuantArgs a) {
        if (a.symmetric()) return a.symmetricZero();
        float mn = Math.min(lo, 0f);
        // -mn / scale <= 2^b - 1 up to one rounding; clamp only guards against a non-finite lo
        double z = Math.rint(-mn / scale);
        return (int) Math.max(0, Math.min(a.maxCode(), z));
    }

    static int code(float w, float scale, int zero, int maxCode) {
        double q = Math.rint(w / scale) + zero;
        return (int) Math.max(0.0, Math.min(maxCode, q));
    }

    static float value(int code, int zero, float scale) {
        return (float) (code - zero) * scale;
    }

    /** Linear interpolation between order statistics a ≤ b at fraction t, the way numpy's default quantile does it. */
    static double lerp(double a, double b, double t) {
        double d = b - a;
        return t >= 0.5 ? b - d * (1 - t) : a + d * t;
    }

    static void checkClip(double clip) {
        if (!(clip > 0 && clip <= 1))
            throw new IllegalArgumentException("clipping percentile must be in (0, 1], got " + clip);
    }
}
