package dev.qvlm.cli;

import dev.qvlm.QvlmException;
import dev.qvlm.calib.QuantSettings;
import dev.qvlm.config.KnownModels;
import dev.qvlm.config.LlavaConfig;
import dev.qvlm.quant.ModelMemory;
import dev.qvlm.quant.QuantArgs;
import dev.qvlm.runtime.MemoryBudget;
import dev.qvlm.safetensors.WeightStore;
import dev.qvlm.util.Json;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.Callable;

@Command(name = "memory", mixinStandardHelpOptions = true,
        description = {"Analytic weight memory of a LLaVA model, FP16 against quantized.",
                "Quantized weights count packed codes, FP16 group scales and packed zero points, as compressed-tensors",
                "stores them. Computed from a config; no weights needed."})
final class MemoryCommand implements Callable<Integer> {
    @Option(names = "--model", paramLabel = "DIR", description = "A model folder (its config.json).")
    Path model;

    @Option(names = "--synthetic", paramLabel = "NAME", description = "A known shape: llava-1.5-7b, llava-1.5-13b, tiny.")
    String synthetic;

    @Option(names = "--wbits", defaultValue = "4", paramLabel = "B", description = "Weight bits (default ${DEFAULT-VALUE}).")
    int wbits;

    @Option(names = "--group", defaultValue = "128", paramLabel = "G", description = "Group size; 0 = per channel (default ${DEFAULT-VALUE}).")
    int group;

    @Option(names = "--wsym", description = "Symmetric weights (no zero points).")
    boolean wsym;

    @Option(names = "--scope", defaultValue = "llm", paramLabel = "S", description = "llm | vision | projector | all (default ${DEFAULT-VALUE}).")
    String scope;

    @Option(names = "--tokens", defaultValue = "640", paramLabel = "N", description = "With --model: sequence length of the run estimate (default ${DEFAULT-VALUE}: one image and a short prompt and answer).")
    int tokens;

    @Option(names = "--json", description = "Print JSON.")
    boolean json;

    @Override
    public Integer call() {
        if ((model == null) == (synthetic == null)) throw new QvlmException("give exactly one of --model DIR or --synthetic NAME");
        LlavaConfig cfg = model != null ? LlavaConfig.load(model.resolve("config.json")) : KnownModels.config(synthetic);
        if (wbits < QuantArgs.MIN_BITS || wbits > QuantArgs.MAX_BITS) throw new QvlmException("--wbits " + wbits + " is out of range: use 2–8");
        QuantArgs w = group > 0 ? QuantArgs.perGroup(wbits, wsym, group) : QuantArgs.perChannel(wbits, wsym);
        ModelMemory.Sizes s = ModelMemory.sizes(cfg, w, QuantSettings.parseScope(scope));
        String name = model != null ? model.toString() : synthetic;
        // a folder: its stored tensor bytes and what generate would need with them (the check generate runs first)
        MemoryBudget.Estimate run = null;
        if (model != null) {
            try (WeightStore store = WeightStore.open(model)) {
                run = MemoryBudget.forRun(cfg, store.dataBytes(), tokens, 1);
            }
        }
        if (json) {
            Map<String, Object> o = new LinkedHashMap<>();
            o.put("model", name);
            o.put("params", s.params());
            o.put("fp16_bytes", s.fp16Bytes());
            o.put("quantized_bytes", s.quantizedBytes());
            o.put("ratio", s.ratio());
            o.put("quantized_tensors_fp16_bytes", s.quantizedTensorsFp16Bytes());
            o.put("quantized_tensors_bytes", s.quantizedTensorsBytes());
            o.put("quantized_tensors_ratio", s.quantizedTensorsRatio());
            if (run != null) {
                o.put("stored_bytes", run.weights());
                o.put("run_tokens", tokens);
                o.put("run_kv_cache_bytes", run.kvCache());
                o.put("run_heap_bytes", run.heap());
                o.put("run_total_bytes", run.total());
                o.put("available_bytes", MemoryBudget.available());
            }
            System.out.println(Json.write(o));
        } else {
            String q = "W" + wbits + "A16 " + (group > 0 ? "g" + group : "per-channel") + ", " + scope;
            boolean big = s.fp16Bytes() >= 1e9; // GB for real checkpoints, MB for small ones like the bundled model
            double unit = big ? 1e9 : 1e6;
            String u = big ? "GB" : "MB";
            System.out.printf("%s: %.2f %s parameters%n", name, s.params() / (big ? 1e9 : 1e6), big ? "B" : "M");
            System.out.printf("  FP16 weights        %8.2f %s%n", s.fp16Bytes() / unit, u);
            System.out.printf("  %-19s %8.2f %s  (%.2fx smaller)%n", q, s.quantizedBytes() / unit, u, s.ratio());
            System.out.printf("  quantized tensors   %8.2f %s -> %.2f %s (%.2fx)%n", s.quantizedTensorsFp16Bytes() / unit, u,
                    s.quantizedTensorsBytes() / unit, u, s.quantizedTensorsRatio());
            if (run != null) {
                System.out.printf("  stored tensors      %8.2f %s  (this folder's files)%n", run.weights() / unit, u);
                System.out.printf("  generate, %d tokens: about %.2f GB resident (stored %.2f + KV cache %.2f + activations %.2f + runtime %.2f GB); %.1f GB available now%n",
                        tokens, run.total() / 1e9, run.weights() / 1e9, run.kvCache() / 1e9, (run.heap() - run.kvCache()) / 1e9,
                        (run.total() - run.weights() - run.heap()) / 1e9, MemoryBudget.available() / 1e9);
            }
        }
        return 0;
    }
}
