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
 *   <li>the continuous-batching curve: for B = 1, 2, 4, 8 (round-robin, {@code --repeat} times, median), B streams
 *   started together, each generating exactly {@code --stream-tokens} tokens (ignore_eos). Aggregate decode
 *   tokens/s three ways: from the server's own timing of its decode steps with exactly B rows (GET /health: B × steps
 *   / their wall time, forward + sampling + detokenizing + events; and the forward pass alone), and as the client
 *   sees it (B × tokens over the wall time from sending the requests to the end of the last stream, prefill and
 *   HTTP included);</li>
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
        int requests = 200, clients = 8, maxTokens = 64, streamTokens = 200, repeat = 5;
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
                case "--repeat" -> repeat = Integer.parseInt(v);
                default -> throw new IllegalArgumentException("unknown option " + args[i]);
            }
        }
        String endpoint = url + "/v1/chat/completions";
        ObjectNode report = JSON.createObjectNode();
        // warm-up: compile the hot paths (batched too) before anything is timed
        for (int i = 0; i < 3; i++) stream(endpoint, 64);
        for (int b : new int[]{2, 4, 8}) batch(endpoint, b, 64);

        ArrayNode curveOut = report.putArray("batching");
        // the points are measured round-robin (1, 2, 4, 8, 1, 2, ...) so that a burst of load from other jobs on the
        // machine hits every point alike; each point reports the median of its repeats
        String[] bs = curve.split(",");
        double[][][] rates = new double[3][bs.length][repeat]; // [client | server step | server forward][point][repeat]
        for (int r = 0; r < repeat; r++)
            for (int k = 0; k < bs.length; k++) {
                double[] x = batch(endpoint, Integer.parseInt(bs[k].trim()), streamTokens);
                for (int m = 0; m < 3; m++) rates[m][k][r] = x[m];
            }
        System.out.println("aggregate decode tokens/s, median of " + repeat + " (min..max); x = against 1 stream");
        System.out.println("streams   server: scheduler steps        server: forward pass only      client: requests sent to last token");
        double[] one = new double[3];
        for (int k = 0; k < bs.length; k++) {
            int B = Integer.parseInt(bs[k].trim());
            ObjectNode o = curveOut.addObject();
            o.put("streams", B);
            StringBuilder line = new StringBuilder(String.format("%7d", B));
            String[] names = {"client", "server_step", "server_forward"}; // indexed like rates[m]
            for (int m : new int[]{1, 2, 0}) {
                double[] sorted = rates[m][k].clone();
                Arrays.sort(sorted);
                double rate = sorted[sorted.length / 2];
                if (B == 1) one[m] = rate;
                double x = one[m] > 0 ? rate / one[m] : Double.NaN;
                ObjectNode e = o.putObject(names[m]);
                e.put("decode_tokens_per_s", rate);
                e.put("vs_1_stream", x);
                ArrayNode rep = e.putArray("repeats");
                for (double v : rates[m][k]) rep.add(v);
                line.append(String.format("   %7.0f %5.2fx (%5.0f..%5.0f)", rate, x, sorted[0], sorted[sorted.length - 1]));
            }
            System.out.println(line);
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

    /** Steps, seconds and forward seconds of the server's decode steps of batch size b so far (GET /health). */
    static double[] serverSteps(String endpoint, int b) throws Exception {
        String health = endpoint.replace("/v1/chat/completions", "/health");
        JsonNode h = JSON.readTree(HTTP.send(HttpRequest.newBuilder(URI.create(health)).build(), HttpResponse.BodyHandlers.ofString()).body());
        for (JsonNode e : h.path("decode_steps_by_batch"))
            if (e.get("batch").asInt() == b)
                return new double[]{e.get("steps").asDouble(), e.get("seconds").asDouble(), e.get("forward_seconds").asDouble()};
        return new double[3];
    }

    /**
     * B streams at once. Returns {client: B × n tokens / wall time from sending the B requests to the end of the
     * last stream (prefill included; the server sends a stream's text in pieces of several tokens, so chunks are not
     * tokens); server: B × (steps of batch B) / (their wall time in the scheduler); the same for the forward pass}.
     */
    static double[] batch(String endpoint, int B, int n) throws Exception {
        double[] before = serverSteps(endpoint, B);
        long t0 = System.nanoTime(), end = t0;
        try (ExecutorService pool = Executors.newFixedThreadPool(B)) {
            List<Future<long[]>> fs = new ArrayList<>();
            for (int i = 0; i < B; i++) fs.add(pool.submit(() -> stream(endpoint, n)));
            for (Future<long[]> f : fs) {
                long[] t = f.get();
                end = Math.max(end, t[t.length - 1]);
            }
        }
        double[] after = serverSteps(endpoint, B);
        double steps = after[0] - before[0];
        return new double[]{B * (double) n / ((end - t0) / 1e9), B * steps / (after[1] - before[1]), B * steps / (after[2] - before[2])};
    }
}
