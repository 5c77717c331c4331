package dev.qvlm.cuda;

import dev.qvlm.QvlmException;
import dev.qvlm.backend.Tensor;
import dev.qvlm.config.Activation;
import dev.qvlm.cpu.CpuBackend;
import dev.qvlm.model.Linear;
import dev.qvlm.quant.ActQuantizer;
import dev.qvlm.quant.QuantArgs;
import dev.qvlm.tensor.F32Matrix;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.EnumSource;

import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The CUDA backend's host-side logic against an emulated device ({@link EmulatedDevice}): storage layouts, views,
 * weight caching by identity, GEMM arguments (the row-major transpose trick, checked numerically through an
 * emulated GemmEx), launch argument lists (checked against each kernel's signature on every launch), memory
 * lifetimes. The kernels themselves need a GPU: CudaKernelsGpuTest.
 */
class CudaBackendEmulatedTest {
    static float[] rand(Random r, int n) {
        return LaunchGeometryTest.rand(r, n);
    }

    static float[] f16(float[] x) {
        float[] y = new float[x.length];
        for (int i = 0; i < x.length; i++) y[i] = Half.toFloat(Half.fromFloat(x[i]));
        return y;
    }

    @ParameterizedTest
    @EnumSource(Storage.class)
    void uploadDownloadViewsAndCopies(Storage s) {
        EmulatedDevice dev = new EmulatedDevice();
        try (CudaBackend b = new CudaBackend(dev, s)) {
            float[] x = rand(new Random(1), 5 * 7);
            Tensor t = b.upload(x, 5, 7);
            float[] back = b.download(t);
            assertArrayEquals(s == Storage.F16 ? f16(x) : x, back);
            // a view of rows [2, 4) downloads exactly those rows
            Tensor v = b.view(t, 2, 2);
            assertEquals(2, v.rows());
            assertArrayEquals(java.util.Arrays.copyOfRange(back, 14, 28), b.download(v));
            // copying into a view of a fresh (zeroed) tensor leaves the other rows at zero
            Tensor z = b.allocate(6, 7);
            b.copy(v, b.view(z, 3, 2));
            float[] zz = b.download(z);
            for (int i = 0; i < 42; i++)
                assertEquals(i >= 21 && i < 35 ? back[14 + i - 21] : 0f, zz[i], "element " + i);
            assertThrows(IndexOutOfBoundsException.class, () -> b.view(t, 4, 2));
            assertThrows(IllegalArgumentException.class, () -> b.copy(t, z));
            assertThrows(IllegalArgumentException.class, () -> b.add(t, new CpuBackend().allocate(5, 7)));
        }
    }

    /** A static activation quantizer runs on the device (no download, no upload) and gives the CPU's linear. */
    @ParameterizedTest
    @EnumSource(Storage.class)
    void staticInputQuantizersRunOnTheDevice(Storage s) {
        EmulatedDevice dev = new EmulatedDevice();
        Random r = new Random(5);
        int rows = 3, in = 40, out = 7;
        float[] w = f16(rand(r, out * in)), x = f16(rand(r, rows * in));
        Linear lin = new Linear("test.proj", Linear.Part.LLM, new F32Matrix(out, in, w), null);
        lin.setInputQuantizer(ActQuantizer.staticPerTensor(new QuantArgs(4, false, QuantArgs.Granularity.TENSOR, 0), -1.7f, 2.1f));
        CpuBackend cpu = new CpuBackend();
        Tensor ref = cpu.allocate(rows, out);
        cpu.linear(ref, cpu.upload(x, rows, in), lin);
        try (CudaBackend b = new CudaBackend(dev, s)) {
            Tensor xin = b.upload(x, rows, in), y = b.allocate(rows, out);
            b.linear(y, xin, lin); // weights upload on first use
            CudaBackend.DeviceCalls c0 = b.deviceCalls();
            b.linear(y, xin, lin);
            CudaBackend.DeviceCalls d = b.deviceCalls().minus(c0);
            assertEquals(0, d.waitCalls(), "no download: the quantizer ran on the device");
            assertTrue(dev.launches.stream().anyMatch(l -> l.symbol().equals("qvlm_fake_quant_" + s.suffix())));
            float[] got = b.download(y), want = cpu.download(ref);
            // the same codes; the GEMM then takes FP16 inputs (code · scale rounded to FP16, both storages) and the
            // F16 storage rounds the output once more
            for (int i = 0; i < want.length; i++)
                assertEquals(want[i], got[i], 3e-3 * Math.max(1, Math.abs(want[i])), "output " + i);
            assertArrayEquals(x, f16(b.download(xin)), "the input itself is left alone");
        }
    }

    /** The kernel's formula (as the emulated device runs it, step by step in FP32) is ActQuantizer's, bit for bit. */
    @Test
    void fakeQuantFormulaIsTheJavaQuantizers() {
        Random r = new Random(9);
        for (QuantArgs a : List.of(new QuantArgs(4, false, QuantArgs.Granularity.TENSOR, 0),
                new QuantArgs(4, true, QuantArgs.Granularity.TENSOR, 0), new QuantArgs(8, false, QuantArgs.Granularity.TENSOR, 0))) {
            ActQuantizer q = ActQuantizer.staticPerTensor(a, -1.3f, 2.9f);
            float[] x = new float[4099];
            for (int i = 0; i < x.length; i++) x[i] = (float) (r.nextGaussian() * 3);
            x[1] = q.scale() * 1.5f;
            float[] want = x.clone();
            q.apply(want, 0, 1, want.length);
            try (CudaBackend b = new CudaBackend(new EmulatedDevice(), Storage.F32)) {
                assertArrayEquals(want, b.fakeQuantOnDevice(x, q), q.toString());
            }
        }
    }

    /**
     * Prefill attention through cuBLAS (two strided-batched GEMMs over the heads and a softmax kernel) against the
     * CPU's attention: causal and not, grouped KV heads, a query block that starts past key 0, row strides wider than
     * the heads (views of fused tensors).
     */
    @ParameterizedTest
    @CsvSource({"F32, 40, 40, 4, 2, 16, 0, true", "F32, 33, 50, 6, 3, 8, 17, true", "F32, 64, 64, 2, 2, 32, 0, false",
            "F16, 40, 40, 4, 1, 16, 0, true", "F16, 35, 35, 2, 2, 64, 0, false"})
    void prefillAttentionByGemmIsTheCpus(Storage s, int n, int kvLen, int heads, int kvHeads, int hd, int qPos0, boolean causal) {
        assertTrue(DeviceAttention.byGemm(n, kvLen, heads));
        Random r = new Random(n * 31L + kvLen);
        int qCols = heads * hd + 8, kvCols = kvHeads * hd + 4; // wider rows: the kernels take strides
        float[] q = f16(rand(r, n * qCols)), k = f16(rand(r, kvLen * kvCols)), v = f16(rand(r, kvLen * kvCols));
        float scale = (float) (1 / Math.sqrt(hd));
        CpuBackend cpu = new CpuBackend();
        Tensor ref = cpu.allocate(n, heads * hd);
        cpu.attention(ref, cpu.upload(q, n, qCols), cpu.upload(k, kvLen, kvCols), cpu.upload(v, kvLen, kvCols), kvLen,
                heads, kvHeads, hd, qPos0, causal, scale);
        EmulatedDevice dev = new EmulatedDevice();
        try (CudaBackend b = new CudaBackend(dev, s)) {
            Tensor out = b.allocate(n, heads * hd);
            b.attention(out, b.upload(q, n, qCols), b.upload(k, kvLen, kvCols), b.upload(v, kvLen, kvCols), kvLen, heads,
                    kvHeads, hd, qPos0, causal, scale);
            float[] want = cpu.download(ref), got = b.download(out);
            double tol = s == Storage.F16 ? 2e-3 : 2e-6; // FP16: P and the output rounded to FP16
            for (int i = 0; i < want.length; i++)
                assertEquals(want[i], got[i], tol * Math.max(1, Math.abs(want[i])), "element " + i);
            assertEquals(2 * (heads / kvHeads), dev.batchedGemms.size(), "two strided batches per head offset in a group");
            assertTrue(dev.launches.stream().noneMatch(l -> l.symbol().startsWith("qvlm_attn_prefill")));
        }
    }

    /** errorSums on the device (qvlm_err_sums, FP64 block partials): the CPU's sums up to their order. */
    @ParameterizedTest
    @EnumSource(Storage.class)
    void errorSumsAreTheCpus(Storage s) {
        Random r = new Random(12);
        int rows = 37, cols = 300;
        float[] y = f16(rand(r, rows * cols)), t = f16(rand(r, rows * cols));
        double[] want = new CpuBackend().errorSums(new CpuBackend().upload(y, rows, cols), new CpuBackend().upload(t, rows, cols));
        try (CudaBackend b = new CudaBackend(new EmulatedDevice(), s)) {
            double[] got = b.errorSums(b.upload(y, rows, cols), b.upload(t, rows, cols));
            assertEquals(want[0], got[0], 1e-12 * want[0]);
            assertEquals(want[1], got[1], 1e-12 * want[1]);
        }
    }

    /** ropeQStoreKv in one kernel: the CPU's rope on q, then rope + copies of k and v. */
    @ParameterizedTest
    @CsvSource({"F32, 1, 8, 2, 64, 37", "F16, 3, 4, 4, 32, 5"})
    void ropeQStoreKvIsRopeThenStoreKv(Storage s, int rows, int heads, int kvHeads, int hd, int pos) {
        Random r = new Random(rows * 13 + pos);
        int width = kvHeads * hd, qw = heads * hd, cap = pos + rows + 2;
        float[] q = f16(rand(r, rows * qw)), k = f16(rand(r, rows * width)), v = f16(rand(r, rows * width)),
                old = f16(rand(r, cap * width));
        CpuBackend cpu = new CpuBackend();
        Tensor cq = cpu.upload(q, rows, qw), ck = cpu.upload(k, rows, width), ckeys = cpu.upload(old, cap, width),
                cvals = cpu.upload(old, cap, width);
        cpu.ropeQStoreKv(cq, heads, ck, cpu.upload(v, rows, width), ckeys, cvals, kvHeads, hd, pos, 10000.0);
        EmulatedDevice dev = new EmulatedDevice();
        try (CudaBackend b = new CudaBackend(dev, s)) {
            Tensor gq = b.upload(q, rows, qw), gk = b.upload(k, rows, width), keys = b.upload(old, cap, width),
                    vals = b.upload(old, cap, width);
            b.ropeQStoreKv(gq, heads, gk, b.upload(v, rows, width), keys, vals, kvHeads, hd, pos, 10000.0);
            assertEquals(List.of("qvlm_rope_q_store_" + s.suffix()), dev.launches.stream().map(EmulatedDevice.Launched::symbol)
                    .filter(x -> !x.startsWith("qvlm_copy")).toList(), "one kernel");
            double tol = s == Storage.F16 ? 2e-3 : 1e-6;
            float[][] want = {cpu.download(cq), cpu.download(ckeys), cpu.download(cvals)}, got = {b.download(gq), b.download(keys), b.download(vals)};
            for (int t = 0; t < 3; t++)
                for (int i = 0; i < want[t].length; i++)
                    assertEquals(want[t][i], got[t][i], tol * Math.max(1, Math.abs(want[t][i])), "tensor " + t + " element " + i);
        }
    }

    /** addRmsNorm in one kernel: the sum left in acc and its RMSNorm, as the CPU's add then rmsNorm. */
    @ParameterizedTest
    @EnumSource(Storage.class)
    void addRmsNormIsAddThenRmsNorm(Storage s) {
        Random r = new Random(4);
        int rows = 3, cols = 300;
        float[] a = f16(rand(r, rows * cols)), x = f16(rand(r, rows * cols)), gamma = rand(r, cols);
        CpuBackend cpu = new CpuBackend();
        Tensor ca = cpu.upload(a, rows, cols), co = cpu.allocate(rows, cols);
        cpu.addRmsNorm(ca, cpu.upload(x, rows, cols), co, gamma, 1e-5f);
        EmulatedDevice dev = new EmulatedDevice();
        try (CudaBackend b = new CudaBackend(dev, s)) {
            Tensor ga = b.upload(a, rows, cols), go = b.allocate(rows, cols);
            b.addRmsNorm(ga, b.upload(x, rows, cols), go, gamma, 1e-5f);
            double tol = s == Storage.F16 ? 3e-3 : 1e-6;
            float[] wa = cpu.download(ca), wo = cpu.download(co), xa = b.download(ga), xo = b.download(go);
            for (int i = 0; i < wa.length; i++) {
                assertEquals(wa[i], xa[i], tol * Math.max(1, Math.abs(wa[i])), "sum " + i);
                assertEquals(wo[i], xo[i], tol * Math.max(1, Math.abs(wo[i])), "norm " + i);
            }
            assertEquals(1, dev.launches.stream().filter(l -> l.symbol().startsWith("qvlm_add_rmsnorm")).count());
        }
    }

    /** storeKv in one kernel (qvlm_rope_q_store, no queries) writes what the CPU's rope + copy + copy write, at the cache rows of pos. */
    @ParameterizedTest
    @CsvSource({"F32, 1, 2, 64, 37", "F32, 5, 4, 32, 0", "F16, 3, 2, 128, 100"})
    void storeKvIsRopeAndTwoCopies(Storage s, int rows, int kvHeads, int hd, int pos) {
        Random r = new Random(rows * 7 + pos);
        int width = kvHeads * hd, cap = pos + rows + 3;
        float[] k = f16(rand(r, rows * width)), v = f16(rand(r, rows * width)), old = f16(rand(r, cap * width));
        CpuBackend cpu = new CpuBackend();
        Tensor ck = cpu.upload(k, rows, width), ckeys = cpu.upload(old, cap, width), cvals = cpu.upload(old, cap, width);
        cpu.storeKv(ck, cpu.upload(v, rows, width), ckeys, cvals, kvHeads, hd, pos, 10000.0);
        EmulatedDevice dev = new EmulatedDevice();
        try (CudaBackend b = new CudaBackend(dev, s)) {
            Tensor gk = b.upload(k, rows, width), keys = b.upload(old, cap, width), vals = b.upload(old, cap, width);
            b.storeKv(gk, b.upload(v, rows, width), keys, vals, kvHeads, hd, pos, 10000.0);
            assertEquals(List.of("qvlm_rope_q_store_" + s.suffix()), dev.launches.stream().map(EmulatedDevice.Launched::symbol)
                    .filter(x -> !x.startsWith("qvlm_copy")).toList(), "one kernel");
            double tol = s == Storage.F16 ? 2e-3 : 1e-6;
            float[][] want = {cpu.download(ckeys), cpu.download(cvals), cpu.download(ck)}, got = {b.download(keys), b.download(vals), b.download(gk)};
            for (int t = 0; t < 3; t++)
                for (int i = 0; i < want[t].length; i++)
                    assertEquals(want[t][i], got[t][i], tol * Math.max(1, Math.abs(want[t][i])), "tensor " + t + " element " + i);
        }
    }

    @Test
    void deviceCallsAreCountedAsEnqueuedOrWaited() {
        EmulatedDevice dev = new EmulatedDevice();
        try (CudaBackend b = new CudaBackend(dev, Storage.F16)) {
            Linear lin = new Linear("test.proj", Linear.Part.LLM, new F32Matrix(4, 8, new float[32]), new float[4]);
            Tensor x = b.upload(new float[16], 2, 8), y = b.allocate(2, 4); // each: one memset; the first an upload
            b.linear(y, x, lin);                                             // weight + bias uploads, GEMM, bias add
            CudaBackend.DeviceCalls c0 = b.deviceCalls();
            assertEquals(0, c0.waitCalls());
            int launches = dev.launches.size(), gemms = dev.gemms.size();
            assertEquals(1, gemms);
            assertEquals(1, launches);
            assertEquals(2 + 1 + 2 + gemms + launches, c0.enqueueCalls());
            b.uninitialized(3, 5); // no memset: no device call at all
            assertEquals(c0, b.deviceCalls());
            b.download(y);
            b.synchronize();
            CudaBackend.DeviceCalls d = b.deviceCalls().minus(c0);
            assertEquals(0, d.enqueueCalls());
            assertEquals(2, d.waitCalls());
            assertTrue(d.waitNanos() >= 0 && c0.enqueueNanos() > 0);
        }
    }

    @ParameterizedTest
    @EnumSource(Storage.class)
    void linearIsTheRowMajorProductThroughGemmEx(Storage s) {
        EmulatedDevice dev = new EmulatedDevice();
        Random r = new Random(2);
        int rows = 3, in = 10, out = 6;
        float[] w = f16(rand(r, out * in)), bias = rand(r, out), x = f16(rand(r, rows * in));
        Linear lin = new Linear("test.proj", Linear.Part.LLM, new F32Matrix(out, in, w), bias);
        CpuBackend cpu = new CpuBackend();
        Tensor ref = cpu.allocate(rows, out);
        cpu.linear(ref, cpu.upload(x, rows, in), lin);
        try (CudaBackend b = new CudaBackend(dev, s)) {
            // a view as input and output: offsets must reach cuBLAS
            Tensor xin = b.view(b.upload(concat(new float[in], x), rows + 1, in), 1, rows);
            Tensor y = b.view(b.allocate(rows + 2, out), 2, rows);
            b.linear(y, xin, lin);
            float[] got = b.download(y), want = cpu.download(ref);
            for (int i = 0; i < want.length; i++) assertEquals(want[i], got[i], 2e-3 * Math.max(1, Math.abs(want[i])), "element " + i);
            Gemm g = dev.gemms.getLast();
            assertEquals(new Gemm(Gemm.OP_T, Gemm.OP_N, out, rows, in, g.a(), Gemm.CUDA_R_16F, in, g.b(), Gemm.CUDA_R_16F, in,
                    g.c(), s == Storage.F16 ? Gemm.CUDA_R_16F : Gemm.CUDA_R_32F, out), g);
            // weights and bias upload once per object
            int allocs = dev.allocations;
            b.linear(y, xin, lin);
            assertEquals(allocs, dev.allocations, "no new device allocations for the same weights");
            assertThrows(IllegalArgumentException.class, () -> b.linear(b.allocate(rows, out + 1), xin, lin));
        }
    }

    static float[] concat(float[] a, float[] b) {
        float[] c = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, c, a.length, b.length);
        return c;
    }

    @Test
    void inputQuantizerRunsOnTheHostCopy() {
        EmulatedDevice dev = new EmulatedDevice();
        Linear lin = new Linear("q", Linear.Part.LLM, new F32Matrix(1, 2, new float[]{1f, 1f}), null);
        lin.setInputQuantizer((x, off, rows, cols) -> {
            for (int i = 0; i < rows * cols; i++) x[off + i] = Math.round(x[off + i]);
        });
        try (CudaBackend b = new CudaBackend(dev, Storage.F32)) {
            Tensor x = b.upload(new float[]{0.4f, 1.6f}, 1, 2), y = b.allocate(1, 1);
            b.linear(y, x, lin);
            assertEquals(2f, b.download(y)[0]);
            assertArrayEquals(new float[]{0.4f, 1.6f}, b.download(x), "the input itself is untouched");
        }
    }

    @Test
    void everyOpLaunchesItsKernelWithTheSignaturesArguments() {
        EmulatedDevice dev = new EmulatedDevice();
        try (CudaBackend b = new CudaBackend(dev, Storage.F16)) {
            Tensor x = b.allocate(4, 64), y = b.allocate(4, 64);
            float[] g = new float[64], beta = new float[64];
            b.rmsNorm(y, x, g, 1e-6f);
            b.layerNorm(y, x, g, beta, 1e-5f);
            b.add(y, x);
            b.activate(y, Activation.GELU);
            b.gatedActivate(y, x, Activation.SILU);
            b.rope(y, 4, 16, 3, 10000.0);
            b.embed(y, new F32Matrix(10, 64, new float[640]), new int[]{1, 2, 3, 9});
            b.argmax(y);
            // prefill (5 rows), decode with several splits (1 row, 4000 keys), GQA 4 heads over 2
            Tensor q5 = b.allocate(5, 64), kv = b.allocate(4000, 32), o5 = b.allocate(5, 64);
            b.attention(o5, q5, kv, kv, 5, 4, 2, 16, 0, true, 0.25f);
            b.attention(b.view(o5, 0, 1), b.view(q5, 0, 1), kv, kv, 4000, 4, 2, 16, 3999, true, 0.25f);
            java.util.List<String> names = dev.launches.stream().map(EmulatedDevice.Launched::symbol).toList();
            assertEquals(java.util.List.of("qvlm_rmsnorm_f16", "qvlm_layernorm_f16", "qvlm_add_f16", "qvlm_act_f16",
                    "qvlm_gated_act_f16", "qvlm_rope_f16", "qvlm_embed_f16", "qvlm_argmax_f16", "qvlm_attn_prefill_f16",
                    "qvlm_attn_split_f16", "qvlm_attn_combine_f16"), names);
            EmulatedDevice.Launched act = dev.launches.get(3);
            assertEquals(Activation.GELU.ordinal(), act.args()[2]);
            EmulatedDevice.Launched split = dev.launches.get(9);
            assertTrue(split.geometry().gridY() > 1, "decode over 4000 keys splits: " + split.geometry());
            assertEquals(4, split.geometry().gridX(), "one block per head");
            // bad ids never reach the device
            assertThrows(IndexOutOfBoundsException.class, () -> b.embed(y, new F32Matrix(10, 64, new float[640]), new int[]{10}));
            assertThrows(IllegalArgumentException.class, () -> b.attention(o5, q5, kv, kv, 5, 4, 3, 16, 0, true, 1f));
            assertThrows(IllegalArgumentException.class, () -> b.rope(y, 4, 15, 0, 1e4));
        }
    }

    @Test
    void closeFreesEverythingAndLaterUseFails() {
        EmulatedDevice dev = new EmulatedDevice();
        CudaBackend b = new CudaBackend(dev, Storage.F16);
        Tensor t = b.upload(new float[]{1, 2, 3, 4}, 2, 2);
        b.rmsNorm(b.allocate(2, 2), t, new float[]{1, 1}, 1e-6f);
        b.linear(b.allocate(2, 3), t, new Linear("l", Linear.Part.LLM, new F32Matrix(3, 2, new float[6]), new float[3]));
        assertTrue(dev.liveBlocks() > 0);
        b.close();
        assertEquals(0, dev.liveBlocks(), "every block freed");
        assertTrue(dev.closed);
        assertThrows(IllegalStateException.class, () -> b.download(t));
        assertThrows(IllegalStateException.class, () -> b.allocate(1, 1));
        b.close(); // idempotent
    }

    @Test
    void unreachableActivationsAreRecycled() {
        EmulatedDevice dev = new EmulatedDevice();
        try (CudaBackend b = new CudaBackend(dev, Storage.F16)) {
            for (int i = 0; i < 200; i++) b.allocate(64, 1024); // 128 KiB each, all unreachable at once
            // blocks return to the pool once the collector has seen their tensors die; give it a few chances
            long fresh = Long.MAX_VALUE;
            for (int attempt = 0; attempt < 20 && fresh > 0; attempt++) {
                System.gc();
                long before = dev.allocations;
                java.util.List<Tensor> held = new java.util.ArrayList<>();
                for (int i = 0; i < 100; i++) held.add(b.allocate(64, 1024));
                fresh = dev.allocations - before;
                held.clear();
            }
            assertTrue(fresh < 100, "after a collection, new tensors reuse recycled blocks: " + fresh + " of 100 were fresh allocations");
        }
    }

    @Test
    void outOfMemorySaysHowMuchIsInUse() {
        EmulatedDevice dev = new EmulatedDevice();
        dev.capacity = 1 << 20;
        try (CudaBackend b = new CudaBackend(dev, Storage.F16)) {
            Tensor keep = b.allocate(256, 1024); // 512 KiB, reachable
            QvlmException e = assertThrows(QvlmException.class, () -> b.allocate(512, 1024));
            assertTrue(e.getMessage().contains("CUDA out of memory") && e.getMessage().contains("MiB"), e.getMessage());
            assertEquals(256, keep.rows());
        }
    }

    /**
     * Decode attention over enough keys to split (each split's partials, then the combine), eagerly and with the key
     * count read from device memory as a graph step does: the CPU's attention within FP32 summation order, the
     * partials' layout and the chunk the kernel derives checked through the emulation of both kernels.
     */
    @Test
    void splitAttentionAndItsCombineMatchTheCpu() {
        Random r = new Random(3);
        int keys = 300, heads = 8, kvHeads = 2, hd = 32;
        float[] q = new float[heads * hd], kv = new float[keys * kvHeads * hd], vv = new float[keys * kvHeads * hd];
        for (int i = 0; i < q.length; i++) q[i] = (float) r.nextGaussian();
        for (int i = 0; i < kv.length; i++) { kv[i] = (float) r.nextGaussian(); vv[i] = (float) r.nextGaussian(); }
        CpuBackend cpu = new CpuBackend();
        Tensor want = cpu.allocate(1, heads * hd);
        cpu.attention(want, cpu.upload(q, 1, heads * hd), cpu.upload(kv, keys, kvHeads * hd), cpu.upload(vv, keys, kvHeads * hd),
                keys, heads, kvHeads, hd, keys - 1, true, 0.17f);
        EmulatedDevice dev = new EmulatedDevice();
        try (CudaBackend b = new CudaBackend(dev, Storage.F32, false)) {
            Tensor got = b.allocate(1, heads * hd);
            b.attention(got, b.upload(q, 1, heads * hd), b.upload(kv, keys, kvHeads * hd), b.upload(vv, keys, kvHeads * hd),
                    keys, heads, kvHeads, hd, keys - 1, true, 0.17f);
            EmulatedDevice.Launched split = dev.launches.stream().filter(l -> l.symbol().startsWith("qvlm_attn_split")).findFirst().orElseThrow();
            assertTrue(split.geometry().gridY() > 1, "split: " + split.geometry());
            assertTrue(dev.launches.stream().anyMatch(l -> l.symbol().startsWith("qvlm_attn_combine")), "combined");
            float[] w = cpu.download(want), g = b.download(got);
            for (int i = 0; i < w.length; i++) assertEquals(w[i], g[i], 2e-5 * (1 + Math.abs(w[i])), "element " + i);
        }
    }

    /** The fused fake-quant + output-error launcher (qvlm_fq_score) against its reference: buffers, layout, result. */
    @Test
    void fqScoreLauncherMatchesItsReference() {
        int T = 20, N = 37, K = 256;
        float[] x = CalibKernelsTest.gauss(3, T * K, 1), wv = CalibKernelsTest.gauss(4, N * K, 0.05);
        F32Matrix w = new F32Matrix(N, K, wv);
        float[] yref = new float[T * N];
        dev.qvlm.cpu.Matmul.matmulScalar(yref, 0, x, 0, T, w, null);
        CalibKernels.Candidates c = CalibKernels.candidates(w, QuantArgs.perGroup(4, false, 128), new double[]{1, 0.99, 0.9, 0.8});
        double[] want = CalibKernels.scoreReference(x, T, w, yref, c);
        try (CudaBackend b = new CudaBackend(new EmulatedDevice(), Storage.F32, true)) {
            double[] got = CalibKernels.scores(b, x, T, wv, N, K, yref, c);
            for (int i = 0; i < want.length; i++) assertEquals(want[i], got[i], 1e-4 * want[i], "candidate " + i);
        }
    }
}
