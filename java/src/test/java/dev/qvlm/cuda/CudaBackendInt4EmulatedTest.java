package dev.qvlm.cuda;

import dev.qvlm.backend.Tensor;
import dev.qvlm.cpu.CpuBackend;
import dev.qvlm.cpu.Matmul;
import dev.qvlm.model.Linear;
import dev.qvlm.quant.ActQuantizer;
import dev.qvlm.quant.Q4Matrix;
import dev.qvlm.quant.QuantArgs;
import dev.qvlm.tensor.GeneratedMatrix;
import dev.qvlm.tensor.Matrix;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.EnumSource;

import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The int4 wiring of CudaBackend.linear on the emulated device: 4-bit weights are re-laid and uploaded once, up to
 * 8 tokens launch the GEMV of the right bucket, more tokens dequantise and call GemmEx, the bias follows, FP32
 * activations are rounded to FP16 first, generated weights are filled on the device. Results against CpuBackend.
 */
class CudaBackendInt4EmulatedTest {
    static float[] halfRand(Random r, int n) {
        float[] x = new float[n];
        for (int i = 0; i < n; i++) x[i] = Half.toFloat(Half.fromFloat((float) r.nextGaussian()));
        return x;
    }

    static void assertNear(float[] want, float[] got, double tol, String what) {
        double maxAbs = 0;
        for (float v : want) maxAbs = Math.max(maxAbs, Math.abs(v));
        for (int i = 0; i < want.length; i++)
            assertEquals(want[i], got[i], tol * Math.max(1, maxAbs), what + " element " + i);
    }

    @ParameterizedTest
    @CsvSource({"F16, 1, qvlm_q4_gemv1_f16, 1", "F16, 3, qvlm_q4_gemv4_f16, 1", "F32, 8, qvlm_q4_gemv8_f32, 1",
            "F16, 12, qvlm_q4_dequant, 1", "F32, 20, qvlm_q4_dequant, 1",
            "F16, 1, qvlm_q4_gemv1u4_f16, 4", "F32, 1, qvlm_q4_gemv1u2_f32, 2", "F16, 2, qvlm_q4_gemv2_f16, 4"})
    void q4LinearUsesTheKernelForItsTokenCount(Storage s, int n, String kernel, int unroll) {
        Int4Layout.overrideGemvUnroll(unroll); // the one-token variants with more loads in flight: the same sums
        try {
            q4Linear(s, n, kernel);
        } finally {
            Int4Layout.overrideGemvUnroll(1);
        }
    }

    private void q4Linear(Storage s, int n, String kernel) {
        EmulatedDevice dev = new EmulatedDevice();
        Random r = new Random(n);
        int in = 256, out = 21;
        Q4Matrix w = Int4LayoutTest.random(3, out, in, 128, false);
        float[] bias = halfRand(r, out), x = halfRand(r, n * in);
        Linear lin = new Linear("model.layers.0.mlp.up_proj", Linear.Part.LLM, w, bias);
        CpuBackend cpu = new CpuBackend();
        Tensor ref = cpu.allocate(n, out);
        cpu.linear(ref, cpu.upload(x, n, in), lin);
        try (CudaBackend b = new CudaBackend(dev, s)) {
            Tensor xin = b.view(b.upload(CudaBackendEmulatedTest.concat(new float[in], x), n + 1, in), 1, n);
            Tensor y = b.allocate(n, out);
            b.linear(y, xin, lin);
            // FP16 output storage rounds the result once more
            assertNear(cpu.download(ref), b.download(y), s == Storage.F16 ? 2e-3 : 5e-4, kernel);
            List<String> names = dev.launches.stream().map(EmulatedDevice.Launched::symbol).toList();
            assertTrue(names.contains(kernel), names.toString());
            assertEquals(kernel.equals("qvlm_q4_dequant") ? 1 : 0, dev.gemms.size(), "GemmEx only after dequantisation");
            assertEquals("qvlm_bias_add_" + s.suffix(), names.getLast());
            assertEquals(s == Storage.F32, names.contains("qvlm_f32_to_f16"), "FP32 activations rounded to FP16 first");
            int allocs = dev.allocations;
            b.linear(y, xin, lin);
            assertEquals(allocs, dev.allocations, "weights re-laid and uploaded once");
            assertEquals(Int4Layout.deviceBytes(out, in, 128), b.weightBytes(w));
        }
    }

