package dev.qvlm.calib;

import dev.qvlm.QvlmException;

/** Quantizer-bound selection methods compared in one harness. */
public enum Method {
    /** Min–max bounds (percentile 1.0) for every quantizer. */
    RTN,
    /** Paper Eq. 2: each linear's clipping percentiles minimise that linear's own output error, bottom to top. */
    LAYERWISE,
    /** Paper Eq. 3–7: entropy-guided blocks, all percentiles of a block searched jointly against the block output. */
    QVLM;

    public static Method parse(String s) {
        return switch (s.toLowerCase()) {
            case "rtn" -> RTN;
            case "layerwise", "layer-wise" -> LAYERWISE;
            case "qvlm", "q-vlm" -> QVLM;
            default -> throw new QvlmException("--method: unknown method '" + s + "' (expected rtn, layerwise or qvlm)");
        };
    }

    public String id() {
        return name().toLowerCase();
    }
}
