package dev.qvlm.quant;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.qvlm.QvlmException;
import dev.qvlm.safetensors.DType;
import dev.qvlm.safetensors.SafeTensorsWriter;
import dev.qvlm.safetensors.TensorInfo;
import dev.qvlm.tensor.F32Matrix;
import dev.qvlm.tensor.HalfMatrix;
import dev.qvlm.tensor.Matrix;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.regex.Pattern;

/**
 * Quantized checkpoints in the compressed-tensors format (quant_method "compressed-tensors", read by vLLM and
 * transformers), as implemented by neuralmagic/vllm-project compressed-tensors:
 * {@code compressors/quantized_compressors/pack_quantized.py} (pack_to_int32, PackedQuantizationCompressor),
 * {@code naive_quantized.py} (int-quantized), {@code quantization/utils/helpers.py} (calculate_qparams,
 * calculate_range) and {@code quantization/lifecycle/initialize.py} (parameter shapes).
 *
 * <p>Their integers are signed: q ∈ [−2^(b−1), 2^(b−1) − 1] and zero points likewise, value = (q − zp) · scale.
 * Our unsigned codes and zero points are the same numbers plus 2^(b−1), so (code − zero) = (q − zp) exactly.
 * Per linear {@code prefix}:
 * <pre>
 * pack-quantized (weight-only, 4 or 8 bits; any width dividing 32 reads back)
 *   weight_packed      I32 [out, ceil(in·b/32)]    value j of word [r, w] (bits b·j..b·j+b−1) = q[r, (32/b)·w + j] + 2^(b−1)
 *   weight_scale       F32/F16/BF16 [out, in/g] | [out, 1] (channel) | [1] (tensor)
 *   weight_zero_point  I32 [ceil(out·b/32), groups] asymmetric group/channel: zp + 2^(b−1) packed along the OUTPUT dim
 *                      I8 [1]                      asymmetric tensor (not packed); symmetric: absent
 *   weight_shape       I64 [2] = {out, in}
 * naive-quantized (weight-only, other widths) and int-quantized (weights + input activations)
 *   weight             I8 [out, in] signed q;  weight_scale as above;  weight_zero_point I8 (asymmetric only)
 * static input activations
 *   input_scale        [1];  input_zero_point I8 [1] signed (asymmetric only)
 * </pre>
 * The format follows what compressed-tensors itself picks ({@code compressors/format.py}, infer_module_format:
 * int-quantized when inputs are quantized, else pack-quantized) and what every version of it and of vLLM reads:
 * pack-quantized only for 4 and 8 bits, whose per-word packing never changed (other widths moved to a dense
 * cross-word packing in compressed-tensors 0.18), naive-quantized for the other weight-only widths.
 * Scales here are computed as in the PyTorch reference of this project (symmetric: amax/(2^(b−1) − 1)), whereas
 * compressed-tensors' own observer divides by 2^(b−1); the file holds the scale used, so either dequantises right.
 */
public final class CompressedTensors {
    public static final String QUANT_METHOD = "compressed-tensors";
    public static final String PACK_QUANTIZED = "pack-quantized";
    public static final String INT_QUANTIZED = "int-quantized";
    public static final String NAIVE_QUANTIZED = "naive-quantized";
    private static final ObjectMapper OM = new ObjectMapper();

    private CompressedTensors() {}

    /**
     * The compression format of a setting: int-quantized when input activations are quantized (what vLLM's int8
     * W8A8 / W4A8 schemes read), pack-quantized for 4- and 8-bit weight-only (the only format vLLM's
     * CompressedTensorsWNA16 reads), naive-quantized for the other weight-only widths.
     */
    public static String formatFor(QuantArgs weights, QuantArgs activations) {
        if (weights == null) throw new IllegalArgumentException("weights quantizer is required");
        if (activations != null) return INT_QUANTIZED;
        return weights.bits() == 4 || weights.bits() == 8 ? PACK_QUANTIZED : NAIVE_QUANTIZED;
    }

