package dev.qvlm.calib;

import dev.qvlm.eval.Evaluator;
import dev.qvlm.eval.Kl;
import dev.qvlm.eval.McQuestion;
import dev.qvlm.quant.WeightQuantizer;
import dev.qvlm.runtime.Llava;

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

    /** @param imageRoot folder the calibration rows' image paths resolve in (null: the calibration file's folder) */
    public static Result quantize(Llava llava, Path calib, Path imageRoot, int calibSamples, long seed, QuantSettings st,
                                  boolean analyzeEntropy, List<McQuestion> evalRows, Evaluator.Report fp, int jobs,
                                  boolean progress, Consumer<String> log) {
        QuantOptions.validate(st, llava.model().weights().linears());
        List<CalibSample> samples = CalibData.load(llava, calib, calibSamples, seed, imageRoot);
        long t0 = System.nanoTime();
        Calibrator c = new Calibrator(llava.model(), st, samples, analyzeEntropy, log);
        QuantReport r = c.run();
        r.seed = seed;
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
