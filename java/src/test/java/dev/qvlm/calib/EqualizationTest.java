package dev.qvlm.calib;

import dev.qvlm.TestPaths;
import dev.qvlm.cpu.CpuBackend;
import dev.qvlm.eval.Evaluator;
import dev.qvlm.eval.McDataset;
import dev.qvlm.eval.McQuestion;
import dev.qvlm.model.Linear;
import dev.qvlm.quant.Gptq;
import dev.qvlm.quant.Q4Matrix;
import dev.qvlm.quant.QuantArgs;
import dev.qvlm.runtime.Llava;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.EnumSet;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * AWQ and SmoothQuant scales folded into norms and linears leave the full-precision model's function unchanged, and a
 * model quantized with them saves a checkpoint that loads and runs from packed int4 with the same answers.
 */
class EqualizationTest {
    static final Path CALIB = TestPaths.data().resolve("calib.jsonl");
    static final List<McQuestion> ROWS = McDataset.read(TestPaths.data().resolve("eval.jsonl")).subList(0, 24);

    static QuantSettings settings(QuantArgs w, QuantArgs a, WeightRounding r, double smooth) {
        return new QuantSettings(Method.RTN, w, a, false, EnumSet.of(Linear.Part.VISION, Linear.Part.PROJECTOR, Linear.Part.LLM),
                new double[]{1.0}, Double.NaN, 3, 1, 125, 4, false, 2, r, smooth, Gptq.Options.DEFAULT);
    }

    @Test
    void foldedScalesLeaveTheFullPrecisionLogitsUnchanged() {
        Evaluator.Report fp;
        try (Llava llava = Llava.open(TestPaths.tinyModel(), new CpuBackend())) {
            fp = new Evaluator(llava, true).run(ROWS, false, 2);
        }
        try (Llava llava = Llava.open(TestPaths.tinyModel(), new CpuBackend())) {
            float ln = llava.model().weights().text.layers()[1].inputNorm()[3];
            QuantSettings st = settings(QuantArgs.perChannel(4, false), QuantArgs.perTensor(4, false), WeightRounding.AWQ, 0.5);
            Calibrator c = new Calibrator(llava.model(), st, CalibData.load(llava, CALIB, 4, 0), false, null);
            QuantReport r = c.run();
            // every foldable group got scales: 3 per vision layer (3 layers), 3 per decoder layer (v→o skipped: GQA)
            assertEquals(3 * 3 + 3 * 4, r.equalization.keySet().stream().filter(k -> k.startsWith("awq")).count());
            assertEquals(2 * 3 + 2 * 4, r.equalization.keySet().stream().filter(k -> k.startsWith("smooth")).count());
            assertTrue(ln != llava.model().weights().text.layers()[1].inputNorm()[3], "the norm weight was rescaled");
            for (LinearState s : c.states().values()) s.setFp(); // folded weights, no quantizers
            Evaluator.Report folded = new Evaluator(llava, true).run(ROWS, false, 2);
            double maxDiff = 0, maxAbs = 0;
            for (int i = 0; i < ROWS.size(); i++) {
                float[] a = fp.predictions().get(i).logits(), b = folded.predictions().get(i).logits();
                for (int j = 0; j < a.length; j++) {
                    maxDiff = Math.max(maxDiff, Math.abs(a[j] - b[j]));
                    maxAbs = Math.max(maxAbs, Math.abs(a[j]));
                }
                assertEquals(fp.predictions().get(i).tokenId(), folded.predictions().get(i).tokenId());
            }
            // float rounding of the rescaled weights only (a wrong fold moves logits by O(1))
            assertTrue(maxDiff <= 2e-4 * Math.max(1, maxAbs), "max |Δlogit| " + maxDiff + " (max |logit| " + maxAbs + ")");
        }
    }

    @Test
    void awqWithSmoothingSavesAPackedCheckpointThatAnswersTheSame(@TempDir Path tmp) {
        Path out = tmp.resolve("awq");
        QuantSettings st = settings(QuantArgs.perGroup(4, false, 128), null, WeightRounding.AWQ, 0.5);
        Evaluator.Report inMemory;
        try (Llava llava = Llava.open(TestPaths.tinyModel(), new CpuBackend())) {
            QuantRun.Result r = QuantRun.quantize(llava, CALIB, 4, 0, st, false, ROWS, null, 2, false, null);
            assertTrue(r.calibrator().modifiedTensors().keySet().stream().anyMatch(k -> k.endsWith("v_proj.bias")),
                    "the vision v→out fold rescales v's bias");
            CheckpointSaver.save(llava, r, st, out, false);
            inMemory = r.eval();
        }
        try (Llava q = Llava.open(out, new CpuBackend())) {
            assertInstanceOf(Q4Matrix.class, q.model().weights().text.layers()[0].down().weight(), "runs from packed int4");
            Evaluator.Report loaded = new Evaluator(q, false).run(ROWS, false, 2);
            for (int i = 0; i < ROWS.size(); i++)
                assertEquals(inMemory.predictions().get(i).tokenId(), loaded.predictions().get(i).tokenId(), "question " + i);
        }
    }
}
