package dev.qvlm.calib;

import dev.qvlm.model.Linear;
import dev.qvlm.quant.ActQuantizer;
import dev.qvlm.quant.Gptq;
import dev.qvlm.quant.Grid;
import dev.qvlm.quant.Q4Matrix;
import dev.qvlm.quant.QuantizedWeight;
import dev.qvlm.quant.WeightQuantizer;
import dev.qvlm.tensor.Matrix;

import java.lang.foreign.Arena;
import java.util.HashMap;
import java.util.Map;

/**
 * The quantization state of one linear during calibration: its full-precision weight, the chosen clipping
 * percentiles of its weight and input quantizers, and caches of the fake-quantized weights per percentile
 * (each candidate is quantized once, however often the search revisits it).
 */
final class LinearState {
    final Linear linear;
    /** The full-precision weight; replaced (before any quantization) when AWQ / SmoothQuant fold scales into it. */
    Matrix original;
    final QuantSettings settings;
    final ActRange range;
    /** Chosen clipping percentiles: weight, and the activation range's lower and upper tail (equal unless searched separately). */
    double wClip = 1.0, aLo = 1.0, aHi = 1.0;
    private WeightQuantizer.Prepared prepared;
    /** GPTQ: Σ x xᵀ of this linear's quantized-path calibration inputs, set before its block is searched. */
    double[] hessian;
    private Gptq.Factor factor; // of hessian, shared by every clipping candidate
    /** AWQ: per weight group, the |w| limit its clipping search chose (clamp(w, −m, m) before min–max); null = none. */
    float[] clipLimit;
    private final Map<Double, QuantizedWeight> weights = new HashMap<>();

    /** Told of every candidate weight dropped, so a device frees its copy ({@link dev.qvlm.backend.Backend#release}). */
    private final java.util.function.Consumer<Matrix> released;

    LinearState(Linear linear, QuantSettings settings) {
        this(linear, settings, m -> {});
    }

    LinearState(Linear linear, QuantSettings settings, java.util.function.Consumer<Matrix> released) {
        this.released = released;
        this.linear = linear;
        this.original = linear.weight();
        this.settings = settings;
        this.range = settings.staticActivations() ? new ActRange() : null;
    }

    boolean hasWeightSlot() {
        return settings.weights() != null;
    }

    boolean hasActSlot() {
        return settings.staticActivations();
    }

    void setFp() {
        linear.setWeight(original);
        linear.setInputQuantizer(null);
    }

    void setQuant() {
        linear.setWeight(hasWeightSlot() ? weightMatrix(wClip) : original);
        linear.setInputQuantizer(actQuantizer(aLo, aHi));
    }

    void reset() {
        wClip = aLo = aHi = 1.0;
    }

    synchronized QuantizedWeight quantized(double clip) {
        if (prepared == null) prepared = WeightQuantizer.prepare(original, settings.weights());
        return weights.computeIfAbsent(clip, c -> {
            Grid grid = prepared.grid(c, clipLimit);
            if (settings.rounding().gptq() && hessian != null) {
                if (factor == null) factor = Gptq.factor(hessian, original.cols(), settings.gptq());
                return Gptq.quantize(prepared.values(), grid, factor, settings.gptq());
            }
            return grid.round(prepared.values());
        });
    }

    /** Replaces the full-precision weight (scales folded in) and forgets every quantized candidate of the old one. */
    synchronized void replaceOriginal(Matrix w) {
        linear.setWeight(w);
        original = w;
        prepared = null;
        weights.clear();
        dropMatrices();
    }

    /** Sets the GPTQ Hessian and forgets candidates rounded without it. */
    synchronized void setHessian(double[] h) {
        hessian = h;
        factor = null;
        weights.clear();
        dropMatrices();
    }

    /** Forgets every weight matrix and frees the packed ones (the linear falls back to its full-precision weight). */
    private void dropMatrices() {
        if (matrices.containsValue(linear.weight())) linear.setWeight(original);
        matrices.values().forEach(released);
        arenas.values().forEach(Arena::close);
        arenas.clear();
        matrices.clear();
    }

