package dev.qvlm.cli;

import dev.qvlm.QvlmException;
import dev.qvlm.calib.QuantOptions;
import dev.qvlm.calib.QuantReport;
import dev.qvlm.calib.QuantRun;
import dev.qvlm.calib.QuantSettings;
import dev.qvlm.eval.Evaluator;
import dev.qvlm.eval.McQuestion;
import dev.qvlm.quant.SaveTarget;
import dev.qvlm.runtime.Llava;
import dev.qvlm.train.VeoOptions;
import dev.qvlm.train.VeoSettings;
import dev.qvlm.model.Linear;
import dev.qvlm.util.Json;
import dev.qvlm.util.OutputPaths;
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
                "per-layer search (paper Eq. 2). --weights gptq|awq changes how weights are rounded onto the chosen grid, --smooth",
                "folds SmoothQuant scales into the norms first; all combine. Calibration prompts come from a ScienceQA-format file.",
                "With --eval it evaluates the full-precision and the quantized model (accuracy and KL at the answer position);",
                "with --out as well, the quantized model evaluated is the saved folder, as `qvlm eval` would load it.",
                "With --veo it first fine-tunes the vision tower (Q-VLM's visual-encoder optimisation, docs/veo.md).",
                "With --out it saves a compressed-tensors checkpoint that eval/generate load."})
final class QuantizeCommand implements Callable<Integer> {
    @Option(names = "--model", required = true, paramLabel = "DIR", description = "Hugging Face LLaVA folder.")
    Path model;

    @Option(names = "--calib", paramLabel = "FILE.jsonl", description = {"Calibration questions (ScienceQA format). Required, except for weight-only",
            "RTN with --out: then each linear is quantized from its weights while saving (streaming, no activations)."})
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

    @Option(names = "--target", paramLabel = "T",
            description = {"Runtime the --out folder is for: vllm (the default with --out, the most portable: it also loads in transformers and qvlm), transformers or qvlm.",
                    "It sets the weight symmetry when neither --wsym nor --no-wsym is given (symmetric for vllm and transformers, asymmetric for qvlm) and refuses, before any work, a setting that runtime cannot run.",
                    "Every target writes llava-hf key names, re: ignore patterns and scales in the weight dtype."})
    String target;

    @Option(names = "--force", description = "Replace an existing --out folder; only one that looks like a checkpoint (config.json with *.safetensors, or a quantization_report.json) is replaced, any other folder is refused.")
    boolean force;

    @Option(names = "--image-root", paramLabel = "DIR", description = "Folder the rows' image paths (of --calib and --eval) are relative to (default: each file's folder); paths may not leave it.")
    Path imageRoot;

    @Option(names = "--report", paramLabel = "FILE.json", description = "Write quantization_report.json here (default: inside --out when given).")
    Path reportFile;

    @Option(names = "--jobs", paramLabel = "N", description = "Questions evaluated concurrently (default: cores for small models).")
    Integer jobs;

    @Mixin
    Common common;

