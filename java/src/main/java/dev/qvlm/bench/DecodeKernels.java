package dev.qvlm.bench;

import dev.qvlm.cpu.Int8Matmul;
import dev.qvlm.cpu.Matmul;
import dev.qvlm.cpu.Parallel;
import dev.qvlm.cpu.VectorMath;
import dev.qvlm.quant.Q4Matrix;
import dev.qvlm.tensor.HalfMatrix;
import dev.qvlm.tensor.Matrix;
import jdk.incubator.vector.LongVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;
import java.util.function.Consumer;

/**
 * Matrix-level decode (one token) throughput against the machine's read bandwidth, LLaMA-7B shapes:
 * {@code java --add-modules jdk.incubator.vector -cp java/target/qvlm.jar dev.qvlm.bench.DecodeKernels [threads] [MB] [passes] [ROWSxCOLS,...]}.
 *
 * <p>Each kernel cycles through enough copies of a matrix (random codes and scales) to stream {@code MB} (default
 * 1024) of weights per pass, far more than any L3, so the figure is DRAM throughput as in a real decode step. The
 * bandwidth reference is a multi-threaded sequential read (vector loads summed) of a buffer of the same size, with
 * the same thread pool. Passes are interleaved kernel by kernel; the best pass of each is printed (shared machine:
 * the best is the least disturbed), by wall time and by the process's CPU time per thread ("GB/s cpu": on a machine
 * whose cores other jobs also use, the rate the pass would reach with its cores to itself; a memory stall counts as
 * CPU time, so a bandwidth-bound kernel is still measured against the bandwidth).
 */
public final class DecodeKernels {
    private static final com.sun.management.OperatingSystemMXBean OS =
            (com.sun.management.OperatingSystemMXBean) java.lang.management.ManagementFactory.getOperatingSystemMXBean();
    private static final VectorSpecies<Long> LV = LongVector.SPECIES_PREFERRED;

    public static void main(String[] args) {
        int threads = args.length > 0 ? Integer.parseInt(args[0]) : Parallel.threads();
        long mb = args.length > 1 ? Long.parseLong(args[1]) : 1024;
        int passes = args.length > 2 ? Integer.parseInt(args[2]) : 8;
        Parallel.setThreads(threads);
        long bytes = mb << 20;
        System.out.printf(Locale.ROOT, "%d threads, %d MB per pass, %s, %d cores, vector %d bits%n", threads, mb,
                System.getProperty("os.arch"), Runtime.getRuntime().availableProcessors(), LV.vectorBitSize());
        int[][] shapes = {{4096, 4096}, {11008, 4096}, {4096, 11008}};
        if (args.length > 3) {
            String[] sp = args[3].split(",");
            shapes = new int[sp.length][];
            for (int i = 0; i < sp.length; i++) {
                String[] rc = sp[i].split("x");
                shapes[i] = new int[]{Integer.parseInt(rc[0]), Integer.parseInt(rc[1])};
            }
        }
        try (Arena arena = Arena.ofShared()) {
            MemorySegment buf = arena.allocate(bytes, 64);
            buf.fill((byte) 1);
            List<Kernel> ks = new ArrayList<>();
            ks.add(new Kernel("read bandwidth", bytes, () -> read(buf)));
            SplittableRandom rnd = new SplittableRandom(1);
            for (int[] sh : shapes) {
                int rows = sh[0], cols = sh[1];
                List<Q4Matrix> q4 = new ArrayList<>();
                long qb = Q4Matrix.storageBytes(rows, cols, 128, true);
                long packedBytes = (long) rows * cols / 2;
                for (long off = 0; off + packedBytes <= bytes; off += packedBytes) {
                    float[] sc = new float[rows * (cols / 128)];
                    for (int i = 0; i < sc.length; i++) sc[i] = (float) (0.01 + 0.01 * rnd.nextDouble());
                    q4.add(new Q4Matrix(rows, cols, 128, buf.asSlice(off, packedBytes), sc, null));
                }
                float[] x = new float[cols];
                for (int i = 0; i < cols; i++) x[i] = (float) rnd.nextGaussian();
                float[] out = new float[rows];
                String s = rows + "x" + cols;
                ks.add(new Kernel("q4g128 fp32-act " + s, qb * q4.size(), each(q4, m -> m.matmul(out, 0, x, 0, 1, null))));
                ks.add(new Kernel("q4g128 int8-act " + s, qb * q4.size(), each(q4, m -> Int8Matmul.matmul(out, 0, x, 0, 1, m, null))));
                List<HalfMatrix> f16 = new ArrayList<>();
                long hb = (long) rows * cols * 2;
                for (long off = 0; off + hb <= bytes; off += hb) f16.add(new HalfMatrix(rows, cols, buf.asSlice(off, hb), HalfMatrix.Kind.F16));
                ks.add(new Kernel("f16 in registers " + s, hb * f16.size(), each(f16, m -> Matmul.matmul(out, 0, x, 0, 1, m, null))));
                ks.add(new Kernel("f16 decode rows+dot4 " + s, hb * f16.size(), each(f16, m -> decodeThenDot4(out, x, m))));
            }
            for (Kernel k : ks) k.body.run(); // warm-up (JIT)
            for (Kernel k : ks) k.body.run();
            for (int p = 0; p < passes; p++)
                for (Kernel k : ks) {
                    long c = OS.getProcessCpuTime(), t = System.nanoTime();
                    k.body.run();
                    k.best = Math.min(k.best, System.nanoTime() - t);
                    k.bestCpu = Math.min(k.bestCpu, (OS.getProcessCpuTime() - c) / threads);
                }
            double bw = ks.getFirst().gbps(), bwCpu = ks.getFirst().gbpsCpu();
            System.out.printf(Locale.ROOT, "%-36s %9s %7s %8s %9s %8s%n", "kernel", "ms/pass", "GB/s", "of read", "GB/s cpu", "of read");
            for (Kernel k : ks)
                System.out.printf(Locale.ROOT, "%-36s %9.2f %7.2f %7.0f%% %9.2f %7.0f%%%n", k.name, k.best / 1e6, k.gbps(),
                        100 * k.gbps() / bw, k.gbpsCpu(), 100 * k.gbpsCpu() / bwCpu);
        }
    }

