package dev.qvlm.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Base64;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Loopback load client for {@code qvlm serve} (benchmarks/serve-load.sh starts the server and calls this):
 * <ol>
 *   <li>the continuous-batching curve: for B = 1, 2, 4, 8, B streams started together, each generating exactly
 *   {@code --stream-tokens} tokens (ignore_eos); aggregate decode tokens/s counted from the streamed chunks while
 *   all B were decoding (from the last stream's first token to the first stream's last token);</li>
 *   <li>the load test: {@code --requests} chat requests with an image (non-streamed, greedy, natural length up to
 *   {@code --max-tokens}) from {@code --clients} concurrent clients: errors, p50/p95 latency, tokens/s.</li>
 * </ol>
 * Every request has a client-side timeout, so the run always ends. Prints a table and one JSON object.
 *
 * <pre>java -cp qvlm.jar dev.qvlm.bench.ServeLoad --url http://127.0.0.1:8080 --images DIR [--requests 200] [--clients 8]</pre>
 */
public final class ServeLoad {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();

    public static void main(String[] args) throws Exception {
        String url = "http://127.0.0.1:8080";
        Path images = Path.of("data/shapes-vqa/images");
        int requests = 200, clients = 8, maxTokens = 64, streamTokens = 200;
        String curve = "1,2,4,8";
        for (int i = 0; i < args.length; i += 2) {
            String v = args[i + 1];
            switch (args[i]) {
                case "--url" -> url = v;
                case "--images" -> images = Path.of(v);
                case "--requests" -> requests = Integer.parseInt(v);
                case "--clients" -> clients = Integer.parseInt(v);
                case "--max-tokens" -> maxTokens = Integer.parseInt(v);
                case "--stream-tokens" -> streamTokens = Integer.parseInt(v);
                case "--curve" -> curve = v;
                default -> throw new IllegalArgumentException("unknown option " + args[i]);
            }
        }
        String endpoint = url + "/v1/chat/completions";
        ObjectNode report = JSON.createObjectNode();
        // warm-up: compile the hot paths before anything is timed
        for (int i = 0; i < 3; i++) stream(endpoint, 64);

        ArrayNode curveOut = report.putArray("batching");
        System.out.println("streams  decode tok/s (all streams decoding)  per stream  vs 1 stream");
        double one = 0;
        for (String b : curve.split(",")) {
            int B = Integer.parseInt(b.trim());
            double rate = batch(endpoint, B, streamTokens);
            if (B == 1) one = rate;
            ObjectNode o = curveOut.addObject();
            o.put("streams", B);
            o.put("decode_tokens_per_s", rate);
            o.put("speedup", one > 0 ? rate / one : Double.NaN);
            System.out.printf("%7d  %36.1f  %10.1f  %10.2fx%n", B, rate, rate / B, one > 0 ? rate / one : Double.NaN);
        }

        List<Path> pngs;
        try (var s = Files.list(images)) {
            pngs = s.filter(p -> p.toString().endsWith(".png")).sorted().limit(50).toList();
        }
        String[] questions = {"Describe the image.", "What shapes are there?", "What color is the circle?", "How many shapes are there?"};
        List<String> bodies = new ArrayList<>();
        for (int i = 0; i < requests; i++) {
            String img = "data:image/png;base64," + Base64.getEncoder().encodeToString(Files.readAllBytes(pngs.get(i % pngs.size())));
            ObjectNode body = JSON.createObjectNode();
            body.put("temperature", 0);
            body.put("max_tokens", maxTokens);
            ObjectNode msg = body.putArray("messages").addObject();
            msg.put("role", "user");
            ArrayNode content = msg.putArray("content");
            content.addObject().put("type", "image_url").putObject("image_url").put("url", img);
            content.addObject().put("type", "text").put("text", questions[i % questions.length]);
            bodies.add(JSON.writeValueAsString(body));
        }
        double[] latency = new double[requests];
        int[] tokens = new int[requests];
        AtomicInteger errors = new AtomicInteger(), next = new AtomicInteger();
        List<String> errorSamples = new ArrayList<>();
        long t0 = System.nanoTime();
        try (ExecutorService pool = Executors.newFixedThreadPool(clients)) {
            List<Future<?>> fs = new ArrayList<>();
            for (int c = 0; c < clients; c++)
                fs.add(pool.submit(() -> {
                    for (int i; (i = next.getAndIncrement()) < bodies.size(); ) {
                        long s = System.nanoTime();
                        try {
                            HttpResponse<String> r = HTTP.send(HttpRequest.newBuilder(URI.create(endpoint))
                                    .timeout(Duration.ofSeconds(120)).header("Content-Type", "application/json")
                                    .POST(HttpRequest.BodyPublishers.ofString(bodies.get(i))).build(), HttpResponse.BodyHandlers.ofString());
                            if (r.statusCode() != 200) throw new IllegalStateException("HTTP " + r.statusCode() + ": " + r.body());
                            tokens[i] = JSON.readTree(r.body()).get("usage").get("completion_tokens").asInt();
                        } catch (Exception e) {
                            errors.incrementAndGet();
                            synchronized (errorSamples) {
                                if (errorSamples.size() < 5) errorSamples.add(e.toString());
                            }
                        }
                        latency[i] = (System.nanoTime() - s) / 1e9;
                    }
                    return null;
                }));
            for (Future<?> f : fs) f.get();
        }
        double wall = (System.nanoTime() - t0) / 1e9;
        double[] sorted = latency.clone();
        Arrays.sort(sorted);
        long totalTokens = Arrays.stream(tokens).asLongStream().sum();
        ObjectNode load = report.putObject("load");
        load.put("requests", requests);
        load.put("clients", clients);
        load.put("max_tokens", maxTokens);
        load.put("errors", errors.get());
        load.put("wall_s", wall);
        load.put("p50_latency_s", quantile(sorted, 0.50));
        load.put("p95_latency_s", quantile(sorted, 0.95));
        load.put("completion_tokens", totalTokens);
        load.put("tokens_per_s", totalTokens / wall);
        load.put("requests_per_s", requests / wall);
        System.out.printf("%nload: %d requests with an image, %d clients: %d errors, wall %.1f s, p50 %.3f s, p95 %.3f s, "
                        + "%d completion tokens, %.1f tokens/s, %.1f requests/s%n", requests, clients, errors.get(), wall,
                quantile(sorted, 0.5), quantile(sorted, 0.95), totalTokens, totalTokens / wall, requests / wall);
        for (String e : errorSamples) System.out.println("  error: " + e);
        System.out.println("JSON " + JSON.writeValueAsString(report));
    }

