package dev.qvlm.cuda;

/**
 * How the CUDA backend stores activations on the device (weights are always FP16). F16 halves activation traffic;
 * F32 keeps the residual stream and attention inputs at full precision (GEMM inputs are rounded to FP16 on the
 * way into cuBLAS). Arithmetic is FP32 in both.
 */
public enum Storage {
    F16(2, "f16"), F32(4, "f32");

    private final int bytes;
    private final String suffix;

    Storage(int bytes, String suffix) {
        this.bytes = bytes;
        this.suffix = suffix;
    }

    public int bytes() {
        return bytes;
    }

    public String suffix() {
        return suffix;
    }

    /** -Dqvlm.cuda.activations=f16|f32 (default f16). */
    public static Storage fromProperty() {
        String p = System.getProperty("qvlm.cuda.activations", "f16");
        return switch (p) {
            case "f16" -> F16;
            case "f32" -> F32;
            default -> throw new dev.qvlm.QvlmException("-Dqvlm.cuda.activations=" + p + ": expected f16 or f32");
        };
    }
}
