package dev.qvlm.cuda;

import org.junit.jupiter.api.Test;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/** The fatbin resource the build made with nvcc: a real fatbin with SASS for sm_80 and sm_90 and PTX for compute_90. */
class FatbinTest {
    @Test
    void resourceIsAFatbinForAmpereAndHopper() {
        byte[] data = Fatbin.load();
        assumeTrue(data != null, "no fatbin in this build: nvcc was not found when it was built (cmake/build-kernels.sh skipped the kernels)");
        assertEquals(Fatbin.MAGIC, ByteBuffer.wrap(data).order(ByteOrder.LITTLE_ENDIAN).getInt(0), "magic 0xBA55ED50");
        List<Fatbin.Entry> entries = Fatbin.entries(data);
        System.out.printf("fatbin: %d bytes, entries %s%n", data.length, entries);
        assertTrue(entries.stream().anyMatch(e -> e.isElf() && e.arch() == 80), "SASS sm_80: " + entries);
        assertTrue(entries.stream().anyMatch(e -> e.isElf() && e.arch() == 90), "SASS sm_90: " + entries);
        assertTrue(entries.stream().anyMatch(e -> e.isPtx() && e.arch() == 90), "PTX compute_90: " + entries);
        assertTrue(entries.stream().allMatch(e -> e.size() > 0));
    }

    @Test
    void damagedFilesAreRejected() {
        assertThrows(IllegalArgumentException.class, () -> Fatbin.entries(new byte[8]));
        byte[] bad = new byte[64];
        assertTrue(assertThrows(IllegalArgumentException.class, () -> Fatbin.entries(bad)).getMessage().contains("magic"));
        ByteBuffer b = ByteBuffer.wrap(bad).order(ByteOrder.LITTLE_ENDIAN);
        b.putInt(0, Fatbin.MAGIC).putShort(4, (short) 1).putShort(6, (short) 16).putLong(8, 1000);
        assertTrue(assertThrows(IllegalArgumentException.class, () -> Fatbin.entries(bad)).getMessage().contains("header says"));
        byte[] data = Fatbin.load();
        if (data != null) { // a truncated copy of the real one
            byte[] cut = java.util.Arrays.copyOf(data, data.length / 2);
            assertThrows(IllegalArgumentException.class, () -> Fatbin.entries(cut));
        }
    }
}
