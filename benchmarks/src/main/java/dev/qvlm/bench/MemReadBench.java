package dev.qvlm.bench;

import dev.qvlm.cpu.Parallel;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;
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
import java.nio.ByteOrder;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.DoubleAdder;

/**
 * The memory-read roofline of this machine for {@link QuantMatvecBench}: a vectorised sum over an off-heap buffer
 * far larger than the caches, split over the common fork-join pool like Matmul. Bytes read / time is the most a
 * memory-bound matvec could stream here.
 */
@BenchmarkMode(Mode.SampleTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 2, time = 1)
@Measurement(iterations = 4, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector"})
@State(Scope.Benchmark)
public class MemReadBench {
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;

    /** Buffer size in MiB. */
    @Param({"512"})
    public int mib;

    private Arena arena;
    private MemorySegment buf;

    @Setup(Level.Trial)
    public void setup() {
        arena = Arena.ofShared();
        buf = arena.allocate((long) mib << 20, 64);
        buf.fill((byte) 1);
    }

    @Benchmark
    public double read() {
        long bytes = buf.byteSize();
        int chunk = 1 << 20;
        int chunks = (int) (bytes / chunk);
        DoubleAdder total = new DoubleAdder();
        Parallel.forRange(chunks, 8, (c0, c1) -> {
            FloatVector a0 = FloatVector.zero(F), a1 = FloatVector.zero(F), a2 = FloatVector.zero(F), a3 = FloatVector.zero(F);
            int step = F.vectorByteSize();
            for (long o = (long) c0 * chunk, e = (long) c1 * chunk; o < e; o += 4L * step) {
                a0 = a0.add(FloatVector.fromMemorySegment(F, buf, o, ByteOrder.LITTLE_ENDIAN));
                a1 = a1.add(FloatVector.fromMemorySegment(F, buf, o + step, ByteOrder.LITTLE_ENDIAN));
                a2 = a2.add(FloatVector.fromMemorySegment(F, buf, o + 2L * step, ByteOrder.LITTLE_ENDIAN));
                a3 = a3.add(FloatVector.fromMemorySegment(F, buf, o + 3L * step, ByteOrder.LITTLE_ENDIAN));
            }
            total.add(a0.add(a1).add(a2.add(a3)).reduceLanes(VectorOperators.ADD));
        });
        return total.sum();
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        arena.close();
    }
}
