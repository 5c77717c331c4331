package dev.qvlm.model;

import dev.qvlm.QvlmException;
import dev.qvlm.backend.Backend;
import dev.qvlm.backend.Tensor;
import dev.qvlm.config.LlavaConfig;
import dev.qvlm.config.TextConfig;
import dev.qvlm.config.VisionConfig;

import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Set;

/**
 * The LLaVA-1.5 forward pass, written once against {@link Backend}: CLIP vision tower → projector → LLaMA decoder,
 * with the image features spliced in at the {@code <image>} token positions (HF LlavaForConditionalGeneration).
 */
public final class LlavaModel {
    private final LlavaConfig config;
    private final LlavaWeights weights;
    private final Backend backend;
    private final Linear patchEmbedding;
    private final Tensor positionEmbedding;
    private ForwardHooks hooks = ForwardHooks.NONE;

    public LlavaModel(LlavaConfig config, LlavaWeights weights, Backend backend) {
        this.config = config;
        this.weights = weights;
        this.backend = backend;
        // the patch conv (stride = kernel = patch) is a linear over unfolded patches; HF's Conv2d is not nn.Linear,
        // so quantization scopes leave it alone
        this.patchEmbedding = new Linear("vision.embeddings.patch_embedding", Linear.Part.VISION_EMBEDDING,
                weights.vision.patchEmbedding(), null);
        this.positionEmbedding = backend.upload(weights.vision.positionEmbedding(), config.vision().numPositions(),
                config.vision().hiddenSize());
    }

    public LlavaConfig config() {
        return config;
    }

    public LlavaWeights weights() {
        return weights;
    }

    public Backend backend() {
        return backend;
    }

    public void setHooks(ForwardHooks hooks) {
        this.hooks = hooks == null ? ForwardHooks.NONE : hooks;
    }

    public ForwardHooks hooks() {
        return hooks;
    }

    private void linear(Tensor out, Tensor in, Linear w) {
        hooks.linearInput(w, in);
        backend.linear(out, in, w);
    }

    /**
     * A scope for the temporaries of a layer or a step ({@link Backend#scope}): released at its end, so the forward
     * pass reuses its activation memory instead of leaving it to the collector. None while hooks that may keep
     * tensors or allocate their own copies observe the forward pass ({@link ForwardHooks#readOnly}).
     */
    private Backend.Scope scope() {
        return hooks.readOnly() ? backend.scope() : Backend.Scope.NONE;
    }

    // ---------------------------------------------------------------- vision tower

    /**
     * CLIP features of one image, pixel values [C, H, W] (CHW, normalised): the hidden state of the configured
     * feature layer, class token dropped under the "default" strategy. Shape [features x visionHidden].
     */
    public Tensor visionFeatures(float[] pixels) {
        Tensor x = visionEmbeddings(pixels);
        for (int i = 0; i < config.visionFeatureLayer(); i++) {
            visionLayer(i, x);
            hooks.layerOutput(Linear.Part.VISION, i, x);
        }
        return selectFeatures(x);
    }

    /** Patch embedding + class token + positions, then CLIP's pre-LayerNorm: hidden_states[0], [patches+1 x D]. */
    public Tensor visionEmbeddings(float[] pixels) {
        VisionConfig vc = config.vision();
        int C = vc.numChannels(), S = vc.imageSize(), P = vc.patchSize(), side = S / P, D = vc.hiddenSize();
        if (pixels.length != C * S * S)
            throw new QvlmException("pixel values have " + pixels.length + " elements, the vision tower expects "
                    + C + "x" + S + "x" + S);
        int np = side * side, k = C * P * P;
        // unfold into [patch, (c, py, px)], the order of the conv kernel (D, C, P, P)
        float[] unfolded = new float[np * k];
        for (int py = 0; py < side; py++)
            for (int px = 0; px < side; px++) {
                int row = (py * side + px) * k;
                for (int c = 0; c < C; c++)
                    for (int y = 0; y < P; y++)
                        System.arraycopy(pixels, c * S * S + (py * P + y) * S + px * P, unfolded, row + (c * P + y) * P, P);
            }
        Tensor patches = backend.upload(unfolded, np, k);
        Tensor emb = backend.allocate(np + 1, D);
        backend.copy(backend.upload(weights.vision.classEmbedding(), 1, D), backend.view(emb, 0, 1));
        linear(backend.view(emb, 1, np), patches, patchEmbedding);
        backend.add(emb, positionEmbedding);
        Tensor x = backend.allocate(np + 1, D);
        backend.layerNorm(x, emb, weights.vision.preLnWeight(), weights.vision.preLnBias(), vc.layerNormEps());
        return x;
    }

