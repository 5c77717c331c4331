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

    /** Fills a folder given as its temporary path; see {@link #writeFolderAtomically}. */
    @FunctionalInterface
    public interface FolderWriter {
        void write(Path tmp) throws IOException;
    }

    /**
     * Writes a folder that is either complete or absent: {@code body} fills a temporary sibling
     * ({@code NAME.tmp-PID}), which is renamed to {@code target} when it returns. The temporary folder is removed when
     * the body fails and, through a shutdown hook, when the process is interrupted (Ctrl-C). A {@code target} that
     * exists at the rename is replaced when {@code replace}, else refused.
     *
     * @param what names the output in messages (e.g. {@code "--out DIR"})
     */
    public static void writeFolderAtomically(Path target, String what, boolean replace, FolderWriter body) {
        Path abs = target.toAbsolutePath().normalize();
        Path tmp = abs.resolveSibling(abs.getFileName() + OutputPaths.TMP_INFIX + ProcessHandle.current().pid());
        Thread cleanup = new Thread(() -> deleteTree(tmp), "qvlm-cleanup");
        Runtime.getRuntime().addShutdownHook(cleanup);
        try {
            deleteTree(tmp);
            Files.createDirectories(tmp);
            body.write(tmp);
            if (Files.exists(abs)) {
                if (!replace) throw new QvlmException(what + " already exists");
                deleteTree(abs);
            }
            Files.move(tmp, abs, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            deleteTree(tmp);
            throw new QvlmException(what + ": cannot write (" + e.getMessage() + ")");
        } catch (RuntimeException e) {
            deleteTree(tmp);
            throw e;
        } finally {
            try {
                Runtime.getRuntime().removeShutdownHook(cleanup);
            } catch (IllegalStateException ignored) {
                // already shutting down: the hook runs
            }
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
