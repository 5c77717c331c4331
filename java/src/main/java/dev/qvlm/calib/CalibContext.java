package dev.qvlm.calib;

import dev.qvlm.backend.Backend;
import dev.qvlm.backend.Tensor;
import dev.qvlm.cpu.Parallel;
import dev.qvlm.model.ForwardHooks;
import dev.qvlm.model.Linear;
import dev.qvlm.model.LlavaModel;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;
import java.util.stream.IntStream;

/**
 * What the phases of one calibration run share: the model, the settings, the per-linear quantization states, the
 * report being filled, and the helpers that stream a list of per-sample activations through units (one sample per
 * task) or observe the inputs of linears on the way.
 */
final class CalibContext {
    final LlavaModel model;
    final Backend backend;
    final QuantSettings st;
    final Consumer<String> log;
    final Map<Linear, LinearState> states = new IdentityHashMap<>();
    final QuantReport report = new QuantReport();
    /** Full-precision tensors (canonical name → values) changed in place by folded scales: saved with the checkpoint. */
    final Map<String, float[]> modified = new java.util.LinkedHashMap<>();
    long peakHeap;

    CalibContext(LlavaModel model, QuantSettings settings, Consumer<String> log) {
        this.model = model;
        this.backend = model.backend();
        this.st = settings;
        this.log = log == null ? s -> {} : log;
        for (Linear l : model.weights().linears())
            if (st.scope().contains(l.part())) states.put(l, new LinearState(l, st, backend::release));
    }

    List<LinearState> statesOf(Unit u) {
        List<LinearState> out = new ArrayList<>();
        for (Linear l : u.linears()) {
            LinearState s = states.get(l);
            if (s != null) out.add(s);
        }
        return out;
    }

    void addPhase(String k, long t0) {
        report.phaseSeconds.merge(k, (System.nanoTime() - t0) / 1e9, Double::sum);
    }

    interface StateObserver {
        void observe(LinearState s, Tensor x);
    }

    <T> T withHooks(List<LinearState> us, StateObserver obs, java.util.function.Supplier<T> body) {
        Map<Linear, LinearState> m = new IdentityHashMap<>();
        for (LinearState s : us) m.put(s.linear, s);
        model.setHooks(new ForwardHooks() {
            @Override
            public void linearInput(Linear linear, Tensor x) {
                LinearState s = m.get(linear);
                if (s != null) obs.observe(s, x);
            }

            @Override
            public boolean readOnly() { // the observers read ranges and histograms during the call
                return true;
            }
        });
        try {
            return body.get();
        } finally {
            model.setHooks(null);
        }
    }

    /** The units in turn on every sample; the lists between units are freed, x is the caller's. */
    List<Tensor> runUnits(List<Unit> units, List<Tensor> x) {
        List<Tensor> cur = x;
        for (Unit u : units) {
            List<Tensor> next = parallelMap(cur.size(), cur, u::run);
            if (cur != x) free(cur);
            cur = next;
        }
        return cur;
    }

    /**
     * Frees every tensor of the lists ({@link dev.qvlm.backend.Backend#free}: a GPU takes the memory back now
     * instead of when the lists become unreachable), each once however many lists hold it.
     */
    @SafeVarargs
    final void free(List<Tensor>... lists) {
        java.util.Set<Tensor> seen = java.util.Collections.newSetFromMap(new IdentityHashMap<>());
        for (List<Tensor> l : lists) if (l != null) for (Tensor t : l) if (t != null && seen.add(t)) backend.free(t);
    }

    /**
     * The units' weights off the device until they run again ({@link dev.qvlm.backend.Backend#evict}): the
     * calibration holds the weights of the unit or block it works on, not the model's (13B in FP32: 52 GB).
     */
    void evict(List<Unit> units) {
        for (Unit u : units)
            for (Linear l : u.linears()) {
                backend.evict(l.weight());
                LinearState s = states.get(l);
                if (s != null && s.original != l.weight()) backend.evict(s.original);
            }
    }

    /** relMse of y against t, then y freed (an evaluation's outputs, read once). */
    double relMseFreeing(List<Tensor> y, List<Tensor> t) {
        double e = relMse(y, t);
        free(y);
        return e;
    }

    /** Relative error Σ|y − t|^p / Σ|t|^p over all samples (p = 2: relative MSE). */
    double relMse(List<Tensor> y, List<Tensor> t) {
        double[] num = new double[y.size()], den = new double[y.size()];
        double p = st.lp();
        IntStream.range(0, y.size()).parallel().forEach(s -> {
            if (p == 2) { // where the tensors live (Backend.errorSums: the GPU sums on the device)
                double[] e = backend.errorSums(y.get(s), t.get(s));
                num[s] = e[0];
                den[s] = e[1];
                return;
            }
            float[] a = backend.download(y.get(s)), b = backend.download(t.get(s));
            double n = 0, dd = 0;
            for (int i = 0; i < a.length; i++) {
                n += Math.pow(Math.abs(a[i] - b[i]), p);
                dd += Math.pow(Math.abs(b[i]), p);
            }
            num[s] = n;
            den[s] = dd;
        });
        return Arrays.stream(num).sum() / Math.max(1e-30, Arrays.stream(den).sum());
    }