    /** CLIP encoder layer {@code i} (pre-LN, full attention), in place on x [tokens x D]. */
    public void visionLayer(int i, Tensor x) {
        try (Backend.Scope scope = scope()) {
            visionLayerIn(i, x);
        }
    }

    private void visionLayerIn(int i, Tensor x) {
        VisionConfig vc = config.vision();
        int n = x.rows(), D = vc.hiddenSize(), hd = vc.headDim();
        Tensor h = backend.allocate(n, D), q = backend.allocate(n, D), kk = backend.allocate(n, D),
                v = backend.allocate(n, D), att = backend.allocate(n, D), tmp = backend.allocate(n, D),
                mid = backend.allocate(n, vc.intermediateSize());
        LlavaWeights.ClipLayer l = weights.vision.layers()[i];
        backend.layerNorm(h, x, l.ln1Weight(), l.ln1Bias(), vc.layerNormEps());
        linear(q, h, l.q());
        linear(kk, h, l.k());
        linear(v, h, l.v());
        backend.attention(att, q, kk, v, n, vc.numHeads(), vc.numHeads(), hd, 0, false, (float) (1.0 / Math.sqrt(hd)));
        linear(tmp, att, l.out());
        backend.add(x, tmp);
        backend.layerNorm(h, x, l.ln2Weight(), l.ln2Bias(), vc.layerNormEps());
        linear(mid, h, l.fc1());
        backend.activate(mid, vc.hiddenAct());
        linear(tmp, mid, l.fc2());
        backend.add(x, tmp);
    }

    /**
     * hidden_states[featureLayer] → image features: the class token dropped under the "default" strategy. (Only
     * the layers up to the feature layer are ever run: HF's later layers do not influence the output.)
     */
    public Tensor selectFeatures(Tensor x) {
        return config.dropClsToken() ? backend.view(x, 1, x.rows() - 1) : x;
    }

    /** The multimodal projector: linear → act → linear, [features x visionHidden] → [features x textHidden]. */
    public Tensor project(Tensor features) {
        Tensor out = backend.allocate(features.rows(), config.text().hiddenSize());
        projectInto(out, features);
        return out;
    }

    private void projectInto(Tensor out, Tensor features) {
        try (Backend.Scope scope = scope()) {
            Tensor mid = backend.allocate(features.rows(), config.text().hiddenSize());
            linear(mid, features, weights.projector.linear1());
            backend.activate(mid, config.projectorAct());
            linear(out, mid, weights.projector.linear2());
        }
    }

    /**
     * Image → the embeddings that replace its {@code <image>} tokens (the tower's activations are released on the
     * way; the caller owns the result and may {@link Backend#free} it after the prefill).
     */
    public Tensor encodeImage(float[] pixels) {
        Tensor out = backend.allocate(config.imageFeatures(), config.text().hiddenSize());
        try (Backend.Scope scope = scope()) {
            Tensor features = visionFeatures(pixels);
            if (features.rows() != out.rows())
                throw new IllegalStateException(features.rows() + " image features, the config says " + out.rows());
            projectInto(out, features);
        }
        return out;
    }

    // ---------------------------------------------------------------- decoder

    /** Longest sequence (prompt with image tokens + generated tokens) the model takes: max_position_embeddings. */
    public int contextLength() {
        return config.text().maxPositionEmbeddings();
    }

    /**
     * The one context check of generation and evaluation: {@code promptTokens} (image tokens included) plus
     * {@code newTokens} must fit in {@code contextLength}, else one message saying by how much it does not.
     * Checked before any allocation or compute, so a 1 MB prompt or {@code --max-tokens 1000000000} fails at once.
     */
    public static void checkContext(long promptTokens, long newTokens, int contextLength) {
        if (newTokens < 0) throw new QvlmException("max_tokens must be >= 0, got " + newTokens);
        if (promptTokens + newTokens > contextLength)
            throw new QvlmException("prompt of " + promptTokens + " tokens + " + newTokens + " new tokens exceeds the model's context of "
                    + contextLength + " tokens (max_position_embeddings); shorten the prompt or lower --max-tokens");
    }

