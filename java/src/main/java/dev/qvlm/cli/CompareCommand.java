package dev.qvlm.cli;

import dev.qvlm.QvlmException;
import dev.qvlm.util.OutputPaths;
import dev.qvlm.calib.Method;
import dev.qvlm.calib.QuantOptions;
import dev.qvlm.calib.QuantRun;
import dev.qvlm.calib.QuantSettings;
import dev.qvlm.calib.WeightRounding;
import dev.qvlm.eval.Evaluator;
import dev.qvlm.eval.McQuestion;
import dev.qvlm.runtime.Llava;
import dev.qvlm.util.Json;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;

@Command(name = "compare", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Compare quantization methods (RTN, GPTQ, AWQ, SmoothQuant, layer-wise, Q-VLM and their combinations) and bit settings in one harness.",
                "Each is quantized and evaluated: accuracy, KL(FP||Q) at the answer position and search time, as a table and JSON.",
                "Settings: wXaY[gG][-dyn], e.g. w4a4 (static per-tensor activations), w4a16g128, w8a8-dyn."})
final class CompareCommand implements Callable<Integer> {
    @Option(names = "--model", required = true, paramLabel = "DIR", description = "Hugging Face LLaVA folder.")
    Path model;

    @Option(names = "--calib", required = true, paramLabel = "FILE.jsonl", description = "Calibration questions.")
    Path calib;

    @Option(names = "--data", required = true, paramLabel = "FILE.jsonl", description = "Evaluation questions.")
    Path data;

    @Option(names = "--settings", split = ",", defaultValue = "w4a4,w6a6,w4a16g128,w3a16g128", paramLabel = "S,...",
            description = "Bit settings (default ${DEFAULT-VALUE}).")
    List<String> settings;

    @Option(names = "--methods", split = ",", defaultValue = "rtn,layerwise,qvlm", paramLabel = "M,...",
            description = {"Recipes (default ${DEFAULT-VALUE}): [WEIGHTS+]METHOD[+sqALPHA] joined by '+', e.g. rtn, gptq,",
                    "awq, sq0.5 (SmoothQuant, RTN), gptq+qvlm, awq+layerwise+sq0.5. WEIGHTS: rtn | gptq | awq | awq+gptq (default --weights);",
                    "METHOD: rtn | layerwise | qvlm (default rtn); sqALPHA: SmoothQuant strength (default --smooth)."})
    List<String> methods;

    @Option(names = "--calib-samples", defaultValue = "64", paramLabel = "N", description = "Calibration prompts (default ${DEFAULT-VALUE}).")
    int calibSamples;

    @Option(names = "--seed", defaultValue = "0", paramLabel = "S", description = "Calibration seed (default ${DEFAULT-VALUE}).")
    long seed;

    @Option(names = "--image-root", paramLabel = "DIR", description = "Folder the rows' image paths (of --data and --calib) are relative to (default: each file's folder); paths may not leave it.")
    Path imageRoot;

    @Option(names = "--limit", paramLabel = "N", description = "Evaluate only the first N questions.")
    Integer limit;

    @Option(names = "--out", paramLabel = "FILE.json", description = "Write all results (with each quantization report) here.")
    Path out;

    @Option(names = "--jobs", paramLabel = "N", description = "Questions evaluated concurrently (default: cores).")
    Integer jobs;

    @Mixin
    QuantOptions q;

    @Mixin
    Common common;

    record Setting(String name, int wbits, int abits, int group, boolean dynamic) {}

    /** One compared recipe: weight rounding × bound-search method × SmoothQuant strength (NaN = off). */
    record Recipe(WeightRounding weights, Method method, double smooth) {
        static Recipe parse(String spec, WeightRounding defWeights, double defSmooth) {
            WeightRounding w = null;
            Method m = null;
            double sm = Double.NaN;
            for (String p : spec.toLowerCase().split("\\+")) {
                p = p.trim();
                if (p.startsWith("sq")) {
                    try {
                        sm = p.length() == 2 ? 0.5 : Double.parseDouble(p.substring(2));
                    } catch (NumberFormatException e) {
                        throw new QvlmException("--methods: bad SmoothQuant strength in '" + spec + "' (expected e.g. sq0.5)");
                    }
                    if (!(sm >= 0 && sm <= 1)) throw new QvlmException("--methods: SmoothQuant strength in '" + spec + "' must be in [0, 1]");
                } else if (p.equals("gptq") || p.equals("awq")) {
                    if (w == WeightRounding.AWQ && p.equals("gptq") && m == null) w = WeightRounding.AWQ_GPTQ; // awq+gptq
                    else if (w != null || m != null) throw new QvlmException("--methods: '" + spec + "': the weight rounding comes first, once");
                    else w = WeightRounding.parse(p);
                } else {
                    Method mm = Method.parse(p);
                    if (m == null) m = mm;
                    else if (m == Method.RTN && w == null) {
                        w = WeightRounding.RTN; // "rtn+qvlm": RTN weights, Q-VLM bounds
                        m = mm;
                    } else throw new QvlmException("--methods: '" + spec + "' names two methods");
                }
            }
            return new Recipe(w == null ? defWeights : w, m == null ? Method.RTN : m, Double.isNaN(sm) ? defSmooth : sm);
        }
    }

