package dev.qvlm.calib;

import dev.qvlm.backend.Tensor;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Block-wise search of quantizer bounds (paper Eq. 3; RTN is the same pass without search): every clipping
 * percentile of a block's quantizers is chosen jointly against the block's full-precision output, exhaustively
 * when the joint grid is small, by coordinate descent otherwise.
 */
final class BlockSearch {
    private final CalibContext c;

    BlockSearch(CalibContext c) {
        this.c = c;
    }

    enum Kind { WEIGHT, ACT, ACT_LO, ACT_HI }

    /** One searched value: a weight clip, a joint activation clip, or one tail of the activation range. */
    record Slot(LinearState state, Kind kind, int unit) {
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

    List<Tensor>[] run(String stack, int[] b, List<Unit> units, List<Tensor> xFp, List<Tensor> xQ, boolean search) {
        return run(stack, b, units, xFp, xQ, search, false);
    }

    /** @param warmStart start the search from the current choices instead of min–max (1.0) everywhere */
    List<Tensor>[] run(String stack, int[] b, List<Unit> units, List<Tensor> xFp, List<Tensor> xQ,
                                       boolean search, boolean warmStart) {
        long t0 = System.nanoTime();
        List<LinearState> bs = new ArrayList<>();
        for (Unit u : units) bs.addAll(c.statesOf(u));
        c.prepareGptq(units, xQ);
        for (LinearState s : bs) s.setFp();
        List<Tensor> target = c.runUnits(units, xFp);
        List<Slot> slots = new ArrayList<>();
        for (int ui = 0; ui < units.size(); ui++)
            for (LinearState s : c.statesOf(units.get(ui))) {
                if (s.hasWeightSlot()) slots.add(new Slot(s, Kind.WEIGHT, ui));
                if (s.hasActSlot()) {
                    if (c.st.separateBounds()) {
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
            return c.relMseFreeing(c.runUnits(units, xQ), target);
        };
        // rtn: min-max, or, for activations, the one percentile given with --grid (as a clipped RTN baseline)
        double rtnAct = c.st.method() == Method.RTN && c.st.grid().length == 1 ? c.st.grid()[0] : 1.0;
        if (!warmStart) for (Slot sl : slots) sl.set(sl.kind() == Kind.WEIGHT ? 1.0 : (search ? 1.0 : rtnAct));
        double before = slots.isEmpty() ? c.relMseFreeing(c.runUnits(units, xQ), target) : evaluate.get();
        double best = before;
        String how = "none";
        int sweeps = 0;
        double[] grid = c.st.grid();
        if (search && !slots.isEmpty()) {
            double combos = Math.pow(grid.length, slots.size());
            if (combos <= c.st.exhaustiveLimit()) {
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
                while (changed && sweeps < c.st.maxSweeps()) {
                    changed = false;
                    sweeps++;
                    freeInputs(inputs, xQ);
                    inputs.add(xQ);
                    for (int i = 0; i < slots.size(); i++) {
                        Slot sl = slots.get(i);
                        int u = sl.unit();
                        while (inputs.size() <= u) {
                            for (LinearState s : bs) s.setQuant();
                            int v = inputs.size() - 1;
                            inputs.add(c.runUnits(units.subList(v, v + 1), inputs.get(v)));
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
                            double e = c.relMseFreeing(c.runUnits(rest, from), target);
                            if (e < best - 1e-15) {
                                best = e;
                                bestV = g;
                            }
                        }
                        sl.set(bestV);
                        if (sl.kind() == Kind.WEIGHT) sl.state().evictCandidatesExcept(bestV, c.backend::evict);
                        if (bestV != keep) changed = true;
                    }
                    if (!changed) how = "coordinate (converged)";
                    else if (sweeps == c.st.maxSweeps()) how = "coordinate (" + sweeps + " sweeps, not converged)";
                    c.log.accept(String.format("  %s %d-%d: sweep %d, relMSE %.4e (rtn %.4e), %d evaluations, %.0f s",
                            stack, b[0], b[1], sweeps, best, before, evals[0], (System.nanoTime() - t0) / 1e9));
                }
                freeInputs(inputs, xQ);
            }
        }
        for (LinearState s : bs) {
            s.setQuant();
            s.keepOnlyChosen();
        }
        List<Tensor> outQ = c.runUnits(units, xQ);
        double after = c.relMse(outQ, target);
        Map<String, QuantReport.Choice> choices = new LinkedHashMap<>();
        for (LinearState s : bs)
            choices.put(s.linear.name(), c.choice(s));
        double secs = (System.nanoTime() - t0) / 1e9;
        c.report.blocks.add(new QuantReport.Block(stack, b[0], b[b.length - 1], how, evals[0], sweeps, before, after, secs, choices));
        c.log.accept(String.format("  %s %s: %s search, %d evaluations, relMSE %.4e -> %.4e, %.1f s", stack,
                b[0] == b[1] ? "" + b[0] : b[0] + "-" + b[1], how, evals[0], before, after, secs));
        return new List[]{target, outQ};
    }

    /** The coordinate search's per-unit inputs back to the backend (all but xQ, the caller's), and the list emptied. */
    private void freeInputs(List<List<Tensor>> inputs, List<Tensor> xQ) {
        for (List<Tensor> l : inputs) if (l != xQ) c.free(l);
        inputs.clear();
    }
}