    /**
     * The {@code quantization_config} object of config.json: one config group targeting every Linear.
     *
     * @param weights            weight quantizer (not null)
     * @param activations        input-activation quantizer, or null for weight-only (A16)
     * @param dynamicActivations per-call ranges (strategy token or tensor, no stored scale) instead of static ones
     * @param ignore             module names left in full precision (e.g. "language_model.lm_head")
     */
    public static ObjectNode quantizationConfig(QuantArgs weights, QuantArgs activations, boolean dynamicActivations,
                                                List<String> ignore) {
        if (weights == null) throw new IllegalArgumentException("weights quantizer is required");
        if (weights.granularity() == QuantArgs.Granularity.TOKEN)
            throw new IllegalArgumentException("weights cannot be quantized per token");
        ObjectNode qc = OM.createObjectNode();
        qc.put("quant_method", QUANT_METHOD);
        qc.put("format", formatFor(weights, activations));
        ObjectNode group = qc.putObject("config_groups").putObject("group_0");
        group.putArray("targets").add("Linear");
        group.set("weights", argsJson(weights, false));
        if (activations == null) {
            group.putNull("input_activations");
        } else {
            if (activations.granularity() == QuantArgs.Granularity.GROUP || activations.granularity() == QuantArgs.Granularity.CHANNEL)
                throw new IllegalArgumentException("input activations are quantized per tensor or per token, not " + activations.granularity());
            if (!dynamicActivations && activations.granularity() == QuantArgs.Granularity.TOKEN)
                throw new IllegalArgumentException("static activation quantization is per tensor");
            group.set("input_activations", argsJson(activations, dynamicActivations));
        }
        group.putNull("output_activations");
        ArrayNode ig = qc.putArray("ignore");
        if (ignore != null) ignore.forEach(ig::add);
        qc.putNull("kv_cache_scheme");
        qc.put("quantization_status", "compressed");
        return qc;
    }

    private static ObjectNode argsJson(QuantArgs a, boolean dynamic) {
        ObjectNode o = OM.createObjectNode();
        o.put("num_bits", a.bits());
        o.put("type", "int");
        o.put("symmetric", a.symmetric());
        o.put("strategy", a.granularity().name().toLowerCase(Locale.ROOT));
        if (a.granularity() == QuantArgs.Granularity.GROUP) o.put("group_size", a.groupSize());
        else o.putNull("group_size");
        o.putNull("block_structure");
        o.put("dynamic", dynamic);
        o.putNull("actorder");
        if (dynamic) o.putNull("observer"); // compressed-tensors: dynamic quantization has no observer
        else o.put("observer", "minmax");
        o.putObject("observer_kwargs");
        return o;
    }

    // ------------------------------------------------------------------------------------------------ writing

    /** {@link #writeLinear(SafeTensorsWriter, String, QuantizedWeight, ActQuantizer, DType)} with F32 scales (exact). */
    public static void writeLinear(SafeTensorsWriter w, String prefix, QuantizedWeight q, ActQuantizer act) {
        writeLinear(w, prefix, q, act, DType.F32);
    }

    /** {@link #writeLinear(SafeTensorsWriter, String, QuantizedWeight, ActQuantizer, DType, String)} in the format of {@link #formatFor}. */
    public static void writeLinear(SafeTensorsWriter w, String prefix, QuantizedWeight q, ActQuantizer act, DType scaleType) {
        writeLinear(w, prefix, q, act, scaleType, formatFor(q.args(), act == null ? null : act.args()));
    }

