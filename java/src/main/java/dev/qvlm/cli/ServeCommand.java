package dev.qvlm.cli;

import dev.qvlm.QvlmException;
import dev.qvlm.runtime.Llava;
import dev.qvlm.serve.Engine;
import dev.qvlm.serve.OpenAiServer;
import dev.qvlm.serve.ServeLimits;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;

@Command(name = "serve", mixinStandardHelpOptions = true,
        description = {"Serve a model (FP or a saved quantized checkpoint) over an OpenAI-compatible HTTP API with "
                + "continuous batching: POST /v1/chat/completions (images as data: URLs, streaming), GET /v1/models, "
                + "GET /health, and a chat page at GET /.",
                "SIGTERM or Ctrl-C stops accepting, lets in-flight answers finish for --shutdown-grace seconds, and exits 0."})
final class ServeCommand implements Callable<Integer> {
    @Option(names = "--model", required = true, paramLabel = "DIR", description = "Hugging Face LLaVA folder, FP or quantized (compressed-tensors).")
    Path model;

    @Option(names = "--host", defaultValue = "127.0.0.1", paramLabel = "ADDR", description = "Address to bind (default ${DEFAULT-VALUE}). Anything but loopback requires --api-key.")
    String host;

    @Option(names = "--port", defaultValue = "8080", paramLabel = "N", description = "TCP port (default ${DEFAULT-VALUE}; 0 picks a free one).")
    int port;

    @Option(names = "--slots", defaultValue = "8", paramLabel = "N", description = "Sequences decoded together in one batched step (1..32, default ${DEFAULT-VALUE}).")
    int slots;

    @Option(names = "--api-key", paramLabel = "KEY", description = "Require 'Authorization: Bearer KEY' on /v1/*. Also read from QVLM_API_KEY.")
    String apiKey;

    @Option(names = "--queue", defaultValue = "64", paramLabel = "N", description = "Requests that may wait for a slot; beyond, 429 with Retry-After (default ${DEFAULT-VALUE}).")
    int queue;

    @Option(names = "--timeout", defaultValue = "300", paramLabel = "S", description = "Seconds one request may take from admission to its last token (default ${DEFAULT-VALUE}).")
    double timeout;

    @Option(names = "--max-body-bytes", defaultValue = "8388608", paramLabel = "B", description = "Largest request body (default ${DEFAULT-VALUE} = 8 MiB); larger ones get 413.")
    long maxBody;

    @Option(names = "--max-image-pixels", defaultValue = "16777216", paramLabel = "P", description = "Largest image width x height, read from the header before decoding (default ${DEFAULT-VALUE} = 4096^2).")
    long maxPixels;

    @Option(names = "--max-images", defaultValue = "4", paramLabel = "N", description = "Images per conversation (default ${DEFAULT-VALUE}).")
    int maxImages;

    @Option(names = "--default-max-tokens", defaultValue = "256", paramLabel = "N", description = "Completion tokens when a request sets none, clipped to the context (default ${DEFAULT-VALUE}).")
    int defaultMaxTokens;

    @Option(names = "--shutdown-grace", defaultValue = "10", paramLabel = "S", description = "On SIGTERM, seconds in-flight answers may still take before they are aborted (default ${DEFAULT-VALUE}).")
    double grace;

    @Option(names = "--model-id", paramLabel = "NAME", description = "Model name in the API (default: the folder's name).")
    String modelId;

    @Mixin
    Common common;

    @Override
    public Integer call() throws IOException {
        if (apiKey == null) apiKey = System.getenv("QVLM_API_KEY");
        if (apiKey != null && apiKey.isBlank()) throw new QvlmException("--api-key is empty");
        boolean loopback;
        try {
            loopback = InetAddress.getByName(host).isLoopbackAddress();
        } catch (UnknownHostException e) {
            throw new QvlmException("--host: cannot resolve '" + host + "'");
        }
        if (!loopback && apiKey == null)
            throw new QvlmException("--host " + host + " is not a loopback address: set --api-key (or QVLM_API_KEY) so that "
                    + "only clients with the key can use the model");
        if (port < 0 || port > 65535) throw new QvlmException("--port must be in 0..65535, got " + port);
        if (slots < 1 || slots > 32) throw new QvlmException("--slots must be in 1..32, got " + slots);
        if (queue < 0) throw new QvlmException("--queue must be >= 0, got " + queue);
        if (!(timeout > 0)) throw new QvlmException("--timeout must be > 0");
        if (!(grace >= 0)) throw new QvlmException("--shutdown-grace must be >= 0");
        if (maxBody < 1024) throw new QvlmException("--max-body-bytes must be at least 1024");
        if (maxPixels < 1) throw new QvlmException("--max-image-pixels must be at least 1");
        if (maxImages < 0) throw new QvlmException("--max-images must be >= 0");
        if (defaultMaxTokens < 1) throw new QvlmException("--default-max-tokens must be at least 1");
        ServeLimits limits = new ServeLimits(maxBody, maxPixels, maxImages, defaultMaxTokens, queue, timeout);
        String id = modelId != null ? modelId : model.toAbsolutePath().normalize().getFileName().toString();
        try (Llava llava = Llava.open(model, common.backend())) {
            Engine engine = new Engine(llava.model(), llava.tokenizer(), slots, queue);
            OpenAiServer server;
            try {
                server = new OpenAiServer(llava, engine, id, limits, apiKey, host, port);
            } catch (IOException e) {
                engine.close();
                throw new QvlmException("--host " + host + " --port " + port + ": cannot listen (" + e.getMessage() + ")");
            }
            CountDownLatch stopped = new CountDownLatch(1);
            Runnable stop = () -> {
                System.err.println("qvlm serve: stopping (grace " + grace + " s)");
                server.shutdown(grace);
                stopped.countDown();
            };
            // SIGTERM/SIGINT handled here, not by the JVM's default (which would exit with 143/130 before draining)
            for (String sig : new String[]{"TERM", "INT"})
                sun.misc.Signal.handle(new sun.misc.Signal(sig), s -> Thread.ofPlatform().start(stop));
            // the port line is for scripts (port 0): keep its format
            System.out.println("qvlm serve: listening on http://" + (host.contains(":") ? "[" + host + "]" : host) + ":"
                    + server.port() + "/ (model " + id + ", " + slots + " slots, " + llava.model().backend().name() + ")");
            System.out.flush();
            try {
                stopped.await();
            } catch (InterruptedException e) {
                server.shutdown(0);
            }
            System.err.println("qvlm serve: stopped");
        }
        return 0;
    }
}
