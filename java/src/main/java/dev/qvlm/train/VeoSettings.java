package dev.qvlm.train;

import dev.qvlm.QvlmException;

/**
 * Hyper-parameters of the visual-encoder optimisation (paper Eq. 8–10; the paper gives none of them).
 *
 * @param lambda1 weight of L_ent (the gradient-weighted conditional entropies)
 * @param lambda2 weight of L_err (quantization error at the vision output and the model output)
 * @param eta     weight of the model-output error inside L_err
 * @param lr      Adam learning rate
 * @param epochs  passes over the calibration pairs
 * @param batch   pairs per Adam step
 * @param params  which vision parameters train
 * @param seed    order of the pairs in each epoch
 * @param recalibrate re-run the min–max calibration of the quantized model on the current tower every this many
 *                epochs (0 = only once, before training)
 */
public record VeoSettings(double lambda1, double lambda2, double eta, double lr, int epochs, int batch, Params params,
                          long seed, int recalibrate) {
    /** weights: the linear weights of the encoder layers that feed the features; all: also their biases and LayerNorms. */
    public enum Params { WEIGHTS, ALL }

    public VeoSettings {
        if (!(lambda1 >= 0) || !(lambda2 >= 0) || !(eta >= 0))
            throw new QvlmException("--veo-lambda1, --veo-lambda2 and --veo-eta must be >= 0");
        if (!(lr > 0 && lr < 1)) throw new QvlmException("--veo-lr must be in (0, 1), got " + lr);
        if (epochs < 1) throw new QvlmException("--veo-epochs must be at least 1, got " + epochs);
        if (recalibrate < 0) throw new QvlmException("--veo-recalibrate must be >= 0, got " + recalibrate);
        if (batch < 1) throw new QvlmException("--veo-batch must be at least 1, got " + batch);
    }

    public static Params parseParams(String s) {
        return switch (s) {
            case "weights" -> Params.WEIGHTS;
            case "all" -> Params.ALL;
            default -> throw new QvlmException("--veo-params: expected weights or all, got '" + s + "'");
        };
    }
}
