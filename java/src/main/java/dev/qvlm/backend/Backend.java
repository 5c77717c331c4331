package dev.qvlm.backend;

import dev.qvlm.config.Activation;
import dev.qvlm.model.Linear;
import dev.qvlm.tensor.Matrix;

/**
 * The operations the LLaVA forward pass is written against, once, for every device. Weights ({@link Linear},
 * {@link Matrix}, float[] vectors) are model objects; a device backend uploads them on first use and keeps them
 * by identity. All tensors are row-major [rows x cols]; "in place" ops overwrite their first argument.
 */
public interface Backend extends AutoCloseable {
    String name();

    Tensor allocate(int rows, int cols);

    /**
     * A tensor the caller's next op overwrites entirely (a linear's, norm's or attention's output): its contents
     * are undefined until then. The same as {@link #allocate} unless a device can skip the zeroing: on the GPU a
     * memset is one more call from the host per activation, ~240 per 13B decode step.
     */
    default Tensor uninitialized(int rows, int cols) {
        return allocate(rows, cols);
    }

    /**
     * {Σ (y − t)², Σ t²} over all elements of two tensors of one shape, in double: the quantization search's error of
     * one sample, computed where the tensors live (the GPU sums on the device instead of downloading both).
     * Default: downloads both and sums in order.
     */
    default double[] errorSums(Tensor y, Tensor t) {
        float[] a = download(y), b = download(t);
        if (a.length != b.length) throw new IllegalArgumentException("errorSums: " + a.length + " vs " + b.length + " elements");
        double n = 0, d = 0;
        for (int i = 0; i < a.length; i++) {
            double e = a[i] - b[i];
            n += e * e;
            d += (double) b[i] * b[i];
        }
        return new double[]{n, d};
    }

    /**
     * {min, max} of a tensor's values, NaNs ignored ((+∞, −∞) when there is none): the calibration's activation
     * ranges and entropy levels, computed where the tensor lives. Default: over a download ({@link Statistics}).
     */
    default float[] minMax(Tensor t) {
        float[] x = download(t);
        return Statistics.minMax(x, 0, x.length);
    }

    /**
     * Adds to {@code hist} the number of t's values in each of its bins: value v counts in bin ⌊(v − lo) / width⌋
     * (in double), clamped to the first and last bin (the calibration's percentile histograms). Default: over a
     * download.
     */
    default void histogram(Tensor t, double lo, double width, long[] hist) {
        float[] x = download(t);
        Statistics.histogram(x, 0, x.length, lo, width, hist);
    }

    /**
     * Q-VLM's soft joint level histogram (Eq. 4–5) of two tensors of one shape, added to {@code sums} (M × Mb,
     * row-major, unnormalised: divide by the element count): for every element pair, p_a(m) · p_b(k) with p the
     * soft assignment to M levels loA + m·stepA, resp. Mb levels loB + k·stepB. Computed where the tensors live
     * (a GPU in FP32); the reference and default is {@link Statistics#jointLevelSums} over downloads, in double.
     */
    default void jointLevelSums(Tensor a, Tensor b, double loA, double stepA, int M, double loB, double stepB, int Mb,
                                double[] sums) {
        float[] x = download(a), y = download(b);
        if (x.length != y.length) throw new IllegalArgumentException("jointLevelSums: " + x.length + " vs " + y.length + " elements");
        Statistics.jointLevelSums(x, 0, y, 0, 0, x.length, loA, stepA, M, loB, stepB, Mb, sums);
    }

    /**
     * The caller will not run this weight again (a quantization candidate that lost): a device that keeps its own
     * copy of each weight it has seen frees it now. Without this, a search over clipping candidates would hold every
     * candidate of every layer on the GPU. Default: nothing to free.
     */
    default void release(dev.qvlm.tensor.Matrix weight) {}

    /**
     * The caller will not run this weight for a while (a calibrated block's weights once the block is done): a device
     * may drop its copy now and upload it again on its next use, so that it holds one block's weights at a time
     * instead of the model's. Default: nothing to drop.
     */
    default void evict(dev.qvlm.tensor.Matrix weight) {}

    /**
     * Runs {@code step}, one of a series of steps that issue the same operations each time except for positions and
     * lengths (decode steps), ending with a download of its result. A device may record the operations once and
     * replay the recording (the CUDA backend: a CUDA graph, its kernel arguments patched per step), so the step's
     * host code then only checks the operations instead of issuing them. If a replay cannot apply, the device calls
     * {@code reset} (undo the step's host-side effects, e.g. cache lengths) and runs {@code step} again eagerly.
     * {@code key} names the kind of step (steps of one key issue the same operations). Default: {@code step.get()}.
     */
    default float[] repeatedStep(String key, java.util.function.Supplier<float[]> step, Runnable reset) {
        return step.get();
    }

    /**
     * Opens a scope for the calling thread's temporaries: tensors this thread allocates while it is the innermost
     * open scope are released when it closes (the CPU keeps their arrays for the next allocations of the same size,
     * a GPU gives its blocks back to its pool), so a forward pass that scopes each layer allocates nothing new in
     * steady state and never waits for the garbage collector. Nothing allocated inside may be used after the close
     * (views included); scopes nest. Default: nothing is released early (tensors live while reachable).
     */
    default Scope scope() {
        return Scope.NONE;
    }

    /** See {@link #scope}. */
    interface Scope extends AutoCloseable {
        /** A scope that releases nothing. */
        Scope NONE = () -> {};

        @Override
        void close();
    }

