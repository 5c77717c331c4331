package dev.qvlm.cli;

import dev.qvlm.cpu.Parallel;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;

import static dev.qvlm.cli.CliTest.DATA;
import static dev.qvlm.cli.CliTest.MODEL;
import static dev.qvlm.cli.CliTest.assertUserError;
import static dev.qvlm.cli.CliTest.run;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** --threads and --int8-activations, the CPU options every model-running command shares. */
class CpuOptionsTest {
    @Test
    void badValuesAndMisplacedUsesAreOneLineErrors() {
        assertUserError(run("generate", "--model", MODEL, "--prompt", "hi", "--threads", "0"), "--threads");
        assertUserError(run("quantize", "--model", MODEL, "--wbits", "4", "--int8-activations", "--out", "/nonexistent/x"),
                "--int8-activations", "exact");
        assertUserError(run("generate", "--model", MODEL, "--prompt", "hi", "--device", "cuda", "--int8-activations"),
                "--int8-activations", "CPU");
    }

    /** A 4-bit checkpoint evaluated with int8 activations against itself on the exact path: the KL line and the threads. */
    @Test
    void int8ActivationsAgainstTheExactPathOfTheSameCheckpoint(@TempDir Path tmp) throws Exception {
        int before = Parallel.threads();
        // eval's answer comes from the prompt's last position (prefill), which the switch leaves exact: the
        // diagnostic property runs prefill through the int8 kernel too (README "Decode kernels")
        System.setProperty("qvlm.int8.allRows", "true");
        try {
            Path w4 = tmp.resolve("w4");
            CliTest.Run q = run("quantize", "--model", MODEL, "--method", "rtn", "--wbits", "4", "--group", "128", "--out", w4.toString(), "--quiet");
            assertEquals(0, q.code(), q.err());
            CliTest.Run r = run("eval", "--model", w4.toString(), "--data", DATA, "--limit", "12", "--quiet", "--threads", "3",
                    "--int8-activations", "--reference", w4.toString(), "--out", tmp.resolve("r.json").toString());
            assertEquals(0, r.code(), r.err());
            assertEquals(3, Parallel.threads(), "--threads sets the pool");
            assertTrue(r.out().contains("KL(reference || model) at the answer position"), r.out());
            double kl = new com.fasterxml.jackson.databind.ObjectMapper().readTree(tmp.resolve("r.json").toFile()).get("kl_vs_reference").asDouble();
            assertTrue(kl > 0 && kl < 0.01, "int8 activations move the logits a little: KL " + kl); // 0 would mean the int8 path did not run
        } finally {
            Parallel.setThreads(before);
            System.clearProperty("qvlm.int8.allRows");
        }
    }
}
