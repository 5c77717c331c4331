package dev.qvlm.serve;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.openai.client.OpenAIClient;
import com.openai.client.okhttp.OpenAIOkHttpClient;
import com.openai.core.http.StreamResponse;
import com.openai.errors.BadRequestException;
import com.openai.models.chat.completions.ChatCompletion;
import com.openai.models.chat.completions.ChatCompletionChunk;
import com.openai.models.chat.completions.ChatCompletionContentPart;
import com.openai.models.chat.completions.ChatCompletionContentPartImage;
import com.openai.models.chat.completions.ChatCompletionContentPartText;
import com.openai.models.chat.completions.ChatCompletionCreateParams;
import dev.qvlm.TestPaths;
import dev.qvlm.backend.Tensor;
import dev.qvlm.cpu.CpuBackend;
import dev.qvlm.generate.Generator;
import dev.qvlm.generate.SamplingOptions;
import dev.qvlm.runtime.Llava;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.BufferedReader;
import java.io.ByteArrayOutputStream;
import java.io.InputStream;
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
import java.util.Base64;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.zip.CRC32;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code qvlm serve} against the bundled model, with the official OpenAI Java SDK as the client where it can
 * express the request, and raw HTTP where the request must be malformed on purpose.
 */
class ServeTest {
    static final ObjectMapper JSON = new ObjectMapper();
    static Llava llava;
    static OpenAiServer server;
    static String base;
    static OpenAIClient client;
    static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();

    @BeforeAll
    static void start() throws Exception {
        llava = Llava.open(TestPaths.tinyModel(), new CpuBackend());
        Engine engine = new Engine(llava.model(), llava.tokenizer(), 8, 16);
        server = new OpenAiServer(llava, engine, "tiny", ServeLimits.DEFAULT.withMaxBodyBytes(256 * 1024)
                .withMaxImagePixels(1024 * 1024), null, "127.0.0.1", 0);
        base = "http://127.0.0.1:" + server.port();
        client = OpenAIOkHttpClient.builder().baseUrl(base + "/v1").apiKey("unused").maxRetries(0).build();
    }

    @AfterAll
    static void stop() {
        if (client != null) client.close();
        if (server != null) server.close();
        if (llava != null) llava.close();
    }

    static Path image(int i) {
        return TestPaths.data().resolve(String.format("images/eval_%05d.png", i));
    }

    static String dataUrl(Path png) throws Exception {
        return "data:image/png;base64," + Base64.getEncoder().encodeToString(Files.readAllBytes(png));
    }

    /** What {@code qvlm generate --temperature 0} computes: the Generator on its own model instance. */
    static Generator.Result generate(Path img, String prompt, int maxTokens) {
        try (Llava ref = Llava.open(TestPaths.tinyModel(), new CpuBackend())) {
            Tensor embeds = img == null ? null : ref.model().encodeImage(ref.processor().preprocess(img));
            String text = img == null ? "USER: " + prompt + " ASSISTANT:" : Llava.chatPrompt(prompt);
            return new Generator(ref.model(), ref.tokenizer()).generate(ref.promptIds(text), embeds,
                    SamplingOptions.greedy(maxTokens), null);
        }
    }

    static ChatCompletionCreateParams params(Path img, String prompt, int maxTokens) throws Exception {
        List<ChatCompletionContentPart> parts = new ArrayList<>();
        if (img != null)
            parts.add(ChatCompletionContentPart.ofImageUrl(ChatCompletionContentPartImage.builder().imageUrl(
                    ChatCompletionContentPartImage.ImageUrl.builder().url(dataUrl(img)).build()).build()));
        parts.add(ChatCompletionContentPart.ofText(ChatCompletionContentPartText.builder().text(prompt).build()));
        return ChatCompletionCreateParams.builder().model("tiny").temperature(0).maxCompletionTokens(maxTokens)
                .addUserMessageOfArrayOfContentParts(parts).build();
    }

    static String streamed(ChatCompletionCreateParams p) {
        StringBuilder sb = new StringBuilder();
        try (StreamResponse<ChatCompletionChunk> s = client.chat().completions().createStreaming(p)) {
            s.stream().forEach(c -> c.choices().forEach(ch -> ch.delta().content().ifPresent(sb::append)));
        }
        return sb.toString();
    }