    /**
     * Adds one linear's quantized tensors (see the class comment) under {@code prefix} ("...q_proj").
     *
     * @param act       its input quantizer: static ones store input_scale (+ input_zero_point); dynamic or null store nothing
     * @param scaleType F32 (exact), F16 or BF16: compressed-tensors stores scales in the dtype of the original weight
     * @param format    {@link #PACK_QUANTIZED}, {@link #NAIVE_QUANTIZED} or {@link #INT_QUANTIZED}
     */
    public static void writeLinear(SafeTensorsWriter w, String prefix, QuantizedWeight q, ActQuantizer act, DType scaleType,
                                   String format) {
        int rows = q.rows(), cols = q.cols();
        int half = 1 << (q.bits() - 1);
        long[] scaleShape = switch (q.granularity()) {
            case TENSOR -> new long[] {1};
            case CHANNEL -> new long[] {rows, 1};
            case GROUP -> new long[] {rows, q.groupsPerRow()};
            case TOKEN -> throw new IllegalArgumentException("weights cannot be per token");
        };
        switch (format) {
            case PACK_QUANTIZED -> {
                if (32 % q.bits() != 0)
                    throw new IllegalArgumentException(prefix + ": pack-quantized needs a width dividing 32, not " + q.bits() + " bits");
                int per = 32 / q.bits();
                int words = (cols + per - 1) / per;
                w.addI32(prefix + ".weight_packed", new long[] {rows, words}, packAlongColumns(q.codes(), rows, cols, q.bits()));
                addFloats(w, prefix + ".weight_scale", scaleShape, q.scales(), scaleType);
                if (!q.symmetric()) {
                    if (q.granularity() == QuantArgs.Granularity.TENSOR) {
                        addI8(w, prefix + ".weight_zero_point", new long[] {1}, new int[] {q.zeros()[0] - half});
                    } else {
                        int gpr = q.groupsPerRow();
                        w.addI32(prefix + ".weight_zero_point", new long[] {(rows + per - 1) / per, gpr},
                                packAlongRows(q.zeros(), rows, gpr, q.bits()));
                    }
                }
                w.addI64(prefix + ".weight_shape", new long[] {2}, new long[] {rows, cols});
            }
            case NAIVE_QUANTIZED, INT_QUANTIZED -> {
                byte[] codes = q.codes();
                int[] signed = new int[codes.length];
                for (int i = 0; i < codes.length; i++) signed[i] = (codes[i] & 0xff) - half;
                addI8(w, prefix + ".weight", new long[] {rows, cols}, signed);
                addFloats(w, prefix + ".weight_scale", scaleShape, q.scales(), scaleType);
                if (!q.symmetric()) {
                    int[] z = new int[q.zeros().length];
                    for (int i = 0; i < z.length; i++) z[i] = q.zeros()[i] - half;
                    addI8(w, prefix + ".weight_zero_point", scaleShape, z);
                }
            }
            default -> throw new IllegalArgumentException("unknown compressed-tensors format '" + format + "'");
        }
        if (act != null && act.isStatic()) {
            addFloats(w, prefix + ".input_scale", new long[] {1}, new float[] {act.scale()}, scaleType);
            if (!act.args().symmetric())
                addI8(w, prefix + ".input_zero_point", new long[] {1},
                        new int[] {act.zeroPoint() - act.args().symmetricZero()});
        }
    }

