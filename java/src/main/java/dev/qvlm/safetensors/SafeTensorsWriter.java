package dev.qvlm.safetensors;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.qvlm.QvlmException;
import dev.qvlm.util.Files2;

import java.io.IOException;
import java.io.BufferedOutputStream;
import java.io.FilterOutputStream;
import java.io.OutputStream;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Writes a standard safetensors file. Tensors are added in order; {@link #write(Path)} writes to a temporary file
 * next to the target and renames it, so an interrupted write never leaves a half-written file behind.
 */
public final class SafeTensorsWriter {
    private record Entry(DType dtype, long[] shape, MemorySegment bytes) {}

    private final Map<String, Entry> entries = new LinkedHashMap<>();
    private final Map<String, String> metadata = new LinkedHashMap<>();

    public SafeTensorsWriter metadata(String key, String value) {
        metadata.put(key, value);
        return this;
    }

    public SafeTensorsWriter add(String name, DType dtype, long[] shape, MemorySegment bytes) {
        long numel = 1;
        for (long d : shape) numel *= d;
        if (numel * dtype.bytes != bytes.byteSize())
            throw new IllegalArgumentException(name + ": " + bytes.byteSize() + " bytes given, shape "
                    + java.util.Arrays.toString(shape) + " x " + dtype + " needs " + numel * dtype.bytes);
        entries.put(name, new Entry(dtype, shape.clone(), bytes));
        return this;
    }

    public SafeTensorsWriter addF32(String name, long[] shape, float[] v) {
        MemorySegment seg = MemorySegment.ofArray(new byte[v.length * 4]);
        for (int i = 0; i < v.length; i++) seg.setAtIndex(SafeTensors.FLOAT_LE, i, v[i]);
        return add(name, DType.F32, shape, seg);
    }

    public SafeTensorsWriter addF16(String name, long[] shape, float[] v) {
        MemorySegment seg = MemorySegment.ofArray(new byte[v.length * 2]);
        for (int i = 0; i < v.length; i++) seg.setAtIndex(SafeTensors.SHORT_LE, i, Float.floatToFloat16(v[i]));
        return add(name, DType.F16, shape, seg);
    }

    public SafeTensorsWriter addI32(String name, long[] shape, int[] v) {
        MemorySegment seg = MemorySegment.ofArray(new byte[v.length * 4]);
        for (int i = 0; i < v.length; i++) seg.setAtIndex(SafeTensors.INT_LE, i, v[i]);
        return add(name, DType.I32, shape, seg);
    }

    public SafeTensorsWriter addI64(String name, long[] shape, long[] v) {
        MemorySegment seg = MemorySegment.ofArray(new byte[v.length * 8]);
        for (int i = 0; i < v.length; i++) seg.setAtIndex(SafeTensors.LONG_LE, i, v[i]);
        return add(name, DType.I64, shape, seg);
    }

    /**
     * Position of a dtype in the reference writer's {@code Dtype} enum, which is declared "in increasing alignment
     * order" (BOOL, U8, I8, …, I16, U16, F16, BF16, I32, U32, F32, F64, I64, U64); the writer sorts descending.
     */
    static int referenceOrder(DType d) {
        return switch (d) {
            case BOOL -> 0;
            case U8 -> 4;
            case I8 -> 5;
            case I16 -> 11;
            case F16 -> 13;
            case BF16 -> 14;
            case I32 -> 15;
            case F32 -> 17;
            case F64 -> 19;
            case I64 -> 20;
        };
    }

    public void write(Path target) {
        List<Spec> specs = new ArrayList<>();
        entries.forEach((n, e) -> specs.add(new Spec(n, e.dtype, e.shape)));
        writeStreaming(target, metadata, specs, (t, out) -> {
            MemorySegment bytes = entries.get(t.name()).bytes;
            byte[] buf = new byte[(int) Math.min(1 << 20, Math.max(1, bytes.byteSize()))];
            long n = bytes.byteSize();
            for (long p = 0; p < n; p += buf.length) {
                int len = (int) Math.min(buf.length, n - p);
                MemorySegment.copy(bytes, ValueLayout.JAVA_BYTE, p, buf, 0, len);
                out.write(buf, 0, len);
            }
        });
    }

    /** One tensor of a streamed file: name, dtype and shape are known up front, the bytes come later. */
    public record Spec(String name, DType dtype, long[] shape) {
        public long bytes() {
            long n = dtype.bytes;
            for (long d : shape) n = Math.multiplyExact(n, d);
            return n;
        }
    }

    /** Writes the data of one tensor, exactly {@link Spec#bytes()} bytes, little-endian. */
    public interface Producer {
        void write(Spec tensor, OutputStream out) throws IOException;
    }

    /**
     * Writes a safetensors file whose tensor data is produced one tensor at a time (in the order of the header), so a file of any size
     * is written with one tensor's worth of memory (the header only needs names, dtypes and shapes). Written to a
     * temporary sibling and renamed; a producer that writes the wrong number of bytes is a bug and fails the write.
     */
    public static void writeStreaming(Path target, Map<String, String> metadata, List<Spec> given, Producer producer) {
        // tensors in the reference writer's order (widest alignment first, then by name), so every tensor's data
        // starts aligned to its element size
        List<Spec> specs = new ArrayList<>(given);
        specs.sort(Comparator.comparingInt((Spec t) -> -referenceOrder(t.dtype())).thenComparing(Spec::name));
        byte[] header8 = header(metadata, specs);
        Path tmp = target.resolveSibling(target.getFileName() + ".tmp");
        try (OutputStream os = new BufferedOutputStream(Files.newOutputStream(tmp), 1 << 20)) {
            os.write(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(header8.length).array());
            os.write(header8);
            for (Spec t : specs) {
                CountingStream c = new CountingStream(os);
                producer.write(t, c);
                if (c.count != t.bytes())
                    throw new IllegalStateException(t.name() + ": " + c.count + " bytes written, expected " + t.bytes());
            }
        } catch (IOException | RuntimeException e) {
            Files2.deleteTree(tmp);
            if (e instanceof RuntimeException r) throw r;
            throw new QvlmException(target + ": cannot write (" + e.getMessage() + ")");
        }
        try {
            Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            Files2.deleteTree(tmp);
            throw new QvlmException(target + ": cannot rename temporary file (" + e.getMessage() + ")");
        }
    }

    /** The JSON header, padded with spaces so the data section starts 8-byte aligned (as the format allows). */
    private static byte[] header(Map<String, String> metadata, List<Spec> specs) {
        ObjectMapper om = new ObjectMapper();
        ObjectNode header = om.createObjectNode();
        if (!metadata.isEmpty()) {
            ObjectNode m = header.putObject("__metadata__");
            metadata.forEach(m::put);
        }
        long off = 0;
        for (Spec e : specs) {
            ObjectNode t = header.putObject(e.name());
            t.put("dtype", e.dtype().name());
            ArrayNode sh = t.putArray("shape");
            for (long d : e.shape()) sh.add(d);
            long n = e.bytes();
            t.putArray("data_offsets").add(off).add(off + n);
            off += n;
        }
        byte[] hb;
        try {
            hb = om.writeValueAsString(header).getBytes(StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
        int pad = (8 - hb.length % 8) % 8;
        byte[] header8 = new byte[hb.length + pad];
        System.arraycopy(hb, 0, header8, 0, hb.length);
        for (int i = hb.length; i < header8.length; i++) header8[i] = ' ';
        return header8;
    }

    private static final class CountingStream extends FilterOutputStream {
        long count;

        CountingStream(OutputStream out) {
            super(out);
        }

        @Override
        public void write(int b) throws IOException {
            out.write(b);
            count++;
        }

        @Override
        public void write(byte[] b, int off, int len) throws IOException {
            out.write(b, off, len);
            count += len;
        }

        @Override
        public void close() {
            // the underlying file stays open for the next tensor
        }
    }
}
