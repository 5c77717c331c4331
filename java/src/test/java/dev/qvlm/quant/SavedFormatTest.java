package dev.qvlm.quant;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.qvlm.safetensors.DType;
import dev.qvlm.safetensors.SafeTensors;
import dev.qvlm.safetensors.SafeTensorsWriter;
import dev.qvlm.tensor.F32Matrix;
import dev.qvlm.tensor.Matrix;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Every setting we save, decoded by {@link CompressedTensorsReference} (compressed-tensors' unpacking, written in the
 * tests) and compared bit for bit with the quantizer's own (code − zero) · scale, the scale rounded to its stored
 * dtype; the config validated by {@link CompressedTensorsRules}; and our loader agreeing with the reference.
 */
class SavedFormatTest {
    @TempDir
    Path dir;

    record Case(String name, QuantArgs weights, QuantArgs inputs, boolean dynamic, int rows, int cols, DType scaleType,
                String format) {}

    static final List<Case> CASES = List.of(
            // 37 rows: zero points packed along the output dim end in a part-filled word; 100 columns: a padded word
            new Case("W4A16 g128 sym", QuantArgs.perGroup(4, true, 128), null, false, 37, 256, DType.F16, "pack-quantized"),
            new Case("W4A16 g128 asym", QuantArgs.perGroup(4, false, 128), null, false, 37, 256, DType.F16, "pack-quantized"),
            new Case("W4A16 channel sym", QuantArgs.perChannel(4, true), null, false, 37, 100, DType.BF16, "pack-quantized"),
            new Case("W4A16 channel asym", QuantArgs.perChannel(4, false), null, false, 37, 100, DType.F16, "pack-quantized"),
            new Case("W4A16 tensor asym", QuantArgs.perTensor(4, false), null, false, 9, 64, DType.F32, "pack-quantized"),
            new Case("W8A16 channel sym", QuantArgs.perChannel(8, true), null, false, 37, 100, DType.F16, "pack-quantized"),
            new Case("W8A16 g64 asym", QuantArgs.perGroup(8, false, 64), null, false, 37, 128, DType.F16, "pack-quantized"),
            new Case("W3A16 g32 asym", QuantArgs.perGroup(3, false, 32), null, false, 11, 64, DType.F16, "naive-quantized"),
            new Case("W2A16 channel sym", QuantArgs.perChannel(2, true), null, false, 11, 64, DType.F16, "naive-quantized"),
            new Case("W8A8 static", QuantArgs.perChannel(8, true), QuantArgs.perTensor(8, false), false, 37, 96, DType.F16, "int-quantized"),
            new Case("W8A8 dynamic", QuantArgs.perChannel(8, true), QuantArgs.perToken(8, true), true, 37, 96, DType.F16, "int-quantized"),
            new Case("W4A8 dynamic", QuantArgs.perGroup(4, true, 32), QuantArgs.perToken(8, false), true, 20, 64, DType.F16, "int-quantized"),
            new Case("W4A4 static asym", QuantArgs.perChannel(4, false), QuantArgs.perTensor(4, false), false, 20, 64, DType.BF16, "int-quantized"));

