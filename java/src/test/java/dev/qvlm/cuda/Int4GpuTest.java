package dev.qvlm.cuda;

import dev.qvlm.backend.Tensor;
import dev.qvlm.calib.Entropy;
import dev.qvlm.model.Linear;
import dev.qvlm.quant.Q4Matrix;
import dev.qvlm.quant.QuantArgs;
import dev.qvlm.tensor.F32Matrix;
import dev.qvlm.tensor.GeneratedMatrix;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/**
 * GPU only (skipped elsewhere): the int4 kernels against their CPU emulation and reference, the synthetic fills
 * against GeneratedMatrix, the calibration kernels against CalibKernels' references, and the int4 GEMV's achieved
 * weight bandwidth next to the card's cuMemcpyDtoD bandwidth on the LLaMA-13B shapes (printed; the acceptance
 * figure).
 */
class Int4GpuTest {
    static CudaBackend f16, f32;

    @BeforeAll
    static void open() {
        if (CudaRuntime.probe() != null) return;
        f16 = CudaBackend.open(Storage.F16);
        f32 = CudaBackend.open(Storage.F32);
    }

    @AfterAll
    static void close() {
        if (f16 != null) f16.close();
        if (f32 != null) f32.close();
    }

    @BeforeEach
    void gpu() {
        GpuTests.requireGpu();
    }

    @ParameterizedTest
    @CsvSource({"5120, 5120, 1", "13824, 5120, 2", "5120, 13824, 1", "37, 640, 3", "64, 4096, 8", "96, 1024, 16", "300, 512, 600"})
    void gemvAndDequantMatchTheReference(int rows, int cols, int n) {
        Q4Matrix w = Int4LayoutTest.random(rows + cols, rows, cols, 128, n % 2 == 0);
        short[] xh = Int4LayoutTest.randomHalf(n, n * cols);
        float[] x = Half.toFloats(xh);
        Linear lin = new Linear("w", Linear.Part.LLM, w, null);
        Int4Layout.Relaid r = Int4Layout.relayout(w, "w");
        int tiles = Math.min(r.tiles(), 64); // the emulation is slow: the first 64 row tiles
        float[] emu = n <= 8 ? Int4Layout.emulateGemv(r, xh, n, 0, tiles) : null;
        for (CudaBackend b : new CudaBackend[]{f16, f32}) {
            Tensor y = b.allocate(n, rows);
            b.linear(y, b.upload(x, n, cols), lin);
            float[] got = b.download(y);
            if (emu != null) {
                float[] g = new float[n * 4 * tiles], e = new float[g.length];
                int k = 0;
                for (int t = 0; t < n; t++) for (int o = 0; o < Math.min(rows, 4 * tiles); o++) {
                    g[k] = got[t * rows + o];
                    e[k++] = emu[t * rows + o];
                }
                GpuTests.assertClose("q4 gemv vs emulation " + rows + "x" + cols + " n=" + n + " " + b.storage(), e, g,
                        b.storage() == Storage.F16 ? 1e-3 : 1e-6);
            }
            float[] ref = new float[n * rows];
            dev.qvlm.cpu.Matmul.matmul(ref, 0, x, 0, n, w, null);
            GpuTests.assertClose("q4 linear vs CPU " + rows + "x" + cols + " n=" + n + " " + b.storage(), ref, got, 3e-3);
        }
    }

    /** q, k, v in one launch (qvlm_q4_gemv_multi*) give each linear's own GEMV, bit for bit (FP32 output). */
    @ParameterizedTest
    @CsvSource({"1", "3", "8"})
    void linearsInOneLaunchEqualLinearsAlone(int n) {
        int in = 5120;
        Linear[] ws = new Linear[3];
        for (int i = 0; i < 3; i++)
            ws[i] = new Linear("w" + i, Linear.Part.LLM, Int4LayoutTest.random(40 + i, i == 1 ? 1024 : 5120, in, 128, i == 2), null);
        float[] x = Half.toFloats(Int4LayoutTest.randomHalf(n, n * in));
        Tensor xin = f32.upload(x, n, in);
        Tensor[] fused = new Tensor[3];
        for (int i = 0; i < 3; i++) fused[i] = f32.allocate(n, ws[i].out());
        f32.linears(fused, xin, ws);
        for (int i = 0; i < 3; i++) {
            Tensor alone = f32.allocate(n, ws[i].out());
            f32.linear(alone, xin, ws[i]);
            assertArrayEquals(f32.download(alone), f32.download(fused[i]), "linear " + i + " of 3, n=" + n);
        }
    }

