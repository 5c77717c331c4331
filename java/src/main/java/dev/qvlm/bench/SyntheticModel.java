package dev.qvlm.bench;

import dev.qvlm.config.LlavaConfig;
import dev.qvlm.config.TextConfig;
import dev.qvlm.config.VisionConfig;
import dev.qvlm.model.Linear;
import dev.qvlm.model.LlavaWeights;
import dev.qvlm.quant.Q4Matrix;
import dev.qvlm.tensor.GeneratedMatrix;
import dev.qvlm.tensor.Matrix;

import java.util.Arrays;

/**
 * Random LLaVA weights of exactly a config's shapes, for benchmarks. Every matrix is a {@link GeneratedMatrix}
 * (hash of seed and index): on the GPU the backend fills it in place, on the CPU it is materialised into ordinary
 * FP16 / packed int4 storage, so both devices run the same weights. With 4-bit weights the decoder's linears (q, k,
 * v, o, gate, up, down) are int4, group 128, asymmetric, as in a W4A16 g128 checkpoint; the vision tower, the
 * projector, the embeddings and lm_head stay FP16 (the "llm" scope). Uniform amplitudes sqrt(3 / fan-in) keep
 * activations of order one through all layers, so FP16 never overflows.
 */
public final class SyntheticModel {
    private SyntheticModel() {}

    public static final int GROUP = 128;

    /** Weight bytes as stored on the host (FP16, or packed int4 + FP32 scales + zero bytes), without building them. */
    public static long hostWeightBytes(LlavaConfig cfg, int wbits) {
        long[] total = {0};
        build(cfg, wbits, 1, null, m -> total[0] += m.storageBytes());
        return total[0];
    }

    /**
     * Builds the weights: in host memory owned by {@code host} (CPU; the caller closes it when done with the
     * weights), or, with {@code host} null, as generated matrices the GPU fills.
     */
    public static LlavaWeights build(LlavaConfig cfg, int wbits, int seed, java.lang.foreign.Arena host) {
        return build(cfg, wbits, seed, host, m -> {});
    }

    private static LlavaWeights build(LlavaConfig cfg, int wbits, int seed, java.lang.foreign.Arena materialize,
                                      java.util.function.Consumer<Matrix> sizes) {
        int[] next = {seed * 7919};
        boolean q4 = wbits == 4;
        VisionConfig vc = cfg.vision();
        TextConfig tc = cfg.text();
        int Dv = vc.hiddenSize(), Iv = vc.intermediateSize(), Dt = tc.hiddenSize(), It = tc.intermediateSize();
        Gen g = new Gen(next, materialize, sizes);
        LlavaWeights.ClipLayer[] clip = new LlavaWeights.ClipLayer[vc.numLayers()];
        for (int i = 0; i < clip.length; i++)
            clip[i] = new LlavaWeights.ClipLayer(ones(Dv), new float[Dv],
                    g.lin("vision." + i + ".q", Linear.Part.VISION, Dv, Dv, false, true),
                    g.lin("vision." + i + ".k", Linear.Part.VISION, Dv, Dv, false, true),
                    g.lin("vision." + i + ".v", Linear.Part.VISION, Dv, Dv, false, true),
                    g.lin("vision." + i + ".out", Linear.Part.VISION, Dv, Dv, false, true),
                    ones(Dv), new float[Dv],
                    g.lin("vision." + i + ".fc1", Linear.Part.VISION, Iv, Dv, false, true),
                    g.lin("vision." + i + ".fc2", Linear.Part.VISION, Dv, Iv, false, true));
        int patchIn = vc.numChannels() * vc.patchSize() * vc.patchSize();
        float[] pos = new float[vc.numPositions() * Dv];
        for (int i = 0; i < pos.length; i++) pos[i] = 0.02f * ((GeneratedMatrix.hash(seed, i) >>> 8) * 0x1p-23f - 1f);
        LlavaWeights.Vision vision = new LlavaWeights.Vision(g.mat(Dv, patchIn, 1f / (float) Math.sqrt(patchIn), false),
                new float[Dv], pos, ones(Dv), new float[Dv], clip);
        LlavaWeights.Projector proj = new LlavaWeights.Projector(
                g.lin("projector.1", Linear.Part.PROJECTOR, Dt, Dv, false, cfg.projectorBias()),
                g.lin("projector.2", Linear.Part.PROJECTOR, Dt, Dt, false, cfg.projectorBias()));
        LlavaWeights.LlamaLayer[] layers = new LlavaWeights.LlamaLayer[tc.numLayers()];
        for (int i = 0; i < layers.length; i++) {
            String p = "model.layers." + i + ".";
            layers[i] = new LlavaWeights.LlamaLayer(ones(Dt),
                    g.lin(p + "self_attn.q_proj", Linear.Part.LLM, tc.qDim(), Dt, q4, false),
                    g.lin(p + "self_attn.k_proj", Linear.Part.LLM, tc.kvDim(), Dt, q4, false),
                    g.lin(p + "self_attn.v_proj", Linear.Part.LLM, tc.kvDim(), Dt, q4, false),
                    g.lin(p + "self_attn.o_proj", Linear.Part.LLM, Dt, tc.qDim(), q4, false),
                    ones(Dt),
                    g.lin(p + "mlp.gate_proj", Linear.Part.LLM, It, Dt, q4, false),
                    g.lin(p + "mlp.up_proj", Linear.Part.LLM, It, Dt, q4, false),
                    g.lin(p + "mlp.down_proj", Linear.Part.LLM, Dt, It, q4, false));
        }
        LlavaWeights.Text text = new LlavaWeights.Text(g.mat(tc.vocabSize(), Dt, 1f, false), layers, ones(Dt),
                g.lin("lm_head", Linear.Part.LM_HEAD, tc.vocabSize(), Dt, false, false));
        return new LlavaWeights(vision, proj, text);
    }

    private static float[] ones(int n) {
        float[] a = new float[n];
        Arrays.fill(a, 1f);
        return a;
    }

    private record Gen(int[] next, java.lang.foreign.Arena materialize, java.util.function.Consumer<Matrix> sizes) {
        Matrix mat(int rows, int cols, float amp, boolean q4) {
            int seed = next[0]++;
            GeneratedMatrix g = q4 && cols % GROUP == 0
                    ? GeneratedMatrix.q4(rows, cols, seed, 0.1f / (float) Math.sqrt(cols), GROUP, false)
                    : GeneratedMatrix.f16(rows, cols, seed, amp);
            if (q4 && g.format() == GeneratedMatrix.Format.F16)
                throw new IllegalArgumentException(cols + " columns are not a whole number of groups of " + GROUP);
            sizes.accept(g);
            return materialize != null ? g.materialize(materialize) : g;
        }

        Linear lin(String name, Linear.Part part, int out, int in, boolean q4, boolean bias) {
            return new Linear(name, part, mat(out, in, (float) Math.sqrt(3.0 / in), q4), bias ? new float[out] : null);
        }
    }

    /** Whether a weight is stored in 4 bits. */
    static boolean isQ4(Matrix m) {
        return m instanceof Q4Matrix || (m instanceof GeneratedMatrix g && g.format() == GeneratedMatrix.Format.Q4);
    }
}
