package dev.qvlm.cuda;

import dev.qvlm.QvlmException;
import dev.qvlm.TestPaths;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/** Without a usable GPU, {@code --device cuda} is one clear line and exit code 2; the CPU path is unaffected. */
class CudaCliTest {
    /** {code, stdout, stderr} of one CLI run, through the shared harness of {@link dev.qvlm.cli.CliTest}. */
    static String[] run(String... args) {
        dev.qvlm.cli.CliTest.Run r = dev.qvlm.cli.CliTest.run(args);
        return new String[]{String.valueOf(r.code()), r.out(), r.err()};
    }

    @Test
    void probeGivesAReasonWhenThereIsNoGpu() {
        String why = CudaRuntime.probe();
        assumeTrue(why != null, "a usable GPU is present: the GPU tests cover this machine");
        assertFalse(why.isBlank());
        assertFalse(why.contains("Exception"), why);
        assertSame(why, CudaRuntime.probe(), "probed once");
        QvlmException e = assertThrows(QvlmException.class, CudaBackend::open);
        assertTrue(e.getMessage().startsWith("--device cuda: ") && e.getMessage().contains(why), e.getMessage());
    }

    @Test
    void deviceCudaFailsWithOneLine() {
        assumeTrue(CudaRuntime.probe() != null, "a usable GPU is present");
        String model = TestPaths.tinyModel().toString();
        String[] r = run("generate", "--model", model, "--prompt", "hi", "--max-tokens", "1", "--device", "cuda");
        assertEquals("2", r[0], r[2]);
        String err = r[2].strip();
        assertEquals(1, err.lines().count(), "one line: " + err);
        assertTrue(err.startsWith("qvlm: error: --device cuda: "), err);
        assertTrue(err.endsWith("use --device cpu"), err);
        assertFalse(err.contains("\tat ") || err.contains("Exception"), err);
        System.out.println("without a GPU: " + err);
    }

    @Test
    void unknownDeviceIsStillRejected() {
        String[] r = run("generate", "--model", TestPaths.tinyModel().toString(), "--prompt", "hi", "--device", "tpu");
        assertEquals("2", r[0]);
        assertTrue(r[2].contains("unknown device 'tpu'"), r[2]);
    }
}
