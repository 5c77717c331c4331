package dev.qvlm.calib;

import dev.qvlm.QvlmException;
import dev.qvlm.TestPaths;
import dev.qvlm.cpu.CpuBackend;
import dev.qvlm.eval.Evaluator;
import dev.qvlm.eval.McDataset;
import dev.qvlm.eval.McQuestion;
import dev.qvlm.model.Linear;
import dev.qvlm.quant.ActQuantizer;
import dev.qvlm.quant.Q4Matrix;
import dev.qvlm.quant.QuantArgs;
import dev.qvlm.runtime.Llava;
import dev.qvlm.safetensors.SafeTensors;
import dev.qvlm.safetensors.TensorInfo;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.EnumSet;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Saved compressed-tensors checkpoints: same predictions as the in-memory fake-quant model, packed int4 on disk. */
class QuantizedCheckpointTest {
    static final Path CALIB = TestPaths.data().resolve("calib.jsonl");
    static final List<McQuestion> ROWS = McDataset.read(TestPaths.data().resolve("eval.jsonl")).subList(0, 40);

    static QuantSettings settings(Method m, QuantArgs w, QuantArgs a) {
        return new QuantSettings(m, w, a, false, EnumSet.of(Linear.Part.VISION, Linear.Part.PROJECTOR, Linear.Part.LLM),
                QuantSettings.PAPER_GRID, Double.NaN, 3, 1, 125, a != null ? a.bits() : w.bits(), false, 2);
    }

    record Saved(Evaluator.Report inMemory, Path dir) {}

    static Saved quantizeAndSave(QuantSettings st, Path out) {
        try (Llava llava = Llava.open(TestPaths.tinyModel(), new CpuBackend())) {
            QuantRun.Result r = QuantRun.quantize(llava, CALIB, 8, 0, st, false, ROWS, null, 2, false, null);
            CheckpointSaver.save(llava, r, st, out, false);
            return new Saved(r.eval(), out);
        }
    }

    static void assertSamePredictions(Evaluator.Report a, Evaluator.Report b) {
        for (int i = 0; i < a.predictions().size(); i++)
            assertEquals(a.predictions().get(i).tokenId(), b.predictions().get(i).tokenId(), "question " + i);
        assertEquals(a.accuracy(), b.accuracy());
    }

    @Test
    void w4a16g128RoundTripsThroughPackedInt4(@TempDir Path tmp) throws Exception {
        Path out = tmp.resolve("w4");
        Saved s = quantizeAndSave(settings(Method.RTN, QuantArgs.perGroup(4, false, 128), null), out);
        assertTrue(Files.exists(out.resolve("tokenizer.json")) && Files.exists(out.resolve("quantization_report.json")));
        try (Llava q = Llava.open(out, new CpuBackend())) {
            Linear up = q.model().weights().text.layers()[0].up();
            assertInstanceOf(Q4Matrix.class, up.weight(), "runs from the packed weights");
            assertEquals(Linear.Part.LM_HEAD, q.model().weights().text.lmHead().part());
            assertFalse(q.model().weights().text.lmHead().weight() instanceof Q4Matrix, "lm_head stays full precision");
            assertSamePredictions(s.inMemory(), new Evaluator(q, false).run(ROWS, false, 2));
        }
        // the quantized tensors are >= 3x smaller than their FP16 originals
        long packed = 0, fp16 = 0;
        try (SafeTensors orig = SafeTensors.open(TestPaths.tinyModel().resolve("model.safetensors"));
             SafeTensors qf = SafeTensors.open(out.resolve("model.safetensors"))) {
            for (String k : qf.names()) {
                if (!k.endsWith(".weight_packed")) continue;
                String prefix = k.substring(0, k.length() - ".weight_packed".length());
                for (String suffix : new String[]{".weight_packed", ".weight_scale", ".weight_zero_point", ".weight_shape"})
                    if (qf.contains(prefix + suffix)) {
                        TensorInfo t = qf.info(prefix + suffix);
                        packed += t.end() - t.begin();
                    }
                TensorInfo o = orig.info(prefix + ".weight");
                fp16 += o.end() - o.begin();
            }
        }
        double ratio = (double) fp16 / packed;
        System.out.printf("quantized linears: %d bytes FP16 -> %d bytes packed (%.2fx)%n", fp16, packed, ratio);
        assertTrue(ratio >= 3.0, "ratio " + ratio);
    }

    @Test
    void staticW4A4KeepsItsActivationScales(@TempDir Path tmp) {
        Path out = tmp.resolve("w4a4");
        Saved s = quantizeAndSave(settings(Method.QVLM, QuantArgs.perChannel(4, false), QuantArgs.perTensor(4, false)), out);
        try (Llava q = Llava.open(out, new CpuBackend())) {
            Linear qp = q.model().weights().vision.layers()[0].q();
            ActQuantizer a = assertInstanceOf(ActQuantizer.class, qp.inputQuantizer());
            assertTrue(a.isStatic());
            assertSamePredictions(s.inMemory(), new Evaluator(q, false).run(ROWS, false, 2));
        }
    }

    @Test
    void refusesExistingOutputAndLeavesNothingOnFailure(@TempDir Path tmp) throws Exception {
        Path existing = Files.createDirectories(tmp.resolve("exists"));
        QuantSettings st = settings(Method.RTN, QuantArgs.perChannel(8, false), null);
        QvlmException e = assertThrows(QvlmException.class, () -> quantizeAndSave(st, existing));
        assertTrue(e.getMessage().contains("already exists") && e.getMessage().contains("--force"), e.getMessage());
        // a target whose parent is a file cannot be written: the error names it and no folder is left behind
        Path blocker = Files.writeString(tmp.resolve("file"), "x");
        Path bad = blocker.resolve("out");
        assertThrows(QvlmException.class, () -> quantizeAndSave(st, bad));
        try (var l = Files.list(tmp)) {
            assertArrayEquals(new String[]{"exists", "file"}, l.map(p -> p.getFileName().toString()).sorted().toArray());
        }
    }
}
