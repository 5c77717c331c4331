package dev.qvlm.bench;

import dev.qvlm.cpu.Matmul;
import dev.qvlm.quant.QuantArgs;
import dev.qvlm.quant.Q4Matrix;
import dev.qvlm.quant.WeightQuantizer;
import dev.qvlm.tensor.F32Matrix;
import dev.qvlm.tensor.HalfMatrix;
import dev.qvlm.tensor.Matrix;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;

/**
 * Decode-step matrix-vector product (n = 1) with packed 4-bit weights against F16 and F32, on the LLaMA-7B
 * projection shapes. {@code weights}:
 * <ul>
 *   <li>{@code f32}, {@code f16}: {@code Matmul.matmul} on an F32Matrix (heap) / HalfMatrix (off-heap);
 *   <li>{@code q4g128}: {@code Matmul.matmul} on a {@link Q4Matrix} (asymmetric, groups of 128), i.e. the generic
 *       path through {@code Q4Matrix.rowToFloat} (decode 4 rows to FP32, then dot);
 *   <li>{@code q4g128-fused}: the same matrix through {@link Q4Matrix#matmul}, the fused kernel that never
 *       materialises FP32 weights (what Matmul would dispatch to for Q4Matrix).
 * </ul>
 * All three storages hold the same weights (uniform(−1, 1)/√cols from a fixed seed; the q4 ones are their RTN
 * quantization). Sample-time mode: every call is timed, so {@link QuantReport} can show the median and the
 * minimum, which are far less sensitive than the mean to other processes on a shared machine.
 */
@BenchmarkMode(Mode.SampleTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 2, time = 1)
@Measurement(iterations = 4, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector"})
@State(Scope.Benchmark)
public class QuantMatvecBench {
    static final long SEED = 0x5EED_C0FFEEL;
    private static final ValueLayout.OfShort LE16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    @Param({"4096x4096", "11008x4096"})
    public String shape;

    @Param({"f32", "f16", "q4g128", "q4g128-fused"})
    public String weights;

    private Arena arena;
    private Matrix w;
    private Q4Matrix fused;
    private float[] x, bias, out;

    @Setup(Level.Trial)
    public void setup() {
        String[] rc = shape.toLowerCase().split("x");
        int rows = Integer.parseInt(rc[0].trim()), cols = Integer.parseInt(rc[1].trim());
        SplittableRandom rnd = new SplittableRandom(SEED);
        float scale = (float) (1.0 / Math.sqrt(cols));
        float[] a = new float[Math.multiplyExact(rows, cols)];
        for (int i = 0; i < a.length; i++) a[i] = uniform(rnd) * scale;
        switch (weights) {
            case "f32" -> w = new F32Matrix(rows, cols, a);
            case "f16" -> {
                arena = Arena.ofShared();
                MemorySegment seg = arena.allocate((long) a.length * 2, 64);
                for (int i = 0; i < a.length; i++) seg.setAtIndex(LE16, i, Float.floatToFloat16(a[i]));
                w = new HalfMatrix(rows, cols, seg, HalfMatrix.Kind.F16);
            }
            case "q4g128", "q4g128-fused" -> {
                Q4Matrix q = WeightQuantizer.quantize(new F32Matrix(rows, cols, a), QuantArgs.perGroup(4, false, 128), 1.0)
                        .toPackedMatrix();
                w = q;
                if (weights.endsWith("-fused")) {
                    if (!q.fusedSupported()) throw new IllegalStateException("fused kernel not supported for " + shape);
                    fused = q;
                }
            }
            default -> throw new IllegalArgumentException("weights must be f32|f16|q4g128|q4g128-fused: " + weights);
        }
        x = new float[cols];
        for (int i = 0; i < cols; i++) x[i] = uniform(rnd);
        bias = new float[rows];
        for (int i = 0; i < rows; i++) bias[i] = uniform(rnd) * 0.1f;
        out = new float[rows];
        verify();
    }

    private static float uniform(SplittableRandom r) {
        return (float) (r.nextDouble() * 2 - 1);
    }

    @Benchmark
    public float[] matvec() {
        if (fused != null) fused.matmul(out, 0, x, 0, 1, bias);
        else Matmul.matmul(out, 0, x, 0, 1, w, bias);
        return out;
    }

    /** The kernel against a double-precision dot product through the scalar Matrix.get, on sample rows. */
    private void verify() {
        matvec();
        int rows = w.rows(), cols = w.cols();
        for (int o : new int[] {0, 1, 2, 3, rows / 2, rows / 2 + 1, rows - 2, rows - 1}) {
            double s = bias[o], mag = Math.abs(bias[o]);
            for (int i = 0; i < cols; i++) {
                double p = (double) x[i] * w.get(o, i);
                s += p;
                mag += Math.abs(p);
            }
            double tol = 1e-5 * mag + 1e-6;
            if (!(Math.abs(out[o] - s) <= tol))
                throw new IllegalStateException(weights + " kernel mismatch at row " + o + ": got " + out[o] + ", want " + s);
        }
        java.util.Arrays.fill(out, 0f);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        if (arena != null) arena.close();
        arena = null;
        w = null;
        fused = null;
    }
}
