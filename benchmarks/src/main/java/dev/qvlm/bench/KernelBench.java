package dev.qvlm.bench;

import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

import java.util.concurrent.TimeUnit;

/**
 * One {@link KernelFixture} call per benchmark invocation: the setup, teardown and measured method that
 * {@link MatvecBench}, {@link MatmulBench} and {@link MatmulLargeBench} share (JMH generates a benchmark for each
 * concrete subclass; the subclasses only declare their parameter grids). {@code impl=vector} is
 * {@code Matmul.matmul} (Vector API, split over the common fork-join pool); {@code impl=scalar} is
 * {@code Matmul.matmulScalar} (single thread, double accumulation). Summarise the JSON result with {@link Report}.
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 2, time = 1)
@Measurement(iterations = 3, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector"})
@State(Scope.Benchmark)
public abstract class KernelBench {
    private KernelFixture f;

    /** The fixture for this trial's parameters. */
    abstract KernelFixture fixture();

    @Setup(Level.Trial)
    public void setup() {
        f = fixture();
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