    /** A cache for {@code capacity} positions; refuses more than {@link #contextLength()}. */
    public KvCache newCache(int capacity) {
        checkContext(capacity, 0, contextLength());
        TextConfig tc = config.text();
        return new KvCache(backend, tc.numLayers(), capacity, tc.kvDim());
    }

    /**
     * One sequence's share of a batched step: {@code tokens} are appended to {@code cache}; rows of
     * {@code imageEmbeds} replace its {@code <image>} tokens in order (null when there are none).
     */
    public record Sequence(KvCache cache, int[] tokens, Tensor imageEmbeds) {}

    /** Rows [row, row+n) of a batched activation: one sequence, at positions pos..pos+n-1 of its keys/values. */
    private record Segment(int row, int n, Tensor keys, Tensor values, int pos) {}

    /**
     * Runs the decoder over {@code tokens}, appended to what the cache holds. Rows of {@code imageEmbeds} replace
     * the {@code <image>} tokens in order (null when there are none). Returns logits of every new position
     * ([tokens x vocab], row-major) when {@code allLogits}, else of the last one only.
     */
    public float[] forward(KvCache cache, int[] tokens, Tensor imageEmbeds, boolean allLogits) {
        if (!allLogits) return forwardLast(List.of(new Sequence(cache, tokens, imageEmbeds)));
        try (Backend.Scope scope = scope()) {
            return logits(forwardHidden(cache, tokens, imageEmbeds));
        }
    }

    /**
     * One step over several sequences at once (continuous batching): their rows go through every linear as one
     * matrix, while RoPE and attention run per sequence against its own cache. Returns the logits of each
     * sequence's last new position, [sequences x vocab] row-major. Every op the rows share is row-wise
     * independent (matmul rows, RMSNorm, per-token or static activation quantizers; a per-tensor dynamic
     * quantizer runs per sequence), so each sequence gets the same bits as {@link #forward} would give it alone.
     */
    public float[] forwardLast(List<Sequence> batch) {
        // a decode step (one new token per sequence, no image, nothing observing): the same operations every time
        // but for positions, so a device may replay it from a recording (Backend.repeatedStep: CUDA graphs)
        boolean decode = hooks == ForwardHooks.NONE && !batch.isEmpty();
        for (Sequence s : batch) decode &= s.tokens().length == 1 && s.imageEmbeds() == null;
        if (!decode) return forwardLastNow(batch);
        int[] lengths = new int[batch.size()];
        for (int i = 0; i < lengths.length; i++) lengths[i] = batch.get(i).cache().length;
        return backend.repeatedStep("decode x" + batch.size(), () -> forwardLastNow(batch), () -> {
            for (int i = 0; i < lengths.length; i++) batch.get(i).cache().length = lengths[i];
        });
    }

    private float[] forwardLastNow(List<Sequence> batch) {
        try (Backend.Scope scope = scope()) { // the step's activations; only the logits leave it, on the host
            return logitsOfLastRows(batch, forwardHidden(batch, true));
        }
    }

    private float[] logitsOfLastRows(List<Sequence> batch, Tensor x) {
        boolean oneRowEach = x.rows() == batch.size();
        Tensor sel = x;
        if (!oneRowEach) {
            sel = backend.allocate(batch.size(), config.text().hiddenSize());
            int row = 0;
            for (int s = 0; s < batch.size(); s++) {
                row += batch.get(s).tokens().length;
                backend.copy(backend.view(x, row - 1, 1), backend.view(sel, s, 1));
            }
        }
        return logits(sel);
    }

    /** Final norm and lm_head over the given hidden rows: [rows x vocab]. */
    private float[] logits(Tensor hidden) {
        TextConfig tc = config.text();
        Tensor normed = backend.uninitialized(hidden.rows(), tc.hiddenSize());
        backend.rmsNorm(normed, hidden, weights.text.norm(), tc.rmsNormEps());
        Tensor logits = backend.uninitialized(hidden.rows(), tc.vocabSize());
        linear(logits, normed, weights.text.lmHead());
        return backend.download(logits);
    }

