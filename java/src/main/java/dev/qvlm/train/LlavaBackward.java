package dev.qvlm.train;

import dev.qvlm.backend.Backend;
import dev.qvlm.backend.BackwardOps;
import dev.qvlm.backend.Tensor;
import dev.qvlm.config.LlavaConfig;
import dev.qvlm.config.TextConfig;
import dev.qvlm.config.VisionConfig;
import dev.qvlm.model.ForwardHooks;
import dev.qvlm.model.Linear;
import dev.qvlm.model.LlavaModel;
import dev.qvlm.model.LlavaWeights;

import java.util.IdentityHashMap;
import java.util.Map;

/**
 * Backward pass of the LLaVA graph (image → CLIP layers → projector → splice → LLaMA layers → norm → lm_head),
 * written once against {@link Backend} and {@link BackwardOps}. The forward is the model's own ({@link LlavaModel});
 * the tape keeps only each layer's input (per-layer recomputation): the backward of a layer re-runs that layer's
 * forward with hooks to get its internal activations, then walks it in reverse. Memory per sample is the layer
 * inputs, (visionLayers + 1)·tokens_v·D_v + (textLayers + 1)·tokens·D_t floats plus the logits, instead of every
 * intermediate; the price is one extra forward of each layer.
 *
 * <p>The caller installs {@link #hooks()} as the model's hooks for as long as it uses this object (one sample per
 * thread is safe). Gradients reach the trainable parameters named by the {@link Grads} object; everything else is
 * frozen but passes gradients through (the quantized LLM and projector carry them back to the image features).
 */
public final class LlavaBackward {
    private final LlavaModel model;
    private final Backend backend;
    private final BackwardOps ops;
    private final ThreadHooks hooks = new ThreadHooks();

    public LlavaBackward(LlavaModel model) {
        this.model = model;
        this.backend = model.backend();
        this.ops = backend.backward();
    }

    /** Install as the model's hooks while training (forwards each call to the calling thread's hooks). */
    public ForwardHooks hooks() {
        return hooks;
    }

    /** What one forward keeps: the input of every layer, the features, the logits. */
    public static final class Tape {
        public int[] ids;
        public Tensor[] visionIn;   // input of vision layer i, [patches+1 x Dv]; the last entry is the tower's output
        public Tensor features;     // selected image features [F x Dv]
        public Tensor imageEmbeds;  // projector output [F x Dt]
        public Tensor[] textIn;     // input of decoder layer i, [n x Dt]; the last entry is the final hidden state
        public Tensor logits;       // [n x vocab]

        /** Output of decoder layer {@code i}. */
        public Tensor textOut(int i) {
            return textIn[i + 1];
        }
    }

    private Tensor copyOf(Tensor t) {
        Tensor c = backend.allocate(t.rows(), t.cols());
        backend.copy(t, c);
        return c;
    }

    /** Full forward of one prompt with logits at every position; keeps the tape. */
    public Tape forward(int[] ids, float[] pixels) {
        LlavaConfig cfg = model.config();
        Tape t = new Tape();
        t.ids = ids;
        int Lv = cfg.visionFeatureLayer(), L = cfg.text().numLayers();
        t.visionIn = new Tensor[Lv + 1];
        Tensor x = model.visionEmbeddings(pixels);
        for (int i = 0; i < Lv; i++) {
            t.visionIn[i] = copyOf(x);
            model.visionLayer(i, x);
        }
        t.visionIn[Lv] = x;
        t.features = copyOf(model.selectFeatures(x));
        t.imageEmbeds = model.project(t.features);
        Tensor h = model.embedTokens(ids, t.imageEmbeds);
        t.textIn = new Tensor[L + 1];
        int kvDim = cfg.text().kvDim(), n = ids.length;
        for (int i = 0; i < L; i++) {
            t.textIn[i] = copyOf(h);
            model.decoderLayer(i, h, backend.allocate(n, kvDim), backend.allocate(n, kvDim), 0);
        }
        t.textIn[L] = h;
        TextConfig tc = cfg.text();
        Tensor normed = backend.allocate(n, tc.hiddenSize());
        backend.rmsNorm(normed, h, model.weights().text.norm(), tc.rmsNormEps());
        t.logits = backend.allocate(n, tc.vocabSize());
        backend.linear(t.logits, normed, model.weights().text.lmHead());
        return t;
    }

