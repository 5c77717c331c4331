package dev.qvlm.quant;

import dev.qvlm.QvlmException;

import java.util.Locale;

/**
 * Which runtime a saved checkpoint is for ({@code qvlm quantize --target}). Every target writes the same layout
 * (llava-hf key names, compressed-tensors format chosen by {@link CompressedTensors#formatFor}, {@code re:} ignore
 * patterns, scales in the weight dtype); they differ in the weight symmetry picked when the user does not choose
 * one, and in which settings they refuse. The rules come from reading the loaders (README, "Saved checkpoints"):
 * <ul>
 *   <li>{@link #VLLM}: vLLM's CompressedTensorsConfig._get_scheme_from_parts. Weight-only runs through
 *       CompressedTensorsWNA16 (pack-quantized, 4 or 8 bits, channel or group); int8 W8A8 (static per-tensor or
 *       dynamic per-token inputs) and W4A8 (dynamic per-token inputs only) need symmetric per-channel weights;
 *       anything else raises "No compressed-tensors compatible scheme was found".</li>
 *   <li>{@link #TRANSFORMERS}: compressed-tensors decompresses every integer setting we write (2–8 bits, static or
 *       dynamic inputs) and fake-quantizes the inputs, so nothing is refused.</li>
 *   <li>{@link #QVLM}: our own loader; nothing refused, asymmetric weights by default (the most accurate).</li>
 * </ul>
 * vLLM and transformers default to symmetric weights: every version of both loads them, whereas packed
 * asymmetric zero points need vLLM's WNA16 zero-point support (2025) and compressed-tensors ≥ 0.9.4.
 */
public enum SaveTarget {
    VLLM, TRANSFORMERS, QVLM;

    /** The most portable target (its folders load in vLLM, transformers and qvlm): the default of {@code --target}. */
    public static final SaveTarget DEFAULT = VLLM;

    public static SaveTarget parse(String s) {
        for (SaveTarget t : values()) if (t.id().equals(s.toLowerCase(Locale.ROOT))) return t;
        throw new QvlmException("--target: unknown target '" + s + "' (expected vllm, transformers or qvlm)");
    }

    public String id() {
        return name().toLowerCase(Locale.ROOT);
    }

    /** Weight symmetry when the user gives neither --wsym nor --no-wsym. */
    public boolean defaultSymmetricWeights() {
        return this != QVLM;
    }

    /**
     * Refuses, with one message naming what would work, a setting this target cannot run.
     *
     * @param weights     weight quantizer (null: nothing to save)
     * @param activations input quantizer, or null for weight-only
     * @param dynamic     per-token input ranges at run time
     */
    public void check(QuantArgs weights, QuantArgs activations, boolean dynamic) {
        if (weights == null)
            throw new QvlmException("--out: saving needs quantized weights (--wbits 2..8); activation-only settings are evaluated in memory only");
        if (this != VLLM) return;
        String setting = "W" + weights.bits() + "A" + (activations == null ? 16 : activations.bits())
                + (activations != null ? (dynamic ? " with dynamic per-token inputs" : " with static inputs") : "");
        String elsewhere = " or save for another runtime with --target transformers or --target qvlm";
        if (activations == null) {
            if (weights.bits() != 4 && weights.bits() != 8)
                throw new QvlmException("--target vllm: vLLM has no scheme for " + setting + " (its weight-only kernels take"
                        + " 4 or 8 bits): use --wbits 4 or 8," + elsewhere);
            if (weights.granularity() == QuantArgs.Granularity.TENSOR)
                throw new QvlmException("--target vllm: vLLM's weight-only scheme needs per-channel or per-group weights,"
                        + " not per-tensor;" + elsewhere);
            return;
        }
        boolean w8a8 = weights.bits() == 8 && activations.bits() == 8;
        boolean w4a8 = weights.bits() == 4 && activations.bits() == 8 && dynamic;
        if (!w8a8 && !w4a8) {
            String hint = weights.bits() == 4 && activations.bits() == 8
                    ? "vLLM runs W4A8 only with dynamic per-token inputs: add --act-dynamic,"
                    : "vLLM's integer schemes are W4A16, W8A16, W8A8 (static or --act-dynamic) and W4A8 --act-dynamic: change --wbits/--abits,";
            throw new QvlmException("--target vllm: vLLM has no scheme for " + setting + "; " + hint + elsewhere);
        }
        if (!weights.symmetric())
            throw new QvlmException("--target vllm: vLLM's " + (w8a8 ? "int8 W8A8" : "W4A8") + " schemes need symmetric"
                    + " weights: drop --no-wsym (this target defaults to --wsym)," + elsewhere);
        if (w8a8 && weights.granularity() == QuantArgs.Granularity.GROUP)
            throw new QvlmException("--target vllm: vLLM's int8 W8A8 schemes take per-channel or per-tensor weights,"
                    + " not groups: drop --group," + elsewhere);
        if (w4a8 && weights.granularity() == QuantArgs.Granularity.TENSOR)
            throw new QvlmException("--target vllm: vLLM's W4A8 scheme needs per-channel or per-group weights;" + elsewhere);
    }
}