    /** The block sizes and load depths GpuGemvBench sweeps: each must give the emulation's sums (FP32 output). */
    @ParameterizedTest
    @CsvSource({"0, 2", "0, 4", "1, 1", "1, 4", "2, 4", "8, 1", "8, 2"})
    void gemvVariantsMatchTheEmulation(int warps, int unroll) {
        Q4Matrix w = Int4LayoutTest.random(11, 256, 5120, 128, false);
        short[] xh = Int4LayoutTest.randomHalf(1, 5120);
        Linear lin = new Linear("w", Linear.Part.LLM, w, null);
        Int4Layout.overrideGemvWarps(warps);
        Int4Layout.overrideGemvUnroll(unroll);
        try {
            float[] emu = Int4Layout.emulateGemv(Int4Layout.relayout(w, "w"), xh, 1, 0, 64);
            Tensor y = f32.allocate(1, 256);
            f32.linear(y, f32.upload(Half.toFloats(xh), 1, 5120), lin);
            GpuTests.assertClose("q4 gemv warps=" + warps + " unroll=" + unroll + " vs emulation", emu, f32.download(y), 1e-6);
        } finally {
            Int4Layout.overrideGemvWarps(0);
            Int4Layout.overrideGemvUnroll(1);
        }
    }

    @Test
    void fillsMatchGeneratedMatrix() {
        GeneratedMatrix f = GeneratedMatrix.f16(33, 96, 4, 0.5f), q = GeneratedMatrix.q4(33, 256, 5, 0.01f, 128, false);
        float[] x = new float[256];
        x[3] = 1f; // picks column 3
        for (GeneratedMatrix m : new GeneratedMatrix[]{f, q}) {
            float[] xi = java.util.Arrays.copyOf(x, m.cols());
            Tensor y = f32.allocate(1, m.rows());
            f32.linear(y, f32.upload(xi, 1, m.cols()), new Linear("g", Linear.Part.LLM, m, null));
            float[] got = f32.download(y), want = new float[m.rows()];
            for (int r = 0; r < m.rows(); r++) want[r] = m.get(r, 3);
            GpuTests.assertClose("fill " + m.storageName(), want, got, 1e-6);
        }
    }

    @Test
    void calibrationKernelsMatchTheirReferences() {
        float[] a = CalibKernelsTest.gauss(1, 100_000, 1), bb = CalibKernelsTest.gauss(2, 100_000, 1);
        a[17] = Float.NaN;
        float[] mm = CalibKernels.minMax(f32, f32.upload(a, 1000, 100));
        assertArrayEquals(CalibKernels.minMaxReference(a), mm);
        a[17] = 0;
        Entropy.Levels la = new Entropy.Levels(-3, 3, 16), lb = new Entropy.Levels(-3, 3, 16);
        Entropy.Dependency want = Entropy.dependency(List.of(a), List.of(bb), la, lb);
        Entropy.Dependency got = CalibKernels.dependency(f32, List.of(a), List.of(bb), la, lb);
        assertEquals(want.conditionalEntropy(), got.conditionalEntropy(), 1e-4);
        // the Backend ops the calibrator calls: the percentile histogram bin for bin, the joint sums from tensors
        long[] hw = new long[4096], hg = new long[4096];
        dev.qvlm.backend.Statistics.histogram(a, 0, a.length, -2.5, 5.0 / 4096, hw);
        f32.histogram(f32.upload(a, 1000, 100), -2.5, 5.0 / 4096, hg);
        assertArrayEquals(hw, hg, "range histogram");
        double[] sums = new double[16 * 16];
        f32.jointLevelSums(f32.upload(a, 1000, 100), f32.upload(bb, 1000, 100), la.lo(), la.step(), 16, lb.lo(), lb.step(), 16, sums);
        assertEquals(want.conditionalEntropy(), Entropy.fromJointSums(sums, a.length, 16, 16).conditionalEntropy(), 1e-4);
        int T = 40, N = 70, K = 384;
        float[] x = CalibKernelsTest.gauss(3, T * K, 1), wv = CalibKernelsTest.gauss(4, N * K, 0.05);
        F32Matrix w = new F32Matrix(N, K, wv);
        float[] yref = new float[T * N];
        dev.qvlm.cpu.Matmul.matmulScalar(yref, 0, x, 0, T, w, null);
        CalibKernels.Candidates c = CalibKernels.candidates(w, QuantArgs.perGroup(4, false, 128), new double[]{1, 0.99, 0.95, 0.9, 0.8});
        double[] ref = CalibKernels.scoreReference(x, T, w, yref, c), dev = CalibKernels.scores(f32, x, T, wv, N, K, yref, c);
        for (int i = 0; i < ref.length; i++) assertEquals(ref[i], dev[i], 1e-4 * ref[i], "candidate " + i);
        System.out.printf("calibration kernels: min/max, D = %.5f (CPU %.5f), scores %s%n", got.conditionalEntropy(),
                want.conditionalEntropy(), java.util.Arrays.toString(dev));
    }

