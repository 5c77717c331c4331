package dev.qvlm.train;

import picocli.CommandLine.Option;

/** CLI options of the visual-encoder optimisation (a picocli mixin of {@code quantize}). */
public final class VeoOptions {
    @Option(names = "--veo", description = {"Visual-encoder optimisation (Q-VLM §3.3, Eq. 8–10) before quantizing: the vision tower is",
            "fine-tuned, fake-quantized (min-max) with the LLM frozen and quantized, on the calibration pairs, to minimise",
            "L = L_reg + λ1·L_ent + λ2·L_err; then the chosen --method runs on the tuned tower. Needs the CPU backend."})
    public boolean veo;

    @Option(names = "--veo-lambda1", defaultValue = "1.0", paramLabel = "X", description = "λ1, weight of L_ent (default ${DEFAULT-VALUE}).")
    public double lambda1;

    @Option(names = "--veo-lambda2", defaultValue = "10.0", paramLabel = "X", description = "λ2, weight of L_err (default ${DEFAULT-VALUE}).")
    public double lambda2;

    @Option(names = "--veo-eta", defaultValue = "1.0", paramLabel = "X", description = "η, weight of the model-output error inside L_err (default ${DEFAULT-VALUE}).")
    public double eta;

    @Option(names = "--veo-lr", defaultValue = "1e-4", paramLabel = "X", description = "Adam learning rate (default ${DEFAULT-VALUE}).")
    public double lr;

    @Option(names = "--veo-epochs", defaultValue = "10", paramLabel = "N", description = "Epochs over the calibration pairs (default ${DEFAULT-VALUE}).")
    public int epochs;

    @Option(names = "--veo-batch", defaultValue = "8", paramLabel = "N", description = "Pairs per step (default ${DEFAULT-VALUE}).")
    public int batch;

    @Option(names = "--veo-params", defaultValue = "weights", paramLabel = "P",
            description = "weights (default: linear weights of the encoder layers) or all (also biases and LayerNorms; in-memory only, not saved with --out).")
    public String params;

    @Option(names = "--veo-recalibrate", defaultValue = "1", paramLabel = "N",
            description = "Re-run the min-max calibration of the quantized model on the current tower every N epochs (default ${DEFAULT-VALUE}: every epoch; 0 = once, before training).")
    public int recalibrate;

    /** The settings, or null without --veo. */
    public VeoSettings settings(long seed) {
        if (!veo) return null;
        return new VeoSettings(lambda1, lambda2, eta, lr, epochs, batch, VeoSettings.parseParams(params), seed, recalibrate);
    }
}
