package dev.qvlm.calib;

import dev.qvlm.TestPaths;
import dev.qvlm.cpu.CpuBackend;
import dev.qvlm.model.Linear;
import dev.qvlm.quant.QuantArgs;
import dev.qvlm.runtime.Llava;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.EnumSet;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The search on the bundled model: blocks tile each stack, the search never ends worse than min–max. */
class CalibratorTest {
    static QuantReport run(Method m, boolean separate) {
        return run(m, separate, new CpuBackend());
    }

    static QuantReport run(Method m, boolean separate, dev.qvlm.backend.Backend backend) {
        QuantSettings st = new QuantSettings(m, QuantArgs.perChannel(4, false), QuantArgs.perTensor(4, false), false,
                EnumSet.of(Linear.Part.VISION, Linear.Part.PROJECTOR, Linear.Part.LLM), QuantSettings.PAPER_GRID,
                Double.NaN, 3, 1, 125, 4, separate, 2);
        try (Llava llava = Llava.open(TestPaths.tinyModel(), backend)) {
            List<CalibSample> s = CalibData.load(llava, TestPaths.data().resolve("calib.jsonl"), 4, 0);
            return new Calibrator(llava.model(), st, s, false, null).run();
        }
    }

    /** Losing candidates are released to the backend (a GPU frees its copies), and never a weight the model keeps. */
    @Test
    void losingCandidatesAreReleasedToTheBackend() {
        CpuBackend cpu = new CpuBackend();
        List<dev.qvlm.tensor.Matrix> released = new ArrayList<>();
        List<dev.qvlm.tensor.Matrix> kept = new ArrayList<>();
        dev.qvlm.backend.Backend recording = (dev.qvlm.backend.Backend) java.lang.reflect.Proxy.newProxyInstance(
                dev.qvlm.backend.Backend.class.getClassLoader(), new Class<?>[]{dev.qvlm.backend.Backend.class}, (p, m, a) -> {
                    if (m.getName().equals("release")) {
                        released.add((dev.qvlm.tensor.Matrix) a[0]);
                        return null;
                    }
                    if (m.getName().equals("close")) return null;
                    try {
                        return m.invoke(cpu, a);
                    } catch (java.lang.reflect.InvocationTargetException e) {
                        throw e.getCause();
                    }
                });
        QuantSettings st = new QuantSettings(Method.QVLM, QuantArgs.perChannel(4, false), QuantArgs.perTensor(4, false), false,
                EnumSet.of(Linear.Part.LLM), QuantSettings.PAPER_GRID, Double.NaN, 3, 1, 125, 4, false, 2);
        try (Llava llava = Llava.open(TestPaths.tinyModel(), recording)) {
            List<CalibSample> s = CalibData.load(llava, TestPaths.data().resolve("calib.jsonl"), 4, 0);
            new Calibrator(llava.model(), st, s, false, null).run();
            for (Linear l : llava.model().weights().linears()) if (l.part() == Linear.Part.LLM) kept.add(l.weight());
        }
        assertTrue(released.size() > kept.size(), released.size() + " candidates released for " + kept.size() + " linears");
        for (dev.qvlm.tensor.Matrix m : kept)
            assertTrue(released.stream().noneMatch(r -> r == m), "a weight the model runs with was released");
    }

    @Test
    void qvlmBlocksTileTheStacksAndImproveOnMinMax() {
        QuantReport r = run(Method.QVLM, false);
        // vision: 3 layers feed layer -2 of 4; decoder: 4 layers
        assertTiles(r, "vision", 3);
        assertTiles(r, "llm", 4);
        assertEquals(1, r.blocks.stream().filter(b -> b.stack().equals("projector")).count());
        for (QuantReport.Block b : r.blocks) {
            assertTrue(b.last() - b.first() + 1 <= 3, "at most 3 layers per block");
            assertTrue(b.relMseAfter() <= b.relMseBefore() * (1 + 1e-9), b + " got worse than min-max");
        }
        // h0 defaults to the mean dependency of the stack
        double mean = r.layers.stream().filter(l -> l.stack().equals("llm") && l.dependencyToNext() != null)
                .mapToDouble(QuantReport.Layer::dependencyToNext).average().orElseThrow();
        assertEquals(mean, r.h0.get("llm"), 1e-12);
        assertTrue(r.blocks.stream().anyMatch(b -> b.relMseAfter() < b.relMseBefore() * 0.95), "the search finds something");
    }

    @Test
    void rtnChoosesMinMaxEverywhere() {
        QuantReport r = run(Method.RTN, false);
        for (QuantReport.Block b : r.blocks) {
            assertEquals(b.relMseBefore(), b.relMseAfter(), 1e-15);
            b.choices().values().forEach(c -> {
                assertEquals(1.0, c.weightClip());
                assertNotNull(c.activationClipLow());
                assertEquals(1.0, c.activationClipLow());
                assertEquals(1.0, c.activationClipHigh());
            });
        }
    }

    static void assertTiles(QuantReport r, String stack, int layers) {
        List<int[]> spans = new ArrayList<>();
        for (QuantReport.Block b : r.blocks) if (b.stack().equals(stack)) spans.add(new int[]{b.first(), b.last()});
        int next = 0;
        for (int[] s : spans) {
            assertEquals(next, s[0], stack + " blocks are contiguous");
            next = s[1] + 1;
        }
        assertEquals(layers, next, stack + " blocks cover every layer");
    }
}
