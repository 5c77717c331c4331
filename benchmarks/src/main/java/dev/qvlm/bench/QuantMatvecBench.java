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
        int[] rc = KernelFixture.parseShape(shape);
        int rows = rc[0], cols = rc[1];
        SplittableRandom rnd = new SplittableRandom(KernelFixture.SEED);
        float[] a = KernelFixture.weights(rows, cols, rnd);
        switch (weights) {
            case "f32" -> w = new F32Matrix(rows, cols, a);
            case "f16" -> {
                arena = Arena.ofShared();
                w = KernelFixture.halfMatrix(arena, rows, cols, a, HalfMatrix.Kind.F16);
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
        for (int i = 0; i < cols; i++) x[i] = KernelFixture.uniform(rnd);
        bias = new float[rows];
        for (int i = 0; i < rows; i++) bias[i] = KernelFixture.uniform(rnd) * 0.1f;
        out = new float[rows];
        matvec();
        KernelFixture.check(w, x, bias, out, new int[] {0}, weights + " ");
        java.util.Arrays.fill(out, 0f);
    }

    @Benchmark
    public float[] matvec() {
        if (fused != null) fused.matmul(out, 0, x, 0, 1, bias);
        else Matmul.matmul(out, 0, x, 0, 1, w, bias);
        return out;
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        if (arena != null) arena.close();
        arena = null;
        w = null;
        fused = null;
    }
}
