package dev.qvlm.calib;

import dev.qvlm.backend.Tensor;
import dev.qvlm.model.Linear;

import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** Layer-wise search (paper Eq. 2): each linear picks its clipping percentiles against its own output error. */
final class LayerwiseSearch {
    private final CalibContext c;

    LayerwiseSearch(CalibContext c) {
        this.c = c;
    }

    List<Tensor>[] run(String stack, int[] b, Unit unit, List<Tensor> xFp, List<Tensor> xQ) {
        long t0 = System.nanoTime();
        List<LinearState> us = c.statesOf(unit);
        c.prepareGptq(List.of(unit), xQ);
        for (LinearState s : us) s.setFp();
        int S = xFp.size();
        // full-precision inputs of every linear of the unit, and the unit's FP output
        Map<LinearState, Tensor[]> fpIn = new IdentityHashMap<>();
        for (LinearState s : us) fpIn.put(s, new Tensor[S]);
        List<Tensor> target = c.captureInputs(unit, xFp, fpIn);
        for (LinearState s : us) s.reset();
        for (LinearState s : us) s.setQuant();
        double before = c.relMseFreeing(c.runUnits(List.of(unit), xQ), target);
        int evals = 0;
        for (int j = 0; j < us.size(); j++) {
            LinearState cur = us.get(j);
            for (int i = 0; i < us.size(); i++) {
                if (i < j) us.get(i).setQuant();
                else us.get(i).setFp();
            }
            Map<LinearState, Tensor[]> qIn = new IdentityHashMap<>();
            qIn.put(cur, new Tensor[S]);
            c.free(c.captureInputs(unit, xQ, qIn)); // only the inputs are wanted
            Tensor[] xf = fpIn.get(cur), xq = qIn.get(cur);
            List<Tensor> ref = c.parallelMap(S, s -> {
                Tensor o = c.backend.allocate(xf[s].rows(), cur.linear.out());
                c.backend.linear(o, xf[s], cur.linear);
                return o;
            });
            double[] wGrid = cur.hasWeightSlot() ? c.st.grid() : new double[]{1.0};
            double[] aGrid = cur.hasActSlot() ? c.st.grid() : new double[]{1.0};
            double[] hGrid = cur.hasActSlot() && c.st.separateBounds() ? c.st.grid() : null;
            double best = Double.POSITIVE_INFINITY;
            double bw = 1.0, ba = 1.0, bh = 1.0;
            for (double wc : wGrid)
                for (double ac : aGrid)
                    for (double hc : hGrid == null ? new double[]{Double.NaN} : hGrid) {
                    double hi = Double.isNaN(hc) ? ac : hc;
                    Linear probe = new Linear(cur.linear.name(), cur.linear.part(),
                            cur.hasWeightSlot() ? cur.weightMatrix(wc) : cur.original, cur.linear.bias());
                    probe.setInputQuantizer(cur.actQuantizer(ac, hi));
                    List<Tensor> y = c.parallelMap(S, s -> {
                        Tensor o = c.backend.allocate(xq[s].rows(), probe.out());
                        c.backend.linear(o, xq[s], probe);
                        return o;
                    });
                    double e = c.relMseFreeing(y, ref);
                    evals++;
                    if (e < best) {
                        best = e;
                        bw = wc;
                        ba = ac;
                        bh = hi;
                    }
                }
            c.free(ref, java.util.Arrays.asList(xq));
            cur.wClip = bw;
            cur.aLo = ba;
            cur.aHi = bh;
            cur.setQuant();
            cur.keepOnlyChosen();
        }
        for (LinearState s : us) s.setQuant();
        for (Tensor[] in : fpIn.values()) c.free(java.util.Arrays.asList(in));
        List<Tensor> outQ = c.runUnits(List.of(unit), xQ);
        double after = c.relMse(outQ, target);
        Map<String, QuantReport.Choice> choices = new LinkedHashMap<>();
        for (LinearState s : us) choices.put(s.linear.name(), c.choice(s));
        double secs = (System.nanoTime() - t0) / 1e9;
        c.report.blocks.add(new QuantReport.Block(stack, b[0], b[1], "per-linear", evals, 0, before, after, secs, choices));
        c.log.accept(String.format("  %s %d: layer-wise search, %d evaluations, relMSE %.4e -> %.4e, %.1f s", stack, b[0], evals, before, after, secs));
        return new List[]{target, outQ};
    }
}
