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
    /**
     * A whole generation (prefill, decode, the cache closed at the end) leaves the device's live memory where it was:
     * nothing waits for the collector, and a closed cache or freed tensor is refused afterwards.
     */
    @Test
    void generationGivesEverythingBack() {
        try (CudaBackend b = new CudaBackend(new EmulatedDevice(), Storage.F16, false);
             dev.qvlm.runtime.Llava llava = dev.qvlm.runtime.Llava.open(TestPaths.tinyModel(), b)) {
            LlavaModel m = llava.model();
            try (KvCache warm = m.newCache(8)) { // weights uploaded (permanent) before measuring
                m.forward(warm, new int[]{1, 2}, null, false);
            }
            long live = b.memoryCounts().live();
            dev.qvlm.generate.Generator.Result r = new dev.qvlm.generate.Generator(m, llava.tokenizer())
                    .generate(new int[]{1, 319, 140, 299}, null, new dev.qvlm.generate.SamplingOptions(6, 0, 1, 0), null);
            assertTrue(r.tokens().length <= 6);
            assertEquals(live, b.memoryCounts().live(), "live device bytes after a generation");
            KvCache cache = m.newCache(16);
            assertTrue(b.memoryCounts().live() > live);
            cache.close();
            assertEquals(live, b.memoryCounts().live(), "a closed cache is back in the pool");
            org.junit.jupiter.api.Assertions.assertThrows(IllegalStateException.class, () -> m.forward(cache, new int[]{3}, null, false));
            dev.qvlm.backend.Tensor t = b.allocate(4, 8);
            org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class, () -> b.free(b.view(t, 1, 2)), "a view");
            b.free(t);
            org.junit.jupiter.api.Assertions.assertThrows(IllegalStateException.class, () -> b.add(t, t), "used after free");
        }
    }

    @Test
    void eagerStepsAllocateNoTrackedActivations() {
        try (Checkpoint ck = Checkpoint.open(TestPaths.tinyModel());
             CudaBackend b = new CudaBackend(new EmulatedDevice(), Storage.F16, false)) {
            LlavaModel m = new LlavaModel(ck.config(), ck.weights(), b);
            KvCache cache = m.newCache(64);
            long before = b.memoryCounts().trackedAllocations();
            m.forward(cache, new int[]{1, 319, 140, 299}, null, false); // prefill
            m.forward(cache, new int[]{7}, null, false);
            CudaBackend.MemoryCounts pool = b.memoryCounts();
            for (int step = 0; step < 5; step++) m.forward(cache, new int[]{8 + step}, null, false);
            assertEquals(before, b.memoryCounts().trackedAllocations(), "activations left to the collector");
            CudaBackend.MemoryCounts after = b.memoryCounts();
            assertEquals(pool.live(), after.live(), "live bytes after a step");
            assertTrue(after.pooled() <= pool.pooled(), "pooled bytes do not grow: " + after.pooled() + " vs " + pool.pooled());
        }
    }
}
