package dev.qvlm.bench;

import org.openjdk.jmh.annotations.Param;

/**
 * Prefill-like matrix product (n = 64 tokens) on a small 1024x1024 weight, where the scalar reference still finishes in well under a second per call, so vectorised and scalar can be compared head to head.
 * Setup and measured call: {@link KernelBench}.
 */
public class MatmulBench extends KernelBench {
    @Param({"1024x1024"})
    public String shape;

    @Param({"f32", "f16"})
    public String dtype;

    @Param({"vector", "scalar"})
    public String impl;

    /** Tokens per call (rows of x). */
    @Param({"64"})
    public int n;

    @Override
    KernelFixture fixture() {
        return new KernelFixture(shape, dtype, impl, n);
    }
}
