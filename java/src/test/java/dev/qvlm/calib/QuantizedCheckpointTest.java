package dev.qvlm.calib;

import dev.qvlm.QvlmException;
import dev.qvlm.TestPaths;
import dev.qvlm.cpu.CpuBackend;
import dev.qvlm.eval.Evaluator;
import dev.qvlm.eval.McDataset;
import dev.qvlm.eval.McQuestion;
import dev.qvlm.model.Linear;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.qvlm.model.WeightNames;
import dev.qvlm.quant.ActQuantizer;
import dev.qvlm.quant.CompressedTensorsReference;
import dev.qvlm.quant.CompressedTensorsRules;
import dev.qvlm.quant.QuantizedWeight;
import dev.qvlm.quant.SaveTarget;
import dev.qvlm.safetensors.SafeTensorsWriter;
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
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Saved compressed-tensors checkpoints: same predictions as the in-memory fake-quant model, packed int4 on disk. */
public class QuantizedCheckpointTest {
    static final Path CALIB = TestPaths.data().resolve("calib.jsonl");
    static final List<McQuestion> ROWS = McDataset.read(TestPaths.data().resolve("eval.jsonl")).subList(0, 40);

    static QuantSettings settings(Method m, QuantArgs w, QuantArgs a) {
        return new QuantSettings(m, w, a, false, EnumSet.of(Linear.Part.VISION, Linear.Part.PROJECTOR, Linear.Part.LLM),
                QuantSettings.PAPER_GRID, Double.NaN, 3, 1, 125, a != null ? a.bits() : w.bits(), false, 2);
    }

    record Saved(Evaluator.Report inMemory, Path dir, Map<String, QuantizedWeight> quantized) {}

    static Saved quantizeAndSave(QuantSettings st, Path out) {
        return quantizeAndSave(TestPaths.tinyModel(), st, SaveTarget.QVLM, out, ROWS);
    }

    /** Quantizes {@code model}, saves it for {@code target}; keeps the quantized weights by canonical layer name. */
    static Saved quantizeAndSave(Path model, QuantSettings st, SaveTarget target, Path out, List<McQuestion> rows) {
        try (Llava llava = Llava.open(model, new CpuBackend())) {
            QuantRun.Result r = QuantRun.quantize(llava, CALIB, 8, 0, st, false, rows, null, 2, false, null);
            CheckpointSaver.save(llava, r, st, target, out, false);
            Map<String, QuantizedWeight> q = new HashMap<>();
            r.calibrator().states().forEach((l, s) -> q.put(l.name(), s.quantized(s.wClip)));
            return new Saved(r.eval(), out, q);
        }
    }

    static void assertSamePredictions(Evaluator.Report a, Evaluator.Report b) {
        for (int i = 0; i < a.predictions().size(); i++)
            assertEquals(a.predictions().get(i).tokenId(), b.predictions().get(i).tokenId(), "question " + i);
        assertEquals(a.accuracy(), b.accuracy());
    }