    @Test
    void nonStreamedAndStreamedAnswersWithAnImageEqualGenerate() throws Exception {
        Generator.Result want = generate(image(0), "Describe the image.", 40);
        ChatCompletion c = client.chat().completions().create(params(image(0), "Describe the image.", 40));
        assertEquals(want.text(), c.choices().getFirst().message().content().orElseThrow());
        assertEquals(want.tokens().length, c.usage().orElseThrow().completionTokens());
        assertEquals(want.promptTokens(), c.usage().orElseThrow().promptTokens());
        assertEquals(want.stopReason().equals("eos") ? "stop" : "length", c.choices().getFirst().finishReason().asString());
        assertEquals(want.text(), streamed(params(image(0), "Describe the image.", 40)));
    }

    @Test
    void stopSequencesAndSeededSamplingFollowGenerate() throws Exception {
        Generator.Result want = generate(image(0), "Describe the image.", 40);
        int at = want.text().indexOf(" at ");
        assertTrue(at > 0, want.text());
        var p = params(image(0), "Describe the image.", 40).toBuilder().stop(" at ").build();
        ChatCompletion c = client.chat().completions().create(p);
        assertEquals(want.text().substring(0, at), c.choices().getFirst().message().content().orElseThrow());
        assertEquals("stop", c.choices().getFirst().finishReason().asString());
        assertEquals(want.text().substring(0, at), streamed(p));
        // temperature 0.9, top_p 0.8, seed 7: the same draws as qvlm generate --temperature 0.9 --top-p 0.8 --seed 7
        Generator.Result sampled;
        try (Llava ref = Llava.open(TestPaths.tinyModel(), new CpuBackend())) {
            sampled = new Generator(ref.model(), ref.tokenizer()).generate(ref.promptIds(Llava.chatPrompt("Describe the image.")),
                    ref.model().encodeImage(ref.processor().preprocess(image(1))), new SamplingOptions(30, 0.9f, 0.8f, 7), null);
        }
        var ps = params(image(1), "Describe the image.", 30).toBuilder().temperature(0.9).topP(0.8).seed(7).build();
        assertEquals(sampled.text(), client.chat().completions().create(ps).choices().getFirst().message().content().orElseThrow());
    }

    @Test
    void sixteenConcurrentClientsGetTheirOneAtATimeAnswers() throws Exception {
        String[] questions = {"Describe the image.", "What shapes are there?", "What color is the circle?", "How many shapes?"};
        List<ChatCompletionCreateParams> reqs = new ArrayList<>();
        for (int i = 0; i < 16; i++) reqs.add(params(i % 5 == 4 ? null : image(i), questions[i % 4], 24));
        List<String> alone = new ArrayList<>();
        for (var p : reqs) alone.add(client.chat().completions().create(p).choices().getFirst().message().content().orElseThrow());
        long[] before = server.engineStats();
        try (ExecutorService pool = Executors.newFixedThreadPool(16)) {
            List<Future<String>> got = new ArrayList<>();
            for (int i = 0; i < 16; i++) {
                var p = reqs.get(i);
                // half streamed, half not: both kinds share the batch
                got.add(i % 2 == 0 ? pool.submit(() -> client.chat().completions().create(p).choices().getFirst().message().content().orElseThrow())
                        : pool.submit(() -> streamed(p)));
            }
            for (int i = 0; i < 16; i++) assertEquals(alone.get(i), got.get(i).get(), "client " + i);
        }
        long[] after = server.engineStats();
        double meanBatch = (double) (after[1] - before[1]) / (after[0] - before[0]);
        System.out.printf("16 clients: %d decode steps, mean batch %.2f%n", after[0] - before[0], meanBatch);
        assertTrue(meanBatch > 1.5, "requests did not share decode steps (mean batch " + meanBatch + ")");
    }

