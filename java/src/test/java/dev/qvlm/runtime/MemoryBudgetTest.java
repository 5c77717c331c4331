package dev.qvlm.runtime;

import dev.qvlm.QvlmException;
import dev.qvlm.config.KnownModels;
import dev.qvlm.config.LlavaConfig;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class MemoryBudgetTest {
    static final long GB = 1_000_000_000L;

    @Test
    void kvCacheAndActivationsFollowTheConfig() {
        LlavaConfig c = KnownModels.config("llava-1.5-7b");
        MemoryBudget.Estimate e = MemoryBudget.forRun(c, 14_130_000_000L, 640, 1);
        // 32 layers x (K + V) x 4096 x 640 tokens x 4 bytes
        assertEquals(2L * 32 * 4096 * 640 * 4, e.kvCache());
        assertEquals(e.kvCache() + 640L * (8 * 4096 + 3 * 11008) * 4, e.heap());
        assertEquals(14_130_000_000L + e.heap() + MemoryBudget.BASE, e.total());
        assertEquals(2 * e.kvCache(), MemoryBudget.forRun(c, 0, 640, 2).kvCache(), "two sequences, two caches");
    }

    @Test
    void thirteenBInFp16IsRefusedUpFrontOnA24GbMachine() {
        MemoryBudget.Estimate e = MemoryBudget.forRun(KnownModels.config("llava-1.5-13b"), 26_700_000_000L, 640, 1);
        QvlmException x = assertThrows(QvlmException.class, () -> MemoryBudget.check("generate", e, 23 * GB, 6 * GB));
        assertTrue(x.getMessage().startsWith("generate needs about 28."), x.getMessage());
        assertTrue(x.getMessage().contains("weights 26.70 GB") && x.getMessage().contains("23.0 GB is available")
                && x.getMessage().contains("qvlm quantize"), x.getMessage());
        // the same model quantized to W4 (7.9 GB) fits
        MemoryBudget.check("generate", MemoryBudget.forRun(KnownModels.config("llava-1.5-13b"), 7_900_000_000L, 640, 1), 23 * GB, 6 * GB);
    }

    @Test
    void aHeapTooSmallForTheKvCacheIsNamed() {
        MemoryBudget.Estimate e = MemoryBudget.forRun(KnownModels.config("llava-1.5-7b"), 4 * GB, 4096, 1);
        QvlmException x = assertThrows(QvlmException.class, () -> MemoryBudget.check("eval", e, 20 * GB, 1L << 30));
        assertTrue(x.getMessage().contains("Java heap") && x.getMessage().contains("-Xmx"), x.getMessage());
        MemoryBudget.check("eval", e, -1, 8L << 30); // unknown available memory: only the heap is checked
    }
}
