package dev.qvlm.calib;

import dev.qvlm.model.Linear;

import java.util.List;

/**
 * Linears that share one input, and the operation producing that input into which a per-channel scale s folds
 * exactly: a norm (LayerNorm/RMSNorm weight and bias divided by s) or a linear (its rows and bias divided by s). The
 * linears then take W·diag(s), so the full-precision function is unchanged and nothing runs at inference time.
 *
 * @param normWeight  the norm's weight (null when the previous op is a linear); modified in place
 * @param normBias    the norm's bias, or null (RMSNorm)
 * @param prevLinear  the linear producing the input (null when it is a norm)
 */
record ScaleGroup(String label, float[] normWeight, String normWeightName, float[] normBias, String normBiasName,
                  Linear prevLinear, List<Linear> linears) {

    static ScaleGroup afterNorm(String label, float[] w, String wName, float[] b, String bName, List<Linear> linears) {
        return new ScaleGroup(label, w, wName, b, bName, null, linears);
    }

    static ScaleGroup afterLinear(Linear prev, List<Linear> linears) {
        return new ScaleGroup(prev.name(), null, null, null, null, prev, linears);
    }

    /** SmoothQuant folds only into norms, as its reference does (smooth_ln_fcs). */
    boolean afterNorm() {
        return normWeight != null;
    }

    int channels() {
        return linears.get(0).in();
    }
}
