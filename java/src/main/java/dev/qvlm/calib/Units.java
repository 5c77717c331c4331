package dev.qvlm.calib;

import dev.qvlm.backend.Backend;
import dev.qvlm.backend.Tensor;
import dev.qvlm.model.Linear;
import dev.qvlm.model.LlavaModel;
import dev.qvlm.model.LlavaWeights;

import java.util.List;

/** The steps calibration streams through: each vision encoder layer, the projector, each decoder layer. */
final class Units {
    private Units() {}

    static Unit vision(LlavaModel model, int i) {
        Backend backend = model.backend();
        LlavaWeights.ClipLayer l = model.weights().vision.layers()[i];
        return new Unit() {
            public String name() {
                return "vision." + i;
            }

            public List<Linear> linears() {
                return List.of(l.q(), l.k(), l.v(), l.out(), l.fc1(), l.fc2());
            }

            public List<ScaleGroup> scaleGroups() {
                String p = "vision.encoder.layers." + i + ".";
                List<ScaleGroup> g = new java.util.ArrayList<>();
                g.add(ScaleGroup.afterNorm("layer_norm1", l.ln1Weight(), p + "layer_norm1.weight", l.ln1Bias(),
                        p + "layer_norm1.bias", List.of(l.q(), l.k(), l.v())));
                if (l.v().out() == l.out().in()) g.add(ScaleGroup.afterLinear(l.v(), List.of(l.out())));
                g.add(ScaleGroup.afterNorm("layer_norm2", l.ln2Weight(), p + "layer_norm2.weight", l.ln2Bias(),
                        p + "layer_norm2.bias", List.of(l.fc1())));
                // fc2 reads quick_gelu(fc1 x): no exact fold
                return g;
            }

            public Tensor run(Tensor x) {
                Tensor y = backend.allocate(x.rows(), x.cols());
                backend.copy(x, y);
                model.visionLayer(i, y);
                return y;
            }
        };
    }

    static Unit projector(LlavaModel model) {
        LlavaWeights.Projector p = model.weights().projector;
        return new Unit() {
            public String name() {
                return "projector";
            }

            public List<Linear> linears() {
                return List.of(p.linear1(), p.linear2());
            }

            public Tensor run(Tensor x) {
                return model.project(x);
            }
        };
    }

    static Unit decoder(LlavaModel model, int i) {
        Backend backend = model.backend();
        LlavaWeights.LlamaLayer l = model.weights().text.layers()[i];
        int kvDim = model.config().text().kvDim();
        return new Unit() {
            public String name() {
                return "llm." + i;
            }

            public List<Linear> linears() {
                return List.of(l.q(), l.k(), l.v(), l.o(), l.gate(), l.up(), l.down());
            }

            public List<ScaleGroup> scaleGroups() {
                String p = "text.layers." + i + ".";
                List<ScaleGroup> g = new java.util.ArrayList<>();
                g.add(ScaleGroup.afterNorm("input_layernorm", l.inputNorm(), p + "input_layernorm.weight", null, null,
                        List.of(l.q(), l.k(), l.v())));
                // with grouped-query attention v has fewer outputs than o has inputs: no fold (as llm-awq)
                if (l.v().out() == l.o().in()) g.add(ScaleGroup.afterLinear(l.v(), List.of(l.o())));
                g.add(ScaleGroup.afterNorm("post_attention_layernorm", l.postAttentionNorm(),
                        p + "post_attention_layernorm.weight", null, null, List.of(l.gate(), l.up())));
                // down reads silu(gate x) * (up x): scaling up's rows scales its input channels exactly
                g.add(ScaleGroup.afterLinear(l.up(), List.of(l.down())));
                return g;
            }

            public Tensor run(Tensor x) {
                Tensor y = backend.allocate(x.rows(), x.cols());
                backend.copy(x, y);
                Tensor k = backend.allocate(x.rows(), kvDim), v = backend.allocate(x.rows(), kvDim);
                model.decoderLayer(i, y, k, v, 0);
                backend.free(k); // the layer's keys and values: scratch (attention of this sample only)
                backend.free(v);
                return y;
            }
        };
    }
}
