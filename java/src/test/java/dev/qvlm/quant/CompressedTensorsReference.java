package dev.qvlm.quant;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A decoder of compressed-tensors checkpoints written from compressed-tensors' own code, not from our writer, so
 * the tests can check what another runtime would read:
 * <ul>
 *   <li>{@code compressors/pack_quantized/helpers.py}, unpack_from_int32: element i of a packed row occupies the
 *       global bit positions i·b … i·b+b−1 of the row's int32 words (word k holds bits 32k … 32k+31, least
 *       significant first, an element may straddle two words), minus the offset 2^(b−1); packed_dim=0 (zero
 *       points) is the same along the columns of the transposed tensor.</li>
 *   <li>{@code compressors/pack_quantized/base.py}, decompress: weight_shape gives [out, in]; zero points are packed
 *       only for asymmetric group/channel weights (PACK_ZP_STRATS), their unpacked shape [out, scale.shape[-1]].</li>
 *   <li>{@code compressors/naive_quantized/base.py}: naive-/int-quantized store the int8 q in "weight".</li>
 *   <li>{@code quantization/lifecycle/forward.py}, dequantize/_dequantize: the strategy follows from the scale's
 *       shape (0-/1-D: tensor; [out, 1]: channel; [out, G]: group of in/G columns) and the value is
 *       (q − zp) · scale computed in the scale's dtype.</li>
 * </ul>
 * The safetensors container is parsed here too (header JSON + little-endian data), independent of our reader.
 */
public final class CompressedTensorsReference {
    private CompressedTensorsReference() {}

    public record Tensor(String dtype, long[] shape, ByteBuffer data) {
        long numel() {
            long n = 1;
            for (long d : shape) n *= d;
            return n;
        }

        int elementSize() {
            return switch (dtype) {
                case "I8", "U8", "BOOL" -> 1;
                case "F16", "BF16", "I16" -> 2;
                case "F32", "I32" -> 4;
                case "F64", "I64" -> 8;
                default -> throw new AssertionError("dtype " + dtype);
            };
        }

        public long longAt(long i) {
            return switch (dtype) {
                case "I8" -> data.get((int) i);
                case "I32" -> data.getInt((int) (4 * i));
                case "I64" -> data.getLong((int) (8 * i));
                default -> throw new AssertionError("not an integer tensor: " + dtype);
            };
        }

        public float floatAt(long i) {
            return switch (dtype) {
                case "F32" -> data.getFloat((int) (4 * i));
                case "F16" -> Float.float16ToFloat(data.getShort((int) (2 * i)));
                case "BF16" -> Float.intBitsToFloat((data.getShort((int) (2 * i)) & 0xffff) << 16);
                default -> throw new AssertionError("not a float tensor: " + dtype);
            };
        }
    }

    /** The tensors of a safetensors file in header order, checking the reference writer's layout on the way. */
    public static Map<String, Tensor> read(Path file) throws IOException {
        byte[] all = Files.readAllBytes(file);
        ByteBuffer bb = ByteBuffer.wrap(all).order(ByteOrder.LITTLE_ENDIAN);
        long n = bb.getLong(0);
        assertEquals(0, n % 8, file + ": header length is a multiple of 8 (safetensors pads it with spaces)");
        JsonNode h = new ObjectMapper().readTree(new String(all, 8, (int) n, StandardCharsets.UTF_8));
        Map<String, Tensor> out = new LinkedHashMap<>();
        long expectedBegin = 0;
        for (Iterator<Map.Entry<String, JsonNode>> it = h.fields(); it.hasNext(); ) {
            var e = it.next();
            if (e.getKey().equals("__metadata__")) continue;
            JsonNode t = e.getValue();
            long[] shape = new long[t.get("shape").size()];
            for (int i = 0; i < shape.length; i++) shape[i] = t.get("shape").get(i).asLong();
            long b = t.get("data_offsets").get(0).asLong(), end = t.get("data_offsets").get(1).asLong();
            assertEquals(expectedBegin, b, e.getKey() + ": tensors are contiguous in header order");
            expectedBegin = end;
            ByteBuffer slice = ByteBuffer.wrap(all, (int) (8 + n + b), (int) (end - b)).slice().order(ByteOrder.LITTLE_ENDIAN);
            Tensor tensor = new Tensor(t.get("dtype").asText(), shape, slice);
            assertEquals(tensor.numel() * tensor.elementSize(), end - b, e.getKey() + ": byte size");
            assertEquals(0, b % tensor.elementSize(), e.getKey() + ": data offset " + b + " aligned to its " + tensor.elementSize() + "-byte elements");
            out.put(e.getKey(), tensor);
        }
        assertEquals(all.length, 8 + n + expectedBegin, file + ": no trailing bytes");
        return out;
    }

    /** unpack_from_int32 along dim 1: [rows, words] int32 → signed values [rows, cols]. */
    static int[] unpack(Tensor packed, int rows, int cols, int bits) {
        int words = (int) packed.shape()[1];
        assertEquals(rows, packed.shape()[0], "packed rows");
        assertEquals((cols * (long) bits + 31) / 32, words, "ceil(cols·b/32) words per row");
        int offset = 1 << (bits - 1);
        int[] out = new int[rows * cols];
        for (int r = 0; r < rows; r++)
            for (int i = 0; i < cols; i++) {
                long bit = (long) i * bits;
                int w = (int) (bit / 32), shift = (int) (bit % 32);
                long lo = (packed.longAt((long) r * words + w) & 0xffffffffL) >>> shift;
                long hi = shift + bits > 32 ? (packed.longAt((long) r * words + w + 1) & 0xffffffffL) << (32 - shift) : 0;
                out[r * cols + i] = (int) ((lo | hi) & ((1L << bits) - 1)) - offset;
            }
        return out;
    }

