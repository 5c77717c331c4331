package dev.qvlm.quant;

import java.util.SplittableRandom;

/**
 * Straightforward scalar transcriptions of the PyTorch reference quantizers in
 * shared/fixtures/recipe/make_fixtures.py ({@code rtn}, {@code act_q}) and static_reference.py, one FP32 operation
 * per tensor operation (torch.round = Math.rint, clamp(min=1e-8) on the FP32 range). Independent of the main code
 * on purpose: the tests compare the two.
 */
final class TorchReference {
    private TorchReference() {}

    /** rtn(w, bits, group, sym) on an (o × in) matrix: codes (asym q; sym q + 2^(b−1)) and dequantised values. */
    record Result(int[] codes, float[] values) {}

    static Result rtn(float[] w, int o, int in, int bits, int group, boolean sym) {
        int g = group > 0 ? group : in;
        int[] codes = new int[o * in];
        float[] out = new float[o * in];
        for (int r = 0; r < o; r++)
            for (int k = 0; k < in / g; k++) {
                int base = r * in + k * g;
                if (sym) {
                    float qmax = (1 << (bits - 1)) - 1;
                    float amax = 0;
                    for (int i = 0; i < g; i++) amax = Math.max(amax, Math.abs(w[base + i]));
                    float scale = Math.max(amax, 1e-8f) / qmax;
                    for (int i = 0; i < g; i++) {
                        float q = (float) Math.rint(w[base + i] / scale);
                        q = Math.min(Math.max(q, -qmax - 1), qmax);
                        codes[base + i] = (int) q + (1 << (bits - 1));
                        out[base + i] = q * scale;
                    }
                } else {
                    float qmax = (1 << bits) - 1;
                    float mn = Float.POSITIVE_INFINITY, mx = Float.NEGATIVE_INFINITY;
                    for (int i = 0; i < g; i++) {
                        mn = Math.min(mn, w[base + i]);
                        mx = Math.max(mx, w[base + i]);
                    }
                    mn = Math.min(mn, 0f);
                    mx = Math.max(mx, 0f);
                    float scale = Math.max(mx - mn, 1e-8f) / qmax;
                    float zp = (float) Math.rint(-mn / scale);
                    for (int i = 0; i < g; i++) {
                        float q = (float) Math.rint(w[base + i] / scale) + zp;
                        q = Math.min(Math.max(q, 0f), qmax);
                        codes[base + i] = (int) q;
                        out[base + i] = (q - zp) * scale;
                    }
                }
            }
        return new Result(codes, out);
    }

    /** act_q(x, bits): asymmetric per-row (last dim) min/max fake quantization of an (rows × cols) activation. */
    static float[] actQ(float[] x, int rows, int cols, int bits) {
        float[] out = new float[x.length];
        float qmax = (1 << bits) - 1;
        for (int r = 0; r < rows; r++) {
            float mn = Float.POSITIVE_INFINITY, mx = Float.NEGATIVE_INFINITY;
            for (int c = 0; c < cols; c++) {
                mn = Math.min(mn, x[r * cols + c]);
                mx = Math.max(mx, x[r * cols + c]);
            }
            mn = Math.min(mn, 0f);
            mx = Math.max(mx, 0f);
            float scale = Math.max(mx - mn, 1e-8f) / qmax;
            float zp = (float) Math.rint(-mn / scale);
            for (int c = 0; c < cols; c++) {
                float q = Math.min(Math.max((float) Math.rint(x[r * cols + c] / scale) + zp, 0f), qmax);
                out[r * cols + c] = (q - zp) * scale;
            }
        }
        return out;
    }

    /** static_reference.py: per-tensor asymmetric fake quantization with calibrated lo/hi. */
    static float[] staticQ(float[] x, float lo, float hi, int bits) {
        lo = Math.min(lo, 0f);
        hi = Math.max(hi, 0f);
        float q = (1 << bits) - 1;
        float s = Math.max(hi - lo, 1e-8f) / q;
        float z = (float) Math.rint(-lo / s);
        float[] out = new float[x.length];
        for (int i = 0; i < x.length; i++) out[i] = (Math.min(Math.max((float) Math.rint(x[i] / s) + z, 0f), q) - z) * s;
        return out;
    }

    /** Weights like a trained fp16 linear: Gaussian, rounded to fp16, with a few large outliers. */
    static float[] fp16Weights(int n, long seed) {
        SplittableRandom rnd = new SplittableRandom(seed);
        float[] w = new float[n];
        for (int i = 0; i < n; i++) {
            double v = gaussian(rnd) * 0.02;
            if (rnd.nextInt(200) == 0) v *= 12;
            w[i] = Float.float16ToFloat(Float.floatToFloat16((float) v));
        }
        return w;
    }

    static double gaussian(SplittableRandom rnd) {
        double u = rnd.nextDouble(), v = rnd.nextDouble();
        return Math.sqrt(-2 * Math.log(1 - u)) * Math.cos(2 * Math.PI * v);
    }
}