    private final Map<Double, Matrix> matrices = new HashMap<>();
    /** Native memory of the packed 4-bit candidates, one arena each, so a dropped candidate is freed at once. */
    private final Map<Double, Arena> arenas = new HashMap<>();

    /**
     * The fake-quantized weight the forward pass runs with. 4-bit weights stay packed (0.5 byte per weight, decoded
     * row by row to exactly the values of {@link QuantizedWeight#get}); other widths are a dense FP32 matrix.
     */
    synchronized Matrix weightMatrix(double clip) {
        return matrices.computeIfAbsent(clip, c -> {
            QuantizedWeight q = quantized(c);
            if (q.bits() != 4) return q.toMatrix();
            Arena a = Arena.ofShared();
            arenas.put(c, a);
            return Q4Matrix.from(q, a);
        });
    }

    private final Map<Long, Linear.InputQuantizer> actCache = new HashMap<>();
    private Linear.InputQuantizer dynamicAct; // per-token ranges: the same quantizer whatever the clip

    /** The input quantizer with bounds at the (1 − lo) and hi quantiles of the calibration activations. */
    synchronized Linear.InputQuantizer actQuantizer(double lo, double hi) {
        if (settings.activations() == null) return null;
        if (settings.actDynamic()) {
            if (dynamicAct == null) dynamicAct = ActQuantizer.dynamicPerToken(settings.activations());
            return dynamicAct;
        }
        long key = Double.doubleToLongBits(lo) * 31 + Double.doubleToLongBits(hi);
        return actCache.computeIfAbsent(key, k -> {
            // clipped RTN (--method rtn --grid P): per-prompt quantiles, as the PyTorch reference computes them
            boolean perCall = settings.method() == Method.RTN && settings.grid().length == 1 && lo == settings.grid()[0]
                    && hi == lo && lo < 1.0;
            double[] b = perCall ? range.perCallBounds() : range.bounds(lo, hi);
            return ActQuantizer.staticPerTensor(settings.activations(), (float) b[0], (float) b[1]);
        });
    }

    /**
     * The device copies of the weight candidates other than {@code clip}'s dropped (kept on the host; a later use
     * uploads them again), so that a coordinate search holds one candidate per linear on the device, not the grid.
     */
    synchronized void evictCandidatesExcept(double clip, java.util.function.Consumer<Matrix> evict) {
        matrices.forEach((c, m) -> {
            if (c != clip) evict.accept(m);
        });
    }

    /**
     * Frees the candidates not chosen (keeps memory bounded when a block is done). Once the chosen matrix exists its
     * codes are dropped too, unless GPTQ rounded them (that needs the Hessian, dropped here): {@link #chosenQuantized}
     * recomputes them, identically, when the checkpoint is saved.
     */
    synchronized void keepOnlyChosen() {
        matrices.entrySet().removeIf(e -> {
            if (e.getKey() == wClip) return false;
            released.accept(e.getValue());
            return true;
        });
        arenas.entrySet().removeIf(e -> {
            if (e.getKey() == wClip) return false;
            e.getValue().close();
            return true;
        });
        boolean recomputable = !(settings.rounding().gptq() && hessian != null);
        weights.keySet().removeIf(k -> k != wClip || (recomputable && matrices.containsKey(k)));
        prepared = null;
        hessian = null;
        factor = null;
    }

    /** The chosen quantized weight, for saving: recomputed (round to nearest on its grid) when it was dropped. */
    synchronized QuantizedWeight chosenQuantized() {
        QuantizedWeight q = weights.get(wClip);
        if (q != null) return q;
        WeightQuantizer.Prepared p = WeightQuantizer.prepare(original, settings.weights());
        return p.grid(wClip, clipLimit).round(p.values());
    }

    /** Frees the native memory of the packed weights; the linear must not run with them afterwards. */
    synchronized void close() {
        dropMatrices();
    }
}
