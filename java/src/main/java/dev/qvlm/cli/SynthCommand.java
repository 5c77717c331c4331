package dev.qvlm.cli;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.qvlm.QvlmException;
import dev.qvlm.bench.SyntheticFolder;
import dev.qvlm.bench.SyntheticTextExport;
import dev.qvlm.config.KnownModels;
import dev.qvlm.config.LlavaConfig;
import dev.qvlm.util.Json;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.Callable;

@Command(name = "synth", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Write a synthetic, real-shaped LLaVA folder (random FP16 weights) in the llava-hf layout:",
                "the published config.json, sharded safetensors with model.safetensors.index.json, the real LLaVA-1.5",
                "tokenizer and a CLIPImageProcessor config. For measuring load, memory and speed of real sizes",
                "without a download (llava-1.5-7b: 14.1 GB, llava-1.5-13b: 26.7 GB; check the free disk first).",
                "With --bench NAME instead of --shape: the text model of `qvlm bench --synthetic NAME --seed S` (its exact",
                "FP16 weights) as a Hugging Face LlamaForCausalLM folder (config.json, one model.safetensors), for other",
                "engines on the same weights: benchmarks/llamacpp converts it to GGUF (tinyllama-1.1b: 2.2 GB, llava-1.5-7b: 13.5 GB)."})
final class SynthCommand implements Callable<Integer> {
    @Option(names = "--shape", paramLabel = "NAME", description = "llava-1.5-7b or llava-1.5-13b.")
    String shape;

    @Option(names = "--bench", paramLabel = "NAME",
            description = "Instead of --shape: the text model of `qvlm bench --synthetic NAME` (llava-1.5-7b, llava-1.5-13b, tinyllama-1.1b, tiny) as a LlamaForCausalLM folder; --seed is the bench's (default 1), --layers/--vision-layers/--tokenizer/--shard-size do not apply.")
    String bench;

    @Option(names = "--out", required = true, paramLabel = "DIR", description = "Folder to create (must not exist).")
    Path out;

    @Option(names = "--layers", paramLabel = "N", description = "Keep only the first N decoder layers (default: all).")
    Integer layers;

    @Option(names = "--vision-layers", paramLabel = "N", description = "Keep only the first N vision layers (default: all).")
    Integer visionLayers;

    @Option(names = "--shard-size", defaultValue = "5000000000", paramLabel = "BYTES", description = "Largest shard (default ${DEFAULT-VALUE}, the Hub's limit).")
    long shardBytes;

    @Option(names = "--seed", paramLabel = "S", description = "Seed of the random weights (default 0; with --bench the bench's default, 1).")
    Long seed;

    @Option(names = "--tokenizer", paramLabel = "DIR", description = "Folder with the LLaVA-1.5 tokenizer.json (default: models/llava-1.5-tokenizer of this checkout).")
    Path tokenizer;

    @Option(names = "--json", description = "Print a JSON summary.")
    boolean json;

    @Option(names = "--quiet", description = "No progress output on stderr.")
    boolean quiet;

    @Override
    public Integer call() {
        if (Files.exists(out)) throw new QvlmException("--out " + out + " already exists");
        if ((shape == null) == (bench == null)) throw new QvlmException("give exactly one of --shape NAME or --bench NAME");
        if (bench != null) return benchText();
        ObjectNode cfg = SyntheticFolder.config(shape);
        SyntheticFolder.capLayers(cfg, layers, visionLayers);
        Path tok = tokenizer != null ? tokenizer : Checkout.root().resolve("models/llava-1.5-tokenizer");
        long t0 = System.nanoTime();
        long bytes = SyntheticFolder.write(cfg, tok, out, shardBytes, seed == null ? 0 : seed, quiet ? null : System.err::println);
        double secs = (System.nanoTime() - t0) / 1e9;
        if (json) {
            Map<String, Object> o = new LinkedHashMap<>();
            o.put("out", out.toString());
            o.put("shape", shape);
            o.put("weight_bytes", bytes);
            o.put("seconds", secs);
            System.out.println(Json.write(o));
        } else {
            System.out.printf("wrote %s: %s, %.2f GB of FP16 weights in %.0f s%n", out, shape, bytes / 1e9, secs);
        }
        return 0;
    }

    private int benchText() {
        if (layers != null || visionLayers != null || tokenizer != null)
            throw new QvlmException("--layers, --vision-layers and --tokenizer apply to --shape, not to --bench");
        long s = seed == null ? 1 : seed;
        if (s != (int) s) throw new QvlmException("--seed " + s + ": the bench's seeds are 32-bit integers");
        LlavaConfig cfg = KnownModels.config(bench);
        long t0 = System.nanoTime();
        long bytes = SyntheticTextExport.write(bench, cfg, (int) s, out, quiet ? null : System.err::println);
        double secs = (System.nanoTime() - t0) / 1e9;
        if (json) {
            Map<String, Object> o = new LinkedHashMap<>();
            o.put("out", out.toString());
            o.put("bench", bench);
            o.put("seed", s);
            o.put("weight_bytes", bytes);
            o.put("seconds", secs);
            System.out.println(Json.write(o));
        } else {
            System.out.printf("wrote %s: the text model of bench --synthetic %s --seed %d, %.2f GB of FP16 weights in %.0f s%n",
                    out, bench, s, bytes / 1e9, secs);
        }
        return 0;
    }
}