    /** Runs the unit on every sample, storing the input of each linear in {@code into}; returns the outputs. */
    List<Tensor> captureInputs(Unit unit, List<Tensor> x, Map<LinearState, Tensor[]> into) {
        Map<Linear, Tensor[]> m = new IdentityHashMap<>();
        into.forEach((s, arr) -> m.put(s.linear, arr));
        List<Tensor> out = new ArrayList<>();
        // sequential over samples: the hook needs to know which sample it sees
        for (int s = 0; s < x.size(); s++) {
            final int idx = s;
            // the copies are allocated before the unit runs, outside its layers' scopes: the hook only copies
            for (Map.Entry<Linear, Tensor[]> e : m.entrySet())
                e.getValue()[idx] = backend.allocate(x.get(s).rows(), e.getKey().in());
            model.setHooks(new ForwardHooks() {
                @Override
                public void linearInput(Linear linear, Tensor t) {
                    Tensor[] arr = m.get(linear);
                    if (arr != null) backend.copy(t, arr[idx]);
                }

                @Override
                public boolean readOnly() {
                    return true;
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

    /** Per linear, its input on every sample ([tokens × in] each); linears reading one tensor share one list. */
    record Captured(Map<Linear, List<float[]>> inputs, List<Tensor> outputs) {}

    /** Runs the unit on every sample (the current weights and quantizers), recording the inputs of its in-scope linears. */
    Captured capture(Unit unit, List<Tensor> x) {
        Map<Linear, float[][]> per = new IdentityHashMap<>();
        for (LinearState s : statesOf(unit)) per.put(s.linear, new float[x.size()][]);
        List<Tensor> out = new ArrayList<>();
        for (int s = 0; s < x.size(); s++) {
            final int idx = s;
            Map<Tensor, float[]> seen = new IdentityHashMap<>(); // q, k and v read the same tensor: download it once
            model.setHooks(new ForwardHooks() {
                @Override
                public void linearInput(Linear linear, Tensor t) {
                    float[][] arr = per.get(linear);
                    if (arr != null) arr[idx] = seen.computeIfAbsent(t, backend::download);
                }
            });
            try {
                out.add(unit.run(x.get(s)));
            } finally {
                model.setHooks(null);
            }
        }
        Map<Linear, List<float[]>> inputs = new IdentityHashMap<>();
        Map<float[], List<float[]>> shared = new IdentityHashMap<>();
        per.forEach((l, arr) -> inputs.put(l, arr.length == 0 ? List.of() : shared.computeIfAbsent(arr[0], k -> Arrays.asList(arr))));
        return new Captured(inputs, out);
    }

    /**
     * GPTQ: sets each in-scope linear's Hessian Σ x xᵀ from its inputs on the quantized path, the block run in full
     * precision from its quantized input (as the reference collects a layer's inputs before quantizing it).
     */
    void prepareGptq(List<Unit> units, List<Tensor> xQ) {
        if (!st.rounding().gptq()) return;
        List<Tensor> cur = xQ;
        for (int i = 0; i < units.size(); i++) {
            Unit u = units.get(i);
            List<LinearState> us = statesOf(u);
            for (LinearState s : us) s.setFp();
            Captured cap = capture(u, cur);
            Map<List<float[]>, double[]> grams = new IdentityHashMap<>();
            for (LinearState s : us)
                s.setHessian(grams.computeIfAbsent(cap.inputs().get(s.linear), x -> dev.qvlm.quant.InputStats.gram(x, s.linear.in())));
            if (cur != xQ) free(cur);
            cur = cap.outputs();
        }
        if (cur != xQ) free(cur);
    }

    static QuantReport.Choice choice(LinearState s) {
        if (!s.hasActSlot()) return new QuantReport.Choice(s.wClip, null, null);
        return new QuantReport.Choice(s.wClip, s.aLo, s.aHi);
    }

    void trackMemory() {
        Runtime rt = Runtime.getRuntime();
        peakHeap = Math.max(peakHeap, rt.totalMemory() - rt.freeMemory());
    }

    static <A, B> List<B> map(List<A> in, java.util.function.Function<A, B> f) {
        List<B> out = new ArrayList<>(in.size());
        for (A a : in) out.add(f.apply(a));
        return out;
    }

    /** One sample per task, kernels serial inside: for small models this beats splitting each matmul. */
    static List<Tensor> parallelMap(int n, java.util.function.IntFunction<Tensor> f) {
        Tensor[] out = new Tensor[n];
        IntStream.range(0, n).parallel().forEach(i -> out[i] = Parallel.serial(() -> f.apply(i)));
        return Arrays.asList(out);
    }

    static List<Tensor> parallelMap(int n, List<Tensor> in, java.util.function.Function<Tensor, Tensor> f) {
        return parallelMap(n, i -> f.apply(in.get(i)));
    }
}
