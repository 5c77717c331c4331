package dev.qvlm.cuda;

import dev.qvlm.TestPaths;
import dev.qvlm.model.Checkpoint;
import dev.qvlm.model.KvCache;
import dev.qvlm.model.LlavaModel;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Eager forward passes on the CUDA backend (emulated device) own their activations explicitly: layers and steps
 * run in {@link dev.qvlm.backend.Backend#scope}s, so a step allocates nothing that waits for the collector, and the
 * pool holds the same blocks after every step.
 */
class ScopeEmulatedTest {
    @Test
    void eagerStepsAllocateNoTrackedActivations() {
        try (Checkpoint ck = Checkpoint.open(TestPaths.tinyModel());
             CudaBackend b = new CudaBackend(new EmulatedDevice(), Storage.F16, false)) {
            LlavaModel m = new LlavaModel(ck.config(), ck.weights(), b);
            KvCache cache = m.newCache(64);
            long before = b.trackedAllocations();
            m.forward(cache, new int[]{1, 319, 140, 299}, null, false); // prefill
            m.forward(cache, new int[]{7}, null, false);
            long[] pool = b.memoryBytes();
            for (int step = 0; step < 5; step++) m.forward(cache, new int[]{8 + step}, null, false);
            assertEquals(before, b.trackedAllocations(), "activations left to the collector");
            long[] after = b.memoryBytes();
            assertEquals(pool[0], after[0], "live bytes after a step");
            assertTrue(after[1] <= pool[1], "pooled bytes do not grow: " + after[1] + " vs " + pool[1]);
        }
    }
}