    /**
     * The exact path decodes a 4-bit weight on the device (qvlm_q4_decode32) to Q4Matrix's own FP32 values: one-hot
     * input rows through the FP32 GEMM read the decoded weight back bit for bit (one nonzero term per sum).
     */
    @ParameterizedTest
    @CsvSource({"false", "true"})
    void exactPathDecodesQ4ToTheHostsValues(boolean symmetric) {
        int out = 37, in = 256;
        Q4Matrix w = Int4LayoutTest.random(11, out, in, 128, symmetric);
        float[] eye = new float[in * in];
        for (int i = 0; i < in; i++) eye[i * in + i] = 1f;
        try (CudaBackend b = CudaBackend.openExact()) {
            Tensor y = b.allocate(in, out);
            b.linear(y, b.upload(eye, in, in), new Linear("model.layers.0.mlp.up_proj", Linear.Part.LLM, w, null));
            float[] got = b.download(y), row = new float[in];
            for (int o = 0; o < out; o++) {
                w.rowToFloat(o, row, 0);
                for (int c = 0; c < in; c++)
                    assertEquals(Float.floatToIntBits(row[c]), Float.floatToIntBits(got[c * out + o]), "W[" + o + "," + c + "]");
            }
        }
    }

    /** Achieved weight bandwidth of the GEMV (1 token) against cuMemcpyDtoD, LLaMA-13B shapes. */
    @Test
    void gemvBandwidthOn13bShapes() {
        double copy = f16.copyBandwidth(1L << 30, 20);
        System.out.printf("cuMemcpyDtoD: %.0f GB/s (read+write)%n", copy / 1e9);
        for (int[] s : new int[][]{{5120, 5120}, {13824, 5120}, {5120, 13824}}) {
            GeneratedMatrix gq = GeneratedMatrix.q4(s[0], s[1], 9, 0.001f, 128, false);
            GeneratedMatrix gf = GeneratedMatrix.f16(s[0], s[1], 9, 0.01f);
            Tensor x = f16.upload(Int4LayoutTest.halfRandFloats(s[1]), 1, s[1]), y = f16.allocate(1, s[0]);
            for (GeneratedMatrix m : new GeneratedMatrix[]{gq, gf}) {
                Linear lin = new Linear("b", Linear.Part.LLM, m, null);
                f16.linear(y, x, lin);
                f16.synchronize();
                int reps = 200;
                long t0 = System.nanoTime();
                for (int i = 0; i < reps; i++) f16.linear(y, x, lin);
                f16.synchronize();
                double sec = (System.nanoTime() - t0) / 1e9 / reps;
                long bytes = f16.weightBytes(m);
                System.out.printf("%-6s %5dx%-5d %8.1f us  %7.0f GB/s  %.0f %% of copy%n", m.storageName(), s[0], s[1],
                        1e6 * sec, bytes / sec / 1e9, 100 * bytes / sec / copy);
            }
        }
    }
}
