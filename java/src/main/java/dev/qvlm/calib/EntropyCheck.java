package dev.qvlm.calib;

import dev.qvlm.backend.Tensor;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

/**
 * The entropy proxy check (--analyze-entropy): for each pair of consecutive units, the block-output error of
 * searching them one by one against searching them jointly, and the correlation of that gain with D(k, k+1).
 */
final class EntropyCheck {
    private final CalibContext c;
    private final BlockSearch search;

    EntropyCheck(CalibContext c) {
        this.c = c;
        this.search = new BlockSearch(c);
    }

    void run(String name, List<Unit> units, List<Tensor> xFp, double[] d) {
        if (c.report.entropyCheck == null) c.report.entropyCheck = new ArrayList<>();
        List<Tensor> in = xFp;
        for (int k = 0; k + 1 < units.size(); k++) {
            List<Unit> pair = units.subList(k, k + 2);
            Map<LinearState, double[]> saved = new IdentityHashMap<>();
            for (Unit u : pair) for (LinearState s : c.statesOf(u)) saved.put(s, new double[]{s.wClip, s.aLo, s.aHi});
            int before = c.report.blocks.size();
            // one by one: block {k} then block {k+1} on its quantized input
            List<Tensor>[] r1 = search.run(name, new int[]{k, k}, pair.subList(0, 1), in, in, true);
            List<Tensor>[] r2 = search.run(name, new int[]{k + 1, k + 1}, pair.subList(1, 2), r1[0], r1[1], true);
            double seq = c.relMse(r2[1], r2[0]);
            // jointly, starting from the one-by-one choices (so the gain is what the joint objective adds)
            List<Tensor>[] rj = search.run(name, new int[]{k, k + 1}, pair, in, in, true, true);
            double joint = c.relMse(rj[1], rj[0]);
            while (c.report.blocks.size() > before) c.report.blocks.remove(c.report.blocks.size() - 1);
            saved.forEach((s, v) -> {
                s.reset();
                s.setFp();
            });
            c.report.entropyCheck.add(new QuantReport.PairCheck(name, k, d[k], seq, joint, seq - joint));
            c.log.accept(String.format("  entropy check %s %d-%d: D=%.4f one-by-one %.4e joint %.4e", name, k, k + 1, d[k], seq, joint));
            in = c.parallelMap(in.size(), in, units.get(k)::run);
        }
        List<QuantReport.PairCheck> all = c.report.entropyCheck;
        double[] xs = all.stream().mapToDouble(QuantReport.PairCheck::dependency).toArray();
        double[] ys = all.stream().mapToDouble(QuantReport.PairCheck::gain).toArray();
        c.report.entropyCorrelation = pearson(xs, ys);
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
}
