package dev.qvlm.util;

import dev.qvlm.QvlmException;

import java.nio.file.InvalidPathException;
import java.nio.file.Path;

/**
 * The one rule for names read from untrusted files (a shard in {@code model.safetensors.index.json}, an image in a
 * JSONL row): they resolve inside the folder they came with. The check is lexical — after normalising {@code .}
 * and {@code ..} the path must stay under the root — so an absolute path, a {@code ..} that climbs out, a NUL or an
 * empty name is refused before anything is opened. Symbolic links that already exist inside the root are followed
 * (the Hugging Face hub cache is built of them): whoever placed them chose what they point to.
 */
public final class Confine {
    private Confine() {}

    /**
     * {@code root.resolve(relative)} when that stays inside {@code root}; otherwise a {@link QvlmException} naming
     * {@code where} and the rule. The offending name is quoted with control characters escaped.
     */
    public static Path inside(Path root, String relative, String where) {
        if (relative == null || relative.isEmpty()) throw new QvlmException(where + ": empty path");
        if (relative.indexOf('\0') >= 0 || relative.startsWith("/") || relative.startsWith("\\")
                || relative.matches("(?s)^[A-Za-z]:.*"))
            throw new QvlmException(where + ": path " + quote(relative) + " must be relative to " + root);
        Path base = root.toAbsolutePath().normalize();
        Path p;
        try {
            p = base.resolve(relative).normalize();
        } catch (InvalidPathException e) {
            throw new QvlmException(where + ": path " + quote(relative) + " is not a valid file name");
        }
        if (!p.startsWith(base) || p.equals(base))
            throw new QvlmException(where + ": path " + quote(relative) + " points outside " + root
                    + " (paths must stay inside the folder they are read from)");
        return p;
    }

    /** A plain file name (no folder part, not {@code .} or {@code ..}) inside {@code dir}. */
    public static Path fileIn(Path dir, String name, String where) {
        if (name == null || name.isEmpty() || name.equals(".") || name.equals("..") || name.indexOf('/') >= 0
                || name.indexOf('\\') >= 0 || name.indexOf('\0') >= 0)
            throw new QvlmException(where + ": " + quote(name) + " must be a plain file name inside " + dir);
        return inside(dir, name, where);
    }

    /** A string for an error message: quoted, at most 80 characters, control characters escaped. */
    public static String quote(String s) {
        if (s == null) return "null";
        StringBuilder b = new StringBuilder("'");
        int n = Math.min(s.length(), 80);
        for (int i = 0; i < n; i++) {
            char c = s.charAt(i);
            if (c < 0x20 || c == 0x7f) b.append(String.format("\\x%02x", (int) c));
            else b.append(c);
        }
        if (s.length() > n) b.append("...");
        return b.append('\'').toString();
    }
}
