package dev.qvlm.safetensors;

import com.fasterxml.jackson.core.JsonParseException;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.qvlm.QvlmException;
import dev.qvlm.util.Confine;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The header of a safetensors file, validated the way the safetensors library validates it before any tensor is
 * touched: u64 little-endian length N (8 ≤ N+8 ≤ file size, N ≤ {@link #MAX_HEADER_BYTES}), N bytes of UTF-8 JSON
 * with unique keys, every entry a known dtype with a non-negative shape whose byte size matches its
 * {@code data_offsets}, and the entries, sorted by offset, tiling the data section exactly (no overlap, no gap, no
 * trailing bytes). Messages name the file and tensor but never echo the raw bytes of a file that is not a
 * safetensors file.
 */
public record SafeTensorsHeader(Map<String, TensorInfo> tensors, Map<String, String> metadata, long dataStart) {
    /**
     * Largest header accepted: 16 MiB. Real checkpoints need ~150 bytes per tensor (LLaVA-13B: ~1,000 tensors,
     * 150 KB); a bigger header would only cost memory to parse (the JSON tree is ~10× the text).
     */
    public static final long MAX_HEADER_BYTES = 16L << 20;

    private static final ObjectMapper STRICT = new ObjectMapper()
            .enable(JsonParser.Feature.STRICT_DUPLICATE_DETECTION);

    /** Parses and validates the header of {@code all}, the whole file's bytes ({@code file} names it in errors). */
    public static SafeTensorsHeader parse(Path file, MemorySegment all) {
        long size = all.byteSize();
        if (size < 8) throw new QvlmException(file + ": not a safetensors file (only " + size + " bytes, truncated?)");
        long n = all.get(SafeTensors.LONG_LE, 0);
        if (n < 2 || n > size - 8 || n > MAX_HEADER_BYTES)
            throw new QvlmException(file + ": not a safetensors file, or truncated (the header length in its first 8 bytes"
                    + " does not fit the file's " + size + " bytes and the " + (MAX_HEADER_BYTES >> 20) + " MiB header limit)");
        byte[] hb = all.asSlice(8, n).toArray(ValueLayout.JAVA_BYTE);
        String text;
        try {
            text = StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT).decode(ByteBuffer.wrap(hb)).toString();
        } catch (CharacterCodingException e) {
            throw new QvlmException(file + ": not a safetensors file (header is not valid JSON: not UTF-8 text)");
        }
        JsonNode root;
        try {
            root = STRICT.readTree(text);
        } catch (JsonParseException e) {
            String m = e.getOriginalMessage();
            if (m != null && m.startsWith("Duplicate field"))
                throw new QvlmException(file + ": header lists a tensor twice ("
                        + Confine.quote(m.substring(m.indexOf('\'') + 1, Math.max(m.indexOf('\'') + 1, m.lastIndexOf('\''))))
                        + "); each name must be unique");
            throw new QvlmException(file + ": not a safetensors file (header is not valid JSON"
                    + (e.getLocation() == null ? "" : " at byte " + (8 + e.getLocation().getCharOffset())) + ")");
        } catch (JsonProcessingException e) {
            throw new QvlmException(file + ": not a safetensors file (header is not valid JSON)");
        }
        if (root == null || !root.isObject())
            throw new QvlmException(file + ": not a safetensors file (header is not a JSON object)");
        long dataStart = 8 + n;
        long dataSize = size - dataStart;
        Map<String, TensorInfo> map = new LinkedHashMap<>();
        Map<String, String> meta = new LinkedHashMap<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = root.fields(); it.hasNext(); ) {
            var e = it.next();
            String name = e.getKey();
            JsonNode v = e.getValue();
            if (name.equals("__metadata__")) {
                if (!v.isObject()) throw new QvlmException(file + ": __metadata__ must be an object of strings");
                for (var m : (Iterable<Map.Entry<String, JsonNode>>) v::fields) {
                    if (!m.getValue().isTextual())
                        throw new QvlmException(file + ": __metadata__ value " + Confine.quote(m.getKey()) + " must be a string");
                    meta.put(m.getKey(), m.getValue().asText());
                }
                continue;
            }
            map.put(name, entry(file, name, v, dataSize));
        }
        checkTiling(file, map.values(), dataSize);
        return new SafeTensorsHeader(Collections.unmodifiableMap(map), Collections.unmodifiableMap(meta), dataStart);
    }

    private static TensorInfo entry(Path file, String name, JsonNode v, long dataSize) {
        String where = file + ": tensor " + Confine.quote(name);
        if (!v.isObject()) throw new QvlmException(where + ": header entry is not an object");
        JsonNode dn = v.get("dtype");
        DType dt = dn != null && dn.isTextual() ? DType.parse(dn.asText()) : null;
        if (dt == null) throw new QvlmException(where + ": unsupported dtype " + (dn == null ? "(missing)" : Confine.quote(dn.asText())));
        JsonNode sh = v.get("shape");
        if (sh == null || !sh.isArray()) throw new QvlmException(where + ": missing shape");
        if (sh.size() > 8) throw new QvlmException(where + ": shape has " + sh.size() + " dimensions (at most 8)");
        long[] shape = new long[sh.size()];
        long numel = 1, nbytes;
        try {
            for (int i = 0; i < shape.length; i++) {
                shape[i] = nonNegativeLong(sh.get(i), where + ": bad shape");
                numel = Math.multiplyExact(numel, shape[i]);
            }
            nbytes = Math.multiplyExact(numel, (long) dt.bytes);
        } catch (ArithmeticException e) {
            throw new QvlmException(where + ": shape is too large");
        }
        JsonNode off = v.get("data_offsets");
        if (off == null || !off.isArray() || off.size() != 2)
            throw new QvlmException(where + ": missing data_offsets [begin, end]");
        long b = nonNegativeLong(off.get(0), where + ": bad data_offsets");
        long en = nonNegativeLong(off.get(1), where + ": bad data_offsets");
        if (en < b) throw new QvlmException(where + ": bad data_offsets [" + b + ", " + en + "] (end before begin)");
        if (en > dataSize)
            throw new QvlmException(where + ": data_offsets [" + b + ", " + en + "] run past the end of the data section ("
                    + dataSize + " bytes); the file is truncated");
        if (en - b != nbytes)
            throw new QvlmException(where + ": shape " + sh + " x " + dt + " needs " + nbytes
                    + " bytes but data_offsets span " + (en - b));
        return new TensorInfo(name, file, dt, shape, b, en);
    }

    private static long nonNegativeLong(JsonNode n, String what) {
        if (n == null || !n.isIntegralNumber() || !n.canConvertToLong() || n.asLong() < 0)
            throw new QvlmException(what + " (expected non-negative integers)");
        return n.asLong();
    }

    /**
     * The safetensors rule that makes every byte belong to exactly one tensor: sorted by offset, each tensor starts
     * where the previous one ended, the first at 0 and the last at the end of the file. Overlapping ranges would
     * let two names share (and silently alias) the same bytes.
     */
    private static void checkTiling(Path file, Iterable<TensorInfo> infos, long dataSize) {
        List<TensorInfo> sorted = new ArrayList<>();
        infos.forEach(sorted::add);
        sorted.sort(Comparator.comparingLong(TensorInfo::begin).thenComparingLong(TensorInfo::end));
        long expected = 0;
        TensorInfo prev = null;
        for (TensorInfo t : sorted) {
            if (t.begin() != expected) {
                if (t.begin() < expected)
                    throw new QvlmException(file + ": tensors " + Confine.quote(prev.name()) + " [" + prev.begin() + ", "
                            + prev.end() + ") and " + Confine.quote(t.name()) + " [" + t.begin() + ", " + t.end()
                            + ") overlap in the data section");
                throw new QvlmException(file + ": bytes [" + expected + ", " + t.begin() + ") of the data section belong"
                        + " to no tensor (safetensors requires contiguous data_offsets)");
            }
            expected = t.end();
            prev = t;
        }
        if (expected != dataSize)
            throw new QvlmException(file + ": the data section has " + (dataSize - expected)
                    + " bytes after the last tensor (safetensors requires contiguous data_offsets up to the end of the file)");
    }
}
