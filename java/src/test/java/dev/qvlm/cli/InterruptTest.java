package dev.qvlm.cli;

import dev.qvlm.TestPaths;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A quantize run killed (SIGTERM, as Ctrl-C) while it writes its checkpoint leaves either the complete folder or
 * nothing: never a partial output or a leftover temporary folder.
 */
class InterruptTest {
    @Test
    void killedWhileSavingLeavesNoPartialFolder(@TempDir Path tmp) throws Exception {
        Path out = tmp.resolve("q");
        String java = ProcessHandle.current().info().command().orElse("java");
        Process p = new ProcessBuilder(java, "--add-modules", "jdk.incubator.vector", "-cp", System.getProperty("java.class.path"),
                Main.class.getName(), "quantize", "--model", TestPaths.tinyModel().toString(),
                "--calib", TestPaths.data().resolve("calib.jsonl").toString(), "--calib-samples", "2", "--method", "rtn",
                "--wbits", "4", "--group", "128", "--quiet", "--out", out.toString())
                .redirectErrorStream(true).redirectOutput(tmp.resolve("log.txt").toFile()).start();
        // kill as soon as the temporary folder appears (or give up waiting after a minute)
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        boolean sawTemp = false;
        while (p.isAlive() && System.nanoTime() < deadline) {
            try (var l = Files.list(tmp)) {
                if (l.anyMatch(x -> x.getFileName().toString().startsWith("q.tmp-"))) {
                    sawTemp = true;
                    break;
                }
            }
            Thread.sleep(2);
        }
        p.destroy(); // SIGTERM: shutdown hooks run
        assertTrue(p.waitFor(30, TimeUnit.SECONDS), "process ended");
        List<String> left;
        try (var l = Files.list(tmp)) {
            left = l.map(x -> x.getFileName().toString()).filter(n -> !n.equals("log.txt")).sorted().toList();
        }
        System.out.println("saw temporary folder before the kill: " + sawTemp + "; left: " + left);
        assertTrue(left.stream().noneMatch(n -> n.contains(".tmp")), "no temporary folder left: " + left);
        if (left.contains("q"))
            assertTrue(Files.exists(out.resolve("config.json")) && Files.exists(out.resolve("model.safetensors"))
                    && Files.exists(out.resolve("tokenizer.json")), "an output that exists is complete");
    }
}