    /**
     * The calibration's exact path: FP32 weights (a 4-bit one decoded to its exact values on the device), FP32 activations
     * quantized on the device, one FP32 GEMM: the CPU's linear up to summation order.
     */
    @Test
    void exactLinearsAreTheCpusUpToSummationOrder() {
        EmulatedDevice dev = new EmulatedDevice();
        Random r = new Random(6);
        int n = 12, in = 256, out = 21;
        Q4Matrix w = Int4LayoutTest.random(7, out, in, 128, false);
        float[] bias = halfRand(r, out), x = new float[n * in];
        for (int i = 0; i < x.length; i++) x[i] = (float) r.nextGaussian(); // not FP16-representable
        Linear lin = new Linear("model.layers.0.mlp.up_proj", Linear.Part.LLM, w, bias);
        lin.setInputQuantizer(ActQuantizer.staticPerTensor(new QuantArgs(4, false, QuantArgs.Granularity.TENSOR, 0), -2.5f, 2.2f));
        CpuBackend cpu = new CpuBackend();
        Tensor ref = cpu.allocate(n, out);
        cpu.linear(ref, cpu.upload(x, n, in), lin);
        try (CudaBackend b = new CudaBackend(dev, Storage.F32, true)) {
            Tensor y = b.allocate(n, out);
            b.linear(y, b.upload(x, n, in), lin);
            assertNear(cpu.download(ref), b.download(y), 1e-5, "exact");
            assertEquals(List.of(Gemm.CUDA_R_32F), dev.gemms.stream().map(Gemm::aType).distinct().toList(), "an FP32 GEMM");
            assertTrue(dev.launches.stream().noneMatch(l -> l.symbol().startsWith("qvlm_q4_gemv") || l.symbol().startsWith("qvlm_q4_dequant")),
                    "no int4 GEMV or FP16 dequantisation");
            assertEquals(1, dev.launches.stream().filter(l -> l.symbol().equals("qvlm_q4_decode32")).count(),
                    "the packed codes decoded once on the device");
            assertEquals(4L * out * in, b.weightBytes(w));
            assertTrue(b.name().contains("FP32 weights"), b.name());
        }
        assertThrows(IllegalArgumentException.class, () -> new CudaBackend(new EmulatedDevice(), Storage.F16, true));
    }

    /** q, k, v (or gate, up) of 4-bit weights in one GEMV launch: each output exactly what its own linear gives. */
    @ParameterizedTest
    @CsvSource({"F16, 1, 3", "F32, 1, 2", "F16, 3, 3", "F32, 8, 2"})
    void linearsOfOneInputShareOneLaunch(Storage s, int n, int count) {
        Random r = new Random(n * 10 + count);
        int in = 256;
        int[] rows = {21, 8, 13};
        Linear[] ws = new Linear[count];
        for (int i = 0; i < count; i++)
            ws[i] = new Linear("model.layers.0.w" + i, Linear.Part.LLM, Int4LayoutTest.random(30 + i, rows[i], in, 128, i == 1),
                    i == 2 ? halfRand(r, rows[i]) : null);
        float[] x = halfRand(r, n * in);
        EmulatedDevice alone = new EmulatedDevice(), fused = new EmulatedDevice();
        try (CudaBackend a = new CudaBackend(alone, s); CudaBackend b = new CudaBackend(fused, s)) {
            Tensor xa = a.upload(x, n, in), xb = b.upload(x, n, in);
            Tensor[] oa = new Tensor[count], ob = new Tensor[count];
            for (int i = 0; i < count; i++) {
                oa[i] = a.allocate(n, rows[i]);
                ob[i] = b.allocate(n, rows[i]);
                a.linear(oa[i], xa, ws[i]);
            }
            b.linears(ob, xb, ws);
            for (int i = 0; i < count; i++) assertArrayEquals(a.download(oa[i]), b.download(ob[i]), "output " + i);
            List<String> q4 = fused.launches.stream().map(EmulatedDevice.Launched::symbol).filter(x1 -> x1.startsWith("qvlm_q4")).toList();
            assertEquals(1, q4.size(), q4.toString());
            assertTrue(q4.getFirst().startsWith("qvlm_q4_gemv_multi"), q4.toString());
        }
    }

