package dev.qvlm.model;

import dev.qvlm.QvlmException;
import dev.qvlm.config.LlavaConfig;
import dev.qvlm.config.TextConfig;
import dev.qvlm.config.VisionConfig;
import dev.qvlm.safetensors.TensorInfo;
import dev.qvlm.safetensors.WeightStore;
import dev.qvlm.tensor.F32Matrix;
import dev.qvlm.tensor.HalfMatrix;
import dev.qvlm.tensor.Matrix;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.Map;

/**
 * Builds {@link LlavaWeights} from a {@link WeightStore}: maps the stored names to canonical ones, checks every
 * shape against what config.json implies, and wraps 2-D weights as memory-mapped matrices (no copy). Vectors
 * (norms, biases, embeddings of the vision tower) are small and copied to FP32.
 */
public final class WeightLoader {
    /** Lets a quantized checkpoint supply its own matrix for a linear (e.g. packed int4); null = use the store. */
    public interface MatrixSource {
        Matrix matrix(String canonicalName, int rows, int cols);
    }

    private final WeightStore store;
    private final Map<String, String> names;
    private final MatrixSource override;

    private WeightLoader(WeightStore store, MatrixSource override) {
        this.store = store;
        this.names = WeightNames.index(store.names());
        this.override = override;
    }

    public static LlavaWeights load(WeightStore store, LlavaConfig cfg) {
        return load(store, cfg, null);
    }

    public static LlavaWeights load(WeightStore store, LlavaConfig cfg, MatrixSource override) {
        return new WeightLoader(store, override).build(cfg);
    }

    private LlavaWeights build(LlavaConfig cfg) {
        VisionConfig vc = cfg.vision();
        TextConfig tc = cfg.text();
        int D = vc.hiddenSize(), P = vc.patchSize(), C = vc.numChannels();
        Matrix patch = matrix("vision.embeddings.patch_embedding.weight", new long[]{D, C, P, P}, D, C * P * P);
        float[] cls = vector("vision.embeddings.class_embedding", D);
        float[] pos = floats("vision.embeddings.position_embedding.weight", new long[]{vc.numPositions(), D});
        String pre = has("vision.pre_layrnorm.weight") ? "vision.pre_layrnorm" : "vision.pre_layernorm";
        float[] preW = vector(pre + ".weight", D), preB = vector(pre + ".bias", D);
        // Layer counts size these arrays: checked against the stored tensors first, so a config.json claiming
        // 2^31-1 layers fails here instead of allocating.
        checkLayerCount("vision.encoder.layers.", "layer_norm1.weight", vc.numLayers(), "vision_config.num_hidden_layers");
        LlavaWeights.ClipLayer[] vl = new LlavaWeights.ClipLayer[vc.numLayers()];
        for (int i = 0; i < vl.length; i++) {
            String p = "vision.encoder.layers." + i + ".";
            vl[i] = new LlavaWeights.ClipLayer(
                    vector(p + "layer_norm1.weight", D), vector(p + "layer_norm1.bias", D),
                    linear(p + "self_attn.q_proj", Linear.Part.VISION, D, D, true),
                    linear(p + "self_attn.k_proj", Linear.Part.VISION, D, D, true),
                    linear(p + "self_attn.v_proj", Linear.Part.VISION, D, D, true),
                    linear(p + "self_attn.out_proj", Linear.Part.VISION, D, D, true),
                    vector(p + "layer_norm2.weight", D), vector(p + "layer_norm2.bias", D),
                    linear(p + "mlp.fc1", Linear.Part.VISION, vc.intermediateSize(), D, true),
                    linear(p + "mlp.fc2", Linear.Part.VISION, D, vc.intermediateSize(), true));
        }
        var vision = new LlavaWeights.Vision(patch, cls, pos, preW, preB, vl);

        int Dt = tc.hiddenSize();
        var projector = new LlavaWeights.Projector(
                linear("projector.linear_1", Linear.Part.PROJECTOR, Dt, D, cfg.projectorBias()),
                linear("projector.linear_2", Linear.Part.PROJECTOR, Dt, Dt, cfg.projectorBias()));

        Matrix embed = matrix("text.embed_tokens.weight", new long[]{tc.vocabSize(), Dt}, tc.vocabSize(), Dt);
        checkLayerCount("text.layers.", "input_layernorm.weight", tc.numLayers(), "text_config.num_hidden_layers");
        LlavaWeights.LlamaLayer[] tl = new LlavaWeights.LlamaLayer[tc.numLayers()];
        for (int i = 0; i < tl.length; i++) {
            String p = "text.layers." + i + ".";
            boolean ab = tc.attentionBias(), mb = tc.mlpBias();
            tl[i] = new LlavaWeights.LlamaLayer(
                    vector(p + "input_layernorm.weight", Dt),
                    linear(p + "self_attn.q_proj", Linear.Part.LLM, tc.qDim(), Dt, ab),
                    linear(p + "self_attn.k_proj", Linear.Part.LLM, tc.kvDim(), Dt, ab),
                    linear(p + "self_attn.v_proj", Linear.Part.LLM, tc.kvDim(), Dt, ab),
                    linear(p + "self_attn.o_proj", Linear.Part.LLM, Dt, tc.qDim(), ab),
                    vector(p + "post_attention_layernorm.weight", Dt),
                    linear(p + "mlp.gate_proj", Linear.Part.LLM, tc.intermediateSize(), Dt, mb),
                    linear(p + "mlp.up_proj", Linear.Part.LLM, tc.intermediateSize(), Dt, mb),
                    linear(p + "mlp.down_proj", Linear.Part.LLM, Dt, tc.intermediateSize(), mb));
        }
        float[] norm = vector("text.norm.weight", Dt);
        Linear lmHead;
        if (has("lm_head.weight")) {
            lmHead = linear("lm_head", Linear.Part.LM_HEAD, tc.vocabSize(), Dt, false);
        } else if (tc.tieWordEmbeddings()) {
            lmHead = new Linear("lm_head", Linear.Part.LM_HEAD, embed, null);
        } else {
            throw missing("lm_head.weight");
        }
        return new LlavaWeights(vision, projector, new LlavaWeights.Text(embed, tl, norm, lmHead));
    }

