package dev.qvlm.cpu;

import dev.qvlm.config.Activation;

/** Scalar activation functions with HF's exact definitions. */
public final class Activations {
    private Activations() {}

    public static float apply(Activation a, float x) {
        return switch (a) {
            case SILU -> x / (1f + (float) Math.exp(-x));
            case GELU -> (float) (0.5 * x * (1.0 + erf(x / Math.sqrt(2.0))));
            case GELU_TANH -> (float) (0.5 * x * (1.0 + Math.tanh(Math.sqrt(2.0 / Math.PI) * (x + 0.044715 * x * x * x))));
            case QUICK_GELU -> x / (1f + (float) Math.exp(-1.702f * x));
            case RELU -> Math.max(0f, x);
        };
    }

    /** d act(x) / dx, for the backward pass (the exact derivative of the definitions above). */
    public static double derivative(Activation a, double x) {
        return switch (a) {
            case SILU -> {
                double s = 1.0 / (1.0 + Math.exp(-x));
                yield s * (1.0 + x * (1.0 - s));
            }
            case QUICK_GELU -> {
                double s = 1.0 / (1.0 + Math.exp(-1.702 * x));
                yield s + 1.702 * x * s * (1.0 - s);
            }
            case GELU -> 0.5 * (1.0 + erf(x / Math.sqrt(2.0))) + x * Math.exp(-0.5 * x * x) / Math.sqrt(2.0 * Math.PI);
            case GELU_TANH -> {
                double c = Math.sqrt(2.0 / Math.PI), t = Math.tanh(c * (x + 0.044715 * x * x * x));
                yield 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * c * (1.0 + 3 * 0.044715 * x * x);
            }
            case RELU -> x > 0 ? 1.0 : 0.0;
        };
    }

    /**
     * erf(x) via the complementary error function's Chebyshev fit (Numerical Recipes erfcc, relative error below
     * 1.2e-7 everywhere), enough for FP32 GELU.
     */
    public static double erf(double x) {
        double z = Math.abs(x);
        double t = 1.0 / (1.0 + 0.5 * z);
        double ans = t * Math.exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418
                + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587
                + t * (-0.82215223 + t * 0.17087277)))))))));
        return x >= 0 ? 1.0 - ans : ans - 1.0;
    }
}
