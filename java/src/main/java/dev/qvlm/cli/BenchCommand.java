package dev.qvlm.cli;

import dev.qvlm.QvlmException;
import dev.qvlm.util.OutputPaths;
import dev.qvlm.bench.Bench;
import dev.qvlm.bench.SyntheticModel;
import dev.qvlm.config.KnownModels;
import dev.qvlm.config.LlavaConfig;
import dev.qvlm.model.Checkpoint;
import dev.qvlm.util.Json;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.lang.foreign.Arena;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;

@Command(name = "bench", mixinStandardHelpOptions = true,
        description = {"End-to-end inference benchmark: prefill of image + text tokens, then greedy decode at batch 1.",
                "Reports time to first token, decode tokens/s and ms/token, weight bytes read per token, the achieved",
                "weight bandwidth against the machine's measured limit, and peak memory; table, and JSON with --json/--out.",
                "--batch 2,4,8 also times batched decode steps (aggregate tokens/s of B sequences against batch 1).",
                "--synthetic builds random weights of a known shape (on the GPU in place, on the CPU in memory)."})
final class BenchCommand implements Callable<Integer> {
    @Option(names = "--synthetic", paramLabel = "NAME", description = "Random weights of a known shape: llava-1.5-7b, llava-1.5-13b, tinyllama-1.1b (TinyLlama-1.1B text model, small vision tower), tiny.")
    String synthetic;

    @Option(names = "--model", paramLabel = "DIR", description = "A model folder instead (its weights as stored).")
    Path model;

    @Option(names = "--device", defaultValue = "cpu", paramLabel = "DEV", description = "cpu (default) or cuda.")
    String device;

    @Option(names = "--wbits", split = ",", paramLabel = "B",
            description = "Weight widths to run, in order (16 = FP16, 4 = W4A16 g128 decoder linears); repeat or list: --wbits 16,4. Default 16.")
    List<Integer> wbits;

    @Option(names = "--prompt-tokens", defaultValue = "64", paramLabel = "N", description = "Text tokens of the prompt (default ${DEFAULT-VALUE}).")
    int promptTokens;

    @Option(names = "--image-tokens", paramLabel = "N",
            description = "Image tokens: the vision tower's feature count (576 for LLaVA-1.5 7B/13B, the default) or 0 for text only.")
    Integer imageTokens;

    @Option(names = "--new-tokens", defaultValue = "128", paramLabel = "N", description = "Decoded tokens (default ${DEFAULT-VALUE}).")
    int newTokens;

    @Option(names = "--batch", split = ",", paramLabel = "B",
            description = "Also time decode steps of B sequences together (continuous batching's batched step), e.g. --batch 2,4,8: aggregate tokens/s against batch 1. Default: batch 1 only.")
    List<Integer> batch;

    @Option(names = "--batch-repeat", paramLabel = "R", defaultValue = "1",
            description = "Time the --batch curve R times, round-robin over the batch sizes (1, 2, 4, 8, 1, 2, ...), and report each point's median (for a noisy machine). Default 1.")
    int batchRepeat;

    @Option(names = "--warmup-tokens", defaultValue = "64", paramLabel = "N",
            description = "Untimed decode steps before the timed run, after an untimed prefill of the timed length (default ${DEFAULT-VALUE}): the JVM compiles the hot kernels while they run, so the first steps are slower than a running server's. 0 measures the first request instead.")
    int warmupTokens;

    @Option(names = "--prefill-repeat", defaultValue = "1", paramLabel = "R",
            description = "Time R prefills (each into a fresh cache) and report the median time to first token (default ${DEFAULT-VALUE}); the decode continues the last one.")
    int prefillRepeat;

    @Option(names = "--no-graphs", description = "cuda: launch every op of a decode step from the host instead of replaying the step as a CUDA graph (to measure what the graphs save).")
    boolean noGraphs;

    @Option(names = "--profile-ops", defaultValue = "0", paramLabel = "N",
            description = "GPU only: after the timed decode, time N more decode steps op by op on the GPU (CUDA events around each launch, GEMM, copy and memset; the stream held until the host has enqueued the step, so the times are the GPU's alone) and print where a token's GPU time goes: per kernel, the sum, and the span against the timed ms/token. Default 0 (off).")
    int profileOps;

    @Option(names = "--seed", defaultValue = "1", paramLabel = "S", description = "Seed of the random weights and prompt (default ${DEFAULT-VALUE}).")
    int seed;

    @Option(names = "--json", description = "Print JSON instead of the table.")
    boolean json;

    @Option(names = "--out", paramLabel = "FILE", description = "Also write the JSON report here.")
    Path out;

    @picocli.CommandLine.Mixin
    CpuOptions cpu = new CpuOptions();

