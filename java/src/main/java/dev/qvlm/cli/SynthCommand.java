package dev.qvlm.cli;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.qvlm.QvlmException;
import dev.qvlm.bench.SyntheticFolder;
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
                "without a download (llava-1.5-7b: 14.1 GB, llava-1.5-13b: 26.7 GB; check the free disk first)."})
final class SynthCommand implements Callable<Integer> {
    @Option(names = "--shape", required = true, paramLabel = "NAME", description = "llava-1.5-7b or llava-1.5-13b.")
    String shape;

    @Option(names = "--out", required = true, paramLabel = "DIR", description = "Folder to create (must not exist).")
    Path out;

    @Option(names = "--layers", paramLabel = "N", description = "Keep only the first N decoder layers (default: all).")
    Integer layers;

    @Option(names = "--vision-layers", paramLabel = "N", description = "Keep only the first N vision layers (default: all).")
    Integer visionLayers;

    @Option(names = "--shard-size", defaultValue = "5000000000", paramLabel = "BYTES", description = "Largest shard (default ${DEFAULT-VALUE}, the Hub's limit).")
    long shardBytes;

    @Option(names = "--seed", defaultValue = "0", paramLabel = "S", description = "Seed of the random weights (default ${DEFAULT-VALUE}).")
    long seed;

    @Option(names = "--tokenizer", paramLabel = "DIR", description = "Folder with the LLaVA-1.5 tokenizer.json (default: models/llava-1.5-tokenizer of this checkout).")
    Path tokenizer;

    @Option(names = "--json", description = "Print a JSON summary.")
    boolean json;

    @Option(names = "--quiet", description = "No progress output on stderr.")
    boolean quiet;

    @Override
    public Integer call() {
        if (Files.exists(out)) throw new QvlmException("--out " + out + " already exists");
        ObjectNode cfg = SyntheticFolder.config(shape);
        SyntheticFolder.capLayers(cfg, layers, visionLayers);
        Path tok = tokenizer != null ? tokenizer : Checkout.root().resolve("models/llava-1.5-tokenizer");
        long t0 = System.nanoTime();
        long bytes = SyntheticFolder.write(cfg, tok, out, shardBytes, seed, quiet ? null : System.err::println);
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
}