    /** unpack_from_int32 with packed_dim=0: [words, cols] int32 → signed [rows, cols] (rows packed). */
    static int[] unpackRows(Tensor packed, int rows, int cols, int bits) {
        int words = (int) packed.shape()[0];
        assertEquals(cols, packed.shape()[1], "packed zero-point columns");
        assertEquals((rows * (long) bits + 31) / 32, words, "ceil(rows·b/32) words per column");
        int offset = 1 << (bits - 1);
        int[] out = new int[rows * cols];
        for (int c = 0; c < cols; c++)
            for (int i = 0; i < rows; i++) {
                long bit = (long) i * bits;
                int w = (int) (bit / 32), shift = (int) (bit % 32);
                long lo = (packed.longAt((long) w * cols + c) & 0xffffffffL) >>> shift;
                long hi = shift + bits > 32 ? (packed.longAt((long) (w + 1) * cols + c) & 0xffffffffL) << (32 - shift) : 0;
                out[i * cols + c] = (int) ((lo | hi) & ((1L << bits) - 1)) - offset;
            }
        return out;
    }

    /** A value rounded to the scale dtype, as torch computes (q − zp) · scale in that dtype. */
    public static float inDtype(float v, String dtype) {
        return switch (dtype) {
            case "F32" -> v;
            case "F16" -> Float.float16ToFloat(Float.floatToFloat16(v));
            case "BF16" -> {
                int bits = Float.floatToRawIntBits(v);
                bits += 0x7fff + ((bits >>> 16) & 1);
                yield Float.intBitsToFloat(bits & 0xffff0000);
            }
            default -> throw new AssertionError(dtype);
        };
    }

    /** The dequantized weight [out × in] of module {@code prefix}, as compressed-tensors decompresses it. */
    public static float[] dequantize(Map<String, Tensor> t, String prefix, JsonNode quantizationConfig) {
        String format = quantizationConfig.get("format").asText();
        JsonNode args = quantizationConfig.get("config_groups").elements().next().get("weights");
        int bits = args.get("num_bits").asInt();
        boolean sym = args.get("symmetric").asBoolean();
        String strategy = args.get("strategy").asText();
        Tensor scale = t.get(prefix + ".weight_scale");
        assertTrue(scale != null, prefix + ".weight_scale");
        int rows, cols;
        int[] q;
        int[] zp = null;
        int scaleCols = scale.shape().length == 2 ? (int) scale.shape()[1] : 1;
        if (format.equals("pack-quantized")) {
            Tensor shape = t.get(prefix + ".weight_shape");
            assertEquals("I64", shape.dtype(), "weight_shape dtype");
            rows = (int) shape.longAt(0);
            cols = (int) shape.longAt(1);
            Tensor packed = t.get(prefix + ".weight_packed");
            assertEquals("I32", packed.dtype(), "weight_packed dtype");
            q = unpack(packed, rows, cols, bits);
            Tensor z = t.get(prefix + ".weight_zero_point");
            if (!sym && (strategy.equals("group") || strategy.equals("channel"))) {
                assertEquals("I32", z.dtype(), "packed zero points");
                zp = unpackRows(z, rows, scaleCols, bits);
            } else if (!sym) {
                zp = new int[] {(int) z.longAt(0)};
            } else {
                assertTrue(z == null, "symmetric: no zero point stored (compression_param_names)");
            }
        } else {
            Tensor w = t.get(prefix + ".weight");
            assertEquals("I8", w.dtype(), format + ": int8 weight");
            rows = (int) w.shape()[0];
            cols = (int) w.shape()[1];
            q = new int[rows * cols];
            for (int i = 0; i < q.length; i++) q[i] = (int) w.longAt(i);
            Tensor z = t.get(prefix + ".weight_zero_point");
            if (!sym) {
                assertEquals("I8", z.dtype(), "int8 zero points");
                zp = new int[(int) z.numel()];
                for (int i = 0; i < zp.length; i++) zp[i] = (int) z.longAt(i);
            } else {
                assertTrue(z == null, "symmetric: no zero point stored");
            }
        }
        // forward.py dequantize: the strategy from the scale's shape
        int groupSize;
        if (scale.shape().length <= 1) {
            assertEquals(1, scale.numel(), "one scale for a per-tensor weight");
            groupSize = 0;
        } else {
            assertEquals(rows, scale.shape()[0], "scale rows");
            groupSize = cols / scaleCols;
            assertEquals(cols, groupSize * scaleCols, "columns split into whole groups");
        }
        float[] out = new float[rows * cols];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++) {
                int g = groupSize == 0 ? 0 : r * scaleCols + c / groupSize;
                float s = scale.floatAt(g);
                int z = zp == null ? 0 : zp[zp.length == 1 ? 0 : g];
                float diff = inDtype((float) (q[r * cols + c] - z), scale.dtype());
                out[r * cols + c] = inDtype(diff * s, scale.dtype());
            }
        return out;
    }
}