    /**
     * LLaMA decoder layer {@code li}, in place on x [n x Dt] whose rows sit at positions pos..pos+n-1. Keys and
     * values of the new rows are written to rows pos..pos+n-1 of k and v ([capacity x kvDim]); attention reads
     * rows 0..pos+n-1.
     */
    public void decoderLayer(int li, Tensor x, Tensor keys, Tensor values, int pos) {
        decoderLayer(li, x, new Segment[]{new Segment(0, x.rows(), keys, values, pos)});
    }

    /** Decoder layer {@code li} over the rows of several sequences (segments), each with its own keys/values. */
    private void decoderLayer(int li, Tensor x, Segment[] segs) {
        decoderLayer(li, x, null, segs, false, null);
    }

    /**
     * A layer's result: x after the layer, or, when the layer deferred its last residual add, x before it and the
     * {@code pending} MLP output that the next layer adds in its first op ({@link Backend#addRmsNorm}: one kernel on
     * the GPU instead of an add and a norm, the same two ops on the CPU). Both are allocated outside the layer's
     * scope: x by the caller (or, for lastRows, before the scope opens), pending is the caller's pendingOut.
     */
    private record LayerOut(Tensor x, Tensor pending) {}

    /**
     * Decoder layer {@code li} over the rows of several sequences (segments), each with its own keys/values: in
     * place on x, returned. With {@code lastRows} only each sequence's last row goes on after the keys and values
     * (which every row writes to its cache): queries, attention, output projection and MLP run for those rows, and
     * the result is a new tensor of one row per segment, each row the same operations as in the full layer.
     */
    private LayerOut decoderLayer(int li, Tensor x, Tensor pending, Segment[] segs, boolean lastRows, Tensor pendingOut) {
        // with lastRows the result is a new tensor, one row per segment, every row copied in below
        Tensor xq = lastRows ? backend.uninitialized(segs.length, config.text().hiddenSize()) : x;
        try (Backend.Scope scope = scope()) {
            return decoderLayerIn(li, x, xq, pending, segs, lastRows, pendingOut);
        }
    }

    private LayerOut decoderLayerIn(int li, Tensor x, Tensor xq, Tensor pending, Segment[] segs, boolean lastRows,
                                    Tensor pendingOut) {
        TextConfig tc = config.text();
        int n = x.rows(), Dt = tc.hiddenSize(), hd = tc.headDim();
        LlavaWeights.LlamaLayer l = weights.text.layers()[li];
        Tensor h = backend.uninitialized(n, Dt);
        if (pending != null) backend.addRmsNorm(x, pending, h, l.inputNorm(), tc.rmsNormEps()); // the last layer's add
        else backend.rmsNorm(h, x, l.inputNorm(), tc.rmsNormEps());
        // keys and values of all rows in one matmul each, then each sequence's rows are copied into its own cache
        // (also for one sequence: a linear's output address then never depends on the position, which is what lets
        // a CUDA graph replay a decode step with only kernel arguments patched)
        Tensor k = backend.uninitialized(n, tc.kvDim()), v = backend.uninitialized(n, tc.kvDim());
        // the rows that go on past the keys and values (xq, hq), per sequence (qsegs: rows of xq, first position)
        Tensor hq = h;
        Segment[] qsegs = segs;
        if (lastRows) {
            hq = backend.uninitialized(segs.length, Dt);
            qsegs = new Segment[segs.length];
            for (int s = 0; s < segs.length; s++) {
                Segment g = segs[s];
                backend.copy(backend.view(x, g.row + g.n - 1, 1), backend.view(xq, s, 1));
                backend.copy(backend.view(h, g.row + g.n - 1, 1), backend.view(hq, s, 1));
                qsegs[s] = new Segment(s, 1, g.keys, g.values, g.pos + g.n - 1);
            }
        }
        int m = xq.rows();
        // outputs of the linears and the attention below, each written whole before it is read
        Tensor q = backend.uninitialized(m, tc.qDim()), att = backend.uninitialized(m, tc.qDim()),
                tmp = pendingOut != null ? pendingOut : backend.uninitialized(m, Dt),
                gate = backend.uninitialized(m, tc.intermediateSize()), up = backend.uninitialized(m, tc.intermediateSize());
        if (lastRows) {
            linears(new Tensor[]{k, v}, h, new Linear[]{l.k(), l.v()}, segs);
            linear(q, hq, l.q(), qsegs);
        } else linears(new Tensor[]{q, k, v}, h, new Linear[]{l.q(), l.k(), l.v()}, segs);
        // RoPE on the new keys and their copy into the caches, with the queries' RoPE in the same op where the query
        // rows are the key rows (every layer but a lastRows one)
        for (Segment s : segs) {
            Tensor ks = backend.view(k, s.row, s.n), vs = backend.view(v, s.row, s.n);
            if (lastRows) backend.storeKv(ks, vs, s.keys, s.values, tc.numKvHeads(), hd, s.pos, tc.ropeTheta());
            else backend.ropeQStoreKv(backend.view(q, s.row, s.n), tc.numHeads(), ks, vs, s.keys, s.values,
                    tc.numKvHeads(), hd, s.pos, tc.ropeTheta());
        }
        List<Backend.AttentionSegment> attSegs = new ArrayList<>(qsegs.length);
        for (Segment s : qsegs) {
            if (lastRows) backend.rope(backend.view(q, s.row, s.n), tc.numHeads(), hd, s.pos, tc.ropeTheta());
            attSegs.add(new Backend.AttentionSegment(s.row, s.n, s.keys, s.values, s.pos + s.n, s.pos));
        }
        // every sequence against its own cache, in one backend call (one fork on the CPU for the whole batch)
        backend.attention(att, q, attSegs, tc.numHeads(), tc.numKvHeads(), hd, true, (float) (1.0 / Math.sqrt(hd)));
        linear(tmp, att, l.o(), qsegs);
        backend.addRmsNorm(xq, tmp, hq, l.postAttentionNorm(), tc.rmsNormEps());
        linears(new Tensor[]{gate, up}, hq, new Linear[]{l.gate(), l.up()}, qsegs);
        backend.gatedActivate(gate, up, tc.hiddenAct());
        linear(tmp, gate, l.down(), qsegs);
        if (pendingOut != null) return new LayerOut(xq, tmp);
        backend.add(xq, tmp);
        return new LayerOut(xq, null);
    }

