package dev.qvlm.cuda;

import dev.qvlm.TestPaths;
import dev.qvlm.model.BatchChecks;
import dev.qvlm.runtime.Llava;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Continuous batching on the GPU: a batched decode step must give each sequence the logits of the step alone within
 * rounding, and the same greedy token. Not bit for bit as on the CPU: cuBLAS picks another algorithm for another row
 * count, and the first run on a card (H200, 2026-11-27) saw 1 FP16 ulp (-9.671875 vs -9.6640625) and 1.2e-6 in FP32.
 * Limits: 2e-3 of max |logit| with FP16 activations (an FP16 ulp is up to 9.8e-4 of the value), 1e-4 with FP32.
 * Skips without a GPU.
 */
class BatchedForwardGpuTest {
    @ParameterizedTest
    @EnumSource(Storage.class)
    void batchedDecodeStepsEqualSingleSequenceSteps(Storage storage) {
        GpuTests.requireGpu();
        try (CudaBackend gpu = CudaBackend.open(storage); Llava llava = Llava.open(TestPaths.tinyModel(), gpu)) {
            BatchChecks.assertBatchMatchesAlone(llava, storage == Storage.F16 ? 2e-3 : 1e-4);
        }
    }
}
