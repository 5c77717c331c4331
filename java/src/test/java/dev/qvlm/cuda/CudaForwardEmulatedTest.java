package dev.qvlm.cuda;

import dev.qvlm.TestPaths;
import dev.qvlm.cpu.CpuBackend;
import dev.qvlm.model.Checkpoint;
import dev.qvlm.model.KvCache;
import dev.qvlm.model.LlavaModel;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The bundled model end to end on the CUDA backend over the emulated device (every kernel of the forward pass
 * emulated; see {@link EmulatedDevice}), against the CPU backend: prefill, decode steps (eager, captured, replayed
 * from CUDA graphs with their patches), a batched step. The kernels' arithmetic is the GPU tests' business; this
 * checks the host side as a whole — weights, views and strides, the KV cache rows the fused store writes and the
 * attention reads, the deferred residual adds, the multi-matrix GEMV, the replayed graphs — through the logits.
 */
class CudaForwardEmulatedTest {
    @ParameterizedTest
    @CsvSource({"F32, true, false, true", "F32, true, true, true", "F32, true, false, false", "F16, false, true, true",
            "F32, false, false, true"})
    void logitsFollowTheCpu(Storage storage, boolean exact, boolean w4, boolean graphs) {
        EmulatedDevice dev = new EmulatedDevice();
        dev.graphs = graphs;
        // exact: FP32 weights and GEMMs, so only summation orders differ; otherwise FP16 GEMM inputs (and storage)
        double tol = exact ? 2e-4 : storage == Storage.F16 ? 5e-2 : 2e-2;
        try (Checkpoint ck = Checkpoint.open(TestPaths.tinyModel()); CpuBackend cpu = new CpuBackend();
             CudaBackend gpu = new CudaBackend(dev, storage, exact)) {
            if (w4) GraphReplayEmulatedTest.toW4(ck);
            LlavaModel a = new LlavaModel(ck.config(), ck.weights(), cpu), b = new LlavaModel(ck.config(), ck.weights(), gpu);
            KvCache ca = a.newCache(64), cb = b.newCache(64), ca2 = a.newCache(64), cb2 = b.newCache(64);
            int[] prompt = {1, 319, 196, 310, 263, 8, 291, 411, 292, 45, 67, 89};
            GpuTests.assertClose("prefill", a.forward(ca, prompt, null, false), b.forward(cb, prompt, null, false), tol);
            a.forward(ca2, new int[]{1, 7, 9}, null, false);
            b.forward(cb2, new int[]{1, 7, 9}, null, false);
            for (int step = 0; step < 8; step++) {
                int t = 3 + 17 * step;
                GpuTests.assertClose("decode step " + step, a.forward(ca, new int[]{t}, null, false), b.forward(cb, new int[]{t}, null, false), tol);
            }
            for (int step = 0; step < 3; step++)
                GpuTests.assertClose("batched step " + step,
                        a.forwardLast(List.of(new LlavaModel.Sequence(ca, new int[]{5 + step}, null), new LlavaModel.Sequence(ca2, new int[]{6}, null))),
                        b.forwardLast(List.of(new LlavaModel.Sequence(cb, new int[]{5 + step}, null), new LlavaModel.Sequence(cb2, new int[]{6}, null))),
                        tol);
            assertEquals(ca.length(), cb.length());
            if (graphs) assertTrue(dev.graphLaunches >= 5, gpu.graphSummary());
        }
    }
}