    /**
     * Backward from the given seeds. {@code dLogits} [n x vocab] (may be null), {@code dTextOut[i]} an extra gradient
     * on decoder layer i's output (entries may be null), {@code dFeatures} an extra gradient on the image features
     * (may be null). When {@code textOutNormSq} is non-null it receives ‖∂/∂ output of decoder layer i‖² (the
     * gradient flowing into that point, seeds included) and the pass stops at the decoder input. Returns the
     * gradient of the image features (before any vision backward).
     */
    public Tensor backward(Tape t, Tensor dLogits, Tensor[] dTextOut, Tensor dFeatures, Grads grads, double[] textOutNormSq) {
        LlavaConfig cfg = model.config();
        TextConfig tc = cfg.text();
        int L = tc.numLayers(), n = t.ids.length;
        Tensor dx = backend.allocate(n, tc.hiddenSize());
        if (dLogits != null) {
            Tensor normed = backend.allocate(n, tc.hiddenSize());
            backend.rmsNorm(normed, t.textIn[L], model.weights().text.norm(), tc.rmsNormEps());
            Tensor dNormed = backend.allocate(n, tc.hiddenSize());
            ops.linearBackward(dNormed, null, null, dLogits, normed, model.weights().text.lmHead());
            ops.rmsNormBackward(dx, null, dNormed, t.textIn[L], model.weights().text.norm(), tc.rmsNormEps());
        }
        for (int i = L - 1; i >= 0; i--) {
            if (dTextOut != null && dTextOut[i] != null) backend.add(dx, dTextOut[i]);
            if (textOutNormSq != null) textOutNormSq[i] += sumSq(dx);
            dx = decoderLayerBackward(i, t.textIn[i], dx, grads);
        }
        if (textOutNormSq != null) return null;
        // the splice: image-token rows of the embedding gradient are the gradient of the projector output
        Tensor dEmbeds = backend.allocate(t.imageEmbeds.rows(), t.imageEmbeds.cols());
        int f = 0;
        for (int i = 0; i < n; i++)
            if (t.ids[i] == cfg.imageTokenIndex()) backend.copy(backend.view(dx, i, 1), backend.view(dEmbeds, f++, 1));
        Tensor dFeat = projectorBackward(t.features, dEmbeds, grads);
        if (dFeatures != null) backend.add(dFeat, dFeatures);
        int Lv = cfg.visionFeatureLayer();
        Tensor dv = backend.allocate(t.visionIn[Lv].rows(), t.visionIn[Lv].cols());
        int first = cfg.dropClsToken() ? 1 : 0; // the class token is not a feature: it gets no gradient from above
        backend.copy(dFeat, backend.view(dv, first, dFeat.rows()));
        for (int i = Lv - 1; i >= 0; i--) dv = visionLayerBackward(i, t.visionIn[i], dv, grads);
        return dFeat;
    }

    private double sumSq(Tensor t) {
        double s = 0;
        for (float v : backend.download(t)) s += (double) v * v;
        return s;
    }

    /** Runs {@code body} capturing the input of each listed linear (by identity). */
    private Map<Linear, Tensor> capture(Runnable body, Linear... of) {
        Map<Linear, Tensor> want = new IdentityHashMap<>();
        for (Linear l : of) want.put(l, null);
        Map<Linear, Tensor> got = new IdentityHashMap<>();
        hooks.with(new ForwardHooks() {
            @Override
            public void linearInput(Linear linear, Tensor x) {
                if (want.containsKey(linear) && !got.containsKey(linear)) got.put(linear, copyOf(x));
            }
        }, () -> {
            body.run();
            return null;
        });
        return got;
    }

    private Tensor linear(Tensor in, Linear w) {
        Tensor o = backend.allocate(in.rows(), w.out());
        backend.linear(o, in, w);
        return o;
    }

    private void linearBack(Tensor dX, Tensor dY, Tensor in, Linear w, Grads g) {
        ops.linearBackward(dX, g.of(w, w.out() * w.in()), w.bias() == null ? null : g.of(w.bias(), w.out()), dY, in, w);
    }

