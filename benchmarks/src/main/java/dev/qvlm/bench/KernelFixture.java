package dev.qvlm.bench;

import dev.qvlm.cpu.Matmul;
import dev.qvlm.tensor.F32Matrix;
import dev.qvlm.tensor.HalfMatrix;
import dev.qvlm.tensor.Matrix;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.SplittableRandom;

/**
 * Preallocated inputs for one kernel benchmark: a weight matrix (F32 on the heap, or F16 off-heap in an
 * {@link Arena}, the way mmapped safetensors weights are held), n activation rows, a bias and the output buffer.
 * Everything is drawn from a fixed seed, so every fork and every run sees the same numbers.
 */
final class KernelFixture implements AutoCloseable {
    static final long SEED = 0x5EED_C0FFEEL;
    private static final ValueLayout.OfShort LE16 =
            ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    final int rows, cols, n;
    final boolean vector;
    final Matrix w;
    final float[] x, bias, out;
    private final Arena arena;

    KernelFixture(String shape, String dtype, String impl, int n) {
        int[] rc = parseShape(shape);
        this.rows = rc[0];
        this.cols = rc[1];
        this.n = n;
        this.vector = switch (impl) {
            case "vector" -> true;
            case "scalar" -> false;
            default -> throw new IllegalArgumentException("impl must be vector|scalar: " + impl);
        };
        SplittableRandom rnd = new SplittableRandom(SEED);
        float[] a = weights(rows, cols, rnd);
        switch (dtype) {
            case "f32" -> {
                this.arena = null;
                this.w = new F32Matrix(rows, cols, a);
            }
            case "f16", "bf16" -> {
                this.arena = Arena.ofShared();
                this.w = halfMatrix(arena, rows, cols, a, dtype.equals("f16") ? HalfMatrix.Kind.F16 : HalfMatrix.Kind.BF16);
            }
            default -> throw new IllegalArgumentException("dtype must be f32|f16|bf16: " + dtype);
        }
        this.x = new float[n * cols];
        for (int i = 0; i < x.length; i++) x[i] = uniform(rnd);
        this.bias = new float[rows];
        for (int i = 0; i < rows; i++) bias[i] = uniform(rnd) * 0.1f;
        this.out = new float[n * rows];
        verify();
    }

    static int[] parseShape(String shape) {
        String[] rc = shape.toLowerCase().split("x");
        if (rc.length != 2) throw new IllegalArgumentException("shape must be ROWSxCOLS: " + shape);
        return new int[] {Integer.parseInt(rc[0].trim()), Integer.parseInt(rc[1].trim())};
    }

    static float uniform(SplittableRandom r) {
        return (float) (r.nextDouble() * 2 - 1);
    }

    /** uniform(−1, 1)/√cols, row-major: outputs stay O(1), like a trained layer. */
    static float[] weights(int rows, int cols, SplittableRandom rnd) {
        float scale = (float) (1.0 / Math.sqrt(cols));
        float[] a = new float[Math.multiplyExact(rows, cols)];
        for (int i = 0; i < a.length; i++) a[i] = uniform(rnd) * scale;
        return a;
    }

    /** The weights as an F16 or BF16 matrix off-heap in {@code arena}, as mmapped safetensors weights are held. */
    static HalfMatrix halfMatrix(Arena arena, int rows, int cols, float[] a, HalfMatrix.Kind kind) {
        MemorySegment seg = arena.allocate((long) a.length * 2, 64);
        for (int i = 0; i < a.length; i++) {
            short bits = kind == HalfMatrix.Kind.F16 ? Float.floatToFloat16(a[i]) : (short) (Float.floatToRawIntBits(a[i]) >>> 16);
            seg.setAtIndex(LE16, i, bits);
        }
        return new HalfMatrix(rows, cols, seg, kind);
    }

    /** One kernel call: what the benchmark measures. */
    float[] run() {
        if (vector) Matmul.matmul(out, 0, x, 0, n, w, bias);
        else Matmul.matmulScalar(out, 0, x, 0, n, w, bias);
        return out;
    }

    /**
     * Sanity check before measuring: run the kernel once and compare a sample of outputs against a
     * double-precision dot product through the scalar {@link Matrix#get} reference. Catches a benchmark that
     * is fast because it is wrong.
     */
    private void verify() {
        run();
        check(w, x, bias, out, n == 1 ? new int[] {0} : new int[] {0, n / 2, n - 1}, "");
        java.util.Arrays.fill(out, 0f);
    }

    /**
     * Sample rows of {@code out} (tokens × rows) against a double-precision dot product through the scalar
     * {@link Matrix#get} reference, within 1e-5 of the sum of |terms|.
     */
    static void check(Matrix w, float[] x, float[] bias, float[] out, int[] tokens, String what) {
        int rows = w.rows(), cols = w.cols();
        for (int t : tokens)
            for (int o : new int[] {0, 1, 2, 3, rows / 2, rows / 2 + 1, rows - 2, rows - 1}) {
                double s = bias[o], mag = Math.abs(bias[o]);
                for (int i = 0; i < cols; i++) {
                    double p = (double) x[t * cols + i] * w.get(o, i);
                    s += p;
                    mag += Math.abs(p);
                }
                float got = out[t * rows + o];
                double tol = 1e-5 * mag + 1e-6;
                if (!(Math.abs(got - s) <= tol))
                    throw new IllegalStateException(what + "kernel mismatch at token " + t + " row " + o + ": got " + got
                            + ", want " + s + " (tol " + tol + ")");
            }
    }

    @Override
    public void close() {
        if (arena != null) arena.close();
    }
}
