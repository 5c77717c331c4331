package dev.qvlm.train;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** What a VEO run did: settings, the loss curve per term, D per layer before and after, wall time. */
public final class VeoReport {
    /** One Adam step: the batch means of each term and the weighted total. */
    public record Step(int epoch, int step, double reg, double ent, double errVision, double errOutput, double total) {}

    public VeoSettings settings;
    public int pairs;
    public long trainableParameters;
    public String trains;
    /** How often the FP model already predicts the calibration answer token (sanity check of the L_reg target). */
    public double fpAnswerAccuracy;
    public List<Step> steps = new ArrayList<>();
    /** Mean of each term per epoch. */
    public List<Step> epochs = new ArrayList<>();
    /** D(k, k+1) per stack of the min–max-quantized model on the calibration pairs, before and after tuning. */
    public Map<String, double[]> dependencyBefore = new LinkedHashMap<>(), dependencyAfter = new LinkedHashMap<>();
    /** L_ent's layer weights ‖∂E/∂X_k‖ of the last batch, normalised to mean 1. */
    public double[] entropyWeights;
    /** Wall time per phase of the training steps. */
    public Map<String, Double> phaseSeconds = new LinkedHashMap<>();
    public double seconds;
    public long peakHeapMB;

    public String summary() {
        StringBuilder sb = new StringBuilder();
        sb.append(String.format("VEO: %d pairs, %d epochs, batch %d, lr %.2g, λ1 %.3g, λ2 %.3g, η %.3g; trains %s (%d parameters); %.1f s, peak heap %d MB%n",
                pairs, settings.epochs(), settings.batch(), settings.lr(), settings.lambda1(), settings.lambda2(), settings.eta(),
                trains, trainableParameters, seconds, peakHeapMB));
        sb.append("  step phases:");
        phaseSeconds.forEach((k, v) -> sb.append(String.format(" %s %.1f s;", k, v)));
        sb.append('\n');
        sb.append(String.format("  FP model predicts the answer token on %.1f %% of the pairs%n", 100 * fpAnswerAccuracy));
        sb.append(String.format("  %5s %9s %9s %9s %9s %9s%n", "epoch", "L_reg", "L_ent", "err_vis", "err_out", "total"));
        for (Step s : epochs)
            sb.append(String.format("  %5d %9.4f %9.4f %9.4f %9.4f %9.4f%n", s.epoch(), s.reg(), s.ent(), s.errVision(), s.errOutput(), s.total()));
        for (String k : dependencyBefore.keySet()) {
            sb.append(String.format("  D(k,k+1) %-6s before:", k));
            for (double d : dependencyBefore.get(k)) sb.append(String.format(" %.4f", d));
            sb.append("  after:");
            for (double d : dependencyAfter.get(k)) sb.append(String.format(" %.4f", d));
            sb.append('\n');
        }
        return sb.toString();
    }
}
