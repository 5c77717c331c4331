package dev.qvlm.calib;

import dev.qvlm.eval.Evaluator;
import dev.qvlm.eval.Kl;
import dev.qvlm.eval.McQuestion;
import dev.qvlm.runtime.Llava;
import dev.qvlm.train.DependencyProbe;
import dev.qvlm.train.Veo;
import dev.qvlm.train.VeoReport;
import dev.qvlm.train.VeoSettings;

import java.nio.file.Path;
import java.util.List;
import java.util.function.Consumer;

/** Quantize a freshly opened model in memory (fake-quant) and, optionally, evaluate it against FP logits. */
public final class QuantRun {
    private QuantRun() {}

    public record Result(QuantReport report, Evaluator.Report eval, Double meanKl, double quantizeSeconds,
                         Calibrator calibrator) {}

    /** Mean KL(FP ‖ Q) at the answer position over questions, from two reports made with keepLogits. */
    public static double meanKl(Evaluator.Report fp, Evaluator.Report q) {
        double s = 0;
        int n = fp.predictions().size();
        for (int i = 0; i < n; i++) s += Kl.kl(fp.predictions().get(i).logits(), q.predictions().get(i).logits());
        return s / n;
    }

    public static Result quantize(Llava llava, Path calib, int calibSamples, long seed, QuantSettings st,
                                  boolean analyzeEntropy, List<McQuestion> evalRows, Evaluator.Report fp, int jobs,
                                  boolean progress, Consumer<String> log) {
        return quantize(llava, calib, calibSamples, seed, st, analyzeEntropy, null, false, evalRows, fp, jobs, progress, log);
    }

    /**
     * @param veo        when non-null, the visual-encoder optimisation runs first (on the same calibration pairs) and
     *                   the calibration below sees the tuned tower
     * @param dependency measure D(k, k+1) of the quantized model afterwards (always done with VEO)
     */
    public static Result quantize(Llava llava, Path calib, int calibSamples, long seed, QuantSettings st,
                                  boolean analyzeEntropy, VeoSettings veo, boolean dependency, List<McQuestion> evalRows,
                                  Evaluator.Report fp, int jobs, boolean progress, Consumer<String> log) {
        QuantOptions.validate(st, llava.model().weights().linears());
        List<McQuestion> rows = CalibData.choose(calib, calibSamples, seed);
        List<CalibSample> samples = rows.stream().map(q -> CalibData.sample(llava, q)).toList();
        long t0 = System.nanoTime();
        VeoReport veoReport = veo == null ? null : Veo.run(llava, rows, st, veo, log);
        Calibrator c = new Calibrator(llava.model(), st, samples, analyzeEntropy, log);
        QuantReport r = c.run();
        r.seed = seed;
        if (veoReport != null) {
            r.veo = veoReport;
            r.phaseSeconds.put("veo", veoReport.seconds);
        }
        if (veoReport != null || dependency) {
            r.dependency = DependencyProbe.measure(llava.model(), samples, st.entropyLevelsBits());
            r.meanDependency = DependencyProbe.mean(r.dependency);
        }
        double secs = (System.nanoTime() - t0) / 1e9;
        Evaluator.Report ev = null;
        Double kl = null;
        if (evalRows != null) {
            ev = new Evaluator(llava, fp != null).run(evalRows, progress, jobs);
            if (fp != null) kl = meanKl(fp, ev);
        }
        return new Result(r, ev, kl, secs, c);
    }
}
