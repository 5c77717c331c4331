package dev.qvlm.serve;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.qvlm.TestPaths;
import dev.qvlm.cpu.CpuBackend;
import dev.qvlm.generate.Generator;
import dev.qvlm.runtime.Llava;
import org.junit.jupiter.api.Test;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.WebSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The chat page in a real headless Chromium, driven over the Chrome DevTools protocol: upload an image through the
 * page's file input, type a prompt, send, and read the streamed answer from the page. Skips where no Chromium is
 * installed (Debian: {@code apt-get install chromium}).
 */
class ChatPageTest {
    static final ObjectMapper JSON = new ObjectMapper();

    static Path chromium() {
        for (String c : new String[]{"/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"})
            if (Files.isExecutable(Path.of(c))) return Path.of(c);
        return null;
    }

    /** A minimal DevTools client: Runtime.evaluate on one page target. */
    static final class Cdp implements WebSocket.Listener, AutoCloseable {
        final Map<Integer, CompletableFuture<JsonNode>> pending = new ConcurrentHashMap<>();
        final StringBuilder partial = new StringBuilder();
        WebSocket ws;
        int nextId;

        Cdp(String url) {
            ws = HttpClient.newHttpClient().newWebSocketBuilder().buildAsync(URI.create(url), this).join();
        }

        @Override
        public CompletionStage<?> onText(WebSocket w, CharSequence data, boolean last) {
            partial.append(data);
            if (last) {
                try {
                    JsonNode n = JSON.readTree(partial.toString());
                    if (n.has("id")) {
                        CompletableFuture<JsonNode> f = pending.remove(n.get("id").asInt());
                        if (f != null) f.complete(n);
                    }
                } catch (Exception e) {
                    // events we do not read
                }
                partial.setLength(0);
            }
            w.request(1);
            return null;
        }

        JsonNode evaluate(String expression) throws Exception {
            int id = ++nextId;
            CompletableFuture<JsonNode> f = new CompletableFuture<>();
            pending.put(id, f);
            ObjectNode msg = JSON.createObjectNode();
            msg.put("id", id);
            msg.put("method", "Runtime.evaluate");
            ObjectNode p = msg.putObject("params");
            p.put("expression", expression);
            p.put("awaitPromise", true);
            p.put("returnByValue", true);
            ws.sendText(JSON.writeValueAsString(msg), true).join();
            JsonNode r = f.get(30, TimeUnit.SECONDS);
            if (r.has("error") || r.path("result").has("exceptionDetails"))
                throw new AssertionError("page script failed: " + r);
            return r.path("result").path("result").path("value");
        }

        JsonNode waitFor(String expression, int seconds) throws Exception {
            long end = System.nanoTime() + seconds * 1_000_000_000L;
            while (System.nanoTime() < end) {
                JsonNode v = evaluate(expression);
                if (!v.isMissingNode() && !v.isNull() && !(v.isBoolean() && !v.asBoolean())) return v;
                Thread.sleep(100);
            }
            throw new AssertionError("timed out waiting for " + expression);
        }

        @Override
        public void close() {
            ws.abort();
        }
    }

