package dev.qvlm.safetensors;

import dev.qvlm.QvlmException;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Stream;

/**
 * All tensors of a model directory: {@code model.safetensors}, or the shards named by
 * {@code model.safetensors.index.json}, or (failing both) every {@code *.safetensors} file in the folder.
 * Each file is mapped once; lookups go by tensor name across files.
 */
public final class WeightStore implements AutoCloseable {
    private final Path dir;
    private final List<SafeTensors> files;
    private final Map<String, SafeTensors> byName;

    private WeightStore(Path dir, List<SafeTensors> files, Map<String, SafeTensors> byName) {
        this.dir = dir;
        this.files = files;
        this.byName = byName;
    }

    public static WeightStore open(Path dir) {
        if (!Files.isDirectory(dir)) throw new QvlmException(dir + ": model directory not found");
        List<Path> paths = new ArrayList<>();
        Path index = dir.resolve("model.safetensors.index.json");
        Path single = dir.resolve("model.safetensors");
        if (Files.exists(index)) {
            for (Path p : ShardIndex.shards(dir, dev.qvlm.util.Json.read(index), index)) {
                if (!Files.exists(p))
                    throw new QvlmException(p + ": shard listed in " + index.getFileName() + " is missing");
                paths.add(p);
            }
        } else if (Files.exists(single)) {
            paths.add(single);
        } else {
            try (Stream<Path> s = Files.list(dir)) {
                s.filter(p -> p.getFileName().toString().endsWith(".safetensors")).sorted().forEach(paths::add);
            } catch (IOException e) {
                throw new QvlmException(dir + ": cannot list (" + e.getMessage() + ")");
            }
        }
        if (paths.isEmpty()) throw new QvlmException(dir + ": no model.safetensors (or shards) found");
        List<SafeTensors> files = new ArrayList<>();
        Map<String, SafeTensors> byName = new LinkedHashMap<>();
        try {
            for (Path p : paths) {
                SafeTensors st = SafeTensors.open(p);
                files.add(st);
                for (String n : st.names()) {
                    SafeTensors other = byName.putIfAbsent(n, st);
                    if (other != null)
                        throw new QvlmException(p + ": tensor " + dev.qvlm.util.Confine.quote(n) + " is also in "
                                + other.file().getFileName() + "; each tensor must be stored once");
                }
            }
        } catch (RuntimeException e) {
            files.forEach(SafeTensors::close);
            throw e;
        }
        return new WeightStore(dir, files, byName);
    }

    public Path dir() {
        return dir;
    }

    public Set<String> names() {
        return byName.keySet();
    }

    public boolean contains(String name) {
        return byName.containsKey(name);
    }

    private SafeTensors file(String name) {
        SafeTensors st = byName.get(name);
        if (st == null) throw new QvlmException(dir + ": missing tensor '" + name + "'");
        return st;
    }

    public TensorInfo info(String name) {
        return file(name).info(name);
    }

    public MemorySegment segment(String name) {
        return file(name).segment(name);
    }

    /** See {@link SafeTensors#release}. */
    public void release(String name) {
        file(name).release(name);
    }

    /** Bytes of tensor data over all files (what running the model maps and reads). */
    public long dataBytes() {
        long n = 0;
        for (String k : byName.keySet()) {
            TensorInfo t = info(k);
            n += t.end() - t.begin();
        }
        return n;
    }

    public float[] toFloatArray(String name) {
        return file(name).toFloatArray(name);
    }

    public long[] toLongArray(String name) {
        return file(name).toLongArray(name);
    }

    @Override
    public void close() {
        files.forEach(SafeTensors::close);
    }
}
