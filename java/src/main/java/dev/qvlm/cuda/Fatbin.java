package dev.qvlm.cuda;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;

/**
 * The kernels' fatbin, a class-path resource built by cmake/build-kernels.sh (absent when nvcc was not found at
 * build time), and a reader of its container format, enough to check what it holds without a GPU.
 *
 * <p>Layout (little-endian, as nvcc -fatbin writes it): a 16-byte header {u32 magic 0xBA55ED50, u16 version, u16
 * header size, u64 payload size}, then entries, each a header {u16 kind (1 = PTX, 2 = ELF/SASS), u16, u32 header
 * size, u64 payload size, ..., u32 arch at offset 28 (e.g. 80, 90)} followed by its payload.
 */
public final class Fatbin {
    private Fatbin() {}

    public static final String RESOURCE = "/dev/qvlm/cuda/qvlm_kernels.fatbin";
    public static final int MAGIC = 0xBA55ED50;
    public static final int KIND_PTX = 1, KIND_ELF = 2;

    /** One embedded image: kind (PTX or ELF), the architecture it targets (80 = sm_80/compute_80), payload bytes. */
    public record Entry(int kind, int arch, long size) {
        public boolean isPtx() {
            return kind == KIND_PTX;
        }

        public boolean isElf() {
            return kind == KIND_ELF;
        }

        @Override
        public String toString() {
            return (isPtx() ? "compute_" : isElf() ? "sm_" : "kind" + kind + "_") + arch;
        }
    }

    /** The resource's bytes, or null when this build has no kernels. */
    public static byte[] load() {
        try (InputStream in = Fatbin.class.getResourceAsStream(RESOURCE)) {
            return in == null ? null : in.readAllBytes();
        } catch (IOException e) {
            throw new UncheckedIOException("reading " + RESOURCE, e);
        }
    }

    /** The entries of a fatbin; IllegalArgumentException saying what is wrong when it is not one. */
    public static List<Entry> entries(byte[] data) {
        ByteBuffer b = ByteBuffer.wrap(data).order(ByteOrder.LITTLE_ENDIAN);
        if (data.length < 16) throw new IllegalArgumentException("fatbin: " + data.length + " bytes is shorter than its header");
        int magic = b.getInt(0);
        if (magic != MAGIC)
            throw new IllegalArgumentException(String.format("fatbin: magic 0x%08X, expected 0x%08X", magic, MAGIC));
        int headerSize = Short.toUnsignedInt(b.getShort(6));
        long payload = b.getLong(8);
        if (headerSize < 16 || headerSize + payload > data.length)
            throw new IllegalArgumentException("fatbin: header says " + headerSize + " + " + payload + " bytes, file has " + data.length);
        List<Entry> out = new ArrayList<>();
        long pos = headerSize, end = headerSize + payload;
        while (pos < end) {
            if (pos + 32 > end) throw new IllegalArgumentException("fatbin: truncated entry header at " + pos);
            int p = (int) pos;
            int kind = Short.toUnsignedInt(b.getShort(p));
            long eh = Integer.toUnsignedLong(b.getInt(p + 4));
            long size = b.getLong(p + 8);
            int arch = b.getInt(p + 28);
            if (eh < 32 || size < 0 || pos + eh + size > end)
                throw new IllegalArgumentException("fatbin: entry at " + pos + " overruns the file");
            out.add(new Entry(kind, arch, size));
            pos += eh + size;
        }
        return out;
    }
}
