package dev.qvlm.calib;

import dev.qvlm.QvlmException;

/** How weights are rounded onto the quantization grid the bound search chose (--weights). */
public enum WeightRounding {
    /** Round to nearest. */
    RTN,
    /** GPTQ: rounding with error feedback through the inverse Hessian of the layer's calibration inputs. */
    GPTQ,
    /** AWQ: per-input-channel scales folded into the preceding norm or linear, then a per-group clipping search; RTN rounding. */
    AWQ,
    /** AWQ's scales and clipping, then GPTQ rounding on that grid (as llm-compressor chains them). */
    AWQ_GPTQ;

    /** Whether AWQ scales and clipping are applied first. */
    public boolean awq() {
        return this == AWQ || this == AWQ_GPTQ;
    }

    /** Whether weights are rounded with GPTQ. */
    public boolean gptq() {
        return this == GPTQ || this == AWQ_GPTQ;
    }

    public static WeightRounding parse(String s) {
        return switch (s.toLowerCase()) {
            case "rtn" -> RTN;
            case "gptq" -> GPTQ;
            case "awq" -> AWQ;
            case "awq+gptq", "awq-gptq" -> AWQ_GPTQ;
            default -> throw new QvlmException("--weights: unknown weight rounding '" + s + "' (expected rtn, gptq, awq or awq+gptq)");
        };
    }

    public String id() {
        return this == AWQ_GPTQ ? "awq+gptq" : name().toLowerCase();
    }
}
