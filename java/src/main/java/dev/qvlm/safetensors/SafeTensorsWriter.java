package dev.qvlm.safetensors;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.qvlm.QvlmException;

import java.io.IOException;
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
 * Writes a standard safetensors file laid out as the reference writer does (huggingface/safetensors,
 * {@code safetensors/src/tensor.rs}, {@code prepare}): tensors sorted by descending dtype alignment, then by name,
 * so every tensor's data offset is a multiple of its element size whatever the shapes (an odd-sized I8 tensor
 * placed before an F16 one would leave the F16 data at an odd offset); the header is padded with spaces to a
 * multiple of 8 bytes. {@link #write(Path)} writes to a temporary file next to the target and renames it, so an
 * interrupted write never leaves a half-written file behind.
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
        ObjectMapper om = new ObjectMapper();
        ObjectNode header = om.createObjectNode();
        if (!metadata.isEmpty()) {
            ObjectNode m = header.putObject("__metadata__");
            metadata.forEach(m::put);
        }
        List<Map.Entry<String, Entry>> sorted = new ArrayList<>(entries.entrySet());
        sorted.sort(Comparator.comparingInt((Map.Entry<String, Entry> e) -> -referenceOrder(e.getValue().dtype))
                .thenComparing(Map.Entry::getKey));
        long off = 0;
        for (var e : sorted) {
            ObjectNode t = header.putObject(e.getKey());
            t.put("dtype", e.getValue().dtype.name());
            ArrayNode sh = t.putArray("shape");
            for (long d : e.getValue().shape) sh.add(d);
            long n = e.getValue().bytes.byteSize();
            t.putArray("data_offsets").add(off).add(off + n);
            off += n;
        }
        byte[] hb;
        try {
            hb = om.writeValueAsString(header).getBytes(StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
        int pad = (8 - hb.length % 8) % 8; // keep the data section 8-byte aligned, padded with spaces as allowed
        byte[] header8 = new byte[hb.length + pad];
        System.arraycopy(hb, 0, header8, 0, hb.length);
        for (int i = hb.length; i < header8.length; i++) header8[i] = ' ';
        Path tmp = target.resolveSibling(target.getFileName() + ".tmp");
        try (OutputStream os = Files.newOutputStream(tmp)) {
            os.write(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(header8.length).array());
            os.write(header8);
            byte[] buf = new byte[1 << 20];
            for (var se : sorted) {
                Entry e = se.getValue();
                long n = e.bytes.byteSize();
                for (long p = 0; p < n; p += buf.length) {
                    int len = (int) Math.min(buf.length, n - p);
                    MemorySegment.copy(e.bytes, ValueLayout.JAVA_BYTE, p, buf, 0, len);
                    os.write(buf, 0, len);
                }
            }
        } catch (IOException e) {
            try {
                Files.deleteIfExists(tmp);
            } catch (IOException ignored) {
            }
            throw new QvlmException(target + ": cannot write (" + e.getMessage() + ")");
        }
        try {
            Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            try {
                Files.deleteIfExists(tmp);
            } catch (IOException ignored) {
            }
            throw new QvlmException(target + ": cannot rename temporary file (" + e.getMessage() + ")");
        }
    }
}
