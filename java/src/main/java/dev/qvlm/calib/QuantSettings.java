package dev.qvlm.calib;

import dev.qvlm.QvlmException;
import dev.qvlm.model.Linear;
import dev.qvlm.quant.Gptq;
import dev.qvlm.quant.QuantArgs;

import java.util.EnumSet;
import java.util.Set;

/**
 * Everything that defines one quantization run.
 *
 * @param weights      weight quantizer (null = keep weights in full precision)
 * @param activations  input-activation quantizer of each linear (null = A16)
 * @param actDynamic   per-token ranges at run time instead of static calibrated ranges
 * @param scope        which parts of LLaVA have their linears quantized
 * @param grid         clipping percentiles to search (1.0 = min–max)
 * @param h0           block threshold; NaN = mean of D over all consecutive pairs
 * @param maxBlock     most layers in one block
 * @param maxSweeps    coordinate-descent sweeps at most
 * @param exhaustiveLimit joint grid sizes up to this are searched exhaustively
 * @param entropyLevelsBits levels of the soft assignment are 2^bits (the activation bits, or the weight bits for A16)
 * @param separateBounds search the lower and upper clip of each activation range separately (widened search)
 * @param lp             the search criterion is Σ|y − t|^lp / Σ|t|^lp (2 = relative MSE, the paper's; others as in LAPQ)
 * @param rounding       how weights are rounded onto the chosen grid (RTN, GPTQ, AWQ scales + clipping)
 * @param smooth         SmoothQuant migration strength α in [0, 1]; NaN = no smoothing
 * @param gptq           GPTQ block size, dampening and act-order
 */
public record QuantSettings(Method method, QuantArgs weights, QuantArgs activations, boolean actDynamic,
                            Set<Linear.Part> scope, double[] grid, double h0, int maxBlock, int maxSweeps,
                            int exhaustiveLimit, int entropyLevelsBits, boolean separateBounds, double lp,
                            WeightRounding rounding, double smooth, Gptq.Options gptq) {

    /** Bound search only: round-to-nearest weights, no smoothing. */
    public QuantSettings(Method method, QuantArgs weights, QuantArgs activations, boolean actDynamic,
                         Set<Linear.Part> scope, double[] grid, double h0, int maxBlock, int maxSweeps,
                         int exhaustiveLimit, int entropyLevelsBits, boolean separateBounds, double lp) {
        this(method, weights, activations, actDynamic, scope, grid, h0, maxBlock, maxSweeps, exhaustiveLimit,
                entropyLevelsBits, separateBounds, lp, WeightRounding.RTN, Double.NaN, Gptq.Options.DEFAULT);
    }

    public QuantSettings withRecipe(Method m, WeightRounding r, double smoothAlpha) {
        return new QuantSettings(m, weights, activations, actDynamic, scope, grid, h0, maxBlock, maxSweeps,
                exhaustiveLimit, entropyLevelsBits, separateBounds, lp, r, smoothAlpha, gptq);
    }

    public boolean smoothing() {
        return !Double.isNaN(smooth);
    }

    /** The recipe as compare prints it: method, with the weight rounding and smoothing when not plain. */
    public String recipe() {
        String s = rounding == WeightRounding.RTN ? method.id() : rounding.id() + (method == Method.RTN ? "" : "+" + method.id());
        return smoothing() ? s + "+sq" + smooth : s;
    }

    public static final double[] PAPER_GRID = {1.0, 0.995, 0.99, 0.985, 0.98};

    public static Set<Linear.Part> parseScope(String s) {
        return switch (s.toLowerCase()) {
            case "llm" -> EnumSet.of(Linear.Part.LLM);
            case "vision" -> EnumSet.of(Linear.Part.VISION);
            case "projector" -> EnumSet.of(Linear.Part.PROJECTOR);
            case "all" -> EnumSet.of(Linear.Part.VISION, Linear.Part.PROJECTOR, Linear.Part.LLM);
            default -> throw new QvlmException("--scope: unknown scope '" + s + "' (expected llm, vision, projector or all)");
        };
    }

    public boolean staticActivations() {
        return activations != null && !actDynamic;
    }

    /** A label like W4A4 or W4A16-g128. */
    public String label() {
        String w = weights == null ? "W16" : "W" + weights.bits();
        String a = activations == null ? "A16" : "A" + activations.bits();
        String g = weights != null && weights.granularity() == QuantArgs.Granularity.GROUP ? "-g" + weights.groupSize() : "";
        return w + a + g;
    }
}