    /** Whether layer li's rows can be dropped before its queries without changing the kept rows' bits. */
    private boolean lastRowsExact(int li) {
        if (hooks != ForwardHooks.NONE) return false;
        LlavaWeights.LlamaLayer l = weights.text.layers()[li];
        for (Linear w : new Linear[]{l.q(), l.k(), l.v(), l.o(), l.gate(), l.up(), l.down()})
            if (!backend.rowExact(w)) return false;
        return true;
    }

    /** Linears of one input over a batch: {@link Backend#linears} when each is one matmul, else one at a time. */
    private void linears(Tensor[] outs, Tensor in, Linear[] ws, Segment[] segs) {
        for (Linear w : ws) {
            Linear.InputQuantizer q = w.inputQuantizer();
            if (segs.length > 1 && q != null && !q.rowIndependent()) {
                for (int i = 0; i < ws.length; i++) linear(outs[i], in, ws[i], segs);
                return;
            }
        }
        for (Linear w : ws) hooks.linearInput(w, in);
        backend.linears(outs, in, ws);
    }

    /** A linear over a batch: one matmul, unless its input quantizer couples rows (then per sequence). */
    private void linear(Tensor out, Tensor in, Linear w, Segment[] segs) {
        Linear.InputQuantizer q = w.inputQuantizer();
        if (segs.length == 1 || q == null || q.rowIndependent()) {
            linear(out, in, w);
            return;
        }
        for (Segment s : segs) linear(backend.view(out, s.row, s.n), backend.view(in, s.row, s.n), w);
    }

    /** The decoder's last hidden state (before the final norm) for the new tokens; updates the cache. */
    public Tensor forwardHidden(KvCache cache, int[] tokens, Tensor imageEmbeds) {
        return forwardHidden(List.of(new Sequence(cache, tokens, imageEmbeds)));
    }

    /** The decoder's last hidden state for the new tokens of every sequence, rows in batch order; updates caches. */
    public Tensor forwardHidden(List<Sequence> batch) {
        return forwardHidden(batch, false);
    }

