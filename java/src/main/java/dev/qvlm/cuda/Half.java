package dev.qvlm.cuda;

import dev.qvlm.QvlmException;
import dev.qvlm.tensor.Matrix;

/**
 * Host-side FP16 conversions for uploads and downloads. Rounding is IEEE round-to-nearest-even
 * ({@link Float#floatToFloat16}), the same as the device's {@code __float2half_rn}, so a value converted here and
 * one converted by a kernel agree bit for bit.
 */
public final class Half {
    private Half() {}

    /** The largest finite FP16 value. */
    public static final float MAX = 65504f;

    public static short fromFloat(float f) {
        return Float.floatToFloat16(f);
    }

    public static float toFloat(short h) {
        return Float.float16ToFloat(h);
    }

    /** src[off .. off+len) → FP16. */
    public static short[] fromFloats(float[] src, int off, int len) {
        short[] out = new short[len];
        for (int i = 0; i < len; i++) out[i] = Float.floatToFloat16(src[off + i]);
        return out;
    }

    public static float[] toFloats(short[] src) {
        float[] out = new float[src.length];
        for (int i = 0; i < src.length; i++) out[i] = Float.float16ToFloat(src[i]);
        return out;
    }

    /** bfloat16 bits → FP16 bits (through FP32, exact up to FP16's narrower range and precision). */
    public static short fromBf16(short b) {
        return Float.floatToFloat16(Float.intBitsToFloat(b << 16));
    }

    /**
     * Rows [r0, r0+count) of a weight matrix as FP16, row-major ({@code count * cols} values), the layout the device
     * keeps. F16 storage round-trips exactly; F32 and BF16 are rounded to nearest even. Finite values beyond FP16's
     * range would silently become infinities on the device, so they are an error naming the weight.
     */
    public static short[] rows(Matrix m, int r0, int count, String what) {
        int cols = m.cols();
        long n = (long) count * cols;
        if (n > Integer.MAX_VALUE - 8) throw new IllegalArgumentException(what + ": " + count + " rows per chunk is too many");
        short[] out = new short[(int) n];
        float[] row = new float[cols];
        for (int r = 0; r < count; r++) {
            m.rowToFloat(r0 + r, row, 0);
            int base = r * cols;
            for (int c = 0; c < cols; c++) {
                float v = row[c];
                if (Math.abs(v) > MAX && Float.isFinite(v))
                    throw new QvlmException(what + ": value " + v + " at [" + (r0 + r) + ", " + c
                            + "] is outside the FP16 range (±65504) the CUDA backend stores weights in");
                out[base + c] = Float.floatToFloat16(v);
            }
        }
        return out;
    }
}
