package dev.qvlm.calib;

import dev.qvlm.backend.Tensor;
import dev.qvlm.model.Linear;
import dev.qvlm.model.LlavaModel;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;

/**
 * Post-training quantization of a LLaVA model in place, streamed unit by unit (vision layers, projector, decoder
 * layers) so that only one step's activations for the calibration set are held at a time. Two activation paths
 * advance side by side: the full-precision one (targets, statistics) and the quantized one (inputs of the next
 * search), as in paper Eq. 2–3.
 */
public final class Calibrator {
    private final CalibContext c;
    private final List<CalibSample> samples;
    private final boolean analyzeEntropy;
    private final Equalization equalization;

    public Calibrator(LlavaModel model, QuantSettings settings, List<CalibSample> samples, boolean analyzeEntropy,
                      Consumer<String> log) {
        this.c = new CalibContext(model, settings, log);
        this.samples = samples;
        this.analyzeEntropy = analyzeEntropy;
        this.equalization = Equalization.active(settings) ? new Equalization(c) : null;
    }

    // ------------------------------------------------------------------ driver

    public QuantReport run() {
        long t0 = System.nanoTime();
        c.report.method = c.st.method().id();
        c.report.setting = c.st.label() + (c.st.activations() != null ? (c.st.actDynamic() ? " (dynamic per-token activations)" : " (static per-tensor activations)") : "");
        c.report.scope = c.st.scope().toString();
        c.report.calibSamples = samples.size();
        c.report.grid = c.st.grid();
        c.report.entropyLevels = 1 << c.st.entropyLevelsBits();
        c.report.weights = c.st.rounding().id();
        c.report.smooth = c.st.smoothing() ? c.st.smooth() : null;
        c.model.setHooks(null);
        int S = samples.size();

        // vision tower
        List<Tensor> xFp = c.parallelMap(S, s -> c.model.visionEmbeddings(samples.get(s).pixels()));
        List<Tensor> xQ = new ArrayList<>(xFp);
        List<Unit> vision = new ArrayList<>();
        for (int i = 0; i < c.model.config().visionFeatureLayer(); i++) vision.add(Units.vision(c.model, i));
        List<Tensor>[] v = stack("vision", vision, xFp, xQ);
        c.free(xFp, xQ);
        xFp = c.map(v[0], c.model::selectFeatures);
        xQ = c.map(v[1], c.model::selectFeatures);

        // projector: one unit, searched as its own block
        List<Tensor>[] p = stack("projector", List.of(Units.projector(c.model)), xFp, xQ);
        c.free(v[0], v[1]); // the roots of the projector's inputs (views)

        // decoder: token embeddings with each path's image features spliced in
        List<Tensor> pf = p[0], pq = p[1];
        List<Tensor> eFp = c.parallelMap(S, s -> c.model.embedTokens(samples.get(s).ids(), pf.get(s)));
        List<Tensor> eQ = pf == pq ? eFp : c.parallelMap(S, s -> c.model.embedTokens(samples.get(s).ids(), pq.get(s)));
        c.free(pf, pq); // copied into the embeddings
        List<Unit> llm = new ArrayList<>();
        for (int i = 0; i < c.model.config().text().numLayers(); i++) llm.add(Units.decoder(c.model, i));
        List<Tensor>[] out = stack("llm", llm, eFp, eQ);
        c.free(eFp, eQ, out[0], out[1]);

        for (LinearState s : c.states.values()) s.setQuant();
        c.report.phaseSeconds.put("total", (System.nanoTime() - t0) / 1e9);
        c.report.peakHeapMB = c.peakHeap >> 20;
        return c.report;
    }

    /**
     * Frees the packed weights this run allocated (native memory, owned here). The model's quantized linears must
     * not run afterwards.
     */
    public void close() {
        c.states.values().forEach(LinearState::close);
    }

    /** Quantizers of all in-scope linears, for saving. */
    public Map<Linear, LinearState> states() {
        return c.states;
    }

    /** Full-precision tensors changed by folded scales (canonical name → values), for saving. */
    public Map<String, float[]> modifiedTensors() {
        return c.modified;
    }

    /** Runs one stack of units; returns {fp outputs, quantized outputs}. */
    @SuppressWarnings("unchecked")
    private List<Tensor>[] stack(String name, List<Unit> units, List<Tensor> xFp, List<Tensor> xQ) {
        boolean any = units.stream().anyMatch(u -> !c.statesOf(u).isEmpty());
        if (!any) {
            // nothing to quantize here: one full-precision pass; both paths continue from it if they were equal
            List<Tensor> f = xFp, q = xQ;
            boolean same = xFp == xQ || xFp.equals(xQ);
            for (Unit u : units) {
                List<Tensor> nf = c.parallelMap(f.size(), f, u::run), nq = same ? nf : c.parallelMap(q.size(), q, u::run);
                c.evict(List.of(u));
                if (f != xFp) c.free(f, q); // a previous unit's outputs (the inputs are the caller's)
                f = nf;
                q = nq;
            }
            return new List[]{f, same ? f : q};
        }
        long t0 = System.nanoTime();
        double[] d = statisticsPass(name, units, xFp);
        c.addPhase("statistics+entropy", t0);

        if (analyzeEntropy && c.st.method() == Method.QVLM && units.size() > 1) {
            long ta = System.nanoTime();
            new EntropyCheck(c).run(name, units, xFp, d);
            c.addPhase("entropy-check", ta);
        }

        long t1 = System.nanoTime();
        BlockSearch blockSearch = new BlockSearch(c);
        List<int[]> blocks;
        switch (c.st.method()) {
            case QVLM -> {
                double h0 = Double.isNaN(c.st.h0()) ? Partition.mean(d) : c.st.h0();
                if (units.size() > 1) c.report.h0.put(name, h0);
                blocks = Partition.greedy(d, units.size(), h0, c.st.maxBlock());
            }
            default -> {
                blocks = new ArrayList<>();
                for (int i = 0; i < units.size(); i++) blocks.add(new int[]{i, i});
            }
        }
        List<Tensor> f = xFp, q = xQ;
        for (int[] b : blocks) {
            List<Unit> bu = units.subList(b[0], b[1] + 1);
            List<Tensor>[] r = switch (c.st.method()) {
                case QVLM -> blockSearch.run(name, b, bu, f, q, true);
                case RTN -> blockSearch.run(name, b, bu, f, q, false);
                case LAYERWISE -> new LayerwiseSearch(c).run(name, b, bu.get(0), f, q);
            };
            c.evict(bu); // done with the block's weights: the next block's go on the device
            if (f != xFp) c.free(f, q); // the previous block's outputs, this block's inputs
            f = r[0];
            q = r[1];
            c.trackMemory();
        }
        c.addPhase("search", t1);
        return new List[]{f, q};
    }