    static double quantile(double[] sorted, double q) {
        return sorted[Math.min(sorted.length - 1, (int) Math.ceil(q * sorted.length) - 1)];
    }

    /** Timestamps (ns) of the content chunks of one stream of exactly {@code n} tokens. */
    static long[] stream(String endpoint, int n) throws Exception {
        String body = "{\"stream\":true,\"ignore_eos\":true,\"temperature\":0,\"max_tokens\":" + n
                + ",\"messages\":[{\"role\":\"user\",\"content\":\"What shapes are there?\"}]}";
        HttpResponse<java.io.InputStream> r = HTTP.send(HttpRequest.newBuilder(URI.create(endpoint)).timeout(Duration.ofSeconds(120))
                .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(body)).build(),
                HttpResponse.BodyHandlers.ofInputStream());
        if (r.statusCode() != 200) throw new IllegalStateException("HTTP " + r.statusCode());
        List<Long> times = new ArrayList<>();
        try (BufferedReader in = new BufferedReader(new InputStreamReader(r.body(), StandardCharsets.UTF_8))) {
            for (String line; (line = in.readLine()) != null; ) {
                if (!line.startsWith("data: {")) continue;
                JsonNode c = JSON.readTree(line.substring(6));
                JsonNode d = c.path("choices").path(0).path("delta").path("content");
                if (d.isTextual() && !d.asText().isEmpty()) times.add(System.nanoTime());
            }
        }
        return times.stream().mapToLong(Long::longValue).toArray();
    }

    /** B streams at once; chunks per second while all B are between their first and last chunk. */
    static double batch(String endpoint, int B, int n) throws Exception {
        List<long[]> all = new ArrayList<>();
        try (ExecutorService pool = Executors.newFixedThreadPool(B)) {
            List<Future<long[]>> fs = new ArrayList<>();
            for (int i = 0; i < B; i++) fs.add(pool.submit(() -> stream(endpoint, n)));
            for (Future<long[]> f : fs) all.add(f.get());
        }
        long from = Long.MIN_VALUE, to = Long.MAX_VALUE;
        for (long[] t : all) {
            from = Math.max(from, t[0]);
            to = Math.min(to, t[t.length - 1]);
        }
        long count = 0;
        for (long[] t : all) for (long x : t) if (x > from && x <= to) count++;
        return count / ((to - from) / 1e9);
    }
}
