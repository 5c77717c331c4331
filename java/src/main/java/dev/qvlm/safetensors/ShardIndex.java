package dev.qvlm.safetensors;

import com.fasterxml.jackson.databind.JsonNode;
import dev.qvlm.QvlmException;
import dev.qvlm.util.Confine;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;

/**
 * {@code model.safetensors.index.json}: which shard holds each tensor. Every {@code weight_map} value must be a
 * plain {@code *.safetensors} file name inside the model folder ({@link Confine#fileIn}), so an index cannot make us
 * open {@code ../../etc/passwd} or an absolute path.
 */
public final class ShardIndex {
    private ShardIndex() {}

    /** The distinct shard files of {@code root} (the parsed index of folder {@code dir}), in order of first use. */
    public static List<Path> shards(Path dir, JsonNode root, Path indexFile) {
        if (root == null || !root.isObject()) throw new QvlmException(indexFile + ": expected a JSON object");
        JsonNode wm = root.get("weight_map");
        if (wm == null || !wm.isObject()) throw new QvlmException(indexFile + ": missing \"weight_map\" object");
        if (wm.isEmpty()) throw new QvlmException(indexFile + ": \"weight_map\" is empty");
        List<Path> paths = new ArrayList<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = wm.fields(); it.hasNext(); ) {
            var e = it.next();
            String where = indexFile + ": weight_map[" + Confine.quote(e.getKey()) + "]";
            if (!e.getValue().isTextual()) throw new QvlmException(where + " must be a file name string");
            String name = e.getValue().asText();
            Path p = Confine.fileIn(dir, name, where);
            if (!name.endsWith(".safetensors"))
                throw new QvlmException(where + ": " + Confine.quote(name) + " is not a .safetensors file");
            if (!paths.contains(p)) paths.add(p);
        }
        return paths;
    }
}
