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
        String[] rc = shape.toLowerCase().split("x");
        if (rc.length != 2) throw new IllegalArgumentException("shape must be ROWSxCOLS: " + shape);
        this.rows = Integer.parseInt(rc[0].trim());
        this.cols = Integer.parseInt(rc[1].trim());
        this.n = n;
        this.vector = switch (impl) {
            case "vector" -> true;
            case "scalar" -> false;
            default -> throw new IllegalArgumentException("impl must be vector|scalar: " + impl);
        };
        SplittableRandom rnd = new SplittableRandom(SEED);
        float scale = (float) (1.0 / Math.sqrt(cols)); // keep outputs O(1), like a trained layer
        switch (dtype) {
            case "f32" -> {
                float[] a = new float[Math.multiplyExact(rows, cols)];
                for (int i = 0; i < a.length; i++) a[i] = uniform(rnd) * scale;
                this.arena = null;
                this.w = new F32Matrix(rows, cols, a);
            }
            case "f16", "bf16" -> {
                boolean f16 = dtype.equals("f16");
                this.arena = Arena.ofShared();
                long count = (long) rows * cols;
                MemorySegment seg = arena.allocate(count * 2, 64);
                for (long i = 0; i < count; i++) {
                    float v = uniform(rnd) * scale;
                    short bits = f16 ? Float.floatToFloat16(v) : (short) (Float.floatToRawIntBits(v) >>> 16);
                    seg.setAtIndex(LE16, i, bits);
                }
                this.w = new HalfMatrix(rows, cols, seg, f16 ? HalfMatrix.Kind.F16 : HalfMatrix.Kind.BF16);
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

    private static float uniform(SplittableRandom r) {
        return (float) (r.nextDouble() * 2 - 1);
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
        int[] sampleRows = {0, 1, 2, 3, rows / 2, rows / 2 + 1, rows - 2, rows - 1};
        int[] sampleTokens = n == 1 ? new int[] {0} : new int[] {0, n / 2, n - 1};
        for (int t : sampleTokens)
            for (int o : sampleRows) {
                double s = bias[o], mag = Math.abs(bias[o]);
                for (int i = 0; i < cols; i++) {
                    double p = (double) x[t * cols + i] * w.get(o, i);
                    s += p;
                    mag += Math.abs(p);
                }
                float got = out[t * rows + o];
                double tol = 1e-5 * mag + 1e-6;
                if (!(Math.abs(got - s) <= tol))
                    throw new IllegalStateException("kernel mismatch at token " + t + " row " + o + ": got " + got
                            + ", want " + s + " (tol " + tol + ")");
            }
        java.util.Arrays.fill(out, 0f);
    }

    @Override
    public void close() {
        if (arena != null) arena.close();
    }
}
