package dev.qvlm.safetensors;

import dev.qvlm.QvlmException;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Map;
import java.util.Set;

/**
 * One safetensors file, memory-mapped once as a whole (no 2 GiB split) with tensors handed out as slices.
 * Format: u64 little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets: [begin, end]}},
 * then the data section; offsets are relative to the data section. Every header entry is validated on open so a
 * truncated or corrupt file fails here, naming the file and tensor, not later inside a matmul.
 */
public final class SafeTensors implements AutoCloseable {
    static final ValueLayout.OfShort SHORT_LE = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfFloat FLOAT_LE = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfLong LONG_LE = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfInt INT_LE = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private final Path file;
    private final Arena arena;
    private final MemorySegment data;
    private final Map<String, TensorInfo> tensors;
    private final Map<String, String> metadata;

    private SafeTensors(Path file, Arena arena, MemorySegment data, Map<String, TensorInfo> tensors,
                        Map<String, String> metadata) {
        this.file = file;
        this.arena = arena;
        this.data = data;
        this.tensors = tensors;
        this.metadata = metadata;
    }

    public static SafeTensors open(Path file) {
        long size;
        try {
            size = Files.size(file);
        } catch (NoSuchFileException e) {
            throw new QvlmException(file + ": file not found");
        } catch (IOException e) {
            throw new QvlmException(file + ": cannot read (" + e.getMessage() + ")");
        }
        if (size < 8) throw new QvlmException(file + ": not a safetensors file (only " + size + " bytes, truncated?)");
        Arena arena = Arena.ofShared();
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            MemorySegment all = ch.map(FileChannel.MapMode.READ_ONLY, 0, size, arena);
            SafeTensorsHeader h = SafeTensorsHeader.parse(file, all);
            return new SafeTensors(file, arena, all.asSlice(h.dataStart()), h.tensors(), h.metadata());
        } catch (IOException e) {
            arena.close();
            throw new QvlmException(file + ": cannot map (" + e.getMessage() + ")");
        } catch (RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    public Path file() {
        return file;
    }

    public Set<String> names() {
        return tensors.keySet();
    }

    public Map<String, String> metadata() {
        return metadata;
    }

    public boolean contains(String name) {
        return tensors.containsKey(name);
    }

    public TensorInfo info(String name) {
        TensorInfo t = tensors.get(name);
        if (t == null) throw new QvlmException(file + ": no tensor named '" + name + "'");
        return t;
    }

    /** The raw bytes of a tensor, little-endian, as a slice of the mapping (no copy). */
    public MemorySegment segment(String name) {
        TensorInfo t = info(name);
        return data.asSlice(t.begin(), t.end() - t.begin());
    }

    /**
     * Drops this process's resident pages of a tensor (madvise DONTNEED on the mapping): the data stays valid and
     * is read back from the file if touched again. Streaming passes call it once they are done with a tensor, so a
     * model larger than RAM can be read once, front to back, without its pages adding up in the resident set.
     */
    public void release(String name) {
        MemorySegment s = segment(name);
        if (s.isMapped() && s.byteSize() > 0) s.unload();
    }

    /** Converts any float dtype to a new float[] (row-major). */
    public float[] toFloatArray(String name) {
        return toFloatArray(info(name), segment(name));
    }

    public static float[] toFloatArray(TensorInfo t, MemorySegment seg) {
        int n = Math.toIntExact(t.numel());
        float[] out = new float[n];
        switch (t.dtype()) {
            case F32 -> MemorySegment.copy(seg, FLOAT_LE, 0, out, 0, n);
            case F16 -> {
                for (int i = 0; i < n; i++) out[i] = Float.float16ToFloat(seg.getAtIndex(SHORT_LE, i));
            }
            case BF16 -> {
                for (int i = 0; i < n; i++) out[i] = Float.intBitsToFloat(seg.getAtIndex(SHORT_LE, i) << 16);
            }
            case F64 -> {
                for (int i = 0; i < n; i++)
                    out[i] = (float) seg.getAtIndex(ValueLayout.JAVA_DOUBLE_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), i);
            }
            default -> throw new QvlmException(t.file() + ": tensor '" + t.name() + "' has dtype " + t.dtype()
                    + ", expected a float type");
        }
        return out;
    }

    /** Integer tensors (I64, I32, I16, I8, U8) as long[]. */
    public long[] toLongArray(String name) {
        TensorInfo t = info(name);
        MemorySegment seg = segment(name);
        int n = Math.toIntExact(t.numel());
        long[] out = new long[n];
        for (int i = 0; i < n; i++) {
            out[i] = switch (t.dtype()) {
                case I64 -> seg.getAtIndex(LONG_LE, i);
                case I32 -> seg.getAtIndex(INT_LE, i);
                case I16 -> seg.getAtIndex(SHORT_LE, i);
                case I8 -> seg.get(ValueLayout.JAVA_BYTE, i);
                case U8, BOOL -> seg.get(ValueLayout.JAVA_BYTE, i) & 0xff;
                default -> throw new QvlmException(file + ": tensor '" + name + "' has dtype " + t.dtype()
                        + ", expected an integer type");
            };
        }
        return out;
    }

    @Override
    public void close() {
        arena.close();
    }
}