    @Test
    void linearsThatCannotShareALaunchRunOneByOne() {
        EmulatedDevice dev = new EmulatedDevice();
        Random r = new Random(3);
        Linear q4 = new Linear("a", Linear.Part.LLM, Int4LayoutTest.random(1, 16, 256, 128, false), null);
        Linear dense = new Linear("b", Linear.Part.LLM, new dev.qvlm.tensor.F32Matrix(16, 256, halfRand(r, 16 * 256)), null);
        try (CudaBackend b = new CudaBackend(dev, Storage.F16)) {
            Tensor x = b.upload(halfRand(r, 256), 1, 256);
            b.linears(new Tensor[]{b.allocate(1, 16), b.allocate(1, 16)}, x, new Linear[]{q4, dense});
            assertTrue(dev.launches.stream().noneMatch(l -> l.symbol().startsWith("qvlm_q4_gemv_multi")));
            assertEquals(1, dev.gemms.size(), "the dense one through cuBLAS");
        }
    }

    /** Backend.release frees a weight's device copy at once (a losing candidate of the search); using it again uploads it again. */
    @ParameterizedTest
    @EnumSource(Storage.class)
    void releasedWeightsLeaveTheDevice(Storage s) {
        EmulatedDevice dev = new EmulatedDevice();
        Q4Matrix q = Int4LayoutTest.random(4, 21, 256, 128, false);
        dev.qvlm.tensor.Matrix f = new dev.qvlm.tensor.F32Matrix(21, 256, new float[21 * 256]);
        try (CudaBackend b = new CudaBackend(dev, s)) {
            long before = dev.live;
            b.prepare(q, "q");
            b.prepare(f, "f");
            long held = dev.live - before;
            assertEquals(Int4Layout.deviceBytes(21, 256, 128) + 2L * 21 * 256, held, "int4 words + params, FP16 dense");
            int frees = dev.frees;
            b.release(q);
            b.release(f);
            assertEquals(frees + 3, dev.frees, "words, params and the FP16 copy freed");
            assertEquals(before, dev.live);
            b.release(q); // already gone: nothing to do
            assertEquals(frees + 3, dev.frees);
            b.prepare(q, "q");
            assertEquals(before + Int4Layout.deviceBytes(21, 256, 128), dev.live, "uploaded again on next use");
        }
    }

    @Test
    void unsupportedQ4ShapesFallBackToFp16() {
        EmulatedDevice dev = new EmulatedDevice();
        Q4Matrix w = Int4LayoutTest.random(4, 6, 40, 8, true); // cols 40: not a multiple of 32
        Linear lin = new Linear("w", Linear.Part.LLM, w, null);
        float[] x = halfRand(new Random(2), 40);
        CpuBackend cpu = new CpuBackend();
        Tensor ref = cpu.allocate(1, 6);
        cpu.linear(ref, cpu.upload(x, 1, 40), lin);
        try (CudaBackend b = new CudaBackend(dev, Storage.F32)) {
            Tensor y = b.allocate(1, 6);
            b.linear(y, b.upload(x, 1, 40), lin);
            assertNear(cpu.download(ref), b.download(y), 2e-3, "fp16 fallback");
            assertEquals(1, dev.gemms.size());
            assertEquals(2L * 6 * 40, b.weightBytes(w));
        }
    }

    @Test
    void generatedWeightsAreFilledOnTheDevice() {
        EmulatedDevice dev = new EmulatedDevice();
        GeneratedMatrix f = GeneratedMatrix.f16(10, 64, 11, 0.1f), q = GeneratedMatrix.q4(10, 64, 12, 0.01f, 32, false);
        float[] x = halfRand(new Random(3), 64);
        try (CudaBackend b = new CudaBackend(dev, Storage.F32)) {
            for (GeneratedMatrix m : new GeneratedMatrix[]{f, q}) {
                Linear lin = new Linear("g", Linear.Part.LLM, m, null);
                Tensor y = b.allocate(1, 10);
                b.linear(y, b.upload(x, 1, 64), lin);
                float[] want = new float[10];
                Matmul.matmulScalar(want, 0, x, 0, 1, m.materialize(), null);
                assertNear(want, b.download(y), 1e-3, m.storageName());
            }
            List<String> names = dev.launches.stream().map(EmulatedDevice.Launched::symbol).toList();
            assertTrue(names.contains("qvlm_fill_f16") && names.contains("qvlm_fill_q4"), names.toString());
            assertEquals(2L * 10 * 64, b.weightBytes(f));
            assertEquals(Int4Layout.deviceBytes(10, 64, 32), b.weightBytes(q));
        }
    }

    @Test
    void memInfoAndCopyBandwidthWork() {
        EmulatedDevice dev = new EmulatedDevice();
        try (CudaBackend b = new CudaBackend(dev, Storage.F16)) {
            long[] mi = b.memInfo();
            assertTrue(mi[0] > 0 && mi[1] >= mi[0]);
            assertTrue(b.copyBandwidth(1 << 16, 2) > 0);
        }
    }
}
