package dev.qvlm.tensor;

/**
 * A read-only weight matrix of shape (rows, cols), row-major, as stored: one subclass per storage type.
 * {@link #get} is the scalar reference every fast path is tested against; {@link #rowToFloat} is the fast path the
 * kernels use (decode one row to FP32, vectorised where the storage allows).
 */
public abstract class Matrix {
    protected final int rows;
    protected final int cols;

    protected Matrix(int rows, int cols) {
        this.rows = rows;
        this.cols = cols;
    }

    public final int rows() {
        return rows;
    }

    public final int cols() {
        return cols;
    }

    /** Scalar reference read. */
    public abstract float get(int r, int c);

    /** Decodes row {@code r} into {@code dst[off .. off+cols)}. Subclasses override with a vectorised decode. */
    public void rowToFloat(int r, float[] dst, int off) {
        for (int c = 0; c < cols; c++) dst[off + c] = get(r, c);
    }

    /** Storage bytes of the weights (for bandwidth figures). */
    public abstract long storageBytes();

    /** Short storage name: f32, f16, bf16, q4g128, ... */
    public abstract String storageName();

    /** A dense FP32 copy (rows*cols). */
    public float[] toFloatArray() {
        float[] out = new float[rows * cols];
        for (int r = 0; r < rows; r++) rowToFloat(r, out, r * cols);
        return out;
    }
}
