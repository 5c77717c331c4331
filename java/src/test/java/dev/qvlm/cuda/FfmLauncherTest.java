package dev.qvlm.cuda;

import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_DOUBLE;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The FFM launch's argument block, without a GPU: kernelParams[i] must point at slot i, and each slot must hold the
 * argument in the C type the kernel declares (what cuLaunchKernel copies from). The launch itself runs in the GPU
 * tests, where every kernel test goes through it.
 */
class FfmLauncherTest {
    @Test
    void argumentsLandInTheirSlotsInTheirCTypes() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment values = arena.allocate(8L * FfmLauncher.MAX_ARGS, 8);
            MemorySegment table = FfmLauncher.pointerTable(arena, values);
            for (int i = 0; i < FfmLauncher.MAX_ARGS; i++)
                assertEquals(values.address() + 8L * i, table.getAtIndex(ADDRESS, i).address(), "pointer " + i);
            // the attention kernel's kinds of argument: pointers, ints, a float, and a double (rope's theta)
            Object[] args = {0x7f00_1234_5678L, -3, 0.125f, 10000.0, Integer.MAX_VALUE, 0L};
            FfmLauncher.marshal(values, "test", args);
            assertEquals(0x7f00_1234_5678L, values.get(JAVA_LONG, 0));
            assertEquals(-3, values.get(JAVA_INT, 8));
            assertEquals(0.125f, values.get(JAVA_FLOAT, 16));
            assertEquals(10000.0, values.get(JAVA_DOUBLE, 24));
            assertEquals(Integer.MAX_VALUE, values.get(JAVA_INT, 32));
            assertEquals(0L, values.get(JAVA_LONG, 40));
            assertThrows(IllegalArgumentException.class, () -> FfmLauncher.marshal(values, "test", new Object[]{"x"}));
            assertThrows(IllegalArgumentException.class,
                    () -> FfmLauncher.marshal(values, "test", new Object[FfmLauncher.MAX_ARGS + 1]));
        }
    }

    @Test
    void everyKernelFitsTheArgumentBlock() {
        int most = 0;
        for (Kernel k : Kernel.values()) most = Math.max(most, k.signature().length());
        assertTrue(most <= FfmLauncher.MAX_ARGS, most + " arguments");
    }
}
