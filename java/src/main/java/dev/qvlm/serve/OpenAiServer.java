package dev.qvlm.serve;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import dev.qvlm.QvlmException;
import dev.qvlm.generate.SamplingOptions;
import dev.qvlm.model.LlavaModel;
import dev.qvlm.runtime.Llava;


import java.awt.image.BufferedImage;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Semaphore;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The OpenAI-compatible HTTP API over the JDK's built-in {@link HttpServer}, one virtual thread per exchange:
 * {@code POST /v1/chat/completions} (JSON or server-sent events), {@code GET /v1/models}, {@code GET /health} and
 * {@code GET /} (the chat page). Request threads parse, validate, decode images and tokenize; the {@link Engine}'s
 * scheduler thread runs the model for all of them.
 */
public final class OpenAiServer implements AutoCloseable {
    private static final ObjectMapper JSON = new ObjectMapper();

    private final Llava llava;
    private final Engine engine;
    private final String modelId;
    private final ServeLimits limits;
    private final byte[] apiKey; // null: no authentication (loopback only)
    private final HttpServer http;
    private final ExecutorService executor = Executors.newVirtualThreadPerTaskExecutor();
    private final long created = System.currentTimeMillis() / 1000;
    private final AtomicLong ids = new AtomicLong();
    private final SecureRandom seeds = new SecureRandom();
    private volatile boolean draining;
    /**
     * Requests between reading their body and their last byte out: slots + queue. Bounds the memory held by bodies
     * (at most that many × max body size) however many connections are open; one more gets 429.
     */
    private final Semaphore admitted;
    /** Images decoded at once: a decoded image may take max-image-pixels × 4 bytes. */
    private final Semaphore decoding = new Semaphore(Math.max(2, Runtime.getRuntime().availableProcessors()));

    public OpenAiServer(Llava llava, Engine engine, String modelId, ServeLimits limits, String apiKey,
                        String host, int port) throws IOException {
        this.llava = llava;
        this.engine = engine;
        this.modelId = modelId;
        this.limits = limits;
        this.apiKey = apiKey == null ? null : apiKey.getBytes(StandardCharsets.UTF_8);
        this.admitted = new Semaphore(engine.slots() + limits.queueCapacity());
        this.http = HttpServer.create(new InetSocketAddress(host, port), 128);
        http.setExecutor(executor);
        http.createContext("/", this::handle);
        http.start();
    }

    public Engine engine() {
        return engine;
    }

    /** {@link Engine#stats()}. */
    public long[] engineStats() {
        return engine.stats();
    }

    /** The bound port (useful with port 0). */
    public int port() {
        return http.getAddress().getPort();
    }

    /**
     * SIGTERM: stop accepting (503 for new requests), let in-flight answers finish for up to {@code graceSeconds}
     * and abort the rest, then close the listener.
     */
    public void shutdown(double graceSeconds) {
        draining = true;
        engine.drain(graceSeconds);
        http.stop(1);
        executor.shutdownNow();
    }

    @Override
    public void close() {
        shutdown(0);
    }

    private void handle(HttpExchange ex) {
        try (ex) {
            try {
                route(ex);
            } catch (ApiException e) {
                sendError(ex, e);
            } catch (IOException e) {
                // the client went away; nothing to answer
            } catch (RuntimeException e) {
                sendError(ex, new ApiException(500, "server_error", null, null, "internal error: " + e, 0));
            }
        }
    }

