package dev.qvlm.train;

import dev.qvlm.TestPaths;
import dev.qvlm.calib.CalibData;
import dev.qvlm.calib.CheckpointSaver;
import dev.qvlm.calib.QuantizedCheckpointTest;
import dev.qvlm.calib.Method;
import dev.qvlm.calib.QuantRun;
import dev.qvlm.calib.QuantSettings;
import dev.qvlm.cpu.CpuBackend;
import dev.qvlm.eval.Evaluator;
import dev.qvlm.eval.McDataset;
import dev.qvlm.eval.McQuestion;
import dev.qvlm.model.Linear;
import dev.qvlm.quant.QuantArgs;
import dev.qvlm.runtime.Llava;
import dev.qvlm.tensor.F32Matrix;
import dev.qvlm.tensor.Matrix;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.EnumSet;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** VEO on the bundled model: it optimises, leaves only the tuned tower changed, and its checkpoint reloads exactly. */
class VeoTest {
    static final Path CALIB = TestPaths.data().resolve("calib.jsonl");

    static QuantSettings w4a4(Method m) {
        return new QuantSettings(m, QuantArgs.perChannel(4, false), QuantArgs.perTensor(4, false), false,
                EnumSet.of(Linear.Part.VISION, Linear.Part.PROJECTOR, Linear.Part.LLM), new double[]{1.0},
                Double.NaN, 3, 1, 125, 4, false, 2);
    }

    @Test
    void lowersItsLossAndRestoresEverythingButTheTunedTower() {
        try (Llava llava = Llava.open(TestPaths.tinyModel(), new CpuBackend())) {
            List<Linear> all = llava.model().weights().linears();
            Map<Linear, Matrix> before = new IdentityHashMap<>();
            for (Linear l : all) before.put(l, l.weight());
            List<McQuestion> rows = CalibData.choose(CALIB, 2, 1);
            // the same two pairs every step, a large step size: the objective must fall
            VeoSettings vs = new VeoSettings(0.1, 1.0, 1.0, 2e-3, 3, 2, VeoSettings.Params.WEIGHTS, 0, 0);
            VeoReport r = Veo.run(llava, rows, w4a4(Method.RTN), vs, null);
            assertEquals(3, r.steps.size());
            VeoReport.Step first = r.steps.get(0), last = r.steps.get(2);
            assertTrue(last.total() < first.total(), "loss " + first.total() + " -> " + last.total());
            assertTrue(first.ent() > 0 && first.errVision() > 0 && first.errOutput() > 0, "every term is active: " + first);
            assertEquals(3, r.dependencyBefore.get("llm").length);
            int tuned = 0;
            for (Linear l : all) {
                assertNull(l.inputQuantizer(), l.name() + " left quantized");
                boolean encoder = l.part() == Linear.Part.VISION && l.name().matches(".*layers\\.[0-2]\\..*");
                if (encoder) {
                    assertInstanceOf(F32Matrix.class, l.weight(), l.name());
                    assertTrue(maxDiff(l.weight(), before.get(l)) > 0, l.name() + " was not tuned");
                    tuned++;
                } else {
                    assertSame(before.get(l), l.weight(), l.name() + " changed");
                }
            }
            assertEquals(18, tuned, "3 encoder layers x 6 linears");
        }
    }

    private static double maxDiff(Matrix a, Matrix b) {
        float[] x = a.toFloatArray(), y = b.toFloatArray();
        double m = 0;
        for (int i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i] - y[i]));
        return m;
    }

    @Test
    void checkpointSavedAfterVeoReloadsToTheSameNumbers(@TempDir Path tmp) {
        List<McQuestion> eval = McDataset.read(TestPaths.data().resolve("eval.jsonl")).subList(0, 12);
        QuantSettings st = w4a4(Method.RTN);
        Path out = tmp.resolve("veo");
        Evaluator.Report fp, inMemory;
        double kl;
        try (Llava llava = Llava.open(TestPaths.tinyModel(), new CpuBackend())) {
            fp = new Evaluator(llava, true).run(eval, false, 2);
            VeoSettings vs = new VeoSettings(0.1, 1.0, 1.0, 1e-3, 1, 4, VeoSettings.Params.WEIGHTS, 0, 0);
            QuantRun.Result r = QuantRun.quantize(llava, CALIB, null, 4, 0, st, false, vs, false, eval, fp, 2, false, null);
            assertNotNull(r.report().veo);
            assertNotNull(r.report().meanDependency);
            CheckpointSaver.save(llava, r, st, out, false);
            // the folder stores scales in the weight dtype (FP16): compare with the model rounded the same way
            QuantizedCheckpointTest.roundScalesToHalf(r);
            inMemory = new Evaluator(llava, true).run(eval, false, 2);
            kl = QuantRun.meanKl(fp, inMemory);
        }
        try (Llava q = Llava.open(out, new CpuBackend())) {
            Evaluator.Report back = new Evaluator(q, true).run(eval, false, 2);
            for (int i = 0; i < eval.size(); i++)
                assertEquals(inMemory.predictions().get(i).tokenId(), back.predictions().get(i).tokenId(), "question " + i);
            assertEquals(inMemory.accuracy(), back.accuracy());
            assertEquals(kl, QuantRun.meanKl(fp, back), 1e-6);
        }
    }
}
