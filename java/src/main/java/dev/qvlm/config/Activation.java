package dev.qvlm.config;

import dev.qvlm.QvlmException;

/** Activation functions named as in HF configs ({@code hidden_act}, {@code projector_hidden_act}). */
public enum Activation {
    SILU, GELU, GELU_TANH, QUICK_GELU, RELU;

    public static Activation parse(String name, String where) {
        return switch (name) {
            case "silu", "swish" -> SILU;
            case "gelu" -> GELU;
            case "gelu_new", "gelu_pytorch_tanh", "gelu_fast" -> GELU_TANH;
            case "quick_gelu" -> QUICK_GELU;
            case "relu" -> RELU;
            default -> throw new QvlmException(where + ": unsupported activation '" + name
                    + "' (supported: silu, gelu, gelu_new, gelu_pytorch_tanh, quick_gelu, relu)");
        };
    }
}
