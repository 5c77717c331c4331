package dev.qvlm.bench;

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

import java.util.concurrent.TimeUnit;

/**
 * Prefill-like matrix product (n = 64 tokens) on a small 1024x1024 weight, where the scalar reference still finishes in well under a second per call, so vectorised and scalar can be compared head to head.
 * {@code impl=vector} is {@code Matmul.matmul} (Vector API, split over the common fork-join pool);
 * {@code impl=scalar} is {@code Matmul.matmulScalar} (single thread, double accumulation).
 * Summarise the JSON result with {@link Report} (GFLOP/s, weight GB/s, speedup).
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 2, time = 1)
@Measurement(iterations = 3, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector"})
@State(Scope.Benchmark)
public class MatmulBench {
    @Param({"1024x1024"})
    public String shape;

    @Param({"f32", "f16"})
    public String dtype;

    @Param({"vector", "scalar"})
    public String impl;

    /** Tokens per call (rows of x). */
    @Param({"64"})
    public int n;

    private KernelFixture f;

    @Setup(Level.Trial)
    public void setup() {
        f = new KernelFixture(shape, dtype, impl, n);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        f.close();
        f = null;
    }

    @Benchmark
    public float[] run() {
        return f.run();
    }
}
