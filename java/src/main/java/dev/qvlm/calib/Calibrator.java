package dev.qvlm.calib;

import dev.qvlm.backend.Backend;
import dev.qvlm.backend.Tensor;
import dev.qvlm.cpu.Parallel;
import dev.qvlm.model.ForwardHooks;
import dev.qvlm.model.Linear;
import dev.qvlm.model.LlavaModel;
import dev.qvlm.model.LlavaWeights;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;
import java.util.stream.IntStream;

/**
 * Post-training quantization of a LLaVA model in place, streamed unit by unit (vision layers, projector, decoder
 * layers) so that only one step's activations for the calibration set are held at a time. Two activation paths
 * advance side by side: the full-precision one (targets, statistics) and the quantized one (inputs of the next
 * search), as in paper Eq. 2–3.
 */
public final class Calibrator {
    private final LlavaModel model;
    private final Backend backend;
    private final QuantSettings st;
    private final List<CalibSample> samples;
    private final Consumer<String> log;
    private final Map<Linear, LinearState> states = new IdentityHashMap<>();
    private final QuantReport report = new QuantReport();
    private final boolean analyzeEntropy;
    private long peakHeap;

    public Calibrator(LlavaModel model, QuantSettings settings, List<CalibSample> samples, boolean analyzeEntropy,
                      Consumer<String> log) {
        this.model = model;
        this.backend = model.backend();
        this.st = settings;
        this.samples = samples;
        this.analyzeEntropy = analyzeEntropy;
        this.log = log == null ? s -> {} : log;
        for (Linear l : model.weights().linears())
            if (st.scope().contains(l.part())) states.put(l, new LinearState(l, st));
    }

    // ------------------------------------------------------------------ units