    /**
     * The caller is done with {@code t} (a tensor from {@link #allocate}, {@link #uninitialized} or {@link #upload},
     * not a view), and so are its views: a device takes its memory back at once instead of when the tensor becomes
     * unreachable (a finished request's KV cache, an image's embeddings after the prefill). Using it afterwards is
     * an error the device reports. Tensors of a {@link #scope} are released by the scope. Default: nothing to do.
     */
    default void free(Tensor t) {}

    Tensor upload(float[] data, int rows, int cols);

    /** Copies a tensor (or view) to a new host array. */
    float[] download(Tensor t);

    /** Rows [start, start+count) of t, sharing storage. */
    Tensor view(Tensor t, int start, int count);

    void copy(Tensor src, Tensor dst);

    /** out[t] = table[ids[t]] (embedding gather). */
    void embed(Tensor out, Matrix table, int[] ids);

    /** out = in · Wᵀ + b, with the linear's input quantizer applied to {@code in} first if it has one. */
    void linear(Tensor out, Tensor in, Linear w);

    /**
     * Several linears of one input (a layer's q, k and v; gate and up): outs[i] = in · W_iᵀ + b_i, each exactly
     * what {@link #linear} gives it. A backend overrides this to share work between them.
     */
    default void linears(Tensor[] outs, Tensor in, Linear[] ws) {
        for (int i = 0; i < ws.length; i++) linear(outs[i], in, ws[i]);
    }

    /**
     * Whether this backend computes every row of {@code w}'s output with the same bits whatever other rows share the
     * call (then the forward pass may drop rows whose results nobody reads). Default: no.
     */
    default boolean rowExact(Linear w) {
        return false;
    }

    void rmsNorm(Tensor out, Tensor in, float[] gamma, float eps);

    /**
     * The residual add and the norm after it: acc += x, then out = RMSNorm(acc). One op so that a device can do both
     * in one pass over the row. Default: add, then rmsNorm.
     */
    default void addRmsNorm(Tensor acc, Tensor x, Tensor out, float[] gamma, float eps) {
        add(acc, x);
        rmsNorm(out, acc, gamma, eps);
    }

    void layerNorm(Tensor out, Tensor in, float[] gamma, float[] beta, float eps);

    /** acc += x (same shape). */
    void add(Tensor acc, Tensor x);

    /** x = act(x), in place. */
    void activate(Tensor x, Activation act);

    /** gate = act(gate) * up, in place (LLaMA's SiLU MLP). */
    void gatedActivate(Tensor gate, Tensor up, Activation act);

    /**
     * Rotary position embedding, HF "rotate_half" convention (pairs i and i + headDim/2), in place on x, whose
     * row r holds token position {@code startPos + r} with {@code heads} heads of {@code headDim}.
     */
    void rope(Tensor x, int heads, int headDim, int startPos, double theta);

    /**
     * A sequence's new keys and values into its cache: RoPE on {@code k} in place (positions pos, pos+1, ...), then
     * the rows of {@code k} and {@code v} copied to rows pos.. of {@code keys} and {@code values}. One op so that a
     * device can do it in one pass (the GPU: one kernel instead of three per layer). Default: rope, copy, copy.
     */
    default void storeKv(Tensor k, Tensor v, Tensor keys, Tensor values, int kvHeads, int headDim, int pos, double theta) {
        rope(k, kvHeads, headDim, pos, theta);
        copy(k, view(keys, pos, k.rows()));
        copy(v, view(values, pos, v.rows()));
    }

    /**
     * {@link #storeKv} and RoPE on the same rows' queries ({@code q}: [rows, heads·headDim], in place), the decode
     * step's position-dependent work in one op (the GPU: one kernel). Default: rope on q, then storeKv.
     */
    default void ropeQStoreKv(Tensor q, int heads, Tensor k, Tensor v, Tensor keys, Tensor values, int kvHeads,
                              int headDim, int pos, double theta) {
        rope(q, heads, headDim, pos, theta);
        storeKv(k, v, keys, values, kvHeads, headDim, pos, theta);
    }

    /**
     * Multi-head attention with grouped KV heads. q: [n, heads*headDim], rows at positions qPos0..qPos0+n-1;
     * k, v: [kvLen, kvHeads*headDim] (at least kvLen rows); out: [n, heads*headDim]. Causal masks key j > query
     * position. Scale is applied to the scores.
     */
    void attention(Tensor out, Tensor q, Tensor k, Tensor v, int kvLen, int heads, int kvHeads, int headDim,
                   int qPos0, boolean causal, float scale);

    /**
     * Rows [row, row+rows) of a batched query/output: one sequence whose keys and values (its cache, [capacity x
     * kvHeads*headDim]) hold kvLen positions, its first row at position qPos0.
     */
    record AttentionSegment(int row, int rows, Tensor keys, Tensor values, int kvLen, int qPos0) {}

    /**
     * {@link #attention} for several sequences at once (a batched decode step: each sequence attends to its own
     * cache). The result of every row must be the same as that sequence's own call. By default one call per
     * sequence; a backend overrides it to spread all sequences' heads over its cores in one go.
     */
    default void attention(Tensor out, Tensor q, java.util.List<AttentionSegment> segments, int heads, int kvHeads,
                           int headDim, boolean causal, float scale) {
        for (AttentionSegment s : segments)
            attention(view(out, s.row(), s.rows()), view(q, s.row(), s.rows()), s.keys(), s.values(), s.kvLen(), heads,
                    kvHeads, headDim, s.qPos0(), causal, scale);
    }

    /**
     * The backward ops of this backend (training the vision tower). Backends without backward kernels say so
     * here, before any compute.
     */
    default BackwardOps backward() {
        throw new dev.qvlm.QvlmException("the " + name() + " backend has no backward pass yet; "
                + "the visual-encoder optimisation runs on the CPU backend (--device cpu)");
    }

    @Override
    default void close() {}
}
