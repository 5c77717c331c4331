package dev.qvlm.cuda;

import dev.qvlm.TestPaths;
import dev.qvlm.model.Checkpoint;
import dev.qvlm.model.KvCache;
import dev.qvlm.model.LlavaModel;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * CUDA graphs on the card: the bundled model's decode steps replayed from graphs (patched per step) give the logits
 * of the same steps launched op by op, bit for bit (the graph holds the very kernels and GEMMs the eager step
 * launches), through a change of attention splits (a recapture) and a batch of two. GraphReplayEmulatedTest checks
 * the same on the emulated device without a GPU; this is the real driver. Skips without a GPU.
 */
class GraphGpuTest {
    static CudaBackend open(Storage s, boolean graphs) {
        String before = System.getProperty("qvlm.cuda.graphs");
        System.setProperty("qvlm.cuda.graphs", Boolean.toString(graphs));
        try {
            return CudaBackend.open(s);
        } finally {
            if (before == null) System.clearProperty("qvlm.cuda.graphs");
            else System.setProperty("qvlm.cuda.graphs", before);
        }
    }

    @ParameterizedTest
    @EnumSource(Storage.class)
    void replayedStepsEqualEagerStepsBitForBit(Storage storage) {
        GpuTests.requireGpu();
        try (Checkpoint ck = Checkpoint.open(TestPaths.tinyModel()); CudaBackend eager = open(storage, false);
             CudaBackend graphed = open(storage, true)) {
            LlavaModel a = new LlavaModel(ck.config(), ck.weights(), eager), b = new LlavaModel(ck.config(), ck.weights(), graphed);
            KvCache ca = a.newCache(200), cb = b.newCache(200), ca2 = a.newCache(64), cb2 = b.newCache(64);
            int[] prompt = new int[120]; // 2 attention splits at first, 3 after position 128
            for (int i = 0; i < prompt.length; i++) prompt[i] = 1 + (i * 37) % 500;
            assertArrayEquals(a.forward(ca, prompt, null, false), b.forward(cb, prompt, null, false), "prefill");
            a.forward(ca2, new int[]{1, 9}, null, false);
            b.forward(cb2, new int[]{1, 9}, null, false);
            long t0 = System.nanoTime();
            for (int step = 0; step < 24; step++) {
                float[] x, y;
                if (step < 16) {
                    x = a.forward(ca, new int[]{5 + step}, null, false);
                    y = b.forward(cb, new int[]{5 + step}, null, false);
                } else {
                    x = a.forwardLast(List.of(new LlavaModel.Sequence(ca, new int[]{3}, null), new LlavaModel.Sequence(ca2, new int[]{4}, null)));
                    y = b.forwardLast(List.of(new LlavaModel.Sequence(cb, new int[]{3}, null), new LlavaModel.Sequence(cb2, new int[]{4}, null)));
                }
                assertArrayEquals(x, y, storage + " step " + step);
            }
            String summary = graphed.graphSummary();
            System.out.printf("graphs [%s]: %s; 24 steps of both in %.1f ms%n", storage.suffix(), summary, (System.nanoTime() - t0) / 1e6);
            assertTrue(summary.contains("decode x1") && summary.contains("replays") && !summary.contains("eager:"), summary);
        }
    }
}