    @Test
    void uploadAnImageSendAPromptAndSeeTheStreamedAnswer() throws Exception {
        Path chrome = chromium();
        assumeTrue(chrome != null, "no Chromium at /usr/bin/chromium (apt-get install chromium): chat page test skipped");
        // the browser's profile: not a JUnit @TempDir, whose cleanup failed the test when one of Chromium's helper
        // processes was still writing into it; removed here, best effort, once they are gone
        Path profile = Files.createTempDirectory("qvlm-chrome-profile");
        Path img = TestPaths.data().resolve("images/eval_00002.png");
        Generator.Result want = ServeTest.generate(img, "Describe the image.", 128);
        try (Llava llava = Llava.open(TestPaths.tinyModel(), new CpuBackend());
             Engine engine = new Engine(llava.model(), llava.tokenizer(), 4, 8);
             OpenAiServer server = new OpenAiServer(llava, engine, "tiny", ServeLimits.DEFAULT, null, "127.0.0.1", 0)) {
            String page = "http://127.0.0.1:" + server.port() + "/";
            Process browser = new ProcessBuilder(chrome.toString(), "--headless", "--no-sandbox", "--disable-gpu",
                    "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--user-data-dir=" + profile, "--remote-debugging-port=0", page)
                    .redirectErrorStream(true).start();
            try {
                BufferedReader err = new BufferedReader(new InputStreamReader(browser.getInputStream(), StandardCharsets.UTF_8));
                String line, devtools = null;
                StringBuilder seen = new StringBuilder();
                while (devtools == null && (line = err.readLine()) != null) {
                    seen.append(line).append('\n');
                    Matcher m = Pattern.compile("DevTools listening on ws://127\\.0\\.0\\.1:(\\d+)/").matcher(line);
                    if (m.find()) devtools = m.group(1);
                }
                assertTrue(devtools != null, "Chromium did not start its DevTools endpoint: " + seen);
                Thread.ofVirtual().start(() -> { // keep draining the browser's log so it never blocks
                    try {
                        err.transferTo(java.io.Writer.nullWriter());
                    } catch (java.io.IOException ignored) {
                    }
                });
                String wsUrl = null;
                for (int i = 0; i < 100 && wsUrl == null; i++) {
                    JsonNode targets = JSON.readTree(HttpClient.newHttpClient().send(HttpRequest.newBuilder(
                            URI.create("http://127.0.0.1:" + devtools + "/json/list")).build(), HttpResponse.BodyHandlers.ofString()).body());
                    for (JsonNode t : targets)
                        if (t.path("type").asText().equals("page") && t.path("url").asText().startsWith(page))
                            wsUrl = t.get("webSocketDebuggerUrl").asText();
                    if (wsUrl == null) Thread.sleep(100);
                }
                assertTrue(wsUrl != null, "no page target for " + page);
                try (Cdp cdp = new Cdp(wsUrl)) {
                    cdp.waitFor("document.readyState === 'complete' && !!document.getElementById('file')", 30);
                    String b64 = Base64.getEncoder().encodeToString(Files.readAllBytes(img));
                    // what a user's file pick does: put a PNG File into the page's file input and fire 'change'
                    cdp.evaluate("(() => { const b = atob('" + b64 + "'); const u = new Uint8Array(b.length);"
                            + " for (let i = 0; i < b.length; i++) u[i] = b.charCodeAt(i);"
                            + " const dt = new DataTransfer(); dt.items.add(new File([u], 'shapes.png', {type: 'image/png'}));"
                            + " const inp = document.getElementById('file'); inp.files = dt.files;"
                            + " inp.dispatchEvent(new Event('change')); return true; })()");
                    cdp.waitFor("!!document.querySelector('#preview img')", 30);
                    cdp.evaluate("document.getElementById('prompt').value = 'Describe the image.';"
                            + " document.getElementById('send').click(); true");
                    cdp.waitFor("(document.getElementById('answer-1') || {dataset: {}}).dataset.done === 'true'", 60);
                    String answer = cdp.evaluate("document.getElementById('answer-1').textContent").asText();
                    assertEquals(want.text(), answer);
                    // the user's bubble shows the uploaded image
                    assertTrue(cdp.evaluate("!!document.querySelector('.msg.user img')").asBoolean());
                }
            } finally {
                java.util.List<ProcessHandle> helpers = browser.descendants().toList();
                browser.destroy();
                if (!browser.waitFor(10, TimeUnit.SECONDS)) browser.destroyForcibly();
                for (ProcessHandle h : helpers) h.destroy();
                for (ProcessHandle h : helpers)
                    try {
                        h.onExit().get(5, TimeUnit.SECONDS);
                    } catch (Exception e) {
                        h.destroyForcibly();
                    }
                deleteQuietly(profile);
            }
        }
    }

    private static void deleteQuietly(Path dir) {
        try (var paths = Files.walk(dir)) {
            paths.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        } catch (java.io.IOException | java.io.UncheckedIOException ignored) {
        }
    }
}