    @Test
    void w4a16g128ForVllmIsInTheLlavaHfLayoutAndRoundTripsThroughPackedInt4(@TempDir Path tmp) throws Exception {
        Path out = tmp.resolve("w4");
        QuantSettings st = settings(Method.RTN, QuantArgs.perGroup(4, true, 128), null);
        Saved s = quantizeAndSave(TestPaths.tinyModel(), st, SaveTarget.VLLM, out, ROWS);
        assertTrue(Files.exists(out.resolve("tokenizer.json")) && Files.exists(out.resolve("quantization_report.json")));

        // the bundled model's vision keys lack "vision_model."; the saved ones have it, as vLLM's CLIP loader needs
        Map<String, CompressedTensorsReference.Tensor> t = CompressedTensorsReference.read(out.resolve("model.safetensors"));
        for (String k : t.keySet())
            assertTrue(k.startsWith("language_model.model.") || k.startsWith("language_model.lm_head.")
                    || k.startsWith("vision_tower.vision_model.") || k.startsWith("multi_modal_projector."), k);
        assertTrue(t.containsKey("vision_tower.vision_model.encoder.layers.0.self_attn.q_proj.weight_packed"));
        assertTrue(t.containsKey("vision_tower.vision_model.embeddings.patch_embedding.weight"));
        assertTrue(t.containsKey("language_model.lm_head.weight"));

        JsonNode cfg = new ObjectMapper().readTree(out.resolve("config.json").toFile());
        JsonNode qc = cfg.get("quantization_config");
        CompressedTensorsRules.validate(qc);
        assertEquals("pack-quantized", qc.get("format").asText());
        assertTrue(qc.get("config_groups").get("group_0").get("weights").get("symmetric").asBoolean());
        assertTrue(qc.get("ignore").size() > 0);
        qc.get("ignore").forEach(n -> assertTrue(n.asText().startsWith("re:"), n.asText()));
        assertEquals("float16", cfg.get("torch_dtype").asText(), "transformers-4 spelling next to dtype");
        assertEquals(cfg.get("image_token_index"), cfg.get("image_token_id"));
        assertEquals(cfg.at("/text_config/rope_parameters/rope_theta"), cfg.at("/text_config/rope_theta"), "both rope spellings");

        // scales in the weight dtype; every quantized layer decodes (compressed-tensors' way) to the quantizer's values
        for (var e : s.quantized().entrySet()) {
            String prefix = WeightNames.llavaHf(e.getKey());
            assertEquals("F16", t.get(prefix + ".weight_scale").dtype(), prefix);
            float[] ref = CompressedTensorsReference.dequantize(t, prefix, qc);
            QuantizedWeight q = e.getValue();
            float[] expected = q.withHalfScales().dequantize();
            for (int i = 0; i < ref.length; i++)
                assertEquals(CompressedTensorsReference.inDtype(expected[i], "F16"), ref[i], prefix + " [" + i + "]");
        }

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
            for (var e : s.quantized().entrySet()) {
                String prefix = WeightNames.llavaHf(e.getKey());
                for (String suffix : new String[]{".weight_packed", ".weight_scale", ".weight_zero_point", ".weight_shape"})
                    if (qf.contains(prefix + suffix)) {
                        TensorInfo ti = qf.info(prefix + suffix);
                        packed += ti.end() - ti.begin();
                    }
                TensorInfo o = orig.info(WeightNames.expectedKey(e.getKey() + ".weight", orig.names()));
                fp16 += o.end() - o.begin();
            }
        }
        double ratio = (double) fp16 / packed;
        System.out.printf("quantized linears: %d bytes FP16 -> %d bytes packed (%.2fx)%n", fp16, packed, ratio);
        assertTrue(ratio >= 3.0, "ratio " + ratio);
    }

    @Test
    void transformers5InputIsSavedInTheLlavaHfLayout(@TempDir Path tmp) throws Exception {
        // the bundled weights renamed to transformers 5's keys (model.language_model.*, lm_head.*, model.vision_tower.*)
        Path v5 = Files.createDirectories(tmp.resolve("v5"));
        try (var files = Files.list(TestPaths.tinyModel())) {
            for (Path p : files.toList())
                if (!p.getFileName().toString().endsWith(".safetensors")) Files.copy(p, v5.resolve(p.getFileName()));
        }
        try (SafeTensors src = SafeTensors.open(TestPaths.tinyModel().resolve("model.safetensors"))) {
            SafeTensorsWriter w = new SafeTensorsWriter();
            for (String k : src.names()) {
                String c = WeightNames.canonical(k);
                String v5key = c.startsWith("text.") ? "model.language_model." + c.substring(5) : c.startsWith("lm_head.") ? c
                        : c.startsWith("vision.") ? "model.vision_tower." + c.substring(7) : "model.multi_modal_projector." + c.substring(10);
                w.add(v5key, src.info(k).dtype(), src.info(k).shape(), src.segment(k));
            }
            w.write(v5.resolve("model.safetensors"));
        }
        Path out = tmp.resolve("w8");
        List<McQuestion> rows = ROWS.subList(0, 8);
        Saved s = quantizeAndSave(v5, settings(Method.RTN, QuantArgs.perChannel(8, false), null), SaveTarget.TRANSFORMERS, out, rows);
        Set<String> keys = CompressedTensorsReference.read(out.resolve("model.safetensors")).keySet();
        assertTrue(keys.contains("language_model.model.layers.3.mlp.down_proj.weight_packed"), "W8A16: pack-quantized, 4 per int32");
        assertTrue(keys.contains("language_model.lm_head.weight"));
        assertTrue(keys.contains("vision_tower.vision_model.embeddings.patch_embedding.weight"));
        assertFalse(keys.stream().anyMatch(k -> k.startsWith("model.") || k.startsWith("lm_head.")), "no transformers-5 key left");
        try (Llava q = Llava.open(out, new CpuBackend())) {
            assertSamePredictions(s.inMemory(), new Evaluator(q, false).run(rows, false, 2));
        }
    }

    /**
     * Makes the in-memory quantized model what a saved FP16 folder holds: every weight and static input scale rounded
     * to FP16 (a scale FP16 cannot hold stays F32), as compressed-tensors stores them.
     */
    public static void roundScalesToHalf(QuantRun.Result r) {
        r.calibrator().states().forEach((l, s) -> {
            l.setWeight(s.quantized(s.wClip).withHalfScales().toMatrix());
            if (s.actQuantizer(s.aLo, s.aHi) instanceof ActQuantizer a && a.isStatic()) {
                float h = Float.float16ToFloat(Float.floatToFloat16(a.scale()));
                l.setInputQuantizer(ActQuantizer.fromScale(a.args(), h == 0 ? a.scale() : h, a.zeroPoint()));
            }
        });
    }

    @Test
    void staticW4A4HoldsTheQuantizedModelWithItsScalesInTheWeightDtype(@TempDir Path tmp) {
        // compressed-tensors keeps scales in the weight dtype (FP16 here): the folder is the in-memory quantized model
        // with every weight and input scale rounded to FP16 (a scale FP16 cannot hold stays F32), exactly
        Path out = tmp.resolve("w4a4");
        QuantSettings st = settings(Method.RTN, QuantArgs.perChannel(4, false), QuantArgs.perTensor(4, false));
        Evaluator.Report rounded;
        try (Llava llava = Llava.open(TestPaths.tinyModel(), new CpuBackend())) {
            QuantRun.Result r = QuantRun.quantize(llava, CALIB, 8, 0, st, false, ROWS, null, 2, false, null);
            CheckpointSaver.save(llava, r, st, SaveTarget.QVLM, out, false);
            roundScalesToHalf(r);
            rounded = new Evaluator(llava, false).run(ROWS, false, 2);
        }
        try (Llava q = Llava.open(out, new CpuBackend())) {
            Linear qp = q.model().weights().vision.layers()[0].q();
            ActQuantizer a = assertInstanceOf(ActQuantizer.class, qp.inputQuantizer());
            assertTrue(a.isStatic());
            assertSamePredictions(rounded, new Evaluator(q, false).run(ROWS, false, 2));
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
