package dev.qvlm.safetensors;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.qvlm.QvlmException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * SafeTensorsWriter → SafeTensors round trips, and every way a safetensors file can be broken: each must fail on
 * open with a {@link QvlmException} whose message names the file and, where one is to blame, the tensor.
 */
class SafeTensorsTest {
    @TempDir
    Path dir;

    // ---------------------------------------------------------------- helpers

    /** A file from a raw header string and a data section, with the header length word set to {@code n}. */
    static byte[] raw(long n, String header, byte[] data) {
        byte[] h = header.getBytes(StandardCharsets.UTF_8);
        ByteBuffer b = ByteBuffer.allocate(8 + h.length + data.length).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(n).put(h).put(data);
        return b.array();
    }

    static byte[] raw(String header, byte[] data) {
        return raw(header.getBytes(StandardCharsets.UTF_8).length, header, data);
    }

    Path file(String name, byte[] bytes) throws IOException {
        Path p = dir.resolve(name);
        Files.write(p, bytes);
        return p;
    }

    /** Opens {@code p} expecting a QvlmException whose message contains the full path and every fragment. */
    static QvlmException assertOpenFails(Path p, String... fragments) {
        QvlmException e = assertThrows(QvlmException.class, () -> SafeTensors.open(p).close(),
                "opening " + p.getFileName() + " must fail");
        String m = e.getMessage();
        assertTrue(m.contains(p.toString()), "message names the file: " + m);
        for (String f : fragments) assertTrue(m.contains(f), "message contains '" + f + "': " + m);
        return e;
    }

    /** A valid two-tensor file written by SafeTensorsWriter: 'first' F32 [2, 3], then 'last' F16 [4]. */
    Path validFile(String name) {
        Path p = dir.resolve(name);
        new SafeTensorsWriter()
                .addF32("first", new long[]{2, 3}, new float[]{1, 2, 3, 4, 5, 6})
                .addF16("last", new long[]{4}, new float[]{0.5f, -1, 2, 1024})
                .write(p);
        return p;
    }