    private Unit visionUnit(int i) {
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

    private Unit projectorUnit() {
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

    private Unit decoderUnit(int i) {
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

    private List<LinearState> statesOf(Unit u) {
        List<LinearState> out = new ArrayList<>();
        for (Linear l : u.linears()) {
            LinearState s = states.get(l);
            if (s != null) out.add(s);
        }
        return out;
    }

    // ------------------------------------------------------------------ driver

    public QuantReport run() {
        long t0 = System.nanoTime();
        report.method = st.method().id();
        report.setting = st.label() + (st.activations() != null ? (st.actDynamic() ? " (dynamic per-token activations)" : " (static per-tensor activations)") : "");
        report.scope = st.scope().toString();
        report.calibSamples = samples.size();
        report.grid = st.grid();
        report.entropyLevels = 1 << st.entropyLevelsBits();
        model.setHooks(null);
        int S = samples.size();

        // vision tower
        List<Tensor> xFp = parallelMap(S, s -> model.visionEmbeddings(samples.get(s).pixels()));
        List<Tensor> xQ = new ArrayList<>(xFp);
        List<Unit> vision = new ArrayList<>();
        for (int i = 0; i < model.config().visionFeatureLayer(); i++) vision.add(visionUnit(i));
        List<Tensor>[] v = stack("vision", vision, xFp, xQ);
        xFp = map(v[0], model::selectFeatures);
        xQ = map(v[1], model::selectFeatures);

        // projector: one unit, searched as its own block
        List<Tensor>[] p = stack("projector", List.of(projectorUnit()), xFp, xQ);

        // decoder: token embeddings with each path's image features spliced in
        List<Tensor> pf = p[0], pq = p[1];
        List<Tensor> eFp = parallelMap(S, s -> model.embedTokens(samples.get(s).ids(), pf.get(s)));
        List<Tensor> eQ = pf == pq ? eFp : parallelMap(S, s -> model.embedTokens(samples.get(s).ids(), pq.get(s)));
        List<Unit> llm = new ArrayList<>();
        for (int i = 0; i < model.config().text().numLayers(); i++) llm.add(decoderUnit(i));
        stack("llm", llm, eFp, eQ);

        for (LinearState s : states.values()) s.setQuant();
        report.phaseSeconds.put("total", (System.nanoTime() - t0) / 1e9);
        report.peakHeapMB = peakHeap >> 20;
        return report;
    }

    /**
     * Frees the packed weights this run allocated (native memory, owned here). The model's quantized linears must
     * not run afterwards.
     */
    public void close() {
        states.values().forEach(LinearState::close);
    }

    /** Quantizers of all in-scope linears, for saving. */
    public Map<Linear, LinearState> states() {
        return states;
    }

    /** Runs one stack of units; returns {fp outputs, quantized outputs}. */
    @SuppressWarnings("unchecked")
    private List<Tensor>[] stack(String name, List<Unit> units, List<Tensor> xFp, List<Tensor> xQ) {
        boolean any = units.stream().anyMatch(u -> !statesOf(u).isEmpty());
        if (!any) {
            // nothing to quantize here: one full-precision pass; both paths continue from it if they were equal
            List<Tensor> f = xFp, q = xQ;
            boolean same = xFp == xQ || xFp.equals(xQ);
            for (Unit u : units) {
                f = parallelMap(f.size(), f, u::run);
                if (!same) q = parallelMap(q.size(), q, u::run);
            }
            return new List[]{f, same ? f : q};
        }
        long t0 = System.nanoTime();
        double[] d = statisticsPass(name, units, xFp);
        addPhase("statistics+entropy", t0);

        if (analyzeEntropy && st.method() == Method.QVLM && units.size() > 1) {
            long ta = System.nanoTime();
            entropyCheck(name, units, xFp, d);
            addPhase("entropy-check", ta);
        }

        long t1 = System.nanoTime();
        List<int[]> blocks;
        switch (st.method()) {
            case QVLM -> {
                double h0 = Double.isNaN(st.h0()) ? Partition.mean(d) : st.h0();
                if (units.size() > 1) report.h0.put(name, h0);
                blocks = Partition.greedy(d, units.size(), h0, st.maxBlock());
            }
            default -> {
                blocks = new ArrayList<>();
                for (int i = 0; i < units.size(); i++) blocks.add(new int[]{i, i});
            }
        }
        List<Tensor> f = xFp, q = xQ;
        for (int[] b : blocks) {
            List<Unit> bu = units.subList(b[0], b[1] + 1);
            List<Tensor>[] r = switch (st.method()) {
                case QVLM -> searchBlock(name, b, bu, f, q, true);
                case RTN -> searchBlock(name, b, bu, f, q, false);
                case LAYERWISE -> layerwise(name, b, bu.get(0), f, q);
            };
            f = r[0];
            q = r[1];
            trackMemory();
        }
        addPhase("search", t1);
        return new List[]{f, q};
    }

    private void addPhase(String k, long t0) {
        report.phaseSeconds.merge(k, (System.nanoTime() - t0) / 1e9, Double::sum);
    }

    // ------------------------------------------------------------------ phase A: statistics and dependency

    /** FP pass over the stack: activation ranges of every in-scope linear, and D(k, k+1) between unit outputs. */
    private double[] statisticsPass(String name, List<Unit> units, List<Tensor> xFp) {
        for (LinearState s : states.values()) s.setFp();
        boolean needD = st.method() == Method.QVLM && units.size() > 1;
        boolean rtnClip = st.method() == Method.RTN && st.grid().length == 1 && st.grid()[0] < 1.0;
        boolean needHist = st.staticActivations() && Arrays.stream(st.grid()).anyMatch(p -> p < 1.0) && st.method() != Method.RTN;
        if (rtnClip && st.staticActivations())
            for (LinearState s : states.values()) s.range.trackPerCallQuantile(st.grid()[0]);
        double[] d = new double[Math.max(0, units.size() - 1)];
        List<float[]> prev = null;
        Entropy.Levels prevLv = null;
        List<Tensor> cur = xFp;
        for (int k = 0; k < units.size(); k++) {
            Unit u = units.get(k);
            List<LinearState> us = statesOf(u);
            List<Tensor> in = cur;
            if (st.staticActivations() && !us.isEmpty()) {
                withHooks(us, (s, x) -> s.range.observeRange(x, 0, x.length), () -> parallelMap(in.size(), in, u::run));
                if (needHist)
                    withHooks(us, (s, x) -> s.range.observeHistogram(x, 0, x.length), () -> parallelMap(in.size(), in, u::run));
            }
            List<Tensor> out = parallelMap(in.size(), in, u::run);
            if (needD) {
                List<float[]> host = map(out, backend::download);
                double lo = Double.POSITIVE_INFINITY, hi = Double.NEGATIVE_INFINITY;
                for (float[] h : host) for (float v : h) {
                    lo = Math.min(lo, v);
                    hi = Math.max(hi, v);
                }
                Entropy.Levels lv = new Entropy.Levels(lo, hi, 1 << st.entropyLevelsBits());
                Double dep = null, ent = null;
                if (prev != null) {
                    Entropy.Dependency dd = Entropy.dependency(prev, host, prevLv, lv);
                    d[k - 1] = dd.conditionalEntropy();
                    // report D(k-1, k) on layer k-1, with that layer's own level entropy
                    Unit pu = units.get(k - 1);
                    report.layers.add(new QuantReport.Layer(name, k - 1, pu.name(), dd.conditionalEntropy(), dd.entropyA(), prevLv.hi() - prevLv.lo()));
                    ent = dd.entropyB();
                }
                if (k == units.size() - 1)
                    report.layers.add(new QuantReport.Layer(name, k, u.name(), null, ent, hi - lo));
                prev = host;
                prevLv = lv;
                log.accept(String.format("  %s: statistics %d/%d%s", name, k + 1, units.size(),
                        k > 0 ? String.format(", D(%d,%d) = %.4f", k - 1, k, d[k - 1]) : ""));
            }
            cur = out;
            trackMemory();
        }
        return d;
    }

    private interface StateObserver {
        void observe(LinearState s, float[] x);
    }

    private <T> T withHooks(List<LinearState> us, StateObserver obs, java.util.function.Supplier<T> body) {
        Map<Linear, LinearState> m = new IdentityHashMap<>();
        for (LinearState s : us) m.put(s.linear, s);
        model.setHooks(new ForwardHooks() {
            @Override
            public void linearInput(Linear linear, Tensor x) {
                LinearState s = m.get(linear);
                if (s != null) obs.observe(s, backend.download(x));
            }
        });
        try {
            return body.get();
        } finally {
            model.setHooks(null);
        }
    }

    // ------------------------------------------------------------------ phase B: block search (rtn, qvlm)

    private enum Kind { WEIGHT, ACT, ACT_LO, ACT_HI }

    /** One searched value: a weight clip, a joint activation clip, or one tail of the activation range. */
    private record Slot(LinearState state, Kind kind, int unit) {
        double get() {
            return switch (kind) {
                case WEIGHT -> state.wClip;
                case ACT, ACT_HI -> state.aHi;
                case ACT_LO -> state.aLo;
            };
        }

        void set(double v) {
            switch (kind) {
                case WEIGHT -> state.wClip = v;
                case ACT -> {
                    state.aLo = v;
                    state.aHi = v;
                }
                case ACT_LO -> state.aLo = v;
                case ACT_HI -> state.aHi = v;
            }
        }

        String label() {
            return state.linear.name() + "." + kind.name().toLowerCase();
        }

    }

    private List<Tensor> runUnits(List<Unit> units, List<Tensor> x) {
        List<Tensor> cur = x;
        for (Unit u : units) cur = parallelMap(cur.size(), cur, u::run);
        return cur;
    }

    /** Relative error Σ|y − t|^p / Σ|t|^p over all samples (p = 2: relative MSE). */
    private double relMse(List<Tensor> y, List<Tensor> t) {
        double[] num = new double[y.size()], den = new double[y.size()];
        double p = st.lp();
        IntStream.range(0, y.size()).parallel().forEach(s -> {
            float[] a = backend.download(y.get(s)), b = backend.download(t.get(s));
            double n = 0, dd = 0;
            if (p == 2) {
                for (int i = 0; i < a.length; i++) {
                    double e = a[i] - b[i];
                    n += e * e;
                    dd += (double) b[i] * b[i];
                }
            } else {
                for (int i = 0; i < a.length; i++) {
                    n += Math.pow(Math.abs(a[i] - b[i]), p);
                    dd += Math.pow(Math.abs(b[i]), p);
                }
            }
            num[s] = n;
            den[s] = dd;
        });
        return Arrays.stream(num).sum() / Math.max(1e-30, Arrays.stream(den).sum());
    }

    private List<Tensor>[] searchBlock(String stack, int[] b, List<Unit> units, List<Tensor> xFp, List<Tensor> xQ, boolean search) {
        return searchBlock(stack, b, units, xFp, xQ, search, false);
    }

    /** @param warmStart start the search from the current choices instead of min–max (1.0) everywhere */
    private List<Tensor>[] searchBlock(String stack, int[] b, List<Unit> units, List<Tensor> xFp, List<Tensor> xQ,
                                       boolean search, boolean warmStart) {
        long t0 = System.nanoTime();
        List<LinearState> bs = new ArrayList<>();
        for (Unit u : units) bs.addAll(statesOf(u));
        for (LinearState s : bs) s.setFp();
        List<Tensor> target = runUnits(units, xFp);
        List<Slot> slots = new ArrayList<>();
        for (int ui = 0; ui < units.size(); ui++)
            for (LinearState s : statesOf(units.get(ui))) {
                if (s.hasWeightSlot()) slots.add(new Slot(s, Kind.WEIGHT, ui));
                if (s.hasActSlot()) {
                    if (st.separateBounds()) {
                        slots.add(new Slot(s, Kind.ACT_LO, ui));
                        slots.add(new Slot(s, Kind.ACT_HI, ui));
                    } else {
                        slots.add(new Slot(s, Kind.ACT, ui));
                    }
                }
            }
        int[] evals = {0};
        java.util.function.Supplier<Double> evaluate = () -> {
            for (LinearState s : bs) s.setQuant();
            evals[0]++;
            return relMse(runUnits(units, xQ), target);
        };
        // rtn: min-max, or, for activations, the one percentile given with --grid (as a clipped RTN baseline)
        double rtnAct = st.method() == Method.RTN && st.grid().length == 1 ? st.grid()[0] : 1.0;
        if (!warmStart) for (Slot sl : slots) sl.set(sl.kind() == Kind.WEIGHT ? 1.0 : (search ? 1.0 : rtnAct));
        double before = slots.isEmpty() ? relMse(runUnits(units, xQ), target) : evaluate.get();
        double best = before;
        String how = "none";
        int sweeps = 0;
        double[] grid = st.grid();
        if (search && !slots.isEmpty()) {
            double combos = Math.pow(grid.length, slots.size());
            if (combos <= st.exhaustiveLimit()) {
                how = "exhaustive";
                int[] idx = new int[slots.size()];
                int[] bestIdx = idx.clone();
                while (true) {
                    for (int i = 0; i < idx.length; i++) slots.get(i).set(grid[idx[i]]);
                    double e = evaluate.get();
                    if (e < best) {
                        best = e;
                        bestIdx = idx.clone();
                    }
                    int i = 0;
                    while (i < idx.length && ++idx[i] == grid.length) idx[i++] = 0;
                    if (i == idx.length) break;
                }
                for (int i = 0; i < idx.length; i++) slots.get(i).set(grid[bestIdx[i]]);
            } else {
                how = "coordinate";
                // inputs[u]: the quantized-path input of unit u under the current choices of units < u. Slots are
                // visited in unit order, so a candidate of unit u only reruns units u..end of the block.
                List<List<Tensor>> inputs = new ArrayList<>();
                boolean changed = true;
                while (changed && sweeps < st.maxSweeps()) {
                    changed = false;
                    sweeps++;
                    inputs.clear();
                    inputs.add(xQ);
                    for (int i = 0; i < slots.size(); i++) {
                        Slot sl = slots.get(i);
                        int u = sl.unit();
                        while (inputs.size() <= u) {
                            for (LinearState s : bs) s.setQuant();
                            int v = inputs.size() - 1;
                            inputs.add(runUnits(units.subList(v, v + 1), inputs.get(v)));
                        }
                        List<Tensor> from = inputs.get(u);
                        List<Unit> rest = units.subList(u, units.size());
                        double keep = sl.get();
                        double bestV = keep;
                        for (double g : grid) {
                            if (g == keep) continue;
                            sl.set(g);
                            for (LinearState s : bs) s.setQuant();
                            evals[0]++;
                            double e = relMse(runUnits(rest, from), target);
                            if (e < best - 1e-15) {
                                best = e;
                                bestV = g;
                            }
                        }
                        sl.set(bestV);
                        if (bestV != keep) changed = true;
                    }
                    if (!changed) how = "coordinate (converged)";
                    else if (sweeps == st.maxSweeps()) how = "coordinate (" + sweeps + " sweeps, not converged)";
                    log.accept(String.format("  %s %d-%d: sweep %d, relMSE %.4e (rtn %.4e), %d evaluations, %.0f s",
                            stack, b[0], b[1], sweeps, best, before, evals[0], (System.nanoTime() - t0) / 1e9));
                }
            }
        }
        for (LinearState s : bs) {
            s.setQuant();
            s.keepOnlyChosen();
        }
        List<Tensor> outQ = runUnits(units, xQ);
        double after = relMse(outQ, target);
        Map<String, QuantReport.Choice> choices = new LinkedHashMap<>();
        for (LinearState s : bs)
            choices.put(s.linear.name(), choice(s));
        double secs = (System.nanoTime() - t0) / 1e9;
        report.blocks.add(new QuantReport.Block(stack, b[0], b[b.length - 1], how, evals[0], sweeps, before, after, secs, choices));
        log.accept(String.format("  %s %s: %s search, %d evaluations, relMSE %.4e -> %.4e, %.1f s", stack,
                b[0] == b[1] ? "" + b[0] : b[0] + "-" + b[1], how, evals[0], before, after, secs));
        return new List[]{target, outQ};
    }

    // ------------------------------------------------------------------ phase B: layer-wise (Eq. 2)

    private List<Tensor>[] layerwise(String stack, int[] b, Unit unit, List<Tensor> xFp, List<Tensor> xQ) {
        long t0 = System.nanoTime();
        List<LinearState> us = statesOf(unit);
        for (LinearState s : us) s.setFp();
        int S = xFp.size();
        // full-precision inputs of every linear of the unit, and the unit's FP output
        Map<LinearState, Tensor[]> fpIn = new IdentityHashMap<>();
        for (LinearState s : us) fpIn.put(s, new Tensor[S]);
        List<Tensor> target = captureInputs(unit, xFp, fpIn);
        for (LinearState s : us) s.reset();
        for (LinearState s : us) s.setQuant();
        double before = relMse(runUnits(List.of(unit), xQ), target);
        int evals = 0;
        for (int j = 0; j < us.size(); j++) {
            LinearState cur = us.get(j);
            for (int i = 0; i < us.size(); i++) {
                if (i < j) us.get(i).setQuant();
                else us.get(i).setFp();
            }
            Map<LinearState, Tensor[]> qIn = new IdentityHashMap<>();
            qIn.put(cur, new Tensor[S]);
            captureInputs(unit, xQ, qIn);
            Tensor[] xf = fpIn.get(cur), xq = qIn.get(cur);
            List<Tensor> ref = parallelMap(S, s -> {
                Tensor o = backend.allocate(xf[s].rows(), cur.linear.out());
                backend.linear(o, xf[s], cur.linear);
                return o;
            });
            double[] wGrid = cur.hasWeightSlot() ? st.grid() : new double[]{1.0};
            double[] aGrid = cur.hasActSlot() ? st.grid() : new double[]{1.0};
            double[] hGrid = cur.hasActSlot() && st.separateBounds() ? st.grid() : null;
            double best = Double.POSITIVE_INFINITY;
            double bw = 1.0, ba = 1.0, bh = 1.0;
            for (double wc : wGrid)
                for (double ac : aGrid)
                    for (double hc : hGrid == null ? new double[]{Double.NaN} : hGrid) {
                    double hi = Double.isNaN(hc) ? ac : hc;
                    Linear probe = new Linear(cur.linear.name(), cur.linear.part(),
                            cur.hasWeightSlot() ? cur.weightMatrix(wc) : cur.original, cur.linear.bias());
                    probe.setInputQuantizer(cur.actQuantizer(ac, hi));
                    List<Tensor> y = parallelMap(S, s -> {
                        Tensor o = backend.allocate(xq[s].rows(), probe.out());
                        backend.linear(o, xq[s], probe);
                        return o;
                    });
                    double e = relMse(y, ref);
                    evals++;
                    if (e < best) {
                        best = e;
                        bw = wc;
                        ba = ac;
                        bh = hi;
                    }
                }
            cur.wClip = bw;
            cur.aLo = ba;
            cur.aHi = bh;
            cur.setQuant();
            cur.keepOnlyChosen();
        }
        for (LinearState s : us) s.setQuant();
        List<Tensor> outQ = runUnits(List.of(unit), xQ);
        double after = relMse(outQ, target);
        Map<String, QuantReport.Choice> choices = new LinkedHashMap<>();
        for (LinearState s : us) choices.put(s.linear.name(), choice(s));
        double secs = (System.nanoTime() - t0) / 1e9;
        report.blocks.add(new QuantReport.Block(stack, b[0], b[1], "per-linear", evals, 0, before, after, secs, choices));
        log.accept(String.format("  %s %d: layer-wise search, %d evaluations, relMSE %.4e -> %.4e, %.1f s", stack, b[0], evals, before, after, secs));
        return new List[]{target, outQ};
    }

    /** Runs the unit on every sample, storing the input of each linear in {@code into}; returns the outputs. */
    private List<Tensor> captureInputs(Unit unit, List<Tensor> x, Map<LinearState, Tensor[]> into) {
        Map<Linear, Tensor[]> m = new IdentityHashMap<>();
        into.forEach((s, arr) -> m.put(s.linear, arr));
        List<Tensor> out = new ArrayList<>();
        // sequential over samples: the hook needs to know which sample it sees
        for (int s = 0; s < x.size(); s++) {
            final int idx = s;
            model.setHooks(new ForwardHooks() {
                @Override
                public void linearInput(Linear linear, Tensor t) {
                    Tensor[] arr = m.get(linear);
                    if (arr != null) {
                        Tensor c = backend.allocate(t.rows(), t.cols());
                        backend.copy(t, c);
                        arr[idx] = c;
                    }
                }
            });
            try {
                out.add(unit.run(x.get(s)));
            } finally {
                model.setHooks(null);
            }
        }
        return out;
    }

    // ------------------------------------------------------------------ entropy proxy check (acceptance: corr(D, gain))

    private void entropyCheck(String name, List<Unit> units, List<Tensor> xFp, double[] d) {
        if (report.entropyCheck == null) report.entropyCheck = new ArrayList<>();
        List<Tensor> in = xFp;
        for (int k = 0; k + 1 < units.size(); k++) {
            List<Unit> pair = units.subList(k, k + 2);
            Map<LinearState, double[]> saved = new IdentityHashMap<>();
            for (Unit u : pair) for (LinearState s : statesOf(u)) saved.put(s, new double[]{s.wClip, s.aLo, s.aHi});
            int before = report.blocks.size();
            // one by one: block {k} then block {k+1} on its quantized input
            List<Tensor>[] r1 = searchBlock(name, new int[]{k, k}, pair.subList(0, 1), in, in, true);
            List<Tensor>[] r2 = searchBlock(name, new int[]{k + 1, k + 1}, pair.subList(1, 2), r1[0], r1[1], true);
            double seq = relMse(r2[1], r2[0]);
            // jointly, starting from the one-by-one choices (so the gain is what the joint objective adds)
            List<Tensor>[] rj = searchBlock(name, new int[]{k, k + 1}, pair, in, in, true, true);
            double joint = relMse(rj[1], rj[0]);
            while (report.blocks.size() > before) report.blocks.remove(report.blocks.size() - 1);
            saved.forEach((s, v) -> {
                s.reset();
                s.setFp();
            });
            report.entropyCheck.add(new QuantReport.PairCheck(name, k, d[k], seq, joint, seq - joint));
            log.accept(String.format("  entropy check %s %d-%d: D=%.4f one-by-one %.4e joint %.4e", name, k, k + 1, d[k], seq, joint));
            in = parallelMap(in.size(), in, units.get(k)::run);
        }
        List<QuantReport.PairCheck> all = report.entropyCheck;
        double[] xs = all.stream().mapToDouble(QuantReport.PairCheck::dependency).toArray();
        double[] ys = all.stream().mapToDouble(QuantReport.PairCheck::gain).toArray();
        report.entropyCorrelation = pearson(xs, ys);
    }

    static double pearson(double[] x, double[] y) {
        int n = x.length;
        if (n < 2) return Double.NaN;
        double mx = Arrays.stream(x).average().orElse(0), my = Arrays.stream(y).average().orElse(0);
        double sxy = 0, sxx = 0, syy = 0;
        for (int i = 0; i < n; i++) {
            sxy += (x[i] - mx) * (y[i] - my);
            sxx += (x[i] - mx) * (x[i] - mx);
            syy += (y[i] - my) * (y[i] - my);
        }
        return sxy / Math.sqrt(sxx * syy);
    }

    // ------------------------------------------------------------------ helpers

    private static QuantReport.Choice choice(LinearState s) {
        if (!s.hasActSlot()) return new QuantReport.Choice(s.wClip, null, null);
        return new QuantReport.Choice(s.wClip, s.aLo, s.aHi);
    }

    private void trackMemory() {
        Runtime rt = Runtime.getRuntime();
        peakHeap = Math.max(peakHeap, rt.totalMemory() - rt.freeMemory());
    }

    private static <A, B> List<B> map(List<A> in, java.util.function.Function<A, B> f) {
        List<B> out = new ArrayList<>(in.size());
        for (A a : in) out.add(f.apply(a));
        return out;
    }

    /** One sample per task, kernels serial inside: for small models this beats splitting each matmul. */
    private static List<Tensor> parallelMap(int n, java.util.function.IntFunction<Tensor> f) {
        Tensor[] out = new Tensor[n];
        IntStream.range(0, n).parallel().forEach(i -> out[i] = Parallel.serial(() -> f.apply(i)));
        return Arrays.asList(out);
    }

    private static List<Tensor> parallelMap(int n, List<Tensor> in, java.util.function.Function<Tensor, Tensor> f) {
        return parallelMap(n, i -> f.apply(in.get(i)));
    }
}
