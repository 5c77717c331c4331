package dev.qvlm.calib;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** What a quantization run did and found; written as quantization_report.json and printed as a summary. */
public final class QuantReport {
    public record Layer(String stack, int index, String name, Double dependencyToNext, Double entropy, Double outputRange) {}

    /** Chosen percentiles: weight clip, and the activation range's lower / upper tail clips (equal unless searched separately). */
    public record Choice(double weightClip, Double activationClipLow, Double activationClipHigh) {}

    public record Block(String stack, int first, int last, String search, int evaluations, int sweeps,
                        double relMseBefore, double relMseAfter, double seconds, Map<String, Choice> choices) {}

    public record PairCheck(String stack, int k, double dependency, double relMseSequential, double relMseJoint,
                            double gain) {}

    public String method;
    public String setting;
    public String scope;
    public int calibSamples;
    public long seed;
    public double[] grid;
    public Map<String, Double> h0 = new LinkedHashMap<>();
    public int entropyLevels;
    public List<Layer> layers = new ArrayList<>();
    public List<Block> blocks = new ArrayList<>();
    public Map<String, Double> phaseSeconds = new LinkedHashMap<>();
    public long peakHeapMB;
    public List<PairCheck> entropyCheck;
    public Double entropyCorrelation;
    public String notes;
    /** Weight rounding (rtn, gptq, awq) and SmoothQuant α (null = off). */
    public String weights;
    public Double smooth;
    /** Folded scales: per scale group, the SmoothQuant α or the AWQ α its search chose. */
    public Map<String, Double> equalization = new LinkedHashMap<>();
    /** The visual-encoder optimisation that ran before this calibration (null without --veo). */
    public dev.qvlm.train.VeoReport veo;
    /** D(k, k+1) per stack of the quantized model on the calibration prompts (with --veo or --dependency). */
    public Map<String, double[]> dependency;
    public Double meanDependency;

    public String summary() {
        StringBuilder sb = new StringBuilder();
        sb.append(String.format("method %s, weights %s%s, %s, scope %s, %d calibration samples (seed %d)%n", method, weights,
                smooth == null ? "" : ", smooth α " + smooth, setting, scope, calibSamples, seed));
        if (!h0.isEmpty()) {
            sb.append("layer dependency D(k,k+1):\n");
            for (Layer l : layers)
                if (l.dependencyToNext() != null)
                    sb.append(String.format("  %-8s %2d  D=%.4f  H=%.4f%n", l.stack(), l.index(), l.dependencyToNext(), l.entropy()));
            h0.forEach((k, v) -> sb.append(String.format("  h0[%s] = %.4f%n", k, v)));
        }
        sb.append(String.format("%-9s %-7s %-12s %5s %11s %11s %8s%n", "stack", "layers", "search", "evals", "relMSE rtn", "relMSE now", "time s"));
        for (Block b : blocks)
            sb.append(String.format("%-9s %-7s %-12s %5d %11.3e %11.3e %8.1f%n", b.stack(),
                    b.first() == b.last() ? String.valueOf(b.first()) : b.first() + "-" + b.last(), b.search(),
                    b.evaluations(), b.relMseBefore(), b.relMseAfter(), b.seconds()));
        if (entropyCorrelation != null)
            sb.append(String.format("entropy proxy check: corr(D, joint-search gain) = %.3f over %d pairs%n", entropyCorrelation, entropyCheck.size()));
        if (veo != null) sb.append(veo.summary());
        if (dependency != null) {
            sb.append("D(k,k+1) of the quantized model:");
            dependency.forEach((k, v) -> {
                sb.append(' ').append(k).append(':');
                for (double d : v) sb.append(String.format(" %.4f", d));
                sb.append(';');
            });
            sb.append(String.format(" mean %.4f%n", meanDependency));
        }
        sb.append("phases:");
        phaseSeconds.forEach((k, v) -> sb.append(String.format(" %s %.1f s;", k, v)));
        sb.append(String.format(" peak heap %d MB", peakHeapMB));
        return sb.toString();
    }
}