    /** LLaMA layer: x1 = x + o(attn(rope(q(h1)), rope(k(h1)), v(h1))), h1 = rms(x); out = x1 + down(silu(gate(h2)) ⊙ up(h2)), h2 = rms(x1). */
    private Tensor decoderLayerBackward(int li, Tensor xIn, Tensor dOut, Grads g) {
        TextConfig tc = model.config().text();
        LlavaWeights.LlamaLayer l = model.weights().text.layers()[li];
        int n = xIn.rows(), hd = tc.headDim(), kvDim = tc.kvDim();
        Tensor keys = backend.allocate(n, kvDim), values = backend.allocate(n, kvDim);
        Tensor y = copyOf(xIn);
        Map<Linear, Tensor> in = capture(() -> model.decoderLayer(li, y, keys, values, 0), l.q(), l.o(), l.gate(), l.down());
        Tensor h1 = in.get(l.q()), att = in.get(l.o()), h2 = in.get(l.gate()), m = in.get(l.down());
        Tensor q = linear(h1, l.q());
        backend.rope(q, tc.numHeads(), hd, 0, tc.ropeTheta());
        Tensor x1 = linear(att, l.o());
        backend.add(x1, xIn);
        Tensor gate = linear(h2, l.gate()), up = linear(h2, l.up());
        // MLP
        Tensor dM = backend.allocate(n, tc.intermediateSize());
        linearBack(dM, dOut, m, l.down(), g);
        Tensor dGate = backend.allocate(n, tc.intermediateSize()), dUp = backend.allocate(n, tc.intermediateSize());
        ops.gatedActivateBackward(dGate, dUp, dM, gate, up, tc.hiddenAct());
        Tensor dH2 = backend.allocate(n, tc.hiddenSize());
        linearBack(dH2, dGate, h2, l.gate(), g);
        linearBack(dH2, dUp, h2, l.up(), g);
        Tensor dX1 = copyOf(dOut);
        ops.rmsNormBackward(dX1, g.of(l.postAttentionNorm(), tc.hiddenSize()), dH2, x1, l.postAttentionNorm(), tc.rmsNormEps());
        // attention
        Tensor dAtt = backend.allocate(n, tc.qDim());
        linearBack(dAtt, dX1, att, l.o(), g);
        Tensor dQ = backend.allocate(n, tc.qDim()), dK = backend.allocate(n, kvDim), dV = backend.allocate(n, kvDim);
        ops.attentionBackward(dQ, dK, dV, dAtt, q, keys, values, n, tc.numHeads(), tc.numKvHeads(), hd, 0, true,
                (float) (1.0 / Math.sqrt(hd)));
        ops.ropeBackward(dQ, tc.numHeads(), hd, 0, tc.ropeTheta());
        ops.ropeBackward(dK, tc.numKvHeads(), hd, 0, tc.ropeTheta());
        Tensor dH1 = backend.allocate(n, tc.hiddenSize());
        linearBack(dH1, dQ, h1, l.q(), g);
        linearBack(dH1, dK, h1, l.k(), g);
        linearBack(dH1, dV, h1, l.v(), g);
        Tensor dX = dX1; // residual
        ops.rmsNormBackward(dX, g.of(l.inputNorm(), tc.hiddenSize()), dH1, xIn, l.inputNorm(), tc.rmsNormEps());
        return dX;
    }

    /** CLIP layer: x1 = x + out(attn(q(h1), k(h1), v(h1))), h1 = ln1(x); out = x1 + fc2(act(fc1(h2))), h2 = ln2(x1). */
    private Tensor visionLayerBackward(int i, Tensor xIn, Tensor dOut, Grads g) {
        VisionConfig vc = model.config().vision();
        LlavaWeights.ClipLayer l = model.weights().vision.layers()[i];
        int n = xIn.rows(), D = vc.hiddenSize(), hd = vc.headDim();
        Tensor y = copyOf(xIn);
        Map<Linear, Tensor> in = capture(() -> model.visionLayer(i, y), l.q(), l.out(), l.fc1(), l.fc2());
        Tensor h1 = in.get(l.q()), att = in.get(l.out()), h2 = in.get(l.fc1()), mid = in.get(l.fc2());
        Tensor q = linear(h1, l.q()), k = linear(h1, l.k()), v = linear(h1, l.v());
        Tensor x1 = linear(att, l.out());
        backend.add(x1, xIn);
        Tensor pre = linear(h2, l.fc1());
        Tensor dMid = backend.allocate(n, vc.intermediateSize());
        linearBack(dMid, dOut, mid, l.fc2(), g);
        ops.activateBackward(dMid, dMid, pre, vc.hiddenAct());
        Tensor dH2 = backend.allocate(n, D);
        linearBack(dH2, dMid, h2, l.fc1(), g);
        Tensor dX1 = copyOf(dOut);
        ops.layerNormBackward(dX1, g.of(l.ln2Weight(), D), g.of(l.ln2Bias(), D), dH2, x1, l.ln2Weight(), vc.layerNormEps());
        Tensor dAtt = backend.allocate(n, D);
        linearBack(dAtt, dX1, att, l.out(), g);
        Tensor dQ = backend.allocate(n, D), dK = backend.allocate(n, D), dV = backend.allocate(n, D);
        ops.attentionBackward(dQ, dK, dV, dAtt, q, k, v, n, vc.numHeads(), vc.numHeads(), hd, 0, false,
                (float) (1.0 / Math.sqrt(hd)));
        Tensor dH1 = backend.allocate(n, D);
        linearBack(dH1, dQ, h1, l.q(), g);
        linearBack(dH1, dK, h1, l.k(), g);
        linearBack(dH1, dV, h1, l.v(), g);
        ops.layerNormBackward(dX1, g.of(l.ln1Weight(), D), g.of(l.ln1Bias(), D), dH1, xIn, l.ln1Weight(), vc.layerNormEps());
        return dX1;
    }

    /** Projector: out = linear2(act(linear1(features))). Returns d features. */
    private Tensor projectorBackward(Tensor features, Tensor dOut, Grads g) {
        LlavaWeights.Projector p = model.weights().projector;
        Tensor pre = linear(features, p.linear1());
        Tensor a = copyOf(pre);
        backend.activate(a, model.config().projectorAct());
        Tensor dA = backend.allocate(a.rows(), a.cols());
        linearBack(dA, dOut, a, p.linear2(), g);
        ops.activateBackward(dA, dA, pre, model.config().projectorAct());
        Tensor dF = backend.allocate(features.rows(), features.cols());
        linearBack(dF, dA, features, p.linear1(), g);
        return dF;
    }
}