    /** The one-token path before {@link dev.qvlm.cpu.HalfMatvec}: four rows decoded to FP32 scratch, then dot4. */
    private static void decodeThenDot4(float[] out, float[] x, Matrix w) {
        int rows = w.rows(), cols = w.cols();
        Parallel.forRange(rows / 4, Math.max(1, 65536 / cols / 4), (b0, b1) -> {
            float[] buf = new float[4 * cols], tmp = new float[4];
            for (int b = b0; b < b1; b++) {
                for (int k = 0; k < 4; k++) w.rowToFloat(4 * b + k, buf, k * cols);
                VectorMath.dot4(buf, 0, cols, 2 * cols, 3 * cols, x, 0, cols, tmp, 0, 1);
                System.arraycopy(tmp, 0, out, 4 * b, 4);
            }
        });
    }

    private static <M extends Matrix> Runnable each(List<M> ms, Consumer<M> f) {
        return () -> {
            for (M m : ms) f.accept(m);
        };
    }

    private static final class Kernel {
        final String name;
        final long bytes;
        final Runnable body;
        long best = Long.MAX_VALUE, bestCpu = Long.MAX_VALUE;

        Kernel(String name, long bytes, Runnable body) {
            this.name = name;
            this.bytes = bytes;
            this.body = body;
        }

        double gbps() {
            return bytes / (double) best;
        }

        /** Bytes per second of CPU time per thread: what the pass would reach with its cores to itself. */
        double gbpsCpu() {
            return bytes / (double) bestCpu;
        }
    }

    private static long sink;

    /** Sequential read of the whole buffer over the pool: 4 KB pages per chunk item, vector loads xor-ed together. */
    static void read(MemorySegment seg) {
        int pages = (int) (seg.byteSize() >>> 12);
        Parallel.forRange(pages, 64, (p0, p1) -> {
            LongVector a = LongVector.zero(LV), b = LongVector.zero(LV);
            int step = LV.vectorByteSize();
            for (long o = (long) p0 << 12, e = (long) p1 << 12; o < e; o += 2L * step) {
                a = a.lanewise(VectorOperators.XOR, LongVector.fromMemorySegment(LV, seg, o, ByteOrder.LITTLE_ENDIAN));
                b = b.lanewise(VectorOperators.XOR, LongVector.fromMemorySegment(LV, seg, o + step, ByteOrder.LITTLE_ENDIAN));
            }
            long r = a.lanewise(VectorOperators.XOR, b).reduceLanes(VectorOperators.XOR);
            synchronized (DecodeKernels.class) {
                sink ^= r;
            }
        });
        if (sink == 42) System.out.print("");
    }
}
