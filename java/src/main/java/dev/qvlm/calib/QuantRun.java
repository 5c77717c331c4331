package dev.qvlm.calib;

import dev.qvlm.eval.Evaluator;
import dev.qvlm.eval.Kl;
import dev.qvlm.eval.McQuestion;
import dev.qvlm.quant.WeightQuantizer;
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

    /** Closing it frees the quantized weights (see {@link Calibrator#close}). */
    public record Result(QuantReport report, Evaluator.Report eval, Double meanKl, double quantizeSeconds,
                         Calibrator calibrator) implements AutoCloseable {
        @Override
        public void close() {
            calibrator.close();
        }
    }

    /** Mean KL(FP ‖ Q) at the answer position over questions, from two reports made with keepLogits. */
    public static double meanKl(Evaluator.Report fp, Evaluator.Report q) {
        double s = 0;
        int n = fp.predictions().size();
        for (int i = 0; i < n; i++) s += Kl.kl(fp.predictions().get(i).logits(), q.predictions().get(i).logits());
        return s / n;
    }

    /** Weight-only RTN: min–max bounds of each weight group, which no activation affects. */
    public static boolean isWeightOnlyRtn(QuantSettings st) {
        return st.method() == Method.RTN && st.weights() != null && st.activations() == null
                && st.rounding() == WeightRounding.RTN && !st.smoothing(); // GPTQ, AWQ and SmoothQuant need calibration data
    }

    /**
     * Weight-only RTN without calibration data, for saving: each in-scope linear is quantized from its stored
     * weights when {@link CheckpointSaver} reaches it, so no quantized copy of the model is ever held (the weights
     * chosen are the ones {@link Calibrator} picks for this setting: min–max, clip 1.0).
     */
    public static CheckpointSaver.Quantized weightOnlyRtn(QuantSettings st) {
        if (!isWeightOnlyRtn(st)) throw new IllegalArgumentException("not a weight-only RTN setting: " + st.label());
        return new CheckpointSaver.Quantized() {
            public dev.qvlm.quant.QuantizedWeight weight(dev.qvlm.model.Linear l) {
                return st.scope().contains(l.part()) ? WeightQuantizer.quantize(l.weight(), st.weights(), 1.0) : null;
            }

            public dev.qvlm.quant.ActQuantizer input(dev.qvlm.model.Linear l) {
                return null;
            }
        };
    }

    /** The report of a weight-only RTN run without calibration data. */
    public static QuantReport weightOnlyReport(QuantSettings st, double seconds) {
        QuantReport r = new QuantReport();
        r.method = st.method().id();
        r.setting = st.label();
        r.scope = st.scope().toString();
        r.calibSamples = 0;
        r.grid = new double[]{1.0};
        r.phaseSeconds.put("quantize+save", seconds);
        Runtime rt = Runtime.getRuntime();
        r.peakHeapMB = (rt.totalMemory() - rt.freeMemory()) >> 20;
        r.notes = "weight-only RTN without --calib: min-max bounds per group need no activations; each linear was"
                + " quantized from its stored weights while saving, one at a time (no block relMSE measured)";
        return r;
    }

    public static Result quantize(Llava llava, Path calib, int calibSamples, long seed, QuantSettings st,
                                  boolean analyzeEntropy, List<McQuestion> evalRows, Evaluator.Report fp, int jobs,
                                  boolean progress, Consumer<String> log) {
        return quantize(llava, calib, null, calibSamples, seed, st, analyzeEntropy, evalRows, fp, jobs, progress, log);
    }

    /** Calibration without VEO, images of the calibration rows under {@code imageRoot} (null: the file's folder). */
    public static Result quantize(Llava llava, Path calib, Path imageRoot, int calibSamples, long seed, QuantSettings st,
                                  boolean analyzeEntropy, List<McQuestion> evalRows, Evaluator.Report fp, int jobs,
                                  boolean progress, Consumer<String> log) {
        return quantize(llava, calib, imageRoot, calibSamples, seed, st, analyzeEntropy, null, false, evalRows, fp, jobs, progress, log);
    }

    /**
     * @param imageRoot  folder the calibration rows' image paths resolve in (null: the calibration file's folder)
     * @param veo        when non-null, the visual-encoder optimisation runs first (on the same calibration pairs) and
     *                   the calibration below sees the tuned tower
     * @param dependency measure D(k, k+1) of the quantized model afterwards (always done with VEO)
     */
    public static Result quantize(Llava llava, Path calib, Path imageRoot, int calibSamples, long seed, QuantSettings st,
                                  boolean analyzeEntropy, VeoSettings veo, boolean dependency, List<McQuestion> evalRows,
                                  Evaluator.Report fp, int jobs, boolean progress, Consumer<String> log) {
        QuantOptions.validate(st, llava.model().weights().linears());
        List<McQuestion> rows = CalibData.choose(calib, calibSamples, seed, imageRoot);
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