    private void route(HttpExchange ex) throws IOException {
        String path = ex.getRequestURI().getPath(), method = ex.getRequestMethod();
        switch (path) {
            case "/", "/index.html" -> {
                requireMethod(method, "GET");
                byte[] page;
                try (InputStream in = OpenAiServer.class.getResourceAsStream("chat.html")) {
                    page = in.readAllBytes();
                }
                ex.getResponseHeaders().set("Content-Type", "text/html; charset=utf-8");
                // the page loads nothing from anywhere: no scripts, styles or fonts from the network
                ex.getResponseHeaders().set("Content-Security-Policy",
                        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data: blob:; connect-src 'self'");
                send(ex, 200, page);
            }
            case "/health" -> {
                requireMethod(method, "GET");
                ObjectNode o = JSON.createObjectNode();
                o.put("status", draining ? "draining" : "ok");
                o.put("model", modelId);
                o.put("slots", engine.slots());
                o.put("active", engine.active());
                o.put("queued", engine.queued());
                long[] st = engine.stats();
                o.put("decode_steps", st[0]);
                o.put("decode_rows", st[1]);
                o.put("cancelled", st[2]);
                // per batch size: what continuous batching buys, timed inside the scheduler
                ArrayNode by = o.putArray("decode_steps_by_batch");
                for (int b = 1; b <= engine.slots(); b++) {
                    long[] sb = engine.stepsOfSize(b);
                    if (sb[0] == 0) continue;
                    ObjectNode e = by.addObject();
                    e.put("batch", b);
                    e.put("steps", sb[0]);
                    e.put("seconds", sb[1] / 1e9);
                    e.put("forward_seconds", sb[2] / 1e9);
                }
                sendJson(ex, draining ? 503 : 200, o);
            }
            case "/v1/models" -> {
                requireMethod(method, "GET");
                authorize(ex);
                ObjectNode o = JSON.createObjectNode();
                o.put("object", "list");
                ObjectNode m = o.putArray("data").addObject();
                m.put("id", modelId);
                m.put("object", "model");
                m.put("created", created);
                m.put("owned_by", "qvlm");
                sendJson(ex, 200, o);
            }
            case "/v1/chat/completions" -> {
                requireMethod(method, "POST");
                authorize(ex);
                chat(ex);
            }
            default -> throw new ApiException(404, "invalid_request_error", null, "not_found", "no route " + method + " " + path, 0);
        }
    }

    private static void requireMethod(String method, String want) {
        if (!method.equals(want))
            throw new ApiException(405, "invalid_request_error", null, "method_not_allowed", "use " + want, 0);
    }

    private void authorize(HttpExchange ex) {
        if (apiKey == null) return;
        String h = ex.getRequestHeaders().getFirst("Authorization");
        byte[] given = h != null && h.startsWith("Bearer ") ? h.substring(7).trim().getBytes(StandardCharsets.UTF_8) : new byte[0];
        if (!MessageDigest.isEqual(given, apiKey))
            throw new ApiException(401, "invalid_request_error", null, "invalid_api_key", "missing or wrong API key (Authorization: Bearer KEY)", 0);
    }

    // ------------------------------------------------------------------ chat completions

    private void chat(HttpExchange ex) throws IOException {
        if (draining) throw new ApiException(503, "server_error", null, "shutting_down", "the server is shutting down", 1);
        if (!admitted.tryAcquire())
            throw new ApiException(429, "rate_limit_error", null, "queue_full", "too many requests in flight; retry later", 1);
        try {
            chatAdmitted(ex);
        } finally {
            admitted.release();
        }
    }

    private void chatAdmitted(HttpExchange ex) throws IOException {
        JsonNode body = readJson(ex);
        ChatRequest req = ChatRequest.parse(body);
        if (req.model() != null && !req.model().equals(modelId))
            throw new ApiException(404, "invalid_request_error", "model", "model_not_found",
                    "model '" + req.model() + "' is not served here (this server serves '" + modelId + "')", 0);
        Job job = toJob(req);
        engine.submit(job);
        String id = "chatcmpl-" + Long.toHexString(created) + "-" + ids.incrementAndGet();
        if (req.stream()) stream(ex, job, req, id);
        else complete(ex, job, id);
    }

    private Job toJob(ChatRequest req) {
        List<float[]> images = new ArrayList<>();
        int count = 0;
        for (ChatRequest.Message m : req.messages()) count += m.imageUrls().size();
        if (count > limits.maxImages())
            throw ApiException.invalid("messages", count + " images in the conversation; at most " + limits.maxImages());
        for (ChatRequest.Message m : req.messages())
            for (int i = 0; i < m.imageUrls().size(); i++) {
                decoding.acquireUninterruptibly();
                try {
                    BufferedImage img = DataUrlImage.decode(m.imageUrls().get(i), limits.maxImagePixels(), m.imageParams().get(i));
                    images.add(llava.processor().preprocess(img));
                } finally {
                    decoding.release();
                }
            }
        int[] ids = llava.promptIds(ChatTemplate.render(req.messages()));
        int context = llava.model().contextLength();
        int room = context - ids.length;
        if (room < 1)
            throw new ApiException(400, "invalid_request_error", "messages", "context_length_exceeded",
                    "the prompt has " + ids.length + " tokens (images included); the model's context is " + context, 0);
        int maxTokens;
        if (req.maxTokens() == null) maxTokens = Math.min(limits.defaultMaxTokens(), room);
        else {
            try { // the CLI's check, so both say the same
                LlavaModel.checkContext(ids.length, req.maxTokens(), context);
            } catch (QvlmException e) {
                throw new ApiException(400, "invalid_request_error", "max_tokens", "context_length_exceeded", e.getMessage(), 0);
            }
            maxTokens = req.maxTokens();
        }
        long seed = req.seed() != null ? req.seed() : seeds.nextLong();
        var sampling = new SamplingOptions(maxTokens, req.temperature(), req.topP(), seed);
        long deadline = System.nanoTime() + (long) (limits.timeoutSeconds() * 1e9);
        return new Job(ids, images, sampling, req.stop(), req.ignoreEos(), req.stream(), deadline);
    }

    private void complete(HttpExchange ex, Job job, String id) throws IOException {
        StringBuilder text = new StringBuilder();
        try {
            while (true) {
                Job.Event e = job.next(60_000);
                if (e == null) continue; // the scheduler enforces the deadline
                switch (e) {
                    case Job.Delta d -> text.append(d.text());
                    case Job.Failed f -> throw f.error();
                    case Job.Done d -> {
                        ObjectNode o = JSON.createObjectNode();
                        o.put("id", id);
                        o.put("object", "chat.completion");
                        o.put("created", System.currentTimeMillis() / 1000);
                        o.put("model", modelId);
                        ObjectNode c = o.putArray("choices").addObject();
                        c.put("index", 0);
                        ObjectNode msg = c.putObject("message");
                        msg.put("role", "assistant");
                        msg.put("content", text.toString());
                        c.put("finish_reason", d.finishReason());
                        usage(o.putObject("usage"), d);
                        sendJson(ex, 200, o);
                        return;
                    }
                }
            }
        } catch (InterruptedException ie) {
            job.cancel();
            Thread.currentThread().interrupt();
        } finally {
            job.cancel(); // no-op when done; frees the slot when the send failed
        }
    }

    private static void usage(ObjectNode u, Job.Done d) {
        u.put("prompt_tokens", d.promptTokens());
        u.put("completion_tokens", d.completionTokens());
        u.put("total_tokens", d.promptTokens() + d.completionTokens());
    }

    private void stream(HttpExchange ex, Job job, ChatRequest req, String id) throws IOException {
        long createdNow = System.currentTimeMillis() / 1000;
        boolean headersSent = false;
        OutputStream out = null;
        try {
            while (true) {
                Job.Event e = job.next(60_000);
                if (e == null) continue;
                if (e instanceof Job.Failed f && !headersSent) throw f.error(); // a plain error status while we still can
                if (!headersSent) {
                    ex.getResponseHeaders().set("Content-Type", "text/event-stream; charset=utf-8");
                    ex.getResponseHeaders().set("Cache-Control", "no-cache");
                    ex.sendResponseHeaders(200, 0);
                    out = ex.getResponseBody();
                    headersSent = true;
                    ObjectNode first = chunk(id, createdNow);
                    ObjectNode delta = ((ObjectNode) first.get("choices").get(0)).putObject("delta");
                    delta.put("role", "assistant");
                    delta.put("content", "");
                    event(out, first);
                }
                switch (e) {
                    case Job.Delta d -> {
                        ObjectNode c = chunk(id, createdNow);
                        ((ObjectNode) c.get("choices").get(0)).putObject("delta").put("content", d.text());
                        event(out, c);
                    }
                    case Job.Failed f -> {
                        ObjectNode err = JSON.createObjectNode();
                        errorBody(err.putObject("error"), f.error());
                        event(out, err);
                        done(out);
                        return;
                    }
                    case Job.Done d -> {
                        ObjectNode c = chunk(id, createdNow);
                        ObjectNode choice = (ObjectNode) c.get("choices").get(0);
                        choice.putObject("delta");
                        choice.put("finish_reason", d.finishReason());
                        event(out, c);
                        if (req.includeUsage()) {
                            ObjectNode u = chunk(id, createdNow);
                            u.putArray("choices");
                            usage(u.putObject("usage"), d);
                            event(out, u);
                        }
                        done(out);
                        return;
                    }
                }
            }
        } catch (InterruptedException ie) {
            Thread.currentThread().interrupt();
        } finally {
            job.cancel(); // a failed write (client gone) lands here: the slot is freed before the next step
        }
    }

    private ObjectNode chunk(String id, long createdAt) {
        ObjectNode o = JSON.createObjectNode();
        o.put("id", id);
        o.put("object", "chat.completion.chunk");
        o.put("created", createdAt);
        o.put("model", modelId);
        ArrayNode choices = o.putArray("choices");
        ObjectNode c = choices.addObject();
        c.put("index", 0);
        c.putNull("finish_reason");
        return o;
    }

    private static void event(OutputStream out, JsonNode data) throws IOException {
        out.write(("data: " + JSON.writeValueAsString(data) + "\n\n").getBytes(StandardCharsets.UTF_8));
        out.flush();
    }

    private static void done(OutputStream out) throws IOException {
        out.write("data: [DONE]\n\n".getBytes(StandardCharsets.UTF_8));
        out.flush();
    }

    // ------------------------------------------------------------------ plumbing

    private JsonNode readJson(HttpExchange ex) throws IOException {
        // any Content-Type: the body is parsed as JSON either way (curl -d sends form-urlencoded by default)
        long max = limits.maxBodyBytes();
        String cl = ex.getRequestHeaders().getFirst("Content-Length");
        if (cl != null) {
            long n;
            try {
                n = Long.parseLong(cl.trim());
            } catch (NumberFormatException e) {
                throw ApiException.invalid(null, "bad Content-Length");
            }
            if (n > max) {
                drain(ex.getRequestBody());
                throw tooLarge(max);
            }
        }
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        try (InputStream in = ex.getRequestBody()) {
            byte[] b = new byte[65536];
            for (int r; (r = in.read(b)) > 0; ) {
                if (buf.size() + r > max) {
                    drain(in);
                    throw tooLarge(max);
                }
                buf.write(b, 0, r);
            }
        }
        if (buf.size() == 0) throw ApiException.invalid(null, "empty request body");
        try {
            return JSON.readTree(buf.toByteArray());
        } catch (JsonProcessingException e) {
            var loc = e.getLocation();
            throw ApiException.invalid(null, "malformed JSON" + (loc == null ? "" : " at line " + loc.getLineNr()
                    + ", column " + loc.getColumnNr()) + ": " + e.getOriginalMessage());
        }
    }

    /** Bytes of an oversize body read and dropped so that the client, still sending, can read the 413. */
    private static final long DRAIN_LIMIT = 64L << 20;

    /**
     * Reads and drops the rest of a refused body, up to {@link #DRAIN_LIMIT}: a client that is still sending when
     * the answer comes would otherwise get a connection reset instead of the 413. Beyond the limit the connection
     * is simply closed (the client then sees a reset: acceptable for such a body).
     */
    private static void drain(InputStream in) throws IOException {
        byte[] b = new byte[65536];
        long left = DRAIN_LIMIT;
        for (int r; left > 0 && (r = in.read(b, 0, (int) Math.min(b.length, left))) > 0; ) left -= r;
    }

    private static ApiException tooLarge(long max) {
        return new ApiException(413, "invalid_request_error", null, "request_too_large", "request body exceeds " + max + " bytes", 0);
    }

    private static void errorBody(ObjectNode e, ApiException a) {
        e.put("message", a.getMessage());
        e.put("type", a.type());
        if (a.param() == null) e.putNull("param");
        else e.put("param", a.param());
        if (a.code() == null) e.putNull("code");
        else e.put("code", a.code());
    }

    private static void sendError(HttpExchange ex, ApiException a) {
        try {
            ObjectNode o = JSON.createObjectNode();
            errorBody(o.putObject("error"), a);
            if (a.retryAfterSeconds() > 0) ex.getResponseHeaders().set("Retry-After", Integer.toString(a.retryAfterSeconds()));
            sendJson(ex, a.status(), o);
        } catch (IOException | RuntimeException ignored) {
            // headers already sent or client gone
        }
    }

    private static void sendJson(HttpExchange ex, int status, JsonNode o) throws IOException {
        ex.getResponseHeaders().set("Content-Type", "application/json");
        send(ex, status, JSON.writeValueAsBytes(o));
    }

    private static void send(HttpExchange ex, int status, byte[] body) throws IOException {
        ex.sendResponseHeaders(status, body.length == 0 ? -1 : body.length);
        try (OutputStream out = ex.getResponseBody()) {
            out.write(body);
        }
    }
}