    private void checkLayerCount(String prefix, String suffix, int n, String key) {
        String last = prefix + (n - 1) + "." + suffix;
        if (!has(last))
            throw new QvlmException(store.dir() + ": missing tensor '" + WeightNames.expectedKey(last, store.names())
                    + "': config.json says " + key + " = " + n + " but there is no layer " + (n - 1));
    }

    private boolean has(String canonical) {
        return names.containsKey(canonical);
    }

    private QvlmException missing(String canonical) {
        return new QvlmException(store.dir() + ": missing tensor '" + WeightNames.expectedKey(canonical, store.names())
                + "' (also looked for it under the other LLaVA name layouts)");
    }

    private TensorInfo info(String canonical, long[] expected) {
        String key = names.get(canonical);
        if (key == null) throw missing(canonical);
        TensorInfo t = store.info(key);
        if (!Arrays.equals(t.shape(), expected))
            throw new QvlmException(t.file() + ": tensor '" + key + "' has shape " + t.shapeString()
                    + " but config.json implies " + Arrays.toString(expected));
        return t;
    }

    private Linear linear(String prefix, Linear.Part part, int out, int in, boolean bias) {
        Matrix w = matrix(prefix + ".weight", new long[]{out, in}, out, in);
        float[] b = null;
        if (bias) b = vector(prefix + ".bias", out);
        return new Linear(prefix, part, w, b);
    }

    private Matrix matrix(String canonical, long[] expected, int rows, int cols) {
        if (override != null) {
            Matrix m = override.matrix(canonical, rows, cols);
            if (m != null) return m;
        }
        TensorInfo t = info(canonical, expected);
        MemorySegment seg = store.segment(t.name());
        return switch (t.dtype()) {
            case F32 -> new F32Matrix(rows, cols, seg);
            case F16 -> new HalfMatrix(rows, cols, seg, HalfMatrix.Kind.F16);
            case BF16 -> new HalfMatrix(rows, cols, seg, HalfMatrix.Kind.BF16);
            default -> throw new QvlmException(t.file() + ": tensor '" + t.name() + "' has dtype " + t.dtype()
                    + "; expected F32, F16 or BF16");
        };
    }

    private float[] vector(String canonical, int n) {
        return floats(canonical, new long[]{n});
    }

    private float[] floats(String canonical, long[] expected) {
        TensorInfo t = info(canonical, expected);
        if (!t.dtype().isFloat())
            throw new QvlmException(t.file() + ": tensor '" + t.name() + "' has dtype " + t.dtype() + "; expected a float type");
        return store.toFloatArray(t.name());
    }
}
