package dev.qvlm.util;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import dev.qvlm.QvlmException;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;

/** JSON helpers: one shared mapper, and reads that turn I/O and syntax errors into messages naming the file. */
public final class Json {
    public static final ObjectMapper MAPPER = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    private Json() {}

    /** Largest JSON file read whole (config.json, index, preprocessor and report files are kilobytes). */
    public static final long MAX_FILE_BYTES = 64L << 20;

    public static JsonNode read(Path file) {
        String text;
        try {
            if (Files.isRegularFile(file) && Files.size(file) > MAX_FILE_BYTES)
                throw new QvlmException(file + ": " + Files.size(file) + " bytes is more than the " + (MAX_FILE_BYTES >> 20)
                        + " MiB a JSON file may have");
            text = Files.readString(file);
        } catch (NoSuchFileException e) {
            throw new QvlmException(file + ": file not found");
        } catch (java.nio.charset.MalformedInputException e) {
            throw new QvlmException(file + ": not UTF-8 text");
        } catch (IOException e) {
            throw new QvlmException(file + ": cannot read (" + e.getMessage() + ")");
        }
        return parse(text, file.toString());
    }

    public static JsonNode parse(String text, String where) {
        try {
            JsonNode n = MAPPER.readTree(text);
            if (n == null || n.isMissingNode()) throw new QvlmException(where + ": empty JSON");
            return n;
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            var loc = e.getLocation();
            String at = loc == null ? "" : " at line " + loc.getLineNr() + ", column " + loc.getColumnNr();
            throw new QvlmException(where + ": malformed JSON" + at + " (" + e.getOriginalMessage() + ")");
        }
    }

    public static String write(Object o) {
        try {
            return MAPPER.writeValueAsString(o);
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }

    /** Writes JSON to a temporary sibling and renames it, so readers never see a half-written file. */
    public static void writeAtomically(Path file, Object o) {
        Files2.writeStringAtomically(file, write(o) + "\n");
    }
}
