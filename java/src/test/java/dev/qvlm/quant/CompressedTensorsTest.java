package dev.qvlm.quant;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.qvlm.QvlmException;
import dev.qvlm.safetensors.DType;
import dev.qvlm.safetensors.SafeTensors;
import dev.qvlm.safetensors.SafeTensorsWriter;
import dev.qvlm.safetensors.TensorInfo;
import dev.qvlm.safetensors.WeightStore;
import dev.qvlm.tensor.F32Matrix;
import dev.qvlm.tensor.HalfMatrix;
import dev.qvlm.tensor.Matrix;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class CompressedTensorsTest {
    @TempDir
    Path dir;

    private static QuantizedWeight quantized(int rows, int cols, QuantArgs a, long seed) {
        return WeightQuantizer.quantize(new F32Matrix(rows, cols, TorchReference.fp16Weights(rows * cols, seed)), a, 1.0);
    }

    private static CompressedTensors.Config config(QuantArgs w, QuantArgs a, boolean dyn, List<String> ignore) throws Exception {
        // through JSON text, the way it comes back from config.json
        String json = new ObjectMapper().writeValueAsString(CompressedTensors.quantizationConfig(w, a, dyn, ignore));
        return CompressedTensors.Config.parse(new ObjectMapper().readTree(json), "config.json");
    }

    @Test
    void quantizationConfigJson() {
        ObjectNode qc = CompressedTensors.quantizationConfig(QuantArgs.perGroup(4, false, 128), null, false, List.of("lm_head"));
        assertEquals("compressed-tensors", qc.path("quant_method").asText());
        assertEquals("pack-quantized", qc.path("format").asText());
        assertEquals("compressed", qc.path("quantization_status").asText());
        JsonNode g = qc.path("config_groups").path("group_0");
        assertEquals("Linear", g.path("targets").get(0).asText());
        JsonNode w = g.path("weights");
        assertEquals(4, w.path("num_bits").asInt());
        assertEquals("int", w.path("type").asText());
        assertFalse(w.path("symmetric").asBoolean());
        assertEquals("group", w.path("strategy").asText());
        assertEquals(128, w.path("group_size").asInt());
        assertFalse(w.path("dynamic").asBoolean());
        assertEquals("minmax", w.path("observer").asText());
        assertTrue(g.path("input_activations").isNull());
        assertEquals("lm_head", qc.path("ignore").get(0).asText());

        ObjectNode w8a8 = CompressedTensors.quantizationConfig(QuantArgs.perChannel(8, true), QuantArgs.perTensor(8, false), false, List.of());
        assertEquals("int-quantized", w8a8.path("format").asText());
        JsonNode wc = w8a8.path("config_groups").path("group_0").path("weights");
        assertEquals("channel", wc.path("strategy").asText());
        assertTrue(wc.path("group_size").isNull());
        JsonNode ia = w8a8.path("config_groups").path("group_0").path("input_activations");
        assertEquals("tensor", ia.path("strategy").asText());
        assertFalse(ia.path("dynamic").asBoolean());
        assertFalse(ia.path("symmetric").asBoolean());

        JsonNode dyn = CompressedTensors.quantizationConfig(QuantArgs.perChannel(4, false), QuantArgs.perToken(8, false), true, null)
                .path("config_groups").path("group_0").path("input_activations");
        assertEquals("token", dyn.path("strategy").asText());
        assertTrue(dyn.path("dynamic").asBoolean());
        assertTrue(dyn.path("observer").isNull());
        assertThrows(IllegalArgumentException.class,
                () -> CompressedTensors.quantizationConfig(QuantArgs.perChannel(4, false), QuantArgs.perToken(8, false), false, null));
    }

    @Test
    void configParsingAndTargets() throws Exception {
        CompressedTensors.Config c = config(QuantArgs.perGroup(4, true, 64), QuantArgs.perTensor(8, false), false,
                List.of("language_model.lm_head", "re:vision_tower.*"));
        CompressedTensors.Scheme s = c.schemeFor("language_model.model.layers.0.mlp.up_proj");
        assertEquals(QuantArgs.perGroup(4, true, 64), s.weights());
        assertEquals(QuantArgs.perTensor(8, false), s.inputs());
        assertFalse(s.inputsDynamic());
        assertNull(c.schemeFor("language_model.lm_head"));
        assertNull(c.schemeFor("vision_tower.vision_model.encoder.layers.0.mlp.fc1"));
        // inferred strategy and the pydantic default symmetric = true
        JsonNode minimal = new ObjectMapper().readTree("""
                {"quant_method": "compressed-tensors", "format": "pack-quantized",
                 "config_groups": {"g": {"targets": ["Linear"], "weights": {"num_bits": 4, "group_size": 128}}}}""");
        assertEquals(QuantArgs.perGroup(4, true, 128), CompressedTensors.Config.parse(minimal, "x").schemeFor("a.b").weights());
        JsonNode bad = new ObjectMapper().readTree("""
                {"quant_method": "compressed-tensors",
                 "config_groups": {"g": {"targets": ["Linear"], "weights": {"num_bits": 4, "type": "float"}}}}""");
        QvlmException e = assertThrows(QvlmException.class, () -> CompressedTensors.Config.parse(bad, "m/config.json"));
        assertTrue(e.getMessage().contains("m/config.json") && e.getMessage().contains("float"), e.getMessage());
        JsonNode awq = new ObjectMapper().readTree("{\"quant_method\": \"awq\"}");
        assertTrue(assertThrows(QvlmException.class, () -> CompressedTensors.Config.parse(awq, "c.json")).getMessage().contains("awq"));
    }

    @Test
    void packQuantizedRoundTripGivesTheIdenticalMatrix() throws Exception {
        // rows 13: zero points padded in the last packed word; two groups per row
        for (QuantArgs a : new QuantArgs[] {QuantArgs.perGroup(4, false, 128), QuantArgs.perChannel(4, false),
                QuantArgs.perGroup(4, true, 64), QuantArgs.perTensor(4, false)}) {
            QuantizedWeight q = quantized(13, 256, a, 21);
            ActQuantizer act = ActQuantizer.staticPerTensor(QuantArgs.perTensor(8, false), -1.25f, 3.5f);
            Path file = dir.resolve("pack-" + a.granularity() + a.symmetric() + ".safetensors");
            SafeTensorsWriter w = new SafeTensorsWriter();
            // pack-quantized with static inputs: what qvlm wrote before formats followed compressed-tensors; still read
            CompressedTensors.writeLinear(w, "model.layers.0.mlp.up_proj", q, act, DType.F32, CompressedTensors.PACK_QUANTIZED);
            w.write(file);
            CompressedTensors.Config cfg = config(a, QuantArgs.perTensor(8, false), false, List.of());
            try (SafeTensors st = SafeTensors.open(file)) {
                String p = "model.layers.0.mlp.up_proj";
                TensorInfo packed = st.info(p + ".weight_packed");
                assertEquals(DType.I32, packed.dtype());
                assertArrayEquals(new long[] {13, 32}, packed.shape());
                assertArrayEquals(new long[] {13, 256}, st.toLongArray(p + ".weight_shape"));
                long[] scaleShape = switch (a.granularity()) {
                    case GROUP -> new long[] {13, 256 / a.groupSize()};
                    case CHANNEL -> new long[] {13, 1};
                    default -> new long[] {1};
                };
                assertArrayEquals(scaleShape, st.info(p + ".weight_scale").shape());
                if (a.symmetric()) {
                    assertFalse(st.contains(p + ".weight_zero_point"));
                } else if (a.granularity() == QuantArgs.Granularity.TENSOR) {
                    assertEquals(DType.I8, st.info(p + ".weight_zero_point").dtype());
                    assertEquals(q.zeros()[0] - 8, st.toLongArray(p + ".weight_zero_point")[0]);
                } else {
                    TensorInfo z = st.info(p + ".weight_zero_point");
                    assertEquals(DType.I32, z.dtype());
                    assertArrayEquals(new long[] {2, scaleShape[1]}, z.shape()); // ceil(13/8) along the output dim
                }
                TensorSource src = TensorSource.of(st);
                Matrix m = CompressedTensors.readWeight(src, p, cfg);
                assertInstanceOf(Q4Matrix.class, m);
                assertArrayEquals(q.dequantize(), m.toFloatArray(), a.label());
                for (int r = 0; r < 13; r++) for (int c = 0; c < 256; c += 17) assertEquals(q.get(r, c), m.get(r, c));
                QuantizedWeight back = CompressedTensors.readQuantizedWeight(src, p, cfg);
                assertArrayEquals(q.codes(), back.codes());
                assertArrayEquals(q.zeros(), back.zeros());
                assertArrayEquals(q.scales(), back.scales());
                ActQuantizer in = CompressedTensors.readInputQuantizer(src, p, cfg);
                assertEquals(act.scale(), in.scale());
                assertEquals(act.zeroPoint(), in.zeroPoint());
                assertEquals(act.zeroPoint() - 128, st.toLongArray(p + ".input_zero_point")[0]);
            }
        }
    }

    @Test
    void halfScalesRoundTrip() throws Exception {
        QuantArgs a = QuantArgs.perGroup(4, false, 64);
        QuantizedWeight q = quantized(8, 128, a, 4);
        SafeTensorsWriter w = new SafeTensorsWriter();
        CompressedTensors.writeLinear(w, "l", q, null, DType.F16);
        Path file = dir.resolve("f16.safetensors");
        w.write(file);
        try (SafeTensors st = SafeTensors.open(file)) {
            assertEquals(DType.F16, st.info("l.weight_scale").dtype());
            Matrix m = CompressedTensors.readWeight(TensorSource.of(st), "l", config(a, null, false, List.of()));
            assertArrayEquals(q.withHalfScales().dequantize(), m.toFloatArray());
            assertNull(CompressedTensors.readInputQuantizer(TensorSource.of(st), "l", config(a, null, false, List.of())));
        }
    }

    @Test
    void intQuantizedRoundTripThroughAModelDirectory() throws Exception {
        QuantArgs w8 = QuantArgs.perChannel(8, false), w3 = QuantArgs.perGroup(3, true, 32);
        QuantizedWeight q8 = quantized(10, 96, w8, 1), q3 = quantized(6, 64, w3, 2);
        ActQuantizer a8 = ActQuantizer.staticPerTensor(QuantArgs.perTensor(8, false), -0.7f, 2.2f);
        SafeTensorsWriter w = new SafeTensorsWriter();
        CompressedTensors.writeLinear(w, "a.q_proj", q8, a8);
        CompressedTensors.writeLinear(w, "a.k_proj", q8, ActQuantizer.dynamicPerToken(QuantArgs.perToken(8, false)));
        SafeTensorsWriter w2 = new SafeTensorsWriter();
        CompressedTensors.writeLinear(w2, "b.up_proj", q3, null);
        float[] plain = TorchReference.fp16Weights(4 * 16, 3);
        w2.addF16("lm_head.weight", new long[] {4, 16}, plain);
        w.write(dir.resolve("model-1.safetensors"));
        w2.write(dir.resolve("model-2.safetensors"));
        try (WeightStore ws = WeightStore.open(dir)) {
            TensorSource src = TensorSource.of(ws);
            assertEquals(DType.I8, ws.info("a.q_proj.weight").dtype());
            assertEquals((q8.codes()[5] & 0xff) - 128, ws.toLongArray("a.q_proj.weight")[5]);
            assertArrayEquals(new long[] {10, 1}, ws.info("a.q_proj.weight_zero_point").shape());
            assertFalse(ws.contains("a.k_proj.input_scale"));
            CompressedTensors.Config c8 = config(w8, QuantArgs.perTensor(8, false), false, List.of("lm_head"));
            Matrix m8 = CompressedTensors.readWeight(src, "a.q_proj", c8);
            assertInstanceOf(F32Matrix.class, m8);
            assertArrayEquals(q8.dequantize(), m8.toFloatArray());
            ActQuantizer back = CompressedTensors.readInputQuantizer(src, "a.q_proj", c8);
            float[] x = ActQuantizerTest.randomActivations(new SplittableRandom(4), 96 * 3), y = x.clone();
            a8.apply(x, 0, 3, 96);
            back.apply(y, 0, 3, 96);
            assertArrayEquals(x, y);
            CompressedTensors.Config dyn = config(w8, QuantArgs.perToken(8, false), true, List.of());
            assertEquals(ActQuantizer.Mode.DYNAMIC_TOKEN, CompressedTensors.readInputQuantizer(src, "a.k_proj", dyn).mode());
            CompressedTensors.Config c3 = config(w3, null, false, List.of("lm_head"));
            assertArrayEquals(q3.dequantize(), CompressedTensors.readWeight(src, "b.up_proj", c3).toFloatArray());
            assertArrayEquals(q3.codes(), CompressedTensors.readQuantizedWeight(src, "b.up_proj", c3).codes());
            // an ignored layer is read as its plain (mapped) float weight
            Matrix head = CompressedTensors.readWeight(src, "lm_head", c3);
            assertInstanceOf(HalfMatrix.class, head);
            assertArrayEquals(plain, head.toFloatArray());
        }
    }

    @Test
    void inconsistentShapesNameTensorAndFile() throws Exception {
        QuantArgs a = QuantArgs.perGroup(4, false, 128);
        QuantizedWeight q = quantized(8, 256, a, 8);
        Q4Matrix m = q.toPackedMatrix();
        CompressedTensors.Config cfg = config(a, null, false, List.of());

        // weight_packed one word short per row
        SafeTensorsWriter w = new SafeTensorsWriter();
        w.add("l.weight_packed", DType.I32, new long[] {8, 31}, m.packed().asSlice(0, 8 * 31 * 4));
        w.addF32("l.weight_scale", new long[] {8, 2}, q.scales());
        w.addI64("l.weight_shape", new long[] {2}, new long[] {8, 256});
        Path bad = dir.resolve("bad-packed.safetensors");
        w.write(bad);
        try (SafeTensors st = SafeTensors.open(bad)) {
            QvlmException e = assertThrows(QvlmException.class, () -> CompressedTensors.readWeight(TensorSource.of(st), "l", cfg));
            assertTrue(e.getMessage().contains("bad-packed.safetensors"), e.getMessage());
            assertTrue(e.getMessage().contains("l.weight_packed"), e.getMessage());
            assertTrue(e.getMessage().contains("[8, 32]"), e.getMessage());
        }

        // scales for the wrong group size, and the zero point missing
        SafeTensorsWriter w2 = new SafeTensorsWriter();
        w2.add("l.weight_packed", DType.I32, new long[] {8, 32}, m.packed());
        w2.addF32("l.weight_scale", new long[] {8, 4}, new float[32]);
        w2.addI64("l.weight_shape", new long[] {2}, new long[] {8, 256});
        Path bad2 = dir.resolve("bad-scale.safetensors");
        w2.write(bad2);
        try (SafeTensors st = SafeTensors.open(bad2)) {
            QvlmException e = assertThrows(QvlmException.class, () -> CompressedTensors.readWeight(TensorSource.of(st), "l", cfg));
            assertTrue(e.getMessage().contains("bad-scale.safetensors") && e.getMessage().contains("l.weight_scale")
                    && e.getMessage().contains("[8, 2]"), e.getMessage());
        }
        SafeTensorsWriter w3 = new SafeTensorsWriter();
        w3.add("l.weight_packed", DType.I32, new long[] {8, 32}, m.packed());
        w3.addF32("l.weight_scale", new long[] {8, 2}, q.scales());
        w3.addI64("l.weight_shape", new long[] {2}, new long[] {8, 256});
        Path bad3 = dir.resolve("no-zp.safetensors");
        w3.write(bad3);
        try (SafeTensors st = SafeTensors.open(bad3)) {
            QvlmException e = assertThrows(QvlmException.class, () -> CompressedTensors.readWeight(TensorSource.of(st), "l", cfg));
            assertTrue(e.getMessage().contains("l.weight_zero_point") && e.getMessage().contains("no-zp.safetensors"), e.getMessage());
        }
        // a group that does not divide the stored width
        CompressedTensors.Config g96 = config(QuantArgs.perGroup(4, false, 96), null, false, List.of());
        try (SafeTensors st = SafeTensors.open(bad3)) {
            QvlmException e = assertThrows(QvlmException.class, () -> CompressedTensors.readWeight(TensorSource.of(st), "l", g96));
            assertTrue(e.getMessage().contains("96") && e.getMessage().contains("256"), e.getMessage());
        }
        // int8 values outside the declared bit width
        SafeTensorsWriter w4 = new SafeTensorsWriter();
        w4.add("l.weight", DType.I8, new long[] {1, 4}, MemorySegment.ofArray(new byte[] {0, 1, 100, -3}));
        w4.addF32("l.weight_scale", new long[] {1, 1}, new float[] {1f});
        Path bad4 = dir.resolve("range.safetensors");
        w4.write(bad4);
        CompressedTensors.Config c3 = config(QuantArgs.perChannel(3, true), null, false, List.of());
        try (SafeTensors st = SafeTensors.open(bad4)) {
            QvlmException e = assertThrows(QvlmException.class, () -> CompressedTensors.readWeight(TensorSource.of(st), "l", c3));
            assertTrue(e.getMessage().contains("range.safetensors") && e.getMessage().contains("100"), e.getMessage());
        }
    }
}