    /**
     * {@link #forwardHidden(List)}; with {@code lastRows}, the result may hold only each sequence's last row (one row
     * per sequence): the last layer then computes queries, attention, output projection and MLP for those rows only
     * (keys and values for all, the cache needs them), as llama.cpp does, where that cannot change their bits (the
     * backend's {@link Backend#rowExact} for every linear of the layer, no observing hooks): 1/numLayers of a
     * prefill's q/o/MLP work saved.
     */
    private Tensor forwardHidden(List<Sequence> batch, boolean lastRows) {
        TextConfig tc = config.text();
        if (batch.isEmpty()) throw new IllegalArgumentException("empty batch");
        Segment[] segs = new Segment[batch.size()];
        Set<KvCache> seen = Collections.newSetFromMap(new IdentityHashMap<>());
        int total = 0;
        for (int s = 0; s < segs.length; s++) {
            Sequence q = batch.get(s);
            KvCache cache = q.cache();
            cache.checkOpen();
            int n = q.tokens().length, pos = cache.length;
            if (n == 0) throw new IllegalArgumentException("no tokens");
            if (!seen.add(cache)) throw new IllegalArgumentException("one cache appears twice in a batch");
            if (pos + n > cache.capacity)
                throw new QvlmException("sequence of " + (pos + n) + " tokens exceeds the cache capacity " + cache.capacity);
            segs[s] = new Segment(total, n, null, null, pos);
            total += n;
        }
        Tensor x;
        if (segs.length == 1) x = embedTokens(batch.get(0).tokens(), batch.get(0).imageEmbeds());
        else {
            x = backend.allocate(total, tc.hiddenSize());
            for (int s = 0; s < segs.length; s++)
                backend.copy(embedTokens(batch.get(s).tokens(), batch.get(s).imageEmbeds()), backend.view(x, segs[s].row, segs[s].n));
        }
        Tensor pending = null; // a layer's last residual add, done by the next layer's first op unless hooks observe x
        Tensor[] carry = new Tensor[2]; // the pending MLP outputs, alternating between two tensors outside the layers' scopes
        for (int li = 0; li < tc.numLayers(); li++) {
            for (int s = 0; s < segs.length; s++) {
                KvCache c = batch.get(s).cache();
                segs[s] = new Segment(segs[s].row, segs[s].n, c.keys[li], c.values[li], segs[s].pos);
            }
            boolean last = li == tc.numLayers() - 1;
            Tensor pendingOut = null;
            if (!last && hooks == ForwardHooks.NONE) {
                if (carry[li & 1] == null) carry[li & 1] = backend.uninitialized(total, tc.hiddenSize());
                pendingOut = carry[li & 1];
            }
            LayerOut out = decoderLayer(li, x, pending, segs, last && lastRows && total > segs.length && lastRowsExact(li),
                    pendingOut);
            x = out.x();
            pending = out.pending();
            hooks.layerOutput(Linear.Part.LLM, li, x);
        }
        for (int s = 0; s < segs.length; s++) batch.get(s).cache().length = segs[s].pos + segs[s].n;
        return x;
    }

    /** Token embeddings with the image features spliced at the {@code <image>} positions: [tokens x Dt]. */
    public Tensor embedTokens(int[] tokens, Tensor imageEmbeds) {
        TextConfig tc = config.text();
        int n = tokens.length, Dt = tc.hiddenSize();
        int[] ids = tokens.clone();
        int imageCount = 0;
        for (int i = 0; i < n; i++) {
            if (ids[i] == config.imageTokenIndex()) imageCount++;
            if (ids[i] < 0 || ids[i] >= tc.vocabSize()) {
                if (ids[i] == config.imageTokenIndex()) ids[i] = 0; // replaced below; keep the gather in range
                else throw new QvlmException("token id " + ids[i] + " is outside the vocabulary (" + tc.vocabSize() + ")");
            }
        }
        int features = imageEmbeds == null ? 0 : imageEmbeds.rows();
        if (imageCount != features)
            throw new QvlmException("the prompt has " + imageCount + " image tokens but " + features
                    + " image features were given (each <image> expands to " + config.imageFeatures() + " tokens)");
        Tensor x = backend.allocate(n, Dt);
        backend.embed(x, weights.text.embedTokens(), ids);
        if (features > 0) {
            // image features go to the image-token positions in order; runs are copied as blocks
            int f = 0;
            for (int i = 0; i < n; ) {
                if (tokens[i] != config.imageTokenIndex()) {
                    i++;
                    continue;
                }
                int j = i;
                while (j < n && tokens[j] == config.imageTokenIndex()) j++;
                backend.copy(backend.view(imageEmbeds, f, j - i), backend.view(x, i, j - i));
                f += j - i;
                i = j;
            }
        }
        return x;
    }
}
