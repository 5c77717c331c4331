package dev.qvlm.bench;

import org.openjdk.jmh.annotations.Param;

/**
 * Prefill-like matrix product (n = 64 tokens) on the LLaMA-7B shapes, vectorised kernel only (the scalar reference would take seconds per call here; see MatmulBench for the scalar ratio).
 * Setup and measured call: {@link KernelBench}.
 */
public class MatmulLargeBench extends KernelBench {
    @Param({"4096x4096", "11008x4096"})
    public String shape;

    @Param({"f32", "f16"})
    public String dtype;

    @Param({"vector"})
    public String impl;

    /** Tokens per call (rows of x). */
    @Param({"64"})
    public int n;

    @Override
    KernelFixture fixture() {
        return new KernelFixture(shape, dtype, impl, n);
    }
}
