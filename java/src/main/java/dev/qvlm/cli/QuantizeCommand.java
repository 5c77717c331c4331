package dev.qvlm.cli;

import dev.qvlm.QvlmException;
import dev.qvlm.calib.QuantOptions;
import dev.qvlm.calib.QuantRun;
import dev.qvlm.calib.QuantSettings;
import dev.qvlm.eval.Evaluator;
import dev.qvlm.eval.McQuestion;
import dev.qvlm.runtime.Llava;
import dev.qvlm.train.VeoOptions;
import dev.qvlm.train.VeoSettings;
import dev.qvlm.model.Linear;
import dev.qvlm.util.Json;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;

@Command(name = "quantize", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Quantize a model after training: Q-VLM, layer-wise search or RTN.",
                "Q-VLM: entropy-guided blocks and block-wise search of quantizer bounds; rtn: min-max bounds; layerwise:",
                "per-layer search (paper Eq. 2). Calibration prompts come from a ScienceQA-format file.",
                "With --eval it evaluates the full-precision and the quantized model (accuracy and KL at the answer position).",
                "With --veo it first fine-tunes the vision tower (Q-VLM's visual-encoder optimisation, docs/veo.md).",
                "With --out it saves a compressed-tensors checkpoint that eval/generate load."})
final class QuantizeCommand implements Callable<Integer> {
    @Option(names = "--model", required = true, paramLabel = "DIR", description = "Hugging Face LLaVA folder.")
    Path model;

    @Option(names = "--calib", required = true, paramLabel = "FILE.jsonl", description = "Calibration questions (ScienceQA format).")
    Path calib;

    @Option(names = "--calib-samples", defaultValue = "64", paramLabel = "N", description = "Calibration prompts, a seeded random choice (default ${DEFAULT-VALUE}, as in the paper).")
    int calibSamples;

    @Option(names = "--seed", defaultValue = "0", paramLabel = "S", description = "Seed of the calibration choice (default ${DEFAULT-VALUE}).")
    long seed;

    @Mixin
    QuantOptions q;

    @Mixin
    VeoOptions veoOptions;

    @Option(names = "--dependency", description = "Measure D(k,k+1) of the quantized model on the calibration prompts afterwards (always done with --veo).")
    boolean dependency;

    @Option(names = "--analyze-entropy", description = "Check the entropy proxy: correlation of D(k,k+1) with the gain of searching layers k, k+1 jointly (slow).")
    boolean analyzeEntropy;

    @Option(names = "--eval", paramLabel = "FILE.jsonl", description = "Evaluate FP and quantized models on these questions.")
    Path eval;

    @Option(names = "--limit", paramLabel = "N", description = "Evaluate only the first N questions.")
    Integer limit;

    @Option(names = "--out", paramLabel = "DIR", description = "Save the quantized checkpoint here.")
    Path out;

    @Option(names = "--force", description = "Replace an existing --out folder.")
    boolean force;

    @Option(names = "--report", paramLabel = "FILE.json", description = "Write quantization_report.json here (default: inside --out when given).")
    Path reportFile;

    @Option(names = "--jobs", paramLabel = "N", description = "Questions evaluated concurrently (default: cores for small models).")
    Integer jobs;

    @Mixin
    Common common;

    @Override
    public Integer call() {
        QuantSettings st = q.settings();
        VeoSettings veo = veoOptions.settings(seed);
        if (veo != null && out != null) {
            // the saver writes a vision weight only when it quantizes it; biases and LayerNorms are copied from the input
            if (st.weights() == null || !st.scope().contains(Linear.Part.VISION))
                throw new QvlmException("--veo with --out needs the vision weights quantized (--scope vision or all, --wbits 2..8): the tuned tower is saved through its quantized weights");
            if (veo.params() == VeoSettings.Params.ALL)
                throw new QvlmException("--veo-params all with --out: tuned biases and LayerNorms are not saved; use --veo-params weights, or drop --out");
        }
        if (out != null && Files.exists(out) && !force)
            throw new QvlmException("--out " + out + " already exists (use --force to replace it)");
        List<McQuestion> rows = null;
        if (eval != null) {
            rows = Evaluator.load(eval, limit);
        }
        try (Llava llava = Llava.open(model, common.backend())) {
            if (veo != null) llava.model().backend().backward(); // fails now, with its reason, on a backend without backward ops
            int j = jobs != null ? Math.max(1, jobs) : Runtime.getRuntime().availableProcessors();
            Evaluator.Report fp = null;
            if (rows != null) {
                if (!common.quiet) System.err.println("evaluating the full-precision model");
                fp = new Evaluator(llava, true).run(rows, !common.quiet, j);
            }
            if (!common.quiet) System.err.println("quantizing: " + st.label() + ", method " + st.method().id());
            QuantRun.Result r = QuantRun.quantize(llava, calib, calibSamples, seed, st, analyzeEntropy, veo, dependency, rows, fp, j,
                    !common.quiet, common.quiet ? null : System.err::println);
            System.out.println(r.report().summary());
            Map<String, Object> res = new LinkedHashMap<>();
            res.put("report", r.report());
            if (fp != null) {
                System.out.printf("%-10s %9s %10s%n", "model", "accuracy", "KL(FP||Q)");
                System.out.printf("%-10s %8.1f%% %10s%n", "fp", 100 * fp.accuracy(), "-");
                System.out.printf("%-10s %8.1f%% %10.4f%n", r.report().method, 100 * r.eval().accuracy(), r.meanKl());
                res.put("fp_accuracy", fp.accuracy());
                res.put("accuracy", r.eval().accuracy());
                res.put("kl", r.meanKl());
            }
            if (r.report().meanDependency != null) res.put("mean_dependency", r.report().meanDependency);
            if (out != null) {
                dev.qvlm.calib.CheckpointSaver.save(llava, r, st, out, force);
                System.out.println("saved: " + out);
            }
            Path rf = reportFile != null ? reportFile : (out != null ? out.resolve("quantization_report.json") : null);
            if (rf != null) {
                Json.writeAtomically(rf, res);
                System.out.println("report: " + rf);
            }
        }
        return 0;
    }
}
