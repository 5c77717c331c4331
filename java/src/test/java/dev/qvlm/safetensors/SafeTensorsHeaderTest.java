package dev.qvlm.safetensors;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.qvlm.QvlmException;
import dev.qvlm.util.Json;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static dev.qvlm.safetensors.SafeTensorsTest.raw;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The safetensors rules that keep a file from silently meaning two things (issue 9, class 3): unique names,
 * data_offsets that tile the data section exactly, and shard names confined to the model folder (class 1).
 */
class SafeTensorsHeaderTest {
    @TempDir
    Path dir;

    private QvlmException openFails(String name, byte[] bytes, String... fragments) throws IOException {
        Path p = Files.write(dir.resolve(name), bytes);
        QvlmException e = assertThrows(QvlmException.class, () -> SafeTensors.open(p).close());
        for (String f : fragments) assertTrue(e.getMessage().contains(f), "'" + f + "' in: " + e.getMessage());
        return e;
    }

    @Test
    void duplicateTensorNamesAreRefused() throws IOException {
        // JSON allows repeated keys and Jackson kept the last one: the first tensor silently disappeared
        openFails("dup.safetensors", raw("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                + "\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", new byte[8]), "'w'", "twice");
    }

    @Test
    void overlappingDataOffsetsAreRefused() throws IOException {
        openFails("overlap.safetensors", raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                + "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", new byte[12]), "'a'", "'b'", "overlap");
        // the same bytes under two names
        openFails("alias.safetensors", raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                + "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", new byte[4]), "overlap");
    }

    @Test
    void gapsAndTrailingBytesAreRefused() throws IOException {
        openFails("gap.safetensors", raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", new byte[8]),
                "bytes [0, 4)", "no tensor");
        openFails("tail.safetensors", raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", new byte[9]),
                "5 bytes after the last tensor");
    }

    @Test
    void aValidFileStillOpensWithZeroSizedTensorsAndPaddedHeader() throws IOException {
        String h = "{\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]},\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}   ";
        byte[] data = new byte[8];
        java.nio.ByteBuffer.wrap(data).order(java.nio.ByteOrder.LITTLE_ENDIAN).putFloat(1.5f).putFloat(-2f);
        Path p = Files.write(dir.resolve("ok.safetensors"), raw(h, data));
        try (SafeTensors st = SafeTensors.open(p)) {
            assertArrayEquals(new float[]{1.5f, -2f}, st.toFloatArray("a"));
            assertEquals(0, st.toFloatArray("e").length);
        }
    }

    @Test
    void aTensorStoredInTwoShardsIsRefused() throws IOException {
        byte[] one = raw("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", new byte[4]);
        Files.write(dir.resolve("a.safetensors"), one);
        Files.write(dir.resolve("b.safetensors"), one);
        QvlmException e = assertThrows(QvlmException.class, () -> WeightStore.open(dir).close());
        assertTrue(e.getMessage().contains("'w'") && e.getMessage().contains("a.safetensors"), e.getMessage());
    }

    @Test
    void shardNamesMustBePlainFileNamesInTheFolder() {
        Path model = Path.of("/models/m");
        for (String bad : List.of("../x.safetensors", "/etc/passwd", "sub/x.safetensors", "..", ".", "", "a\0.safetensors",
                "C:\\x.safetensors", "x.bin")) {
            ObjectNode idx = Json.MAPPER.createObjectNode();
            idx.putObject("weight_map").put("t", bad);
            assertThrows(QvlmException.class, () -> ShardIndex.shards(model, idx, model.resolve("model.safetensors.index.json")), bad);
        }
        ObjectNode ok = Json.MAPPER.createObjectNode();
        ok.putObject("weight_map").put("t", "model-00001-of-00002.safetensors").put("u", "model-00001-of-00002.safetensors");
        assertEquals(List.of(model.resolve("model-00001-of-00002.safetensors")),
                ShardIndex.shards(model, ok, model.resolve("model.safetensors.index.json")));
    }
}