    @Test
    void everySettingDecodesAsCompressedTensorsReadsIt() throws Exception {
        ObjectMapper om = new ObjectMapper();
        for (Case k : CASES) {
            QuantizedWeight q = WeightQuantizer.quantize(new F32Matrix(k.rows, k.cols,
                    TorchReference.fp16Weights(k.rows * k.cols, k.name.hashCode())), k.weights, 1.0);
            ActQuantizer act = k.inputs == null ? null : k.dynamic ? ActQuantizer.dynamicPerToken(k.inputs)
                    : ActQuantizer.staticPerTensor(k.inputs, -0.8f, 2.6f);
            String prefix = "language_model.model.layers.0.mlp.up_proj";
            assertEquals(k.format, CompressedTensors.formatFor(k.weights, k.inputs), k.name);
            SafeTensorsWriter w = new SafeTensorsWriter();
            CompressedTensors.writeLinear(w, prefix, q, act, k.scaleType);
            // an odd-sized I8 tensor next to the quantized ones: the writer's ordering keeps every offset aligned
            w.add("odd.bytes", DType.I8, new long[] {3}, java.lang.foreign.MemorySegment.ofArray(new byte[] {1, 2, 3}));
            Path file = dir.resolve(k.name.replace(' ', '_') + ".safetensors");
            w.write(file);
            JsonNode qc = om.readTree(om.writeValueAsString(CompressedTensors.quantizationConfig(k.weights, k.inputs, k.dynamic,
                    List.of("re:" + dev.qvlm.model.WeightNames.anyLayoutRegex("lm_head")))));
            CompressedTensorsRules.validate(qc);
            assertEquals(k.format, qc.get("format").asText(), k.name);

            Map<String, CompressedTensorsReference.Tensor> t = CompressedTensorsReference.read(file);
            assertEquals(k.scaleType.name(), t.get(prefix + ".weight_scale").dtype(), k.name + ": scale dtype");
            float[] ref = CompressedTensorsReference.dequantize(t, prefix, qc);
            String dt = k.scaleType.name();
            int mismatches = 0;
            for (int r = 0; r < k.rows; r++)
                for (int c = 0; c < k.cols; c++) {
                    int g = q.groupIndex(r, c);
                    float scale = CompressedTensorsReference.inDtype(q.scales()[g], dt);
                    float expected = CompressedTensorsReference.inDtype((q.code(r, c) - q.zeros()[g]) * scale, dt);
                    if (Float.floatToRawIntBits(expected) != Float.floatToRawIntBits(ref[r * k.cols + c])) mismatches++;
                }
            assertEquals(0, mismatches, k.name + ": reference decode differs from the quantizer's values");
            if (act != null && act.isStatic()) {
                assertEquals(CompressedTensorsReference.inDtype(act.scale(), dt), t.get(prefix + ".input_scale").floatAt(0), k.name);
                assertEquals(act.zeroPoint() - k.inputs.symmetricZero(), t.get(prefix + ".input_zero_point").longAt(0), k.name);
            } else {
                assertTrue(!t.containsKey(prefix + ".input_scale"), k.name + ": dynamic or no inputs store no scale");
            }

            // our loader reads the same numbers (before the final rounding to the scale dtype it is exact)
            CompressedTensors.Config cfg = CompressedTensors.Config.parse(qc, "config.json");
            try (SafeTensors st = SafeTensors.open(file)) {
                Matrix m = CompressedTensors.readWeight(TensorSource.of(st), prefix, cfg);
                float[] ours = m.toFloatArray();
                for (int i = 0; i < ours.length; i++)
                    if (CompressedTensorsReference.inDtype(ours[i], dt) != ref[i])
                        throw new AssertionError(k.name + ": loader value " + ours[i] + " at " + i + " vs reference " + ref[i]);
            }
        }
    }

    @Test
    void packingIsTheReferencePackingForEveryWidthThatDivides32() {
        // unpack_from_int32 is defined bit by bit; our per-word packer must agree with it for 2, 4 and 8 bits
        for (int bits : new int[] {2, 4, 8}) {
            int rows = 5, cols = 37;
            byte[] codes = new byte[rows * cols];
            for (int i = 0; i < codes.length; i++) codes[i] = (byte) ((i * 7 + bits) % (1 << bits));
            int[] packed = CompressedTensors.packAlongColumns(codes, rows, cols, bits);
            int words = (cols * bits + 31) / 32;
            java.nio.ByteBuffer bb = java.nio.ByteBuffer.allocate(packed.length * 4).order(java.nio.ByteOrder.LITTLE_ENDIAN);
            for (int p : packed) bb.putInt(p);
            int[] back = CompressedTensorsReference.unpack(new CompressedTensorsReference.Tensor("I32", new long[] {rows, words}, bb),
                    rows, cols, bits);
            for (int i = 0; i < codes.length; i++) assertEquals((codes[i] & 0xff) - (1 << (bits - 1)), back[i], bits + " bits, element " + i);
        }
    }

    @Test
    void packQuantizedRefusesWidthsWhosePackingChanged() {
        QuantizedWeight q = WeightQuantizer.quantize(new F32Matrix(4, 64, TorchReference.fp16Weights(256, 5)),
                QuantArgs.perChannel(3, true), 1.0);
        assertThrows(IllegalArgumentException.class,
                () -> CompressedTensors.writeLinear(new SafeTensorsWriter(), "l", q, null, DType.F16, CompressedTensors.PACK_QUANTIZED));
    }

    @Test
    void aScaleHalfPrecisionCannotHoldIsKeptInF32() throws Exception {
        QuantizedWeight q = WeightQuantizer.quantize(new F32Matrix(4, 64, TorchReference.fp16Weights(256, 6)),
                QuantArgs.perChannel(8, true), 1.0);
        ActQuantizer tiny = ActQuantizer.fromScale(QuantArgs.perTensor(8, true), 1e-9f, 128); // an input range never seen
        SafeTensorsWriter w = new SafeTensorsWriter();
        CompressedTensors.writeLinear(w, "l", q, tiny, DType.F16, CompressedTensors.INT_QUANTIZED);
        Path file = dir.resolve("tiny.safetensors");
        w.write(file);
        Map<String, CompressedTensorsReference.Tensor> t = CompressedTensorsReference.read(file);
        assertEquals("F16", t.get("l.weight_scale").dtype());
        assertEquals("F32", t.get("l.input_scale").dtype(), "1e-9 would be 0 in F16");
        assertEquals(1e-9f, t.get("l.input_scale").floatAt(0));
    }
}