    @Override
    public Integer call() {
        common.requireExact("quantize");
        // without --out nothing is saved, so no runtime constrains the setting unless --target names one
        SaveTarget t = target != null ? SaveTarget.parse(target) : out != null ? SaveTarget.DEFAULT : SaveTarget.QVLM;
        q.defaultWsym = t.defaultSymmetricWeights();
        QuantSettings st = q.settings();
        VeoSettings veo = veoOptions.settings(seed);
        if (veo != null && out != null) {
            // the saver writes a vision weight only when it quantizes it; biases and LayerNorms are copied from the input
            if (st.weights() == null || !st.scope().contains(Linear.Part.VISION))
                throw new QvlmException("--veo with --out needs the vision weights quantized (--scope vision or all, --wbits 2..8): the tuned tower is saved through its quantized weights");
            if (veo.params() == VeoSettings.Params.ALL)
                throw new QvlmException("--veo-params all with --out: tuned biases and LayerNorms are not saved; use --veo-params weights, or drop --out");
        }
        if (out != null || target != null) t.check(st.weights(), st.activations(), st.actDynamic());
        if (out != null) OutputPaths.checkCheckpointDir(out, force, "--out");
        if (reportFile != null) OutputPaths.checkFile(reportFile, "--report");
        if (calib == null) {
            if (!QuantRun.isWeightOnlyRtn(st))
                throw new QvlmException("--calib is required for --method " + st.method().id()
                        + (st.activations() != null ? " with activation quantization" : "") + " (only weight-only rtn runs without it)");
            if (out == null) throw new QvlmException("--out is required without --calib (weight-only rtn quantizes while saving)");
            if (eval != null || analyzeEntropy || veo != null)
                throw new QvlmException((eval != null ? "--eval" : analyzeEntropy ? "--analyze-entropy" : "--veo") + " needs --calib; evaluate the saved folder with 'qvlm eval' instead");
            return streamingRtn(st, t);
        }
        List<McQuestion> rows = null;
        if (eval != null) {
            rows = Evaluator.load(eval, limit, imageRoot);
        }
        int j = jobs != null ? Math.max(1, jobs) : Runtime.getRuntime().availableProcessors();
        Evaluator.Report fp = null, qev;
        QuantReport report;
        String gpuMemory = null;
        Double kl;
        try (Llava llava = Llava.open(model, common.exactBackend())) {
            if (veo != null) llava.model().backend().backward(); // fails now, with its reason, on a backend without backward ops
            if (rows != null) {
                if (!common.quiet) System.err.println("evaluating the full-precision model");
                fp = new Evaluator(llava, true).run(rows, !common.quiet, j);
            }
            if (!common.quiet) System.err.println("quantizing: " + st.label() + ", " + st.recipe());
            // when saving, --eval measures the saved folder (below), not the in-memory model: its scales are rounded
            // to the weight dtype on the way, and the accuracy reported is then exactly what `qvlm eval` gives
            try (QuantRun.Result r = QuantRun.quantize(llava, calib, imageRoot, calibSamples, seed, st, analyzeEntropy,
                    veo, dependency, out != null ? null : rows, fp, j, !common.quiet, common.quiet ? null : System.err::println)) {
                System.out.println(r.report().summary());
                if (out != null) {
                    dev.qvlm.calib.CheckpointSaver.save(llava, r, st, t, out, force);
                    System.out.println("saved: " + out + " (target " + t.id() + ", " + st.weights().label() + " weights)");
                }
                report = r.report();
                qev = r.eval();
                kl = r.meanKl();
            }
            if (llava.model().backend() instanceof dev.qvlm.cuda.CudaBackend gpu) {
                gpuMemory = gpu.memoryReport();
                System.out.println("device memory: " + gpuMemory);
            }
        }
        String label = st.recipe();
        if (out != null && rows != null) {
            if (!common.quiet) System.err.println("evaluating the saved model " + out);
            try (Llava saved = Llava.open(out, common.exactBackend())) {
                qev = new Evaluator(saved, fp != null).run(rows, !common.quiet, j);
            }
            kl = QuantRun.meanKl(fp, qev);
            label += " (saved)";
        }
        Map<String, Object> res = new LinkedHashMap<>();
        res.put("report", report);
        if (gpuMemory != null) res.put("device_memory", gpuMemory);
        if (fp != null) {
            System.out.printf("%-14s %9s %10s%n", "model", "accuracy", "KL(FP||Q)");
            System.out.printf("%-14s %8.1f%% %10s%n", "fp", 100 * fp.accuracy(), "-");
            System.out.printf("%-14s %8.1f%% %10.4f%n", label, 100 * qev.accuracy(), kl);
            res.put("fp_accuracy", fp.accuracy());
            res.put("accuracy", qev.accuracy());
            res.put("kl", kl);
            if (out != null) res.put("evaluated", "saved folder");
        }
        if (report.meanDependency != null) res.put("mean_dependency", report.meanDependency);
        Path rf = reportFile != null ? reportFile : (out != null ? out.resolve("quantization_report.json") : null);
        if (rf != null) {
            Json.writeAtomically(rf, res);
            System.out.println("report: " + rf);
        }
        return 0;
    }

    /** Weight-only RTN straight from the stored weights to --out, one shard at a time (models larger than RAM). */
    private int streamingRtn(QuantSettings st, SaveTarget t) {
        try (Llava llava = Llava.open(model, common.exactBackend())) {
            QuantOptions.validate(st, llava.model().weights().linears());
            if (!common.quiet) System.err.println("quantizing while saving: " + st.label() + ", method rtn (weight-only, no calibration pass)");
            long t0 = System.nanoTime();
            dev.qvlm.calib.CheckpointSaver.save(llava, QuantRun.weightOnlyReport(st, 0), st, t, QuantRun.weightOnlyRtn(st), out, force,
                    dev.qvlm.calib.CheckpointSaver.DEFAULT_SHARD_BYTES, common.quiet ? null : System.err::println);
            double secs = (System.nanoTime() - t0) / 1e9;
            // the report inside the folder is rewritten with the measured time
            dev.qvlm.calib.QuantReport report = QuantRun.weightOnlyReport(st, secs);
            Json.writeAtomically(out.resolve("quantization_report.json"), Map.of("report", report));
            System.out.println(report.summary());
            System.out.println("saved: " + out + " (target " + t.id() + ", " + st.weights().label() + " weights)");
            if (reportFile != null) Json.writeAtomically(reportFile, Map.of("report", report));
        }
        return 0;
    }
}