    @Override
    public Integer call() {
        cpu.apply();
        if (cpu.int8Activations && !device.equals("cpu")) throw new QvlmException("--int8-activations is a CPU option (got --device " + device + ")");
        if (out != null) OutputPaths.checkFile(out, "--out");
        if ((model == null) == (synthetic == null)) throw new QvlmException("give exactly one of --synthetic NAME or --model DIR");
        if (!device.equals("cpu") && !device.equals("cuda"))
            throw new QvlmException("--device: unknown device '" + device + "' (expected cpu or cuda)");
        List<Integer> batches = new ArrayList<>();
        if (batch != null) for (int b : batch) {
            if (b < 1 || b > 32) throw new QvlmException("--batch " + b + ": must be in 1..32");
            if (b > 1) batches.add(b);
        }
        // the curve is timed after the main run (warm JIT) and starts with its own batch-1 point to compare against
        if (!batches.isEmpty()) batches.addFirst(1);
        if (batchRepeat < 1 || batchRepeat > 100) throw new QvlmException("--batch-repeat " + batchRepeat + ": must be in 1..100");
        if (promptTokens < 0 || newTokens < 1) throw new QvlmException("--prompt-tokens must be >= 0 and --new-tokens >= 1");
        List<Integer> widths = wbits == null || wbits.isEmpty() ? List.of(16) : wbits;
        for (int b : widths) if (b != 16 && b != 4) throw new QvlmException("--wbits " + b + ": the benchmark runs 16 (FP16) or 4 (W4A16 g128)");
        if (model != null && wbits != null) throw new QvlmException("--wbits applies to --synthetic; a --model runs with the weights it has");
        LlavaConfig cfg = model != null ? LlavaConfig.load(model.resolve("config.json")) : KnownModels.config(synthetic);
        int features = cfg.imageFeatures();
        int img = imageTokens == null ? features : imageTokens;
        if (img != 0 && img != features)
            throw new QvlmException("--image-tokens " + img + ": the vision tower of " + (model != null ? model : synthetic)
                    + " produces " + features + " image tokens (or give 0 for text only)");
        int tokens = 1 + img + promptTokens + newTokens;
        if (warmupTokens < 0) throw new QvlmException("--warmup-tokens must be at least 0, got " + warmupTokens);
        if (prefillRepeat < 1) throw new QvlmException("--prefill-repeat must be at least 1, got " + prefillRepeat);
        Bench.Options o = new Bench.Options(device, promptTokens, img, newTokens, seed, List.copyOf(batches), batchRepeat,
                cpu.int8Activations, warmupTokens, prefillRepeat, profileOps);
        if (noGraphs) System.setProperty("qvlm.cuda.graphs", "false");
        if (profileOps < 0) throw new QvlmException("--profile-ops must be at least 0, got " + profileOps);
        if (profileOps > 0 && !device.equals("cuda")) throw new QvlmException("--profile-ops times ops on the GPU: it needs --device cuda");
        String name = model != null ? model.toString() : synthetic;
        List<Bench.Run> runs = new ArrayList<>();
        if (model != null) {
            try (Checkpoint ck = Checkpoint.open(model)) {
                runs.add(Bench.run("model", 0, ck.config(), ck::weights, o, System.err));
            }
        } else {
            for (int b : widths) {
                if (device.equals("cpu")) Bench.checkCpuFits(synthetic, cfg, b, tokens);
                // host weights live in this arena for the run only (not capped by the JVM's direct-memory limit)
                try (Arena host = Arena.ofShared()) {
                    Arena h = device.equals("cpu") ? host : null;
                    runs.add(Bench.run(b == 4 ? (cpu.int8Activations ? "W4A8 (int8 act.)" : "W4A16") : "FP16", b, cfg, () -> SyntheticModel.build(cfg, b, seed, h), o, System.err));
                }
            }
        }
        Map<String, Object> report = new LinkedHashMap<>();
        report.put("model", name);
        report.put("synthetic", synthetic != null);
        report.put("device", device);
        report.put("backend", runs.getFirst().backend());
        report.put("cpu", System.getProperty("os.arch") + ", " + Runtime.getRuntime().availableProcessors() + " cores");
        report.put("java", Runtime.version().toString());
        report.put("prompt_tokens", promptTokens);
        report.put("image_tokens", img);
        report.put("new_tokens", newTokens);
        report.put("warmup_tokens", warmupTokens);
        report.put("prefill_repeats", prefillRepeat);
        report.put("runs", runs.stream().map(Bench.Run::json).toList());
        List<Map<String, Object>> ratios = new ArrayList<>();
        for (int i = 1; i < runs.size(); i++) ratios.add(Bench.ratios(runs.getFirst(), runs.get(i)));
        report.put("ratios", ratios);
        if (out != null) Json.writeAtomically(out, report);
        if (json) System.out.println(Json.write(report));
        else System.out.print(Bench.table(name + " on " + runs.getFirst().backend() + ": " + (1 + img + promptTokens)
                + " prefill tokens (" + img + " image), " + newTokens + " decoded at batch 1", runs));
        return 0;
    }
}
