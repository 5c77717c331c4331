package dev.qvlm.quant;

import dev.qvlm.config.LlavaConfig;
import dev.qvlm.config.TextConfig;
import dev.qvlm.config.VisionConfig;
import dev.qvlm.model.Linear;

import java.util.ArrayList;
import java.util.List;
import java.util.Set;

/**
 * Analytic weight memory of a LLaVA model from its config: every tensor's element count, FP16 for what stays in
 * full precision, and packed codes + group scales + zero points for the quantized linears.
 */
public final class ModelMemory {
    /** One tensor: where it belongs, its shape as (rows, cols), and whether it is the weight of an nn.Linear. */
    public record Tensor(Linear.Part part, long rows, long cols, boolean linear) {
        long numel() {
            return rows * cols;
        }
    }

    public record Sizes(long fp16Bytes, long quantizedBytes, long quantizedTensorsFp16Bytes, long quantizedTensorsBytes,
                        long params) {
        public double ratio() {
            return (double) fp16Bytes / quantizedBytes;
        }

        public double quantizedTensorsRatio() {
            return quantizedTensorsBytes == 0 ? 1 : (double) quantizedTensorsFp16Bytes / quantizedTensorsBytes;
        }
    }

    private ModelMemory() {}

    public static List<Tensor> tensors(LlavaConfig cfg) {
        List<Tensor> t = new ArrayList<>();
        VisionConfig v = cfg.vision();
        long D = v.hiddenSize(), I = v.intermediateSize(), P = v.patchSize(), C = v.numChannels();
        t.add(new Tensor(Linear.Part.VISION_EMBEDDING, D, C * P * P, false));
        t.add(new Tensor(Linear.Part.VISION_EMBEDDING, 1, D, false));
        t.add(new Tensor(Linear.Part.VISION_EMBEDDING, v.numPositions(), D, false));
        t.add(new Tensor(Linear.Part.VISION_EMBEDDING, 4, D, false)); // pre- and post-LayerNorm
        for (int i = 0; i < v.numLayers(); i++) {
            for (int k = 0; k < 4; k++) t.add(new Tensor(Linear.Part.VISION, D, D, true));
            t.add(new Tensor(Linear.Part.VISION, I, D, true));
            t.add(new Tensor(Linear.Part.VISION, D, I, true));
            t.add(new Tensor(Linear.Part.VISION, 1, 4 * D + I + D + 4 * D, false)); // biases and LayerNorms
        }
        TextConfig x = cfg.text();
        long Dt = x.hiddenSize(), It = x.intermediateSize(), V = x.vocabSize();
        t.add(new Tensor(Linear.Part.PROJECTOR, Dt, D, true));
        t.add(new Tensor(Linear.Part.PROJECTOR, Dt, Dt, true));
        t.add(new Tensor(Linear.Part.PROJECTOR, 1, 2 * Dt, false));
        t.add(new Tensor(Linear.Part.LLM, V, Dt, false)); // embed_tokens
        for (int i = 0; i < x.numLayers(); i++) {
            t.add(new Tensor(Linear.Part.LLM, x.qDim(), Dt, true));
            t.add(new Tensor(Linear.Part.LLM, x.kvDim(), Dt, true));
            t.add(new Tensor(Linear.Part.LLM, x.kvDim(), Dt, true));
            t.add(new Tensor(Linear.Part.LLM, Dt, x.qDim(), true));
            t.add(new Tensor(Linear.Part.LLM, It, Dt, true));
            t.add(new Tensor(Linear.Part.LLM, It, Dt, true));
            t.add(new Tensor(Linear.Part.LLM, Dt, It, true));
            t.add(new Tensor(Linear.Part.LLM, 1, 2 * Dt, false));
        }
        t.add(new Tensor(Linear.Part.LLM, 1, Dt, false));
        if (!x.tieWordEmbeddings()) t.add(new Tensor(Linear.Part.LM_HEAD, V, Dt, false));
        return t;
    }

    /**
     * Sizes with {@code weights} applied to the linears of {@code scope} (null = all FP16). Quantized weights count
     * packed codes (bits/8 per weight), one FP16 scale per group and a {@code bits}-wide zero point per group
     * (asymmetric), as compressed-tensors stores them for an FP16 model.
     */
    public static Sizes sizes(LlavaConfig cfg, QuantArgs weights, Set<Linear.Part> scope) {
        long fp16 = 0, q = 0, qt16 = 0, qt = 0, params = 0;
        for (Tensor t : tensors(cfg)) {
            long b16 = 2 * t.numel();
            params += t.numel();
            fp16 += b16;
            if (weights != null && t.linear() && scope.contains(t.part())) {
                long groups = switch (weights.granularity()) {
                    case TENSOR -> 1;
                    case CHANNEL -> t.rows();
                    default -> t.rows() * ((t.cols() + weights.groupSize() - 1) / weights.groupSize());
                };
                long bytes = (t.numel() * weights.bits() + 7) / 8 + 2 * groups
                        + (weights.symmetric() ? 0 : (groups * weights.bits() + 7) / 8);
                q += bytes;
                qt16 += b16;
                qt += bytes;
            } else {
                q += b16;
            }
        }
        return new Sizes(fp16, q, qt16, qt, params);
    }
}
