package dev.qvlm.cuda;

import dev.qvlm.TestPaths;
import dev.qvlm.model.BatchChecks;
import dev.qvlm.runtime.Llava;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Continuous batching on the GPU: a batched decode step must give each sequence the same logits, bit for bit, as
 * the step alone (so served greedy answers equal {@code qvlm generate --device cuda}). cuBLAS may pick another
 * algorithm for another row count; this test is how a GPU session finds out. Skips without a GPU.
 */
class BatchedForwardGpuTest {
    @ParameterizedTest
    @EnumSource(Storage.class)
    void batchedDecodeStepsEqualSingleSequenceSteps(Storage storage) {
        GpuTests.requireGpu();
        try (CudaBackend gpu = CudaBackend.open(storage); Llava llava = Llava.open(TestPaths.tinyModel(), gpu)) {
            BatchChecks.assertBatchMatchesAlone(llava);
        }
    }
}
