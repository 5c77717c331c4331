package dev.qvlm.bench;

import org.openjdk.jmh.annotations.Param;

/**
 * Decode-step matrix-vector product (n = 1 token) on the LLaMA-7B projection shapes: 4096x4096 (q/k/v/o) and 11008x4096 (MLP gate/up).
 * Setup and measured call: {@link KernelBench}.
 */
public class MatvecBench extends KernelBench {
    @Param({"4096x4096", "11008x4096"})
    public String shape;

    @Param({"f32", "f16"})
    public String dtype;

    @Param({"vector", "scalar"})
    public String impl;

    /** Tokens per call (rows of x). */
    @Param({"1"})
    public int n;

    @Override
    KernelFixture fixture() {
        return new KernelFixture(shape, dtype, impl, n);
    }
}
