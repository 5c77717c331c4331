package dev.qvlm.calib;

import dev.qvlm.backend.Tensor;
import dev.qvlm.model.Linear;
import dev.qvlm.quant.Grid;
import dev.qvlm.quant.InputStats;
import dev.qvlm.quant.QuantArgs;
import dev.qvlm.quant.WeightQuantizer;
import dev.qvlm.tensor.F32Matrix;
import dev.qvlm.tensor.Matrix;

import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

/**
 * Per-input-channel scales folded into the model before a unit is quantized, on its full-precision calibration
 * inputs (one unit's inputs in memory at a time). For each {@link ScaleGroup} (linears sharing an input and the op
 * that produces it) the input is divided by s through the preceding norm or linear and the linears take W·diag(s):
 * the full-precision function is unchanged, and nothing is added at run time.
 *
 * <ul>
 *   <li>SmoothQuant (Xiao et al., 2023; mit-han-lab/smoothquant {@code smooth_ln_fcs}): s_j = max|X_j|^α /
 *       max|W_:,j|^(1−α) over all linears of the group, both maxima clamped at 1e-5; only into norms.</li>
 *   <li>AWQ (Lin et al., 2024; mit-han-lab/llm-awq {@code auto_scale}, {@code auto_clip}): s = mean|x|^α, clamped at
 *       1e-4 and divided by sqrt(max s · min s), α ∈ {0, 0.05, …, 0.95} chosen to minimise the group's output error
 *       ‖W X − Q(W·diag s)·diag(s)⁻¹ X‖² with round-to-nearest weights (α = 0 is plain RTN, so it never does worse on
 *       this objective). Then, for every linear but q and k (as the reference), each weight group's range is clamped
 *       to ±r·max|w|, r ∈ {1, 0.95, …, 0.55} chosen per group against that group's share of the output error.</li>
 * </ul>
 * Output errors use G = Σ x xᵀ over all calibration tokens: ‖ΔW X‖² = Σ_rows δ G δᵀ.
 */
final class Equalization {
    static final int AWQ_GRID = 20, CLIP_STEPS = 10;
    private final CalibContext c;

    Equalization(CalibContext c) {
        this.c = c;
    }

    static boolean active(QuantSettings st) {
        return st.smoothing() || st.rounding().awq();
    }

    void apply(Unit u, List<Tensor> xFp) {
        QuantSettings st = c.st;
        List<ScaleGroup> groups = new ArrayList<>();
        for (ScaleGroup g : u.scaleGroups())
            if (g.linears().stream().allMatch(c.states::containsKey) && (g.prevLinear() == null || c.states.containsKey(g.prevLinear())))
                groups.add(g);
        boolean awq = st.rounding().awq();
        if (!awq && groups.stream().noneMatch(ScaleGroup::afterNorm)) return;
        List<LinearState> us = c.statesOf(u);
        if (us.isEmpty()) return;
        for (LinearState s : us) s.setFp();
        CalibContext.Captured cap = c.capture(u, xFp);
        Map<List<float[]>, double[]> grams = new IdentityHashMap<>();
        if (st.smoothing())
            for (ScaleGroup g : groups) {
                if (!g.afterNorm()) continue;
                List<float[]> x = cap.inputs().get(g.linears().get(0));
                double[] s = smoothScales(InputStats.maxAbs(x, g.channels()), g.linears(), st.smooth());
                fold(g, s);
                divide(x, s);
                c.report.equalization.put("smooth " + g.linears().get(0).name() + " (" + g.label() + ")", st.smooth());
            }
        if (!awq) return;
        for (ScaleGroup g : groups) {
            List<float[]> x = cap.inputs().get(g.linears().get(0));
            double[] gram = grams.computeIfAbsent(x, v -> InputStats.gram(v, g.channels()));
            double[] mean = InputStats.meanAbs(x, g.channels());
            float[] gramF = InputStats.toFloat(gram);
            double bestErr = Double.POSITIVE_INFINITY, bestAlpha = 0;
            double[] best = null;
            for (int k = 0; k < AWQ_GRID; k++) {
                double alpha = (double) k / AWQ_GRID;
                double[] s = awqScales(mean, alpha);
                double e = 0;
                for (Linear l : g.linears()) e += scaledError(l, s, gramF);
                if (e < bestErr) {
                    bestErr = e;
                    bestAlpha = alpha;
                    best = s;
                }
            }
            fold(g, best);
            divide(x, best);
            int n = g.channels();
            for (int i = 0; i < n; i++) for (int j = 0; j < n; j++) gram[i * n + j] /= best[i] * best[j];
            c.report.equalization.put("awq " + g.linears().get(0).name() + " (" + g.label() + ")", bestAlpha);
        }
        for (LinearState s : us) {
            String n = s.linear.name();
            if (n.endsWith("q_proj") || n.endsWith("k_proj")) continue; // q·kᵀ: clipping is hard to measure (as llm-awq)
            List<float[]> x = cap.inputs().get(s.linear);
            s.clipLimit = clipSearch(s.original, st.weights(), grams.computeIfAbsent(x, v -> InputStats.gram(v, s.linear.in())));
        }
    }