    static long headerLength(Path p) throws IOException {
        byte[] b = Files.readAllBytes(p);
        return ByteBuffer.wrap(b, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
    }

    static List<String> listNames(Path d) throws IOException {
        try (Stream<Path> s = Files.list(d)) {
            return s.map(x -> x.getFileName().toString()).sorted().toList();
        }
    }

    // ---------------------------------------------------------------- round trips

    @Test
    void roundTripIsExact() throws IOException {
        float[] f32 = {0f, -0f, 1f, -1.5f, Float.MIN_VALUE, Float.MIN_NORMAL, Float.MAX_VALUE, -Float.MAX_VALUE,
                Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, (float) Math.PI, 1e-30f};
        // values exactly representable in IEEE half: normals, the largest (65504), the smallest subnormal (2^-24)
        float[] f16 = {0f, -0f, 1f, -2.25f, 65504f, -65504f, 0x1p-24f, 0x1p-14f, 0.333251953125f, 1000.5f};
        int[] i32 = {0, 1, -1, Integer.MAX_VALUE, Integer.MIN_VALUE, 123456789};
        long[] i64 = {0, -1, Long.MAX_VALUE, Long.MIN_VALUE, 1L << 40, -(1L << 53) - 1};
        Path p = dir.resolve("rt.safetensors");
        new SafeTensorsWriter()
                .metadata("format", "pt")
                .metadata("qvlm.note", "ünïcödé and \"quotes\"")
                .addF32("a.f32", new long[]{3, 4}, f32)
                .addF16("b.f16", new long[]{10}, f16)
                .addI32("c.i32", new long[]{2, 1, 3}, i32)
                .addI64("d.i64", new long[]{6}, i64)
                .addF32("e.scalar", new long[]{}, new float[]{42.5f})
                .addF32("f.empty", new long[]{0, 3}, new float[0])
                .write(p);
        assertEquals(List.of("rt.safetensors"), listNames(dir), "no leftover .tmp file");
        assertEquals(0, headerLength(p) % 8, "data section 8-byte aligned");

        try (SafeTensors st = SafeTensors.open(p)) {
            // the reference writer's layout (safetensors/src/tensor.rs, prepare): descending dtype alignment, then name
            assertEquals(List.of("d.i64", "a.f32", "e.scalar", "f.empty", "c.i32", "b.f16"), List.copyOf(st.names()),
                    "names in the reference writer's order");
            assertEquals(Map.of("format", "pt", "qvlm.note", "ünïcödé and \"quotes\""), st.metadata());

            TensorInfo a = st.info("a.f32");
            assertEquals(DType.F32, a.dtype());
            assertArrayEquals(new long[]{3, 4}, a.shape());
            assertEquals(p, a.file());
            float[] ra = st.toFloatArray("a.f32");
            for (int i = 0; i < f32.length; i++)
                assertEquals(Float.floatToRawIntBits(f32[i]), Float.floatToRawIntBits(ra[i]), "f32[" + i + "] bits");

            assertEquals(DType.F16, st.info("b.f16").dtype());
            assertEquals(20, st.segment("b.f16").byteSize());
            float[] rb = st.toFloatArray("b.f16");
            for (int i = 0; i < f16.length; i++)
                assertEquals(Float.floatToRawIntBits(f16[i]), Float.floatToRawIntBits(rb[i]), "f16[" + i + "] = " + f16[i]);

            assertEquals(DType.I32, st.info("c.i32").dtype());
            assertArrayEquals(new long[]{2, 1, 3}, st.info("c.i32").shape());
            assertArrayEquals(Arrays.stream(i32).asLongStream().toArray(), st.toLongArray("c.i32"));

            assertEquals(DType.I64, st.info("d.i64").dtype());
            assertArrayEquals(i64, st.toLongArray("d.i64"));

            assertEquals(0, st.info("e.scalar").rank());
            assertArrayEquals(new float[]{42.5f}, st.toFloatArray("e.scalar"));
            assertEquals(0, st.info("f.empty").numel());
            assertEquals(0, st.toFloatArray("f.empty").length);

            // data offsets are contiguous, in order, and cover the whole data section
            long end = 0;
            for (String n : st.names()) {
                TensorInfo t = st.info(n);
                assertEquals(end, t.begin(), n + " begins where the previous tensor ends");
                end = t.end();
            }
            assertEquals(Files.size(p), 8 + headerLength(p) + end, "no trailing bytes");
        }

        // the header is standard safetensors JSON (what the Python library reads)
        byte[] all = Files.readAllBytes(p);
        JsonNode h = new ObjectMapper().readTree(new String(all, 8, (int) headerLength(p), StandardCharsets.UTF_8));
        assertEquals("I64", h.get("d.i64").get("dtype").asText());
        assertEquals("[6]", h.get("d.i64").get("shape").toString());
        assertEquals("pt", h.get("__metadata__").get("format").asText());
        // little-endian on disk: the first I32 after 0 is 1 → bytes 01 00 00 00
        long cBegin = h.get("c.i32").get("data_offsets").get(0).asLong();
        int base = (int) (8 + headerLength(p) + cBegin);
        assertArrayEquals(new byte[]{1, 0, 0, 0}, Arrays.copyOfRange(all, base + 4, base + 8));
    }

    @Test
    void rawSegmentsRoundTripBitForBit() throws IOException {
        // add(name, dtype, shape, segment): bytes go through untouched (BF16 and U8 have no typed adder)
        byte[] bf16 = {0x80 - 256, 0x3f, 0x00, 0x40, 0x49, 0x40, 0x00, 0x00}; // 1.0, 2.0, 3.140625, 0.0 as BF16
        byte[] u8 = {0, 1, (byte) 200, (byte) 255};
        Path p = dir.resolve("raw.safetensors");
        new SafeTensorsWriter()
                .add("bf", DType.BF16, new long[]{2, 2}, MemorySegment.ofArray(bf16))
                .add("u", DType.U8, new long[]{4}, MemorySegment.ofArray(u8))
                .write(p);
        try (SafeTensors st = SafeTensors.open(p)) {
            assertArrayEquals(bf16, st.segment("bf").toArray(java.lang.foreign.ValueLayout.JAVA_BYTE));
            assertArrayEquals(new float[]{1f, 2f, 3.140625f, 0f}, st.toFloatArray("bf"));
            assertArrayEquals(new long[]{0, 1, 200, 255}, st.toLongArray("u"));
            assertTrue(st.metadata().isEmpty(), "no __metadata__ written when none was set");
        }
    }

    @Test
    void writeReplacesAnExistingFileAndLeavesNoTemporary() throws IOException {
        Path p = validFile("m.safetensors");
        new SafeTensorsWriter().addI32("only", new long[]{1}, new int[]{7}).write(p);
        assertEquals(List.of("m.safetensors"), listNames(dir));
        try (SafeTensors st = SafeTensors.open(p)) {
            assertEquals(List.of("only"), List.copyOf(st.names()));
            assertArrayEquals(new long[]{7}, st.toLongArray("only"));
        }
    }

    @Test
    void writeIntoAMissingFolderFailsNamingTheTarget() throws IOException {
        Path p = dir.resolve("no/such/folder/x.safetensors");
        QvlmException e = assertThrows(QvlmException.class,
                () -> new SafeTensorsWriter().addF32("a", new long[]{1}, new float[]{1}).write(p));
        assertTrue(e.getMessage().contains(p.toString()), e.getMessage());
        assertEquals(List.of(), listNames(dir), "nothing left behind");
    }

    @Test
    void writerRejectsBytesThatDoNotFitTheShape() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new SafeTensorsWriter()
                .add("w", DType.F32, new long[]{2, 3}, MemorySegment.ofArray(new byte[20])));
        assertTrue(e.getMessage().contains("w") && e.getMessage().contains("20"), e.getMessage());
        assertThrows(IllegalArgumentException.class,
                () -> new SafeTensorsWriter().addF32("v", new long[]{4}, new float[3]));
    }

    // ---------------------------------------------------------------- bad files

    @Test
    void missingFile() {
        assertOpenFails(dir.resolve("absent.safetensors"), "not found");
    }

    @Test
    void truncatedFileNamesTheTensorThatRunsPastTheEnd() throws IOException {
        Path p = validFile("cut.safetensors");
        byte[] b = Files.readAllBytes(p);
        Files.write(p, Arrays.copyOf(b, b.length - 3));
        QvlmException e = assertOpenFails(p, "'last'", "truncated");
        assertFalse(e.getMessage().contains("'first'"), "the intact tensor is not blamed: " + e.getMessage());
    }

    @Test
    void fileCutInsideTheHeader() throws IOException {
        Path p = validFile("cut.safetensors");
        byte[] b = Files.readAllBytes(p);
        Files.write(p, Arrays.copyOf(b, 20));
        assertOpenFails(p, "header length", "truncated");
    }

    @Test
    void fileShorterThanTheLengthWord() throws IOException {
        assertOpenFails(file("tiny.safetensors", new byte[]{1, 2, 3}), "3 bytes");
        assertOpenFails(file("empty.safetensors", new byte[0]), "0 bytes");
    }

    @Test
    void headerLengthLargerThanTheFile() throws IOException {
        String h = "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
        Path p = file("long.safetensors", raw(1000, h, new byte[4]));
        // the length is not echoed: for a file that is not safetensors those are 8 arbitrary bytes of it (issue 9)
        assertFalse(assertOpenFails(p, "header length", Long.toString(Files.size(p))).getMessage().contains("1000"));
    }

    @Test
    void headerLengthWithTheTopBitSet() throws IOException {
        // an unsigned u64 of 2^63 + 8 reads as a negative long; must not be taken for a small length
        Path p = file("neg.safetensors", raw(Long.MIN_VALUE + 8, "{}      ", new byte[0]));
        assertOpenFails(p, "header length");
    }

    @Test
    void zeroHeaderLength() throws IOException {
        assertOpenFails(file("zero.safetensors", raw(0, "", new byte[16])), "header length");
    }

    @Test
    void headerNotJson() throws IOException {
        Path p = file("garbage.safetensors", raw("{\"a\": {\"dtype\": \"F32\", \"shape\": [1], oops", new byte[4]));
        assertOpenFails(p, "not valid JSON");
        // binary noise where the header should be (e.g. a .bin pickle renamed)
        byte[] noise = new byte[64];
        for (int i = 0; i < noise.length; i++) noise[i] = (byte) (i * 37 + 11);
        ByteBuffer.wrap(noise).order(ByteOrder.LITTLE_ENDIAN).putLong(40);
        assertOpenFails(file("noise.safetensors", noise), "not valid JSON");
    }

    @Test
    void headerJsonButNotAnObject() throws IOException {
        assertOpenFails(file("array.safetensors", raw("[1, 2, 3]", new byte[0])), "not a JSON object");
        assertOpenFails(file("entry.safetensors", raw("{\"w\": [1, 2]}", new byte[0])), "'w'", "not an object");
    }

    @Test
    void shapeTimesDtypeDisagreesWithDataOffsets() throws IOException {
        // [2, 3] x F32 needs 24 bytes; the offsets span 20 (and the file holds 24, so it is not a truncation)
        String h = "{\"ok\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]},"
                + "\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[4,24]}}";
        Path p = file("shape.safetensors", raw(h, new byte[28]));
        assertOpenFails(p, "'w'", "[2,3]", "F32", "24 bytes", "span 20");
    }

    @Test
    void unsupportedDtype() throws IOException {
        String h = "{\"w\":{\"dtype\":\"F8_E4M3\",\"shape\":[4],\"data_offsets\":[0,4]}}";
        assertOpenFails(file("f8.safetensors", raw(h, new byte[4])), "'w'", "unsupported dtype 'F8_E4M3'");
        String h2 = "{\"v\":{\"shape\":[4],\"data_offsets\":[0,4]}}";
        assertOpenFails(file("nodtype.safetensors", raw(h2, new byte[4])), "'v'", "unsupported dtype");
    }

    @Test
    void badShapeOrOffsets() throws IOException {
        assertOpenFails(file("s1.safetensors",
                raw("{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", new byte[4])), "'w'", "missing shape");
        assertOpenFails(file("s2.safetensors",
                raw("{\"w\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", new byte[4])), "'w'", "bad shape");
        assertOpenFails(file("s3.safetensors",
                raw("{\"w\":{\"dtype\":\"F32\",\"shape\":[\"4\"],\"data_offsets\":[0,16]}}", new byte[16])), "'w'", "bad shape");
        assertOpenFails(file("o1.safetensors",
                raw("{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", new byte[4])), "'w'", "data_offsets");
        assertOpenFails(file("o2.safetensors",
                raw("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", new byte[8])), "'w'", "bad data_offsets");
        assertOpenFails(file("o3.safetensors",
                raw("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", new byte[4])), "'w'", "data_offsets");
    }

    @Test
    void shapeWhoseElementCountOverflows() throws IOException {
        String h = "{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,4]}}";
        assertOpenFails(file("huge.safetensors", raw(h, new byte[4])), "'w'");
    }

    @Test
    void byteCountThatWrapsAroundIsRejected() throws IOException {
        String h = "{\"w\":{\"dtype\":\"F64\",\"shape\":[2305843009213693952],\"data_offsets\":[0,0]}}";
        assertOpenFails(file("wrap.safetensors", raw(h, new byte[0])), "'w'");
    }

    // ---------------------------------------------------------------- reading the wrong way

    @Test
    void lookupsNameTheFileAndTensor() {
        Path p = validFile("ok.safetensors");
        try (SafeTensors st = SafeTensors.open(p)) {
            QvlmException e = assertThrows(QvlmException.class, () -> st.info("nope"));
            assertTrue(e.getMessage().contains(p.toString()) && e.getMessage().contains("'nope'"), e.getMessage());
            e = assertThrows(QvlmException.class, () -> st.toLongArray("first"));
            assertTrue(e.getMessage().contains("'first'") && e.getMessage().contains("F32"), e.getMessage());
        }
        Path q = dir.resolve("ints.safetensors");
        new SafeTensorsWriter().addI64("ids", new long[]{2}, new long[]{1, 2}).write(q);
        try (SafeTensors st = SafeTensors.open(q)) {
            QvlmException e = assertThrows(QvlmException.class, () -> st.toFloatArray("ids"));
            assertTrue(e.getMessage().contains(q.toString()) && e.getMessage().contains("'ids'")
                    && e.getMessage().contains("I64"), e.getMessage());
        }
    }
}
