package dev.qvlm.cpu;

import org.junit.jupiter.api.Test;

import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicIntegerArray;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ParallelTest {
    private static void withThreads(int n, Runnable r) {
        int before = Parallel.threads();
        Parallel.setThreads(n);
        try {
            r.run();
        } finally {
            Parallel.setThreads(before);
        }
    }

    @Test
    void everyIndexRunsExactlyOnceAtEveryThreadCount() {
        for (int th : new int[]{1, 2, 4, 8, 16})
            withThreads(th, () -> {
                for (int n : new int[]{0, 1, 7, 64, 255, 256, 1000, 4099})
                    for (int grain : new int[]{1, 16, 300}) {
                        AtomicIntegerArray hits = new AtomicIntegerArray(n);
                        Parallel.forRange(n, grain, (s, e) -> {
                            assertTrue(0 <= s && s < e && e <= n, s + ".." + e + " of " + n);
                            for (int i = s; i < e; i++) hits.incrementAndGet(i);
                        });
                        for (int i = 0; i < n; i++) assertEquals(1, hits.get(i), "index " + i + " of " + n + ", " + th + " threads");
                    }
            });
    }

    @Test
    void chunksShrinkToTheGrainAndLargeOnesEndOnWholeCacheLinesOfFloats() {
        for (int share : new int[]{2, 4, 16, 32})
            for (int grain : new int[]{1, 16, 32, 300})
                for (int n : new int[]{4096, 11008, 1000, 37}) {
                    int s = 0, prevSize = Integer.MAX_VALUE, claims = 0;
                    while (s < n) {
                        int e = Parallel.chunkEnd(n, s, grain, share), size = e - s;
                        assertTrue(e > s && e <= n, "progress");
                        assertTrue(size >= Math.min(grain, n - s), "at least the grain");
                        assertTrue(size <= Math.max(prevSize, grain + 15), "chunks do not grow");
                        if (size >= 64 && e < n) assertEquals(0, e % 16, "boundary " + e + " after a large chunk");
                        if (size >= 64 && e < n) assertEquals(0, s % 16, "large chunk start " + s);
                        prevSize = size;
                        s = e;
                        claims++;
                    }
                    assertTrue(claims <= n / Math.max(1, grain) + 1, "no more claims than grains");
                    if (grain == 1 && n >= 1000) assertTrue((double) (Parallel.chunkEnd(n, 0, grain, share)) / n >= 0.5 / share, "first chunk ~1/share");
                }
    }

    @Test
    void nestedAndConcurrentCallsNeitherDeadlockNorLoseWork() throws Exception {
        withThreads(4, () -> {
            AtomicInteger total = new AtomicInteger();
            Runnable job = () -> {
                for (int rep = 0; rep < 200; rep++)
                    Parallel.forRange(64, 1, (s, e) -> Parallel.forRange(100, 1, (a, b) -> total.addAndGet((e - s) * (b - a))));
            };
            Thread other = new Thread(job);
            other.start();
            job.run();
            try {
                other.join();
            } catch (InterruptedException e) {
                throw new AssertionError(e);
            }
            assertEquals(2 * 200 * 64 * 100, total.get());
        });
    }

    @Test
    void aFailureInAChunkReachesTheCaller() {
        withThreads(2, () -> {
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> Parallel.forRange(1000, 1, (s, t) -> {
                if (s > 0) throw new IllegalStateException("chunk at " + s);
            }));
            assertTrue(e.getMessage().startsWith("chunk at"));
            AtomicInteger n = new AtomicInteger();
            Parallel.forRange(1000, 1, (s, t) -> n.addAndGet(t - s)); // the pool still works
            assertEquals(1000, n.get());
        });
        assertThrows(IllegalArgumentException.class, () -> Parallel.setThreads(0));
    }
}