    static Setting parseSetting(String s) {
        var m = java.util.regex.Pattern.compile("w(\\d+)a(\\d+)(?:g(\\d+))?(-dyn)?").matcher(s.toLowerCase());
        if (!m.matches()) throw new QvlmException("--settings: cannot parse '" + s + "' (expected e.g. w4a4, w4a16g128, w8a8-dyn)");
        return new Setting(s, Integer.parseInt(m.group(1)), Integer.parseInt(m.group(2)),
                m.group(3) == null ? 0 : Integer.parseInt(m.group(3)), m.group(4) != null);
    }

    @Override
    public Integer call() {
        common.requireExact("compare");
        if (out != null) OutputPaths.checkFile(out, "--out");
        List<Setting> ss = settings.stream().map(CompareCommand::parseSetting).toList();
        WeightRounding defW = WeightRounding.parse(q.weightRounding == null ? "rtn" : q.weightRounding);
        double defSmooth = q.smooth == null ? Double.NaN : q.smooth;
        List<Recipe> ms = methods.stream().map(m -> Recipe.parse(m, defW, defSmooth)).toList();
        List<QuantSettings> plan = new ArrayList<>();
        for (Setting s : ss) {
            q.actDynamic = s.dynamic();
            for (Recipe r : ms) {
                q.weightRounding = r.weights().id();
                q.smooth = Double.isNaN(r.smooth()) ? null : r.smooth();
                plan.add(q.settings(r.method(), s.wbits(), s.abits(), s.group()));
            }
        }
        List<McQuestion> rows = Evaluator.load(data, limit, imageRoot);
        int j = jobs != null ? Math.max(1, jobs) : Runtime.getRuntime().availableProcessors();
        List<Map<String, Object>> results = new ArrayList<>();
        Evaluator.Report fp;
        try (Llava llava = Llava.open(model, common.exactBackend())) {
            System.err.println("[fp] evaluating the full-precision model");
            fp = new Evaluator(llava, true).run(rows, !common.quiet, j);
        }
        Map<String, Object> fpRow = new LinkedHashMap<>();
        fpRow.put("setting", "FP");
        fpRow.put("method", "-");
        fpRow.put("accuracy", fp.accuracy());
        results.add(fpRow);
        int i = 0;
        for (QuantSettings st : plan) {
            i++;
            String tag = String.format("[%d/%d %s %s]", i, plan.size(), st.label() + (st.actDynamic() ? "-dyn" : ""), st.recipe());
            System.err.println(tag + " quantizing");
            try (Llava llava = Llava.open(model, common.exactBackend());
                 QuantRun.Result r = QuantRun.quantize(llava, calib, imageRoot, calibSamples, seed, st, false, rows, fp, j,
                         !common.quiet, common.quiet ? null : s -> System.err.println(tag + s))) {
                Map<String, Object> row = new LinkedHashMap<>();
                row.put("setting", st.label() + (st.actDynamic() ? "-dyn" : ""));
                row.put("method", st.recipe());
                row.put("accuracy", r.eval().accuracy());
                row.put("kl", r.meanKl());
                row.put("search_s", r.quantizeSeconds());
                row.put("report", r.report());
                results.add(row);
                System.err.printf("%s accuracy %.1f%%, KL %.4f, %.1f s%n", tag, 100 * r.eval().accuracy(), r.meanKl(), r.quantizeSeconds());
            }
        }
        System.out.println(table(results, rows.size(), calibSamples));
        if (out != null) {
            Map<String, Object> o = new LinkedHashMap<>();
            o.put("model", model.toString());
            o.put("data", data.toString());
            o.put("questions", rows.size());
            o.put("calib_samples", calibSamples);
            o.put("results", results);
            Json.writeAtomically(out, o);
            System.out.println("results: " + out);
        }
        return 0;
    }

    static String table(List<Map<String, Object>> rows, int n, int calib) {
        StringBuilder sb = new StringBuilder();
        sb.append(String.format("%d questions, %d calibration prompts%n", n, calib));
        sb.append("| setting | method | accuracy | KL(FP‖Q) | search s |\n|---|---|---:|---:|---:|\n");
        for (Map<String, Object> r : rows) {
            Object kl = r.get("kl"), t = r.get("search_s");
            sb.append(String.format("| %s | %s | %.1f %% | %s | %s |%n", r.get("setting"), r.get("method"),
                    100 * (double) r.get("accuracy"), kl == null ? "–" : String.format("%.4f", (double) kl),
                    t == null ? "–" : String.format("%.1f", (double) t)));
        }
        return sb.toString().stripTrailing();
    }
}