    static double[] smoothScales(double[] xmax, List<Linear> linears, double alpha) {
        int n = xmax.length;
        double[] wmax = new double[n];
        for (Linear l : linears) {
            float[] row = new float[n];
            for (int r = 0; r < l.out(); r++) {
                l.weight().rowToFloat(r, row, 0);
                for (int j = 0; j < n; j++) wmax[j] = Math.max(wmax[j], Math.abs(row[j]));
            }
        }
        double[] s = new double[n];
        for (int j = 0; j < n; j++)
            s[j] = Math.max(1e-5, Math.pow(Math.max(xmax[j], 1e-5), alpha) / Math.pow(Math.max(wmax[j], 1e-5), 1 - alpha));
        return s;
    }

    static double[] awqScales(double[] meanAbs, double alpha) {
        int n = meanAbs.length;
        double[] s = new double[n];
        double mx = 0, mn = Double.POSITIVE_INFINITY;
        for (int j = 0; j < n; j++) {
            s[j] = Math.max(1e-4, Math.pow(meanAbs[j], alpha));
            mx = Math.max(mx, s[j]);
            mn = Math.min(mn, s[j]);
        }
        double norm = Math.sqrt(mx * mn);
        for (int j = 0; j < n; j++) s[j] /= norm;
        return s;
    }

    /** ‖W X − Q(W·diag s)·diag(s)⁻¹ X‖² with min–max round-to-nearest weights of the run's weight quantizer. */
    private double scaledError(Linear l, double[] s, float[] gram) {
        int rows = l.out(), cols = l.in();
        float[] w = l.weight().toFloatArray();
        float[] ws = new float[w.length];
        for (int r = 0; r < rows; r++) for (int j = 0; j < cols; j++) ws[r * cols + j] = (float) (w[r * cols + j] * s[j]);
        float[] q = WeightQuantizer.quantize(new F32Matrix(rows, cols, ws), c.st.weights(), 1.0).dequantize();
        float[] d = new float[w.length];
        for (int r = 0; r < rows; r++) for (int j = 0; j < cols; j++) d[r * cols + j] = (float) (q[r * cols + j] / s[j] - w[r * cols + j]);
        return InputStats.segmentErrors(d, rows, cols, cols, gram, null, 1)[0];
    }

    /** Per weight group, the |w| limit r·max|w| minimising that group's output error δ G_gg δᵀ (r = 1: no clip). */
    static float[] clipSearch(Matrix w, QuantArgs a, double[] gram64) {
        float[] gram = InputStats.toFloat(gram64);
        WeightQuantizer.Prepared p = WeightQuantizer.prepare(w, a);
        int rows = p.rows(), cols = p.cols(), groups = p.groups(), seg = Math.min(p.groupSize(), cols);
        float[] values = p.values();
        float[] amax = new float[groups];
        for (int g = 0; g < groups; g++) {
            double[] b = p.bounds(g, 1.0);
            amax[g] = (float) Math.max(Math.abs(b[0]), Math.abs(b[1]));
        }
        float[] best = amax.clone();
        double[] bestErr = new double[groups];
        java.util.Arrays.fill(bestErr, Double.POSITIVE_INFINITY);
        for (int k = 0; k < CLIP_STEPS; k++) {
            double r = 1 - (double) k / AWQ_GRID;
            float[] limit = new float[groups];
            for (int g = 0; g < groups; g++) limit[g] = (float) (r * amax[g]);
            Grid grid = p.grid(1.0, limit);
            float[] q = grid.round(values).dequantize();
            float[] d = new float[q.length];
            for (int i = 0; i < q.length; i++) d[i] = q[i] - values[i];
            double[] err = InputStats.segmentErrors(d, rows, cols, seg, gram, grid, groups);
            for (int g = 0; g < groups; g++)
                if (err[g] < bestErr[g]) {
                    bestErr[g] = err[g];
                    best[g] = limit[g];
                }
        }
        return best;
    }

    /** Folds s: the producer's output channels are divided by s, the consumers' input columns multiplied by s. */
    private void fold(ScaleGroup g, double[] s) {
        int n = s.length;
        if (g.afterNorm()) {
            for (int j = 0; j < n; j++) g.normWeight()[j] = (float) (g.normWeight()[j] / s[j]);
            c.modified.put(g.normWeightName(), g.normWeight());
            if (g.normBias() != null) {
                for (int j = 0; j < n; j++) g.normBias()[j] = (float) (g.normBias()[j] / s[j]);
                c.modified.put(g.normBiasName(), g.normBias());
            }
        } else {
            Linear p = g.prevLinear();
            float[] w = p.weight().toFloatArray();
            int cols = p.in();
            for (int r = 0; r < n; r++) for (int j = 0; j < cols; j++) w[r * cols + j] = (float) (w[r * cols + j] / s[r]);
            c.states.get(p).replaceOriginal(new F32Matrix(n, cols, w));
            if (p.bias() != null) {
                for (int r = 0; r < n; r++) p.bias()[r] = (float) (p.bias()[r] / s[r]);
                c.modified.put(p.name() + ".bias", p.bias());
            }
        }
        for (Linear l : g.linears()) {
            float[] w = l.weight().toFloatArray();
            int rows = l.out();
            for (int r = 0; r < rows; r++) for (int j = 0; j < n; j++) w[r * n + j] = (float) (w[r * n + j] * s[j]);
            c.states.get(l).replaceOriginal(new F32Matrix(rows, n, w));
        }
    }

    private static void divide(List<float[]> xs, double[] s) {
        int n = s.length;
        for (float[] x : xs) for (int i = 0; i < x.length; i++) x[i] = (float) (x[i] / s[i % n]);
    }
}
