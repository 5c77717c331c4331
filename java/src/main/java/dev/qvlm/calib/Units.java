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

            public Tensor run(Tensor x) {
                Tensor y = backend.allocate(x.rows(), x.cols());
                backend.copy(x, y);
                model.decoderLayer(i, y, backend.allocate(x.rows(), kvDim), backend.allocate(x.rows(), kvDim), 0);
                return y;
            }
        };
    }
}