    /** Unsigned b-bit codes [rows × cols] → int32 [rows, ceil(cols·b/32)], value j of a word at bits b·j (zero padded). */
    static int[] packAlongColumns(byte[] codes, int rows, int cols, int bits) {
        int per = 32 / bits, words = (cols + per - 1) / per, mask = (1 << bits) - 1;
        int[] out = new int[rows * words];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++)
                out[r * words + c / per] |= ((codes[r * cols + c] & 0xff) & mask) << (bits * (c % per));
        return out;
    }

    /** Unsigned b-bit zero points [rows × groups] → int32 [ceil(rows·b/32), groups], packed along the row (output) dim. */
    static int[] packAlongRows(int[] zeros, int rows, int groups, int bits) {
        int per = 32 / bits, mask = (1 << bits) - 1;
        int[] out = new int[((rows + per - 1) / per) * groups];
        for (int r = 0; r < rows; r++)
            for (int g = 0; g < groups; g++)
                out[(r / per) * groups + g] |= (zeros[r * groups + g] & mask) << (bits * (r % per));
        return out;
    }

    private static void addI8(SafeTensorsWriter w, String name, long[] shape, int[] v) {
        byte[] b = new byte[v.length];
        for (int i = 0; i < v.length; i++) {
            if (v[i] < Byte.MIN_VALUE || v[i] > Byte.MAX_VALUE) throw new IllegalArgumentException(name + ": " + v[i] + " is not int8");
            b[i] = (byte) v[i];
        }
        w.add(name, DType.I8, shape, MemorySegment.ofArray(b));
    }

    private static void addFloats(SafeTensorsWriter w, String name, long[] shape, float[] v, DType preferred) {
        DType type = holds(preferred, v) ? preferred : DType.F32;
        switch (type) {
            case F32 -> w.addF32(name, shape, v);
            case F16 -> w.addF16(name, shape, v);
            case BF16 -> {
                MemorySegment seg = MemorySegment.ofArray(new byte[v.length * 2]);
                ValueLayout.OfShort le = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
                for (int i = 0; i < v.length; i++) {
                    int bits = Float.floatToRawIntBits(v[i]);
                    bits += 0x7fff + ((bits >>> 16) & 1); // round to nearest even (finite scales only)
                    seg.setAtIndex(le, i, (short) (bits >>> 16));
                }
                w.add(name, DType.BF16, shape, seg);
            }
            default -> throw new IllegalArgumentException("scales are stored as F32, F16 or BF16, not " + type);
        }
    }

    /**
     * Whether every scale keeps its magnitude in {@code type}: a scale below half precision's range (the ε scale of
     * an input range that never saw data, e.g. a vision layer past the feature layer) would become 0 and is then
     * written in F32 for its tensor, which compressed-tensors and our loader read as they read any float scale.
     */
    static boolean holds(DType type, float[] v) {
        for (float x : v) {
            float back = switch (type) {
                case F16 -> Float.float16ToFloat(Float.floatToFloat16(x));
                case BF16 -> Float.intBitsToFloat(Float.floatToRawIntBits(x) & 0xffff0000); // magnitude check only
                default -> x;
            };
            if (x != 0 && (back == 0 || Float.isInfinite(back))) return false;
        }
        return true;
    }

    // ------------------------------------------------------------------------------------------------ config

    /** One config group: what its target layers' weights and inputs use (either may be null). */
    public record Scheme(List<String> targets, QuantArgs weights, QuantArgs inputs, boolean inputsDynamic) {}

    /** A parsed {@code quantization_config}. */
    public record Config(String format, List<Scheme> groups, List<String> ignore, String where) {
        /**
         * Parses the quantization_config object; {@code where} names its source (config.json path) in errors.
         */
        public static Config parse(JsonNode qc, String where) {
            if (qc == null || !qc.isObject()) throw new QvlmException(where + ": quantization_config is not an object");
            String method = qc.path("quant_method").asText("");
            if (!method.equals(QUANT_METHOD))
                throw new QvlmException(where + ": quant_method '" + method + "' is not supported (expected '" + QUANT_METHOD + "')");
            String format = qc.path("format").asText("");
            // absent: inferred from the stored tensors (weight_packed or int8 weight), as compressed-tensors does
            if (!format.isEmpty() && !format.equals(PACK_QUANTIZED) && !format.equals(NAIVE_QUANTIZED) && !format.equals(INT_QUANTIZED))
                throw new QvlmException(where + ": quantization_config format " + dev.qvlm.util.Confine.quote(format)
                        + " is not supported (expected '" + PACK_QUANTIZED + "', '" + NAIVE_QUANTIZED + "' or '" + INT_QUANTIZED + "')");
            JsonNode cg = qc.get("config_groups");
            if (cg == null || !cg.isObject() || cg.isEmpty())
                throw new QvlmException(where + ": quantization_config has no config_groups");
            List<Scheme> groups = new ArrayList<>();
            cg.fields().forEachRemaining(e -> {
                String gw = where + ": config_groups." + e.getKey();
                JsonNode g = e.getValue();
                List<String> targets = new ArrayList<>();
                g.path("targets").forEach(t -> targets.add(t.asText()));
                if (targets.isEmpty()) throw new QvlmException(gw + ": no targets");
                JsonNode wn = g.get("weights"), an = g.get("input_activations");
                QuantArgs wa = wn == null || wn.isNull() ? null : args(wn, gw + ".weights");
                QuantArgs aa = an == null || an.isNull() ? null : args(an, gw + ".input_activations");
                boolean dyn = an != null && !an.isNull() && dynamic(an.get("dynamic"), gw + ".input_activations");
                if (wa != null && wa.granularity() == QuantArgs.Granularity.TOKEN)
                    throw new QvlmException(gw + ".weights: strategy 'token' is not valid for weights");
                if (aa != null && !dyn && aa.granularity() != QuantArgs.Granularity.TENSOR)
                    throw new QvlmException(gw + ".input_activations: static activations must use strategy 'tensor', got '"
                            + aa.granularity().name().toLowerCase(Locale.ROOT) + "'");
                if (aa != null && dyn && aa.granularity() != QuantArgs.Granularity.TENSOR && aa.granularity() != QuantArgs.Granularity.TOKEN)
                    throw new QvlmException(gw + ".input_activations: dynamic activations must use strategy 'token' or 'tensor'");
                groups.add(new Scheme(List.copyOf(targets), wa, aa, dyn));
            });
            List<String> ignore = new ArrayList<>();
            qc.path("ignore").forEach(n -> ignore.add(n.asText()));
            for (Scheme g : groups) g.targets().forEach(t -> checkPattern(t, where + ": config_groups targets"));
            ignore.forEach(t -> checkPattern(t, where + ": ignore"));
            return new Config(format, List.copyOf(groups), List.copyOf(ignore), where);
        }

        /** The scheme of layer {@code name} (a module path such as "language_model.model.layers.0.mlp.up_proj"), or null if ignored / not targeted. */
        public Scheme schemeFor(String name) {
            for (String ig : ignore) if (matches(ig, name)) return null;
            for (Scheme s : groups)
                for (String t : s.targets()) if (t.equals("Linear") || matches(t, name)) return s;
            return null;
        }

        private static void checkPattern(String pattern, String where) {
            if (!pattern.startsWith("re:")) return;
            try {
                Pattern.compile(pattern.substring(3));
            } catch (java.util.regex.PatternSyntaxException e) {
                throw new QvlmException(where + ": " + dev.qvlm.util.Confine.quote(pattern) + " is not a valid regex");
            }
        }

        /** compressed-tensors: "re:" prefixes a regex matched from the start of the name (Python re.match), else the exact name or a suffix after a dot. */
        private static boolean matches(String pattern, String name) {
            if (pattern.startsWith("re:"))
                return dev.qvlm.util.RegexBudget.matcher(Pattern.compile(pattern.substring(3)), name, "quantization_config").lookingAt();
            return name.equals(pattern) || name.endsWith("." + pattern);
        }
    }

    private static boolean dynamic(JsonNode d, String where) {
        if (d == null || d.isNull()) return false;
        if (d.isBoolean()) return d.asBoolean();
        throw new QvlmException(where + ": dynamic = " + d + " is not supported (expected true or false)");
    }

    private static QuantArgs args(JsonNode n, String where) {
        String type = n.path("type").asText("int");
        if (!type.equalsIgnoreCase("int"))
            throw new QvlmException(where + ": type '" + type + "' is not supported (only integer quantization)");
        if (!n.path("num_bits").canConvertToInt()) throw new QvlmException(where + ": missing num_bits");
        int bits = n.path("num_bits").asInt();
        if (bits < QuantArgs.MIN_BITS || bits > QuantArgs.MAX_BITS)
            throw new QvlmException(where + ": num_bits " + bits + " is not supported (expected " + QuantArgs.MIN_BITS + ".." + QuantArgs.MAX_BITS + ")");
        boolean sym = n.path("symmetric").asBoolean(true); // pydantic default of QuantizationArgs
        JsonNode gsn = n.get("group_size");
        int gs = gsn == null || gsn.isNull() ? 0 : gsn.asInt();
        String strategy = n.path("strategy").isTextual() ? n.get("strategy").asText().toLowerCase(Locale.ROOT)
                : gs > 0 ? "group" : gs == -1 ? "channel" : "tensor"; // inferred as QuantizationArgs does
        if (n.path("actorder").isTextual() || n.path("actorder").asBoolean(false))
            throw new QvlmException(where + ": activation ordering (actorder, g_idx) is not supported");
        return switch (strategy) {
            case "tensor" -> QuantArgs.perTensor(bits, sym);
            case "channel" -> QuantArgs.perChannel(bits, sym);
            case "token" -> QuantArgs.perToken(bits, sym);
            case "group" -> {
                if (gs <= 0) throw new QvlmException(where + ": strategy 'group' needs a positive group_size, got " + gsn);
                yield QuantArgs.perGroup(bits, sym, gs);
            }
            default -> throw new QvlmException(where + ": strategy '" + strategy + "' is not supported (expected tensor, channel, group or token)");
        };
    }

    // ------------------------------------------------------------------------------------------------ reading

    /**
     * The weight of linear {@code prefix}: a {@link Q4Matrix} over the mapped weight_packed (zero copy) for 4-bit
     * pack-quantized, a dequantised {@link F32Matrix} for other quantized layouts, or the plain float weight
     * (F32/F16/BF16, mapped) for layers the config leaves unquantized.
     */
    public static Matrix readWeight(TensorSource src, String prefix, Config cfg) {
        Scheme s = cfg.schemeFor(prefix);
        String packedName = prefix + ".weight_packed";
        if (s != null && s.weights() != null && src.contains(packedName) && s.weights().bits() == 4) {
            int[] shape = weightShape(src, prefix);
            int rows = shape[0], cols = shape[1];
            TensorInfo pi = src.info(packedName);
            expect(pi, DType.I32, new long[] {rows, (cols + 7) / 8}, "4-bit weight_shape " + Arrays.toString(shape) + ", 8 values per int32");
            Params p = params(src, prefix, s.weights(), rows, cols);
            QuantArgs a = s.weights();
            int gs = a.granularity() == QuantArgs.Granularity.GROUP ? a.groupSize() : cols;
            int gpr = cols / gs;
            float[] scales = new float[rows * gpr];
            byte[] zeros = a.symmetric() ? null : new byte[rows * gpr];
            for (int r = 0; r < rows; r++)
                for (int g = 0; g < gpr; g++) {
                    int src0 = p.groupsPerRow == 0 ? 0 : r * gpr + g;
                    scales[r * gpr + g] = p.scales[src0];
                    if (zeros != null) zeros[r * gpr + g] = (byte) p.zeros[src0];
                }
            return new Q4Matrix(rows, cols, gs, src.segment(packedName), scales, zeros);
        }
        if (s != null && s.weights() != null && (src.contains(packedName) || isInt8Weight(src, prefix)))
            return readQuantizedWeight(src, prefix, cfg).toMatrix();
        String name = prefix + ".weight";
        TensorInfo t = src.info(name);
        if (t.rank() != 2) throw new QvlmException(t.file() + ": tensor '" + name + "' has shape " + t.shapeString() + ", expected a 2-D weight");
        return switch (t.dtype()) {
            case F32 -> new F32Matrix(t.dim(0), t.dim(1), src.segment(name));
            case F16 -> new HalfMatrix(t.dim(0), t.dim(1), src.segment(name), HalfMatrix.Kind.F16);
            case BF16 -> new HalfMatrix(t.dim(0), t.dim(1), src.segment(name), HalfMatrix.Kind.BF16);
            default -> throw new QvlmException(t.file() + ": tensor '" + name + "' has dtype " + t.dtype()
                    + " but the quantization_config of " + cfg.where() + " does not quantize '" + prefix + "'");
        };
    }

    private static boolean isInt8Weight(TensorSource src, String prefix) {
        return src.contains(prefix + ".weight") && src.info(prefix + ".weight").dtype() == DType.I8;
    }

    /** The quantized weight of linear {@code prefix} (codes, scales, zero points) from either layout. */
    public static QuantizedWeight readQuantizedWeight(TensorSource src, String prefix, Config cfg) {
        Scheme s = cfg.schemeFor(prefix);
        if (s == null || s.weights() == null)
            throw new QvlmException(cfg.where() + ": quantization_config does not quantize the weights of '" + prefix + "'");
        QuantArgs a = s.weights();
        int half = 1 << (a.bits() - 1);
        String packedName = prefix + ".weight_packed";
        int rows, cols;
        byte[] codes;
        if (src.contains(packedName)) {
            int[] shape = weightShape(src, prefix);
            rows = shape[0];
            cols = shape[1];
            int bits = a.bits();
            if (32 % bits != 0)
                throw new QvlmException(src.info(packedName).file() + ": tensor '" + packedName + "': " + bits
                        + "-bit pack-quantized weights are not supported (their packing changed between compressed-tensors versions)");
            int per = 32 / bits;
            int wpr = (cols + per - 1) / per;
            TensorInfo pi = src.info(packedName);
            expect(pi, DType.I32, new long[] {rows, wpr}, bits + "-bit weight_shape " + Arrays.toString(shape) + ", " + per + " values per int32");
            MemorySegment seg = src.segment(packedName);
            ValueLayout.OfInt le = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
            codes = new byte[Math.multiplyExact(rows, cols)];
            int mask = (1 << bits) - 1;
            for (int r = 0; r < rows; r++)
                for (int c = 0; c < cols; c++) {
                    int word = seg.getAtIndex(le, (long) r * wpr + c / per);
                    codes[r * cols + c] = (byte) ((word >>> (bits * (c % per))) & mask);
                }
        } else {
            String name = prefix + ".weight";
            TensorInfo t = src.info(name);
            if (t.dtype() != DType.I8 || t.rank() != 2)
                throw new QvlmException(t.file() + ": tensor '" + name + "' is " + t.dtype() + " " + t.shapeString()
                        + ", expected a 2-D I8 weight (int-quantized, " + a.label() + ")");
            rows = t.dim(0);
            cols = t.dim(1);
            MemorySegment seg = src.segment(name);
            codes = new byte[Math.multiplyExact(rows, cols)];
            for (int i = 0; i < codes.length; i++) {
                int q = seg.get(ValueLayout.JAVA_BYTE, i);
                if (q < -half || q >= half)
                    throw new QvlmException(t.file() + ": tensor '" + name + "' holds " + q + " at index " + i
                            + ", outside the " + a.bits() + "-bit range [" + -half + ", " + (half - 1) + "]");
                codes[i] = (byte) (q + half);
            }
        }
        Params p = params(src, prefix, a, rows, cols);
        return new QuantizedWeight(a, rows, cols, codes, p.scales, p.zeros);
    }

    private record Params(float[] scales, int[] zeros, int groupsPerRow) {}

    /** weight_scale and weight_zero_point as QuantizedWeight wants them ([groups], unsigned zero points). */
    private static Params params(TensorSource src, String prefix, QuantArgs a, int rows, int cols) {
        String sname = prefix + ".weight_scale", zname = prefix + ".weight_zero_point";
        a.validateFor(cols, src.contains(sname) ? src.info(sname).file() + ": '" + prefix + "'" : prefix);
        int gpr = a.groupsPerRow(cols);
        int groups = gpr == 0 ? 1 : rows * gpr;
        long[] expected = switch (a.granularity()) {
            case TENSOR -> new long[] {1};
            case CHANNEL -> new long[] {rows, 1};
            default -> new long[] {rows, gpr};
        };
        String why = a.label() + " weight " + rows + "x" + cols;
        TensorInfo si = src.info(sname);
        if (!si.dtype().isFloat()) throw new QvlmException(si.file() + ": tensor '" + sname + "' has dtype " + si.dtype() + ", expected a float type");
        expectNumel(si, expected, why);
        float[] scales = src.toFloatArray(sname);
        int half = 1 << (a.bits() - 1);
        int[] zeros = new int[groups];
        if (a.symmetric()) {
            Arrays.fill(zeros, half);
        } else {
            if (!src.contains(zname))
                throw new QvlmException(si.file() + ": asymmetric " + why + " of '" + prefix + "' needs tensor '" + zname + "', which is missing");
            TensorInfo zi = src.info(zname);
            if (src.contains(prefix + ".weight_packed") && a.granularity() != QuantArgs.Granularity.TENSOR) {
                int per = 32 / a.bits();
                expect(zi, DType.I32, new long[] {(rows + per - 1) / per, gpr}, why + ", zero points packed along the output dimension");
                long[] words = src.toLongArray(zname);
                int mask = (1 << a.bits()) - 1;
                for (int r = 0; r < rows; r++)
                    for (int g = 0; g < gpr; g++)
                        zeros[r * gpr + g] = (int) ((words[(r / per) * gpr + g] >>> (a.bits() * (r % per))) & mask);
            } else {
                if (zi.dtype().isFloat()) throw new QvlmException(zi.file() + ": tensor '" + zname + "' has dtype " + zi.dtype() + ", expected an integer type");
                expectNumel(zi, expected, why);
                long[] z = src.toLongArray(zname);
                for (int i = 0; i < groups; i++) {
                    if (z[i] < -half || z[i] >= half)
                        throw new QvlmException(zi.file() + ": tensor '" + zname + "' holds zero point " + z[i]
                                + ", outside the " + a.bits() + "-bit range [" + -half + ", " + (half - 1) + "]");
                    zeros[i] = (int) z[i] + half;
                }
            }
        }
        return new Params(scales, zeros, gpr);
    }

    private static int[] weightShape(TensorSource src, String prefix) {
        String name = prefix + ".weight_shape";
        if (!src.contains(name))
            throw new QvlmException(src.info(prefix + ".weight_packed").file() + ": pack-quantized '" + prefix + "' has no tensor '" + name + "'");
        TensorInfo t = src.info(name);
        long[] s = src.toLongArray(name);
        if (s.length != 2 || s[0] <= 0 || s[1] <= 0 || s[0] > Integer.MAX_VALUE || s[1] > Integer.MAX_VALUE)
            throw new QvlmException(t.file() + ": tensor '" + name + "' = " + Arrays.toString(s) + ", expected two positive dimensions [out, in]");
        return new int[] {(int) s[0], (int) s[1]};
    }

    private static void expect(TensorInfo t, DType dtype, long[] shape, String why) {
        if (t.dtype() != dtype)
            throw new QvlmException(t.file() + ": tensor '" + t.name() + "' has dtype " + t.dtype() + ", expected " + dtype + " (" + why + ")");
        if (!Arrays.equals(t.shape(), shape))
            throw new QvlmException(t.file() + ": tensor '" + t.name() + "' has shape " + t.shapeString() + ", expected "
                    + Arrays.toString(shape) + " (" + why + ")");
    }

    /** Shape check that accepts any rank with the same elements along the expected axes ([1], [] or [1, 1] for one scale). */
    private static void expectNumel(TensorInfo t, long[] shape, String why) {
        long n = 1;
        for (long d : shape) n *= d;
        boolean ok = Arrays.equals(t.shape(), shape) || (n == 1 && t.numel() == 1);
        if (!ok)
            throw new QvlmException(t.file() + ": tensor '" + t.name() + "' has shape " + t.shapeString() + ", expected "
                    + Arrays.toString(shape) + " (" + why + ")");
    }

    /**
     * The input quantizer of linear {@code prefix}: null when its inputs are not quantized, dynamic per token/tensor
     * as the config says, or static from input_scale / input_zero_point.
     */
    public static ActQuantizer readInputQuantizer(TensorSource src, String prefix, Config cfg) {
        Scheme s = cfg.schemeFor(prefix);
        if (s == null || s.inputs() == null) return null;
        QuantArgs a = s.inputs();
        if (s.inputsDynamic())
            return a.granularity() == QuantArgs.Granularity.TOKEN ? ActQuantizer.dynamicPerToken(a) : ActQuantizer.dynamicPerTensor(a);
        String sname = prefix + ".input_scale", zname = prefix + ".input_zero_point";
        if (!src.contains(sname))
            throw new QvlmException(cfg.where() + ": static input quantization of '" + prefix + "' needs tensor '" + sname + "', which is missing");
        TensorInfo si = src.info(sname);
        if (!si.dtype().isFloat() || si.numel() != 1)
            throw new QvlmException(si.file() + ": tensor '" + sname + "' is " + si.dtype() + " " + si.shapeString() + ", expected one float (per-tensor scale)");
        float scale = src.toFloatArray(sname)[0];
        int half = a.symmetricZero();
        int zero = half;
        if (src.contains(zname)) {
            TensorInfo zi = src.info(zname);
            if (zi.dtype().isFloat() || zi.numel() != 1)
                throw new QvlmException(zi.file() + ": tensor '" + zname + "' is " + zi.dtype() + " " + zi.shapeString() + ", expected one integer");
            long z = src.toLongArray(zname)[0];
            if (z < -half || z >= half)
                throw new QvlmException(zi.file() + ": tensor '" + zname + "' = " + z + ", outside the " + a.bits() + "-bit range");
            if (a.symmetric() && z != 0)
                throw new QvlmException(zi.file() + ": tensor '" + zname + "' = " + z + " but the config says symmetric (zero point 0)");
            zero = (int) z + half;
        } else if (!a.symmetric()) {
            throw new QvlmException(si.file() + ": asymmetric input quantization of '" + prefix + "' needs tensor '" + zname + "', which is missing");
        }
        if (!(scale > 0) || !Float.isFinite(scale))
            throw new QvlmException(si.file() + ": tensor '" + sname + "' = " + scale + ", expected a positive finite scale");
        return ActQuantizer.fromScale(a, scale, zero);
    }
}
