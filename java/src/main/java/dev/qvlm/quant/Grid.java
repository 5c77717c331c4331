package dev.qvlm.quant;

/**
 * The quantization grid of one weight matrix: a scale and zero point per group (row, group of columns, or the whole
 * matrix, as {@link QuantArgs} says), fixed before any value is rounded. Round-to-nearest and GPTQ differ only in the
 * values they round onto this grid: RTN the original weights, GPTQ the weights updated by its error feedback.
 *
 * @param groupSize values per group in row-major order (cols for CHANNEL, G for GROUP, rows·cols for TENSOR)
 */
public record Grid(QuantArgs args, int rows, int cols, int groupSize, float[] scales, int[] zeros) {

    /** The grid whose groups span [lo[g], hi[g]] (widened to include 0, or made symmetric, by {@link Uniform}). */
    public static Grid of(QuantArgs a, int rows, int cols, float[] lo, float[] hi) {
        int groups = lo.length;
        float[] scales = new float[groups];
        int[] zeros = new int[groups];
        for (int g = 0; g < groups; g++) {
            scales[g] = Uniform.scale(lo[g], hi[g], a);
            zeros[g] = Uniform.zero(lo[g], scales[g], a);
        }
        return new Grid(a, rows, cols, a.effectiveGroupSize(rows, cols), scales, zeros);
    }

    public int group(int r, int c) {
        return (int) (((long) r * cols + c) / groupSize);
    }

    /** The code of value w at (r, c): clamp(rint(w / scale) + zero, 0, 2^b − 1), in FP32 as the reference. */
    public int code(int r, int c, double w) {
        int g = group(r, c);
        return Uniform.code((float) w, scales[g], zeros[g], args.maxCode());
    }

    /** The value code stands for at (r, c). */
    public float value(int r, int c, int code) {
        int g = group(r, c);
        return Uniform.value(code, zeros[g], scales[g]);
    }

    /** Round-to-nearest of row-major values {@code v} onto this grid. */
    public QuantizedWeight round(float[] v) {
        byte[] codes = new byte[v.length];
        int maxCode = args.maxCode();
        dev.qvlm.cpu.Parallel.forRange(rows, Math.max(1, 16384 / Math.max(1, cols)), (r0, r1) -> {
            for (int i = r0 * cols, e = r1 * cols; i < e; i++) {
                int g = (int) ((long) i / groupSize);
                codes[i] = (byte) Uniform.code(v[i], scales[g], zeros[g], maxCode);
            }
        });
        return withCodes(codes);
    }

    public QuantizedWeight withCodes(byte[] codes) {
        return new QuantizedWeight(args, rows, cols, codes, scales, zeros);
    }
}
