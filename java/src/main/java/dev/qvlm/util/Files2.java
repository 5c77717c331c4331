package dev.qvlm.util;

import dev.qvlm.QvlmException;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;

/** File writes that never leave a half-written target behind. */
public final class Files2 {
    private Files2() {}

    public static void writeStringAtomically(Path file, String text) {
        Path abs = file.toAbsolutePath();
        Path tmp = abs.resolveSibling(abs.getFileName() + ".tmp");
        try {
            if (abs.getParent() != null) Files.createDirectories(abs.getParent());
            Files.writeString(tmp, text);
            Files.move(tmp, abs, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            try {
                Files.deleteIfExists(tmp);
            } catch (IOException ignored) {
            }
            throw new QvlmException(file + ": cannot write (" + e.getMessage() + ")");
        }
    }

    /** Deletes a file or folder tree, ignoring what cannot be deleted (cleanup of temporary outputs). */
    public static void deleteTree(Path p) {
        if (!Files.exists(p)) return;
        try (var walk = Files.walk(p)) {
            walk.sorted(java.util.Comparator.reverseOrder()).forEach(q -> {
                try {
                    Files.deleteIfExists(q);
                } catch (IOException ignored) {
                    // best effort
                }
            });
        } catch (IOException ignored) {
            // best effort
        }
    }
}
