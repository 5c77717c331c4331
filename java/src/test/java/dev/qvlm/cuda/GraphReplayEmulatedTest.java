package dev.qvlm.cuda;

import dev.qvlm.TestPaths;
import dev.qvlm.model.Checkpoint;
import dev.qvlm.model.KvCache;
import dev.qvlm.model.LlavaModel;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Decode steps replayed from a CUDA graph ({@link StepGraphs}) against the same steps run op by op, on two emulated
 * devices fed the same calls: every step must execute the same kernels with the same grids and scalar arguments,
 * and pointers at the same offsets in their blocks (so a patched node writes the new key to the right KV-cache row),
 * and the same GEMMs (kernels that read positions from device memory in a graph count with the values they read).
 * The tiny model's attention changes its split count as the context grows, so the steps also pass through replays
 * that no longer match (eager again, then a new capture). Replays patch no node: what changes every step is in
 * device memory.
 */
class GraphReplayEmulatedTest {
    /** The launches from index {@code from} on, pointers as offsets in their blocks. */
    static List<String> executed(EmulatedDevice d, int from, Storage storage) {
        List<String> out = new ArrayList<>();
        for (EmulatedDevice.Launched l : d.launches.subList(from, d.launches.size())) {
            String sig = null;
            for (Kernel k : Kernel.values()) if (k.symbol(storage).equals(l.symbol())) sig = k.signature();
            StringBuilder b = new StringBuilder(l.symbol()).append(' ').append(l.geometry());
            for (int i = 0; i < l.args().length; i++)
                b.append(' ').append(sig != null && sig.charAt(i) == 'p' && l.args()[i] instanceof Long a ? "@+" + d.offsetInBlock(a) : l.args()[i]);
            out.add(b.toString());
        }
        return out;
    }

    static List<String> gemms(EmulatedDevice d, int from) {
        List<String> out = new ArrayList<>();
        for (Gemm g : d.gemms.subList(from, d.gemms.size()))
            out.add(g.m() + "x" + g.n() + "x" + g.k() + " @+" + d.offsetInBlock(g.a()) + " @+" + d.offsetInBlock(g.b())
                    + " @+" + d.offsetInBlock(g.c()) + " " + g.aType() + g.bType() + g.cType() + " " + g.lda() + "," + g.ldb() + "," + g.ldc());
        return out;
    }

    /** The decoder's linears quantized to W4 g128 in place (RTN), as a W4A16 checkpoint would load. */
    static void toW4(Checkpoint ck) {
        for (dev.qvlm.model.Linear l : ck.weights().linears())
            if (l.part() == dev.qvlm.model.Linear.Part.LLM && !l.name().contains("lm_head"))
                l.setWeight(dev.qvlm.quant.Q4Matrix.from(dev.qvlm.quant.WeightQuantizer.prepare(l.weight(),
                        dev.qvlm.quant.QuantArgs.weights(4, false, 128)).quantize(1.0)));
    }

    @ParameterizedTest
    @CsvSource({"F16, false", "F32, false", "F16, true"})
    void replayedDecodeStepsLaunchWhatEagerStepsLaunch(Storage storage, boolean w4) {
        EmulatedDevice eager = new EmulatedDevice(), graphed = new EmulatedDevice();
        graphed.graphs = true;
        try (Checkpoint ck = Checkpoint.open(TestPaths.tinyModel()); CudaBackend a = new CudaBackend(eager, storage);
             CudaBackend b = new CudaBackend(graphed, storage)) {
            if (w4) toW4(ck); // W4A16 g128 decoder linears: the GEMV kernels, q/k/v and gate/up in one launch each
            LlavaModel ma = new LlavaModel(ck.config(), ck.weights(), a), mb = new LlavaModel(ck.config(), ck.weights(), b);
            KvCache ca = ma.newCache(160), cb = mb.newCache(160), ca2 = ma.newCache(64), cb2 = mb.newCache(64);
            // 120 tokens: the first decode steps see 2 attention splits of 64 keys, later ones 3 (combine kernels
            // and scratch of another size: the replay stops matching and the step is captured again)
            int[] prompt = new int[120];
            for (int i = 0; i < prompt.length; i++) prompt[i] = 1 + (i * 37) % 500;
            ma.forward(ca, prompt, null, false);
            mb.forward(cb, prompt, null, false);
            ma.forward(ca2, new int[]{1, 7}, null, false);
            mb.forward(cb2, new int[]{1, 7}, null, false);
            for (int step = 0; step < 24; step++) {
                int la = eager.launches.size(), lb = graphed.launches.size(), ga = eager.gemms.size(), gb = graphed.gemms.size();
                if (step < 16) { // one sequence, then two (another key) as continuous batching does
                    ma.forward(ca, new int[]{7 + step}, null, false);
                    mb.forward(cb, new int[]{7 + step}, null, false);
                } else {
                    ma.forwardLast(List.of(new LlavaModel.Sequence(ca, new int[]{3}, null), new LlavaModel.Sequence(ca2, new int[]{4}, null)));
                    mb.forwardLast(List.of(new LlavaModel.Sequence(cb, new int[]{3}, null), new LlavaModel.Sequence(cb2, new int[]{4}, null)));
                }
                assertEquals(executed(eager, la, storage), executed(graphed, lb, storage), "kernels of step " + step);
                assertEquals(gemms(eager, ga), gemms(graphed, gb), "GEMMs of step " + step);
                assertEquals(ca.length(), cb.length());
            }
            if (w4) assertTrue(graphed.launches.stream().anyMatch(l -> l.symbol().startsWith("qvlm_q4_gemv_multi")),
                    "the W4 steps ran the multi-matrix GEMV");
            String summary = b.graphSummary();
            System.out.println(storage + ": " + summary + "; graph launches " + graphed.graphLaunches);
            assertTrue(graphed.graphLaunches >= 12, summary);
            assertTrue(summary.contains("decode x1: 2 captures"), summary);
            assertTrue(summary.contains("decode x1") && summary.contains("decode x2"), summary);
            // token ids, positions and key counts live in device memory: a step changes no node of its graph (the
            // split-count change above is a new capture, and the batch keeps its two caches)
            assertTrue(summary.contains("decode x1: 2 captures, 12 replays, 0.0 patched launches"), summary);
            assertTrue(summary.matches(".*decode x2: 1 captures, \\d+ replays, 0\\.0 patched launches.*"), summary);
            assertEquals(0, eager.graphLaunches);
        }
        assertEquals(0, graphed.liveGraphs, "graphs left after close");
    }
}