    // ------------------------------------------------------------------ phase A: statistics and dependency

    /** D(k, k+1) of two units' outputs on every sample ({@link Entropy}), the sums computed by the backend. */
    private Entropy.Dependency dependency(List<Tensor> a, List<Tensor> b, Entropy.Levels la, Entropy.Levels lb) {
        double[] sums = new double[la.count() * lb.count()];
        long n = 0;
        for (int s = 0; s < a.size(); s++) {
            Tensor x = a.get(s), y = b.get(s);
            if (x.rows() != y.rows() || x.cols() != y.cols())
                throw new IllegalArgumentException("unit outputs differ in shape: " + x + " vs " + y);
            c.backend.jointLevelSums(x, y, la.lo(), la.step(), la.count(), lb.lo(), lb.step(), lb.count(), sums);
            n += (long) x.rows() * x.cols();
        }
        return Entropy.fromJointSums(sums, n, la.count(), lb.count());
    }

    /** FP pass over the stack: activation ranges of every in-scope linear, and D(k, k+1) between unit outputs. */
    private double[] statisticsPass(String name, List<Unit> units, List<Tensor> xFp) {
        for (LinearState s : c.states.values()) s.setFp();
        boolean needD = c.st.method() == Method.QVLM && units.size() > 1;
        boolean rtnClip = c.st.method() == Method.RTN && c.st.grid().length == 1 && c.st.grid()[0] < 1.0;
        boolean needHist = c.st.staticActivations() && Arrays.stream(c.st.grid()).anyMatch(p -> p < 1.0) && c.st.method() != Method.RTN;
        if (rtnClip && c.st.staticActivations())
            for (LinearState s : c.states.values()) s.range.trackPerCallQuantile(c.st.grid()[0]);
        double[] d = new double[Math.max(0, units.size() - 1)];
        List<Tensor> prev = null;
        Entropy.Levels prevLv = null;
        List<Tensor> cur = xFp;
        for (int k = 0; k < units.size(); k++) {
            Unit u = units.get(k);
            List<LinearState> us = c.statesOf(u);
            List<Tensor> in = cur;
            // AWQ / SmoothQuant scales are folded before this unit's ranges are observed (FP function unchanged)
            if (equalization != null && !us.isEmpty()) {
                long te = System.nanoTime();
                equalization.apply(u, in);
                c.addPhase("equalization", te);
            }
            if (c.st.staticActivations() && !us.isEmpty()) {
                c.free(c.withHooks(us, (s, x) -> s.range.observeRange(c.backend, x), () -> c.parallelMap(in.size(), in, u::run)));
                if (needHist)
                    c.free(c.withHooks(us, (s, x) -> s.range.observeHistogram(c.backend, x), () -> c.parallelMap(in.size(), in, u::run)));
            }
            List<Tensor> out = c.parallelMap(in.size(), in, u::run);
            if (needD) { // the outputs' range and joint level sums where they live (no download on a GPU)
                double lo = Double.POSITIVE_INFINITY, hi = Double.NEGATIVE_INFINITY;
                for (Tensor t : out) {
                    float[] mm = c.backend.minMax(t);
                    lo = Math.min(lo, mm[0]);
                    hi = Math.max(hi, mm[1]);
                }
                Entropy.Levels lv = new Entropy.Levels(lo, hi, 1 << c.st.entropyLevelsBits());
                Double dep = null, ent = null;
                if (prev != null) {
                    Entropy.Dependency dd = dependency(prev, out, prevLv, lv);
                    d[k - 1] = dd.conditionalEntropy();
                    // c.report D(k-1, k) on layer k-1, with that layer's own level entropy
                    Unit pu = units.get(k - 1);
                    c.report.layers.add(new QuantReport.Layer(name, k - 1, pu.name(), dd.conditionalEntropy(), dd.entropyA(), prevLv.hi() - prevLv.lo()));
                    ent = dd.entropyB();
                }
                if (k == units.size() - 1)
                    c.report.layers.add(new QuantReport.Layer(name, k, u.name(), null, ent, hi - lo));
                prev = out;
                prevLv = lv;
                c.log.accept(String.format("  %s: statistics %d/%d%s", name, k + 1, units.size(),
                        k > 0 ? String.format(", D(%d,%d) = %.4f", k - 1, k, d[k - 1]) : ""));
            }
            c.evict(List.of(u));
            if (in != xFp) c.free(in); // the previous unit's outputs (D(k-1, k) is computed)
            cur = out;
            c.trackMemory();
        }
        if (cur != xFp) c.free(cur);
        return d;
    }
}
