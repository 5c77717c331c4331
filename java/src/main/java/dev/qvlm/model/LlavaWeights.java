package dev.qvlm.model;

import dev.qvlm.tensor.Matrix;

import java.util.ArrayList;
import java.util.List;

/** Typed holders for every LLaVA weight, with the shapes the config implies. */
public final class LlavaWeights {

    /** One CLIP encoder layer (pre-LN). */
    public record ClipLayer(
            float[] ln1Weight, float[] ln1Bias,   // (D)
            Linear q, Linear k, Linear v, Linear out, // (D, D) with bias
            float[] ln2Weight, float[] ln2Bias,   // (D)
            Linear fc1,                            // (I, D)
            Linear fc2) {}                         // (D, I)

    public record Vision(
            Matrix patchEmbedding,    // (D, C*P*P): the conv kernel (D, C, P, P) seen as a matrix
            float[] classEmbedding,   // (D)
            float[] positionEmbedding, // (numPatches+1, D)
            float[] preLnWeight, float[] preLnBias, // (D)
            ClipLayer[] layers) {}

    public record Projector(Linear linear1, Linear linear2) {} // (Dt, Dv), (Dt, Dt)

    /** One LLaMA decoder layer. */
    public record LlamaLayer(
            float[] inputNorm,          // (Dt)
            Linear q,                   // (heads*hd, Dt)
            Linear k, Linear v,         // (kvHeads*hd, Dt)
            Linear o,                   // (Dt, heads*hd)
            float[] postAttentionNorm,  // (Dt)
            Linear gate, Linear up,     // (I, Dt)
            Linear down) {}             // (Dt, I)

    public record Text(
            Matrix embedTokens,  // (vocab, Dt)
            LlamaLayer[] layers,
            float[] norm,        // (Dt)
            Linear lmHead) {}    // (vocab, Dt)

    public final Vision vision;
    public final Projector projector;
    public final Text text;

    public LlavaWeights(Vision vision, Projector projector, Text text) {
        this.vision = vision;
        this.projector = projector;
        this.text = text;
    }

    /** Every linear layer in forward order: vision layers, projector, decoder layers, lm_head. */
    public List<Linear> linears() {
        List<Linear> all = new ArrayList<>();
        for (ClipLayer l : vision.layers()) all.addAll(List.of(l.q(), l.k(), l.v(), l.out(), l.fc1(), l.fc2()));
        all.add(projector.linear1());
        all.add(projector.linear2());
        for (LlamaLayer l : text.layers()) all.addAll(List.of(l.q(), l.k(), l.v(), l.o(), l.gate(), l.up(), l.down()));
        all.add(text.lmHead());
        return all;
    }
}
