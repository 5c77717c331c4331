package dev.qvlm.cli;

import dev.qvlm.QvlmException;
import dev.qvlm.backend.Tensor;
import dev.qvlm.generate.Generator;
import dev.qvlm.generate.SamplingOptions;
import dev.qvlm.image.ImageProcessor;
import dev.qvlm.model.LlavaModel;
import dev.qvlm.runtime.Llava;
import dev.qvlm.runtime.MemoryBudget;
import dev.qvlm.util.Json;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.Callable;

@Command(name = "generate", mixinStandardHelpOptions = true,
        description = {"Answer a prompt about an image, streaming the answer to stdout.",
                "The prompt is wrapped in LLaVA-1.5's template: USER: <image>\\n{prompt} ASSISTANT:"})
final class GenerateCommand implements Callable<Integer> {
    @Option(names = "--model", required = true, paramLabel = "DIR", description = "Hugging Face LLaVA folder (config.json, *.safetensors, tokenizer.json, preprocessor_config.json).")
    Path model;

    @Option(names = "--image", paramLabel = "FILE", description = "PNG or JPEG image. Without it the prompt is text-only.")
    Path image;

    @Option(names = "--prompt", required = true, paramLabel = "TEXT", description = "The user's message.")
    String prompt;

    @Option(names = "--max-tokens", defaultValue = "64", paramLabel = "N", description = "Most new tokens (default ${DEFAULT-VALUE}).")
    int maxTokens;

    @Option(names = "--temperature", defaultValue = "0", paramLabel = "T", description = "0 = greedy (default); > 0 samples.")
    float temperature;

    @Option(names = "--top-p", defaultValue = "1.0", paramLabel = "P", description = "Nucleus sampling mass (default ${DEFAULT-VALUE}).")
    float topP;

    @Option(names = "--seed", defaultValue = "0", paramLabel = "S", description = "Sampling seed (default ${DEFAULT-VALUE}).")
    long seed;

    @Option(names = "--raw", description = "Use --prompt as the full prompt, without the chat template.")
    boolean raw;

    @Option(names = "--json", description = "Print one JSON object (text, tokens, timings) instead of streaming text.")
    boolean json;

    @Mixin
    Common common;

    @Override
    public Integer call() {
        if (maxTokens < 1) throw new QvlmException("--max-tokens must be at least 1, got " + maxTokens);
        if (!(temperature >= 0) || Float.isInfinite(temperature))
            throw new QvlmException("--temperature must be a finite number >= 0, got " + temperature);
        if (!(topP > 0 && topP <= 1)) throw new QvlmException("--top-p must be in (0, 1], got " + topP);
        if (image != null && !Files.isRegularFile(image)) throw new QvlmException(image + ": image not found");
        try (Llava llava = Llava.open(model, common.backend())) {
            String text = prompt;
            if (!raw) text = image != null ? Llava.chatPrompt(prompt) : "USER: " + prompt + " ASSISTANT:";
            else if (image != null && !text.contains(Llava.IMAGE_TOKEN))
                throw new QvlmException("--raw prompt has no <image> token but --image was given");
            int[] ids = llava.promptIds(text);
            LlavaModel.checkContext(ids.length, maxTokens, llava.model().contextLength()); // before any compute
            // on the CPU every weight is read for every token, so the mapped weights must be resident
            if (common.device.equals("cpu")) MemoryBudget.check("generate", MemoryBudget.forRun(llava, ids.length + maxTokens, 1));
            var opts = new SamplingOptions(maxTokens, temperature, topP, seed);
            Tensor embeds = image == null ? null : llava.model().encodeImage(llava.processor().preprocess(ImageProcessor.read(image)));
            Generator gen = new Generator(llava.model(), llava.tokenizer());
            Generator.Result r = gen.generate(ids, embeds, opts, json ? null : s -> {
                System.out.print(s);
                System.out.flush();
            });
            if (json) {
                Map<String, Object> o = new LinkedHashMap<>();
                o.put("text", r.text());
                o.put("tokens", r.tokens());
                o.put("prompt_tokens", r.promptTokens());
                o.put("stop_reason", r.stopReason());
                o.put("prefill_s", r.prefillSeconds());
                o.put("decode_s", r.decodeSeconds());
                o.put("decode_tokens_per_s", r.decodeTokensPerSecond());
                System.out.println(Json.write(o));
            } else {
                System.out.println();
                if (!common.quiet)
                    System.err.printf("[%d prompt tokens, prefill %.2f s; %d new tokens, %.1f tok/s; stop: %s]%n",
                            r.promptTokens(), r.prefillSeconds(), r.tokens().length, r.decodeTokensPerSecond(), r.stopReason());
            }
        }
        return 0;
    }
}
