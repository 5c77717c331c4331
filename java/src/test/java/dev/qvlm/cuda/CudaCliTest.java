package dev.qvlm.cuda;

import dev.qvlm.QvlmException;
import dev.qvlm.TestPaths;
import dev.qvlm.cli.Main;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/** Without a usable GPU, {@code --device cuda} is one clear line and exit code 2; the CPU path is unaffected. */
class CudaCliTest {
    static synchronized String[] run(String... args) {
        PrintStream o = System.out, e = System.err;
        ByteArrayOutputStream ob = new ByteArrayOutputStream(), eb = new ByteArrayOutputStream();
        System.setOut(new PrintStream(ob, true));
        System.setErr(new PrintStream(eb, true));
        try {
            int code = Main.execute(args);
            return new String[]{String.valueOf(code), ob.toString(), eb.toString()};
        } finally {
            System.setOut(o);
            System.setErr(e);
        }
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
