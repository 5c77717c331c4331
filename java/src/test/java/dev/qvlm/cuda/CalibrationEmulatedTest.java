package dev.qvlm.cuda;

import dev.qvlm.TestPaths;
import dev.qvlm.backend.Backend;
import dev.qvlm.calib.CalibData;
import dev.qvlm.calib.CalibSample;
import dev.qvlm.calib.Calibrator;
import dev.qvlm.calib.Method;
import dev.qvlm.calib.QuantReport;
import dev.qvlm.calib.QuantSettings;
import dev.qvlm.cpu.CpuBackend;
import dev.qvlm.model.Checkpoint;
import dev.qvlm.model.Linear;
import dev.qvlm.quant.QuantArgs;
import dev.qvlm.runtime.Llava;
import org.junit.jupiter.api.Test;

import java.util.EnumSet;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Q-VLM calibration (W4A4, static activations, every part of the model) on the CUDA backend's exact path
 * ({@link CudaBackend#openExact}: FP32 activations, weights and GEMMs), here on the emulated device, against the
 * same calibration on the CPU: the same blocks and the same chosen percentiles, the dependencies D(k, k+1) and the
 * blocks' errors equal up to summation order. This is acceptance 6's first half as the host side sees it; on a card
 * run.sh's quantize-cuda step checks it with the real kernels.
 */
class CalibrationEmulatedTest {
    static QuantReport calibrate(Backend backend, Method method, int samples) {
        QuantSettings st = new QuantSettings(method, QuantArgs.perChannel(4, false), QuantArgs.perTensor(4, false), false,
                EnumSet.of(Linear.Part.VISION, Linear.Part.PROJECTOR, Linear.Part.LLM), QuantSettings.PAPER_GRID,
                Double.NaN, 3, 1, 125, 4, false, 2);
        try (Llava llava = Llava.open(TestPaths.tinyModel(), backend)) {
            List<CalibSample> s = CalibData.load(llava, TestPaths.data().resolve("calib.jsonl"), samples, 0);
            return new Calibrator(llava.model(), st, s, false, null).run();
        }
    }

    /** The three statistics ops on the device's tensors give the CPU's values: edges, NaN and the bins' clamping included. */
    @Test
    void statisticsOpsMatchTheCpu() {
        float[] x = CalibKernelsTest.gauss(5, 6000, 2);
        x[0] = -1f; // exactly lo: bin 0
        x[1] = 3f;  // exactly lo + width·bins: clamped into the last bin
        x[2] = -70f; // below lo
        x[3] = 90f; // above
        x[4] = Float.NaN;
        float[] y = CalibKernelsTest.gauss(6, 6000, 1), z = CalibKernelsTest.gauss(7, 6000, 2);
        CpuBackend cpu = new CpuBackend();
        try (CudaBackend gpu = new CudaBackend(new EmulatedDevice(), Storage.F32, true)) {
            Backend[] both = {cpu, gpu};
            long[][] hist = new long[2][64];
            double[][] sums = new double[2][16 * 8];
            float[][] mm = new float[2][];
            for (int i = 0; i < 2; i++) {
                mm[i] = both[i].minMax(both[i].upload(x, 60, 100));
                both[i].histogram(both[i].upload(x, 60, 100), -1, 4.0 / 64, hist[i]);
                both[i].jointLevelSums(both[i].upload(y, 60, 100), both[i].upload(z, 60, 100), -3, 0.4, 16, -4, 1.1, 8, sums[i]);
            }
            org.junit.jupiter.api.Assertions.assertArrayEquals(mm[0], mm[1]);
            org.junit.jupiter.api.Assertions.assertArrayEquals(new float[]{-70f, 90f}, mm[0], "NaN ignored");
            org.junit.jupiter.api.Assertions.assertArrayEquals(hist[0], hist[1]);
            assertEquals(6000, java.util.Arrays.stream(hist[1]).sum());
            for (int i = 0; i < sums[0].length; i++) assertEquals(sums[0][i], sums[1][i], 1e-5 * (1 + sums[0][i]), "joint bin " + i);
        }
    }

    /**
     * Also: the calibrator frees what it allocates ({@link Backend#free}) instead of leaving it to reachability (a
     * tensor freed twice or used after its free would throw here), the layer-wise search the same, and the weights
     * go to the device block by block ({@link Backend#evict}).
     */
    @org.junit.jupiter.params.ParameterizedTest
    @org.junit.jupiter.params.provider.CsvSource({"QVLM, 4", "LAYERWISE, 2"})
    void exactPathChoosesTheCpusBlocksAndPercentiles(Method method, int samples) {
        QuantReport cpu = calibrate(new CpuBackend(), method, samples);
        EmulatedDevice dev = new EmulatedDevice();
        QuantReport gpu;
        try (CudaBackend b = new CudaBackend(dev, Storage.F32, true)) {
            gpu = calibrate(b, method, samples);
            CudaBackend.MemoryCounts m = b.memoryCounts();
            long unfreed = m.trackedAllocations() - m.explicitFrees();
            System.out.printf("%s: %d activations outside scopes, %d freed explicitly; weights on the device: peak %.2f MB, at the end %.2f MB%n",
                    method, m.trackedAllocations(), m.explicitFrees(), m.peakWeights() / 1e6, m.weights() / 1e6);
            assertTrue(unfreed <= m.trackedAllocations() / 100, unfreed + " of " + m.trackedAllocations() + " left to reachability");
            // block by block: at most a block's originals, chosen and current candidates (a block here is 3 of the
            // 4 decoder layers: 1.4x the model's FP32 linears; without eviction 4.1x, the model and its candidates),
            // and none of them left at the end
            long all = 0;
            try (Checkpoint ck = Checkpoint.open(TestPaths.tinyModel())) {
                for (Linear l : ck.weights().linears()) if (!l.name().contains("lm_head")) all += 4L * l.out() * l.in();
            }
            assertTrue(m.peakWeights() < 3 * all / 2, "peak " + m.peakWeights() + " bytes of weights on the device, the model's linears " + all);
            assertTrue(m.weights() < all / 20, m.weights() + " bytes of weights left on the device");
        }
        System.out.printf("downloaded %.1f MB%n", dev.downloadedBytes / 1e6);
        assertEquals(cpu.blocks.size(), gpu.blocks.size());
        for (int i = 0; i < cpu.blocks.size(); i++) {
            QuantReport.Block c = cpu.blocks.get(i), g = gpu.blocks.get(i);
            assertEquals(c.stack() + " " + c.first() + ".." + c.last(), g.stack() + " " + g.first() + ".." + g.last());
            assertEquals(c.choices(), g.choices(), "percentiles of " + c.stack() + " " + c.first() + ".." + c.last());
            assertEquals(c.relMseAfter(), g.relMseAfter(), 1e-4 * c.relMseAfter(), "error of the chosen setting");
        }
        assertEquals(cpu.layers.size(), gpu.layers.size());
        for (int i = 0; i < cpu.layers.size(); i++) {
            Double dc = cpu.layers.get(i).dependencyToNext(), dg = gpu.layers.get(i).dependencyToNext();
            if (dc == null) continue;
            assertEquals(dc, dg, 1e-4 * Math.abs(dc) + 1e-6, "D of " + cpu.layers.get(i));
        }
        if (method == Method.QVLM)
            assertTrue(gpu.blocks.stream().anyMatch(b -> b.relMseAfter() < b.relMseBefore() * 0.95), "the search finds something");
    }
}
