package dev.qvlm.eval;

import com.fasterxml.jackson.databind.JsonNode;
import dev.qvlm.QvlmException;
import dev.qvlm.util.Confine;
import dev.qvlm.util.Json;

import java.io.BufferedReader;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/** Reads ScienceQA-format JSONL, validating every row; errors name the file and line. */
public final class McDataset {
    private McDataset() {}

    public static List<McQuestion> read(Path file) {
        return read(file, null);
    }

    /**
     * @param imageRoot folder that image paths resolve in and may not leave ({@code --image-root}); null = the data
     *                  file's own folder
     */
    public static List<McQuestion> read(Path file, Path imageRoot) {
        List<McQuestion> rows = new ArrayList<>();
        Path base = imageRoot != null ? imageRoot.toAbsolutePath().normalize() : file.toAbsolutePath().getParent();
        if (imageRoot != null && !Files.isDirectory(imageRoot))
            throw new QvlmException("--image-root " + imageRoot + ": folder not found");
        try (BufferedReader r = Files.newBufferedReader(file)) {
            String line;
            int no = 0;
            while ((line = readLine(r, file, no + 1)) != null) {
                no++;
                if (line.isBlank()) continue;
                rows.add(parse(line, no, file, base));
            }
        } catch (NoSuchFileException e) {
            throw new QvlmException(file + ": file not found");
        } catch (java.nio.charset.MalformedInputException e) {
            throw new QvlmException(file + ": not UTF-8 text");
        } catch (IOException e) {
            throw new QvlmException(file + ": cannot read (" + e.getMessage() + ")");
        }
        if (rows.isEmpty()) throw new QvlmException(file + ": no questions (empty file)");
        return rows;
    }

    /** Longest row accepted: 1 MiB of text (real ScienceQA rows are under 10 KB). */
    public static final int MAX_LINE_CHARS = 1 << 20;

    /** BufferedReader.readLine with a length bound, so one endless line cannot exhaust memory. */
    private static String readLine(BufferedReader r, Path file, int no) throws IOException {
        StringBuilder b = new StringBuilder();
        int c;
        while ((c = r.read()) >= 0) {
            if (c == '\n') return b.toString();
            if (b.length() >= MAX_LINE_CHARS)
                throw new QvlmException(file + ":" + no + ": line longer than " + MAX_LINE_CHARS + " characters");
            b.append((char) c);
        }
        if (b.isEmpty()) return null;
        return b.toString();
    }

    /** One row ({@code no}: its line number); an image path must stay inside {@code base} ({@link Confine}). */
    public static McQuestion parse(String line, int no, Path file, Path base) {
        String where = file + ":" + no;
        JsonNode n;
        try {
            n = Json.parse(line, where);
        } catch (QvlmException e) {
            throw new QvlmException(e.getMessage().replace(" at line 1,", ","));
        }
        if (!n.isObject()) throw new QvlmException(where + ": expected a JSON object");
        JsonNode q = n.get("question");
        if (q == null || !q.isTextual()) throw new QvlmException(where + ": missing string field \"question\"");
        JsonNode ch = n.get("choices");
        if (ch == null || !ch.isArray() || ch.size() < 2)
            throw new QvlmException(where + ": \"choices\" must be a list of at least 2 strings");
        if (ch.size() > McQuestion.LETTERS.length())
            throw new QvlmException(where + ": " + ch.size() + " choices; at most 26 are supported");
        List<String> choices = new ArrayList<>();
        for (JsonNode c : ch) {
            if (!c.isTextual()) throw new QvlmException(where + ": \"choices\" must hold strings, got " + c);
            choices.add(c.asText());
        }
        JsonNode a = n.get("answer");
        if (a == null || !a.canConvertToInt() || !a.isIntegralNumber() || a.asInt() < 0 || a.asInt() >= choices.size())
            throw new QvlmException(where + ": \"answer\" must be an index into choices (0.." + (choices.size() - 1)
                    + "), got " + a);
        Path image = null;
        JsonNode im = n.get("image");
        if (im != null && !im.isNull()) {
            if (!im.isTextual()) throw new QvlmException(where + ": \"image\" must be a path string");
            image = Confine.inside(base, im.asText(), where + ": \"image\"");
        }
        String hint = n.hasNonNull("hint") ? n.get("hint").asText() : null;
        String task = n.hasNonNull("task") ? n.get("task").asText() : "all";
        String id = n.hasNonNull("id") ? n.get("id").asText() : "line-" + no;
        return new McQuestion(id, q.asText(), List.copyOf(choices), a.asInt(), image, hint, task, no);
    }
}