    static HttpResponse<String> post(String body) throws Exception {
        return HTTP.send(HttpRequest.newBuilder(URI.create(base + "/v1/chat/completions"))
                .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(body)).build(),
                HttpResponse.BodyHandlers.ofString());
    }

    static JsonNode assertError(int status, String code, HttpResponse<String> r) throws Exception {
        assertEquals(status, r.statusCode(), r.body());
        JsonNode e = JSON.readTree(r.body()).get("error");
        assertNotNull(e, r.body());
        assertTrue(e.get("message").asText().length() > 5);
        if (code != null) assertEquals(code, e.get("code").asText(), r.body());
        return e;
    }

    static String userImage(String url) {
        return "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":\"" + url
                + "\"}},{\"type\":\"text\",\"text\":\"Describe.\"}]}],\"max_tokens\":4}";
    }

    /** A real PNG whose header claims {@code w x h} pixels (the CRC fixed up): a decompression bomb's calling card. */
    static byte[] pngClaiming(int w, int h) throws Exception {
        byte[] png = Files.readAllBytes(image(0));
        // IHDR data starts at byte 16 (8 signature + 4 length + 4 type): width, height big-endian
        java.nio.ByteBuffer.wrap(png, 16, 8).putInt(w).putInt(h);
        CRC32 crc = new CRC32();
        crc.update(png, 12, 17);
        java.nio.ByteBuffer.wrap(png, 29, 4).putInt((int) crc.getValue());
        return png;
    }

    @Test
    void badRequestsGetOpenAiErrorsAndTheServerKeepsServing() throws Exception {
        assertError(400, null, post("{\"messages\": [")).get("message").asText().contains("malformed");
        assertEquals("bogus", assertError(400, null, post("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"bogus\":1}")).get("param").asText());
        assertError(400, null, post("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"temperature\":\"hot\"}"));
        assertError(400, null, post("{\"messages\":[]}"));
        assertError(400, null, post("[1,2]"));
        // oversize body: 300 KB > the 256 KB limit
        assertError(413, "request_too_large", post("{\"messages\":[{\"role\":\"user\",\"content\":\"" + "a".repeat(300_000) + "\"}]}"));
        assertError(400, null, post(userImage("data:image/png;base64,@@@notbase64@@@")));
        assertError(400, null, post(userImage("data:image/png;base64," + Base64.getEncoder().encodeToString("not an image".getBytes()))));
        JsonNode bomb = assertError(400, null, post(userImage("data:image/png;base64,"
                + Base64.getEncoder().encodeToString(pngClaiming(100_000, 100_000)))));
        assertTrue(bomb.get("message").asText().contains("10000000000 pixels"), bomb.toString());
        assertTrue(assertError(400, null, post(userImage("https://example.com/cat.png"))).get("message").asText().contains("not fetched"));
        assertError(400, null, post(userImage("/etc/passwd")));
        assertError(400, null, post(userImage("file:///etc/passwd")));
        // over-long prompt (> 256 tokens of context) and prompt + max_tokens beyond the context
        assertError(400, "context_length_exceeded", post("{\"messages\":[{\"role\":\"user\",\"content\":\"" + "red circle ".repeat(200) + "\"}]}"));
        assertError(400, "context_length_exceeded", post("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":1000}"));
        assertError(400, null, post("{\"messages\":[{\"role\":\"user\",\"content\":\"an <image> token\"}]}"));
        assertError(404, "model_not_found", post("{\"model\":\"gpt-4\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"));
        assertError(404, null, HTTP.send(HttpRequest.newBuilder(URI.create(base + "/v2/nothing")).build(), HttpResponse.BodyHandlers.ofString()));
        assertError(405, null, HTTP.send(HttpRequest.newBuilder(URI.create(base + "/v1/chat/completions")).build(), HttpResponse.BodyHandlers.ofString()));
        // the SDK sees a 400 as its BadRequestException
        assertThrows(BadRequestException.class, () -> client.chat().completions().create(ChatCompletionCreateParams.builder()
                .model("tiny").addUserMessage("hi").maxCompletionTokens(100_000).build()));
        // still serving
        HttpResponse<String> ok = post("{\"messages\":[{\"role\":\"user\",\"content\":\"What shapes are there?\"}],\"max_tokens\":3,\"temperature\":0}");
        assertEquals(200, ok.statusCode(), ok.body());
        assertEquals(200, HTTP.send(HttpRequest.newBuilder(URI.create(base + "/health")).build(), HttpResponse.BodyHandlers.ofString()).statusCode());
        JsonNode models = JSON.readTree(HTTP.send(HttpRequest.newBuilder(URI.create(base + "/v1/models")).build(),
                HttpResponse.BodyHandlers.ofString()).body());
        assertEquals("tiny", models.get("data").get(0).get("id").asText());
    }

    @Test
    void aClientThatDisconnectsMidStreamFreesItsSlot() throws Exception {
        long cancelledBefore = server.engineStats()[2];
        String body = "{\"stream\":true,\"ignore_eos\":true,\"max_tokens\":240,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
        // a raw socket, so that "going away" is a real close of the connection (RST), as a killed client does
        try (java.net.Socket sock = new java.net.Socket("127.0.0.1", server.port())) {
            byte[] b = body.getBytes(StandardCharsets.UTF_8);
            sock.getOutputStream().write(("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    + "Content-Length: " + b.length + "\r\n\r\n").getBytes(StandardCharsets.UTF_8));
            sock.getOutputStream().write(b);
            sock.getOutputStream().flush();
            BufferedReader in = new BufferedReader(new InputStreamReader(sock.getInputStream(), StandardCharsets.UTF_8));
            assertEquals("HTTP/1.1 200 OK", in.readLine());
            String line;
            while ((line = in.readLine()) != null && !line.startsWith("data: ")) { }
            assertNotNull(line);
            sock.setSoLinger(true, 0);
        } // goes away mid-stream
        long deadline = System.nanoTime() + 30_000_000_000L;
        while (server.engineStats()[2] == cancelledBefore && System.nanoTime() < deadline) Thread.sleep(20);
        long[] st = server.engineStats();
        assertEquals(cancelledBefore + 1, st[2], "the disconnected stream was not cancelled");
        assertTrue(st[3] < 240, "the slot ran to max_tokens (" + st[3] + ") instead of leaving at once");
        while (server.engine().active() > 0 && System.nanoTime() < deadline) Thread.sleep(20);
        assertEquals(0, server.engine().active());
    }

    @Test
    void fullQueueGets429WithRetryAfterAndApiKeyIsRequiredWhenSet() throws Exception {
        // 1 slot + 1 queue place; the scheduler starts only after the queue is full, so nothing races
        Engine e = new Engine(llava.model(), llava.tokenizer(), 1, 1, false);
        try (OpenAiServer s = new OpenAiServer(llava, e, "tiny", ServeLimits.DEFAULT, "sekret", "127.0.0.1", 0)) {
            String url = "http://127.0.0.1:" + s.port() + "/v1/chat/completions";
            String body = "{\"max_tokens\":5,\"temperature\":0,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
            HttpRequest req = HttpRequest.newBuilder(URI.create(url)).header("Authorization", "Bearer sekret")
                    .POST(HttpRequest.BodyPublishers.ofString(body)).build();
            assertError(401, "invalid_api_key", HTTP.send(HttpRequest.newBuilder(URI.create(url))
                    .POST(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofString()));
            assertError(401, "invalid_api_key", HTTP.send(HttpRequest.newBuilder(URI.create(url)).header("Authorization", "Bearer wrong")
                    .POST(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofString()));
            var first = HTTP.sendAsync(req, HttpResponse.BodyHandlers.ofString());
            var second = HTTP.sendAsync(req, HttpResponse.BodyHandlers.ofString());
            long deadline = System.nanoTime() + 30_000_000_000L;
            while (e.queued() < 2 && System.nanoTime() < deadline) Thread.sleep(5);
            assertEquals(2, e.queued());
            HttpResponse<String> third = HTTP.send(req, HttpResponse.BodyHandlers.ofString());
            assertError(429, "queue_full", third);
            assertEquals("1", third.headers().firstValue("Retry-After").orElse(null));
            e.start();
            assertEquals(200, first.get().statusCode(), first.get().body());
            assertEquals(200, second.get().statusCode(), second.get().body());
        }
    }

    @Test
    void aRequestPastItsTimeLimitGets504AndTheServerGoesOn() throws Exception {
        try (Engine e = new Engine(llava.model(), llava.tokenizer(), 2, 4);
             OpenAiServer s = new OpenAiServer(llava, e, "tiny", ServeLimits.DEFAULT.withTimeoutSeconds(0.05), null, "127.0.0.1", 0)) {
            String url = "http://127.0.0.1:" + s.port() + "/v1/chat/completions";
            // 240 tokens take far longer than 50 ms here
            String body = "{\"ignore_eos\":true,\"max_tokens\":240,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
            assertError(504, "timeout", HTTP.send(HttpRequest.newBuilder(URI.create(url)).POST(HttpRequest.BodyPublishers.ofString(body)).build(),
                    HttpResponse.BodyHandlers.ofString()));
            long deadline = System.nanoTime() + 10_000_000_000L;
            while (e.active() > 0 && System.nanoTime() < deadline) Thread.sleep(10);
            assertEquals(0, e.active());
        }
    }

    @Test
    void multiTurnConversationsUseLlava15Template() {
        var user1 = new ChatRequest.Message("user", List.of("Describe."), List.of("u"), List.of("p"));
        var asst = new ChatRequest.Message("assistant", List.of("A red circle."), List.of(), List.of());
        var user2 = new ChatRequest.Message("user", List.of("Where is it?"), List.of(), List.of());
        assertEquals(Llava.chatPrompt("Describe."), ChatTemplate.render(List.of(user1)));
        assertEquals("USER: <image>\nDescribe. ASSISTANT: A red circle. USER: Where is it? ASSISTANT:",
                ChatTemplate.render(List.of(user1, asst, user2)));
        var sys = new ChatRequest.Message("system", List.of("Be brief."), List.of(), List.of());
        assertEquals("Be brief. USER: Where is it? ASSISTANT:", ChatTemplate.render(List.of(sys, user2)));
    }
}
