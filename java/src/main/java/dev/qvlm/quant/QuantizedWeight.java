package dev.qvlm.quant;

import dev.qvlm.cpu.Parallel;
import dev.qvlm.tensor.F32Matrix;
import dev.qvlm.tensor.Matrix;

/**
 * A quantized (rows × cols) weight, W[r, c] ≈ (code[r, c] − zero[g]) · scale[g], g the group of (r, c).
 * Codes are unsigned 0 .. 2^b − 1 in both modes (symmetric codes are q + 2^(b−1) with zero 2^(b−1)), one byte each.
 * Groups: TENSOR one group for the whole matrix (scales.length = 1, groupSize = rows·cols); CHANNEL one per row
 * (groupSize = cols); GROUP cols / groupSize per row, scales laid out [rows × groupsPerRow].
 * The arrays are shared, not copied: treat them as read-only.
 */
public final class QuantizedWeight {
    private final QuantArgs args;
    private final int rows, cols, groupSize, groupsPerRow;
    private final byte[] codes;   // [rows * cols], unsigned
    private final float[] scales; // [groups]
    private final int[] zeros;    // [groups], unsigned

    public QuantizedWeight(QuantArgs args, int rows, int cols, byte[] codes, float[] scales, int[] zeros) {
        args.validateFor(cols, "quantized weight " + rows + "x" + cols);
        this.args = args;
        this.rows = rows;
        this.cols = cols;
        this.groupSize = args.effectiveGroupSize(rows, cols);
        this.groupsPerRow = args.groupsPerRow(cols);
        int groups = args.granularity() == QuantArgs.Granularity.TENSOR ? 1 : rows * groupsPerRow;
        if (codes.length != (long) rows * cols)
            throw new IllegalArgumentException("codes: " + codes.length + " for " + rows + "x" + cols);
        if (scales.length != groups || zeros.length != groups)
            throw new IllegalArgumentException("scales/zeros: " + scales.length + "/" + zeros.length + ", expected " + groups);
        for (int z : zeros)
            if (z < 0 || z > args.maxCode()) throw new IllegalArgumentException("zero point " + z + " out of range for " + args);
        this.codes = codes;
        this.scales = scales;
        this.zeros = zeros;
    }

    public QuantArgs args() {
        return args;
    }

    public int rows() {
        return rows;
    }

    public int cols() {
        return cols;
    }

    public int bits() {
        return args.bits();
    }

    public boolean symmetric() {
        return args.symmetric();
    }

    public QuantArgs.Granularity granularity() {
        return args.granularity();
    }

    /** Columns sharing a scale: groupSize for GROUP, cols for CHANNEL, rows·cols for TENSOR. */
    public int groupSize() {
        return groupSize;
    }

    /** Scales per row: cols / groupSize (GROUP), 1 (CHANNEL), 0 (TENSOR: one scale for all rows). */
    public int groupsPerRow() {
        return groupsPerRow;
    }

    public byte[] codes() {
        return codes;
    }

    public float[] scales() {
        return scales;
    }

    public int[] zeros() {
        return zeros;
    }

    /** Index into scales/zeros of element (r, c). */
    public int groupIndex(int r, int c) {
        return groupsPerRow == 0 ? 0 : r * groupsPerRow + c / groupSize;
    }

    public int code(int r, int c) {
        return codes[r * cols + c] & 0xff;
    }

    /** Scalar reference: the dequantised (fake-quant) value. */
    public float get(int r, int c) {
        int g = groupIndex(r, c);
        return Uniform.value(codes[r * cols + c] & 0xff, zeros[g], scales[g]);
    }

    /** All dequantised values, row-major. */
    public float[] dequantize() {
        float[] out = new float[rows * cols];
        Parallel.forRange(rows, Math.max(1, 16384 / Math.max(1, cols)), (r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                int base = r * cols;
                for (int c = 0; c < cols; ) {
                    int g = groupIndex(r, c);
                    int end = groupsPerRow == 0 ? cols : c + groupSize;
                    float s = scales[g];
                    int z = zeros[g];
                    for (; c < end; c++) out[base + c] = Uniform.value(codes[base + c] & 0xff, z, s);
                }
            }
        });
        return out;
    }

    /** The fake-quantized weights as a dense FP32 matrix (what a simulated-quantization forward pass uses). */
    public Matrix toMatrix() {
        return new F32Matrix(rows, cols, dequantize());
    }

    /** The real 4-bit storage (compressed-tensors pack-quantized layout), decoded on the fly by the matmul. */
    public Q4Matrix toPackedMatrix() {
        return Q4Matrix.from(this);
    }

    /** A copy whose scales are rounded to IEEE half precision, i.e. what a checkpoint with F16 scales holds. */
    public QuantizedWeight withHalfScales() {
        float[] s = new float[scales.length];
        for (int i = 0; i < s.length; i++) s[i] = Float.float16ToFloat(Float.floatToFloat16(scales[i]));
        return new QuantizedWeight(args, rows, cols, codes, s, zeros);
    }

    /** Σ (W_q − W)² against the full-precision weight. */
    public double squaredError(Matrix w) {
        if (w.rows() != rows || w.cols() != cols) throw new IllegalArgumentException("shape mismatch");
        double[] perRow = new double[rows];
        Parallel.forRange(rows, Math.max(1, 16384 / Math.max(1, cols)), (r0, r1) -> {
            float[] buf = new float[cols];
            for (int r = r0; r < r1; r++) {
                w.rowToFloat(r, buf, 0);
                double s = 0;
                for (int c = 0; c < cols; c++) {
                    double d = get(r, c) - buf[c];
                    s += d * d;
                }
                perRow[r] = s;
            }
        });
        double s = 0;
        for (double v : perRow) s += v;
        return s;
    }

    @Override
    public String toString() {
        return "QuantizedWeight[" + rows + "x" + cols + ", " + args.label() + "]";
    }
}
