package dev.qvlm.serve;

import dev.qvlm.TestPaths;
import org.junit.jupiter.api.Test;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code qvlm serve} as a process: refuses a public address without a key; SIGTERM drains and exits 0. */
class ServeProcessTest {
    static Process start(String... extra) throws Exception {
        List<String> cmd = new java.util.ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED",
                "-cp", System.getProperty("java.class.path"), "dev.qvlm.cli.Main", "serve",
                "--model", TestPaths.tinyModel().toString()));
        cmd.addAll(List.of(extra));
        return new ProcessBuilder(cmd).redirectErrorStream(true).start();
    }

    @Test
    void publicHostWithoutApiKeyIsRefused() throws Exception {
        Process p = start("--host", "0.0.0.0", "--port", "0");
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(60, TimeUnit.SECONDS));
        assertEquals(2, p.exitValue(), out);
        assertTrue(out.contains("--api-key"), out);
    }

    @Test
    void sigtermFinishesTheInFlightStreamAndExitsZero() throws Exception {
        Process p = start("--port", "0", "--shutdown-grace", "20");
        try {
            BufferedReader out = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8));
            String line, port = null;
            StringBuilder seen = new StringBuilder();
            while (port == null && (line = out.readLine()) != null) {
                seen.append(line).append('\n');
                Matcher m = Pattern.compile("listening on http://127\\.0\\.0\\.1:(\\d+)/").matcher(line);
                if (m.find()) port = m.group(1);
            }
            assertTrue(port != null, "no 'listening' line: " + seen);
            String base = "http://127.0.0.1:" + port;
            HttpClient http = HttpClient.newHttpClient();
            String body = "{\"stream\":true,\"ignore_eos\":true,\"max_tokens\":150,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
            HttpResponse<java.io.InputStream> r = http.send(HttpRequest.newBuilder(URI.create(base + "/v1/chat/completions"))
                    .POST(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofInputStream());
            assertEquals(200, r.statusCode());
            CompletableFuture<String> rest = CompletableFuture.supplyAsync(() -> {
                try {
                    return new String(r.body().readAllBytes(), StandardCharsets.UTF_8);
                } catch (java.io.IOException e) {
                    return "IOException " + e;
                }
            });
            p.destroy(); // SIGTERM
            String all = rest.get(60, TimeUnit.SECONDS);
            assertTrue(all.endsWith("data: [DONE]\n\n"), all.substring(Math.max(0, all.length() - 300)));
            assertTrue(all.contains("\"finish_reason\":\"length\""), "the in-flight answer was not finished");
            assertTrue(p.waitFor(60, TimeUnit.SECONDS), "did not exit");
            assertEquals(0, p.exitValue());
        } finally {
            p.destroyForcibly();
        }
    }
}
