package dev.qvlm.calib;

import dev.qvlm.QvlmException;

/** How weights are rounded onto the quantization grid the bound search chose (--weights). */
public enum WeightRounding {
    /** Round to nearest. */
    RTN,
    /** GPTQ: rounding with error feedback through the inverse Hessian of the layer's calibration inputs. */
    GPTQ,
    /** AWQ: per-input-channel scales folded into the preceding norm or linear, then a per-group clipping search; RTN rounding. */
    AWQ;

    public static WeightRounding parse(String s) {
        return switch (s.toLowerCase()) {
            case "rtn" -> RTN;
            case "gptq" -> GPTQ;
            case "awq" -> AWQ;
            default -> throw new QvlmException("--weights: unknown weight rounding '" + s + "' (expected rtn, gptq or awq)");
        };
    }

    public String id() {
        return name().toLowerCase();
    }
}
