package dev.qvlm.cli;

import dev.qvlm.QvlmException;
import dev.qvlm.eval.Evaluator;
import dev.qvlm.eval.McQuestion;
import dev.qvlm.runtime.Llava;
import dev.qvlm.runtime.MemoryBudget;
import dev.qvlm.util.Json;
import dev.qvlm.util.OutputPaths;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;

@Command(name = "eval", mixinStandardHelpOptions = true,
        description = {"Multiple-choice accuracy on a ScienceQA-format data set.",
                "Rows: question, choices, answer, image, optional hint and task (JSONL).",
                "Greedy next token after the LLaVA-1.5 single-letter prompt; an answer that is not an offered letter counts as wrong.",
                "Prints overall and per-task accuracy; --out writes the full report (with every prediction) as JSON."})
final class EvalCommand implements Callable<Integer> {
    @Option(names = "--model", required = true, paramLabel = "DIR", description = "Hugging Face LLaVA folder.")
    Path model;

    @Option(names = "--data", required = true, paramLabel = "FILE.jsonl", description = "Questions; image paths are relative to this file's folder (or --image-root) and may not leave it.")
    Path data;

    @Option(names = "--image-root", paramLabel = "DIR", description = "Folder the rows' image paths are relative to (default: the data file's folder); paths may not leave it.")
    Path imageRoot;

    @Option(names = "--limit", paramLabel = "N", description = "Evaluate only the first N questions.")
    Integer limit;

    @Option(names = "--out", paramLabel = "FILE.json", description = "Write the report here (atomically).")
    Path out;

    @Option(names = "--reference", paramLabel = "DIR|REPORT.json",
            description = {"Also report KL(reference || this model) at the answer position: a model folder (evaluated now)",
                    "or an eval report written with --save-logits."})
    Path reference;

    @Option(names = "--save-logits", description = "With --out: also write the answer-position logits (REPORT.logits.safetensors) for later --reference use.")
    boolean saveLogits;

    @Option(names = "--jobs", paramLabel = "N", description = "Questions evaluated concurrently (default: the number of cores for models under 1 GB of weights, else 1).")
    Integer jobs;

    @Mixin
    Common common;

    @Override
    public Integer call() {
        if (out != null) OutputPaths.checkFile(out, "--out");
        List<McQuestion> rows = Evaluator.load(data, limit, imageRoot);
        if (saveLogits && out == null) throw new QvlmException("--save-logits needs --out");
        float[][] refLogits = null;
        if (reference != null) refLogits = ReferenceLogits.load(reference, rows, common, quietProgress());
        try (Llava llava = Llava.open(model, common.backend())) {
            boolean keep = refLogits != null || saveLogits;
            int nJobs = jobs(llava);
            // a question is one prompt (image features + text, ~100 tokens) and a few answer tokens
            if (common.device.equals("cpu"))
                MemoryBudget.check("eval", MemoryBudget.forRun(llava, llava.model().config().imageFeatures() + 160, nJobs));
            Evaluator.Report r = new Evaluator(llava, keep).run(rows, !common.quiet, nJobs);
            Double kl = null;
            if (refLogits != null) {
                double s = 0;
                for (int i = 0; i < rows.size(); i++) s += dev.qvlm.eval.Kl.kl(refLogits[i], r.predictions().get(i).logits());
                kl = s / rows.size();
            }
            System.out.println(table(r));
            if (kl != null) System.out.printf("KL(reference || model) at the answer position: %.5f (mean over %d questions)%n", kl, rows.size());
            if (out != null) {
                Map<String, Object> j = json(r);
                if (kl != null) {
                    j.put("kl_vs_reference", kl);
                    j.put("reference", reference.toString());
                }
                if (saveLogits) j.put("logits_file", ReferenceLogits.save(out, r));
                Json.writeAtomically(out, j);
                System.out.println("report: " + out);
            }
        }
        return 0;
    }

    private boolean quietProgress() {
        return common.quiet;
    }

    int jobs(Llava llava) {
        if (jobs != null) {
            if (jobs < 1) throw new QvlmException("--jobs must be at least 1, got " + jobs);
            return jobs;
        }
        long bytes = llava.model().weights().linears().stream().mapToLong(l -> l.weight().storageBytes()).sum();
        return bytes < (1L << 30) ? Runtime.getRuntime().availableProcessors() : 1;
    }

    static String table(Evaluator.Report r) {
        StringBuilder sb = new StringBuilder();
        sb.append(String.format("%-12s %6s %8s %9s%n", "task", "n", "correct", "accuracy"));
        r.perTask().forEach((k, v) -> sb.append(String.format("%-12s %6d %8d %8.1f%%%n", k, v.n(), v.correct(), 100 * v.accuracy())));
        sb.append(String.format("%-12s %6d %8d %8.1f%%%n", "overall", r.predictions().size(), r.correct(), 100 * r.accuracy()));
        sb.append(String.format("unparseable answers: %d; wall time %.1f s (%.1f questions/s)", r.unparseable(), r.seconds(),
                r.predictions().size() / Math.max(1e-9, r.seconds())));
        return sb.toString();
    }

    Map<String, Object> json(Evaluator.Report r) {
        Map<String, Object> o = new LinkedHashMap<>();
        o.put("model", model.toString());
        o.put("data", data.toString());
        o.put("device", common.device);
        o.put("n", r.predictions().size());
        o.put("correct", r.correct());
        o.put("accuracy", r.accuracy());
        o.put("unparseable", r.unparseable());
        Map<String, Object> per = new LinkedHashMap<>();
        r.perTask().forEach((k, v) -> per.put(k, Map.of("n", v.n(), "correct", v.correct(), "accuracy", v.accuracy())));
        o.put("per_task", per);
        o.put("wall_s", r.seconds());
        List<Map<String, Object>> preds = new ArrayList<>();
        for (Evaluator.Prediction p : r.predictions()) {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("id", p.question().id());
            m.put("task", p.question().task());
            m.put("answer", p.question().answer());
            m.put("predicted", p.predicted());
            m.put("output", p.text());
            m.put("correct", p.correct());
            preds.add(m);
        }
        o.put("predictions", preds);
        return o;
    }
}
