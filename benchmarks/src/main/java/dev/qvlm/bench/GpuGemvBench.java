package dev.qvlm.bench;

import dev.qvlm.backend.Tensor;
import dev.qvlm.cuda.CudaBackend;
import dev.qvlm.cuda.CudaRuntime;
import dev.qvlm.cuda.Int4Layout;
import dev.qvlm.cuda.Storage;
import dev.qvlm.model.Linear;
import dev.qvlm.tensor.GeneratedMatrix;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

import java.util.concurrent.TimeUnit;

/**
 * The decode GEMV of one token on the LLaMA-13B projection shapes (q/k/v/o 5120×5120, gate/up 13824×5120, down
 * 5120×13824), GPU only: {@code int4} is our packed W4A16 g128 GEMV ({@code int4-wN-uM}: the same with N warps per
 * block and M chunks of loads in flight per thread instead of the defaults, the sweep run.sh measures), {@code f16} is the FP16 weight through cuBLAS
 * (cublasGemmEx, what {@code CudaBackend.linear} does for FP16), {@code copy} is cuMemcpyDtoD of a buffer the size
 * of the FP16 weight — the bandwidth reference (it reads and writes, so its bytes count twice). {@link GpuReport}
 * turns the JSON into weight GB/s and the share of the copy bandwidth.
 *
 * <p>{@value #CALLS} launches per invocation and one synchronisation at the end, so the launch-to-sync latency
 * of a single call (tens of microseconds, comparable to the kernel) is not what is measured. Without a usable GPU
 * setup fails with the reason.
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 1, time = 1)
@Measurement(iterations = 3, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED"})
@State(Scope.Benchmark)
public class GpuGemvBench {
    static final int CALLS = 50;

    @Param({"5120x5120", "13824x5120", "5120x13824"})
    public String shape;

    @Param({"int4", "f16", "copy"})
    public String kernel;

    private CudaBackend gpu;
    private Linear linear;
    private Tensor x, y, src, dst;

    @Setup(Level.Trial)
    public void setup() {
        String why = CudaRuntime.probe();
        if (why != null) throw new IllegalStateException("no usable GPU: " + why);
        int[] rc = KernelFixture.parseShape(shape);
        gpu = CudaBackend.open(Storage.F16);
        GpuGemvTimes.apply(kernel); // int4-wN-uM: a fixed block size and load depth (the sweep run.sh asks for)
        String k = kernel.startsWith("int4-") ? "int4" : kernel;
        switch (k) {
            case "int4", "f16" -> {
                GeneratedMatrix m = k.equals("int4") ? GeneratedMatrix.q4(rc[0], rc[1], 9, 0.001f, 128, false)
                        : GeneratedMatrix.f16(rc[0], rc[1], 9, 0.01f);
                linear = new Linear("bench", Linear.Part.LLM, m, null);
                float[] xv = new float[rc[1]];
                for (int i = 0; i < xv.length; i++) xv[i] = (GeneratedMatrix.hash(3, i) >>> 8) * 0x1p-23f - 1f;
                x = gpu.upload(xv, 1, rc[1]);
                y = gpu.allocate(1, rc[0]);
                gpu.linear(y, x, linear); // uploads / re-lays out the weight, untimed
            }
            case "copy" -> {
                src = gpu.allocate(rc[0], rc[1]);
                dst = gpu.allocate(rc[0], rc[1]);
            }
            default -> throw new IllegalArgumentException("kernel must be int4|int4-wN|f16|copy: " + kernel);
        }
        gpu.synchronize();
    }

    /** Bytes each call moves: the weight storage for a GEMV, read + write for the copy. */
    long bytesPerCall() {
        return linear != null ? gpu.weightBytes(linear.weight()) : 2L * src.rows() * src.cols() * 2;
    }

    @Benchmark
    @OperationsPerInvocation(CALLS)
    public void run() {
        for (int i = 0; i < CALLS; i++) {
            if (linear != null) gpu.linear(y, x, linear);
            else gpu.copy(src, dst);
        }
        gpu.synchronize();
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        Int4Layout.overrideGemvWarps(0);
        Int4Layout.overrideGemvUnroll(1);
        if (gpu != null) gpu.close();
        gpu = null;
    }
}
