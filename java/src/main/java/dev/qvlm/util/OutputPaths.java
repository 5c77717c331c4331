package dev.qvlm.util;

import dev.qvlm.QvlmException;

import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.stream.Stream;

/**
 * Checks on output paths, made before any work starts so an unwritable {@code --out} fails in a second, not after
 * an hour of quantization: parents are created (every command alike), writability is probed with a real file, and
 * {@code --force} only ever replaces a folder that looks like a model checkpoint.
 */
public final class OutputPaths {
    /** Suffix of the temporary sibling a checkpoint is written to before the rename: {@code OUT.tmp-PID}. */
    public static final String TMP_INFIX = ".tmp-";

    private OutputPaths() {}

    /** An output file ({@code flag} names the option): its folder is created and must be writable. */
    public static void checkFile(Path file, String flag) {
        Path abs = file.toAbsolutePath().normalize();
        if (Files.isDirectory(abs)) throw new QvlmException(flag + " " + file + ": is a folder; expected a file name");
        if (Files.exists(abs) && !Files.isWritable(abs)) throw new QvlmException(flag + " " + file + ": file is not writable");
        probe(abs.getParent(), flag + " " + file);
    }

    /**
     * An output checkpoint folder: refused if it exists without {@code force}, or with {@code force} when it does not
     * look like a checkpoint ({@link #looksLikeCheckpoint}); its parent is created and must be writable; temporaries
     * of earlier runs that died ({@code OUT.tmp-PID} of a process that no longer exists) are removed.
     */
    public static void checkCheckpointDir(Path dir, boolean force, String flag) {
        Path abs = dir.toAbsolutePath().normalize();
        if (Files.exists(abs)) {
            if (!force) throw new QvlmException(flag + " " + dir + " already exists (use --force to replace it)");
            if (!Files.isDirectory(abs)) throw new QvlmException(flag + " " + dir + ": is a file, not a checkpoint folder; refusing to replace it");
            if (!looksLikeCheckpoint(abs))
                throw new QvlmException(flag + " " + dir + ": is not a model checkpoint (no config.json with *.safetensors,"
                        + " no quantization_report.json); --force only replaces checkpoint folders, so it is left alone");
        }
        if (abs.getParent() == null) throw new QvlmException(flag + " " + dir + ": cannot write to the file system root");
        probe(abs.getParent(), flag + " " + dir);
        cleanStaleTemps(abs);
    }

    /** An empty folder, or one holding config.json plus *.safetensors (HF or ours), or our quantization report. */
    public static boolean looksLikeCheckpoint(Path dir) {
        boolean config = Files.isRegularFile(dir.resolve("config.json"));
        if (Files.isRegularFile(dir.resolve("quantization_report.json"))) return true;
        boolean weights = false, empty = true;
        try (DirectoryStream<Path> s = Files.newDirectoryStream(dir)) {
            for (Path p : s) {
                empty = false;
                if (p.getFileName().toString().endsWith(".safetensors") && Files.isRegularFile(p)) weights = true;
            }
        } catch (IOException e) {
            return false;
        }
        return empty || (config && weights);
    }

    /** Removes {@code target.tmp-PID} siblings whose process is gone (left by a kill -9 during saving). */
    public static void cleanStaleTemps(Path target) {
        Path parent = target.getParent();
        String prefix = target.getFileName() + TMP_INFIX;
        if (parent == null || !Files.isDirectory(parent)) return;
        try (DirectoryStream<Path> s = Files.newDirectoryStream(parent, p -> p.getFileName().toString().startsWith(prefix))) {
            for (Path p : s) {
                String pid = p.getFileName().toString().substring(prefix.length());
                if (!pid.matches("[0-9]{1,18}")) continue;
                long id = Long.parseLong(pid);
                if (id == ProcessHandle.current().pid() || ProcessHandle.of(id).isPresent()) continue;
                deleteTree(p);
            }
        } catch (IOException ignored) {
            // best effort: a temporary we cannot list or remove does not stop the run
        }
    }

    /** Deletes a file or folder tree, ignoring what cannot be deleted; never follows symbolic links out of it. */
    public static void deleteTree(Path p) {
        if (!Files.exists(p, java.nio.file.LinkOption.NOFOLLOW_LINKS)) return;
        try (Stream<Path> walk = Files.walk(p)) {
            walk.sorted(Comparator.reverseOrder()).forEach(x -> {
                try {
                    Files.deleteIfExists(x);
                } catch (IOException ignored) {
                }
            });
        } catch (IOException ignored) {
        }
    }

    /** Creates {@code dir} if needed and writes (then deletes) a file in it, naming {@code what} if that fails. */
    private static void probe(Path dir, String what) {
        try {
            Files.createDirectories(dir);
            Path t = Files.createTempFile(dir, ".qvlm-write-check", null);
            Files.delete(t);
        } catch (java.nio.file.FileAlreadyExistsException e) {
            throw new QvlmException(what + ": cannot write in " + dir + " (" + e.getFile() + " is a file, not a folder)");
        } catch (java.nio.file.AccessDeniedException e) {
            throw new QvlmException(what + ": cannot write in " + dir + " (permission denied)");
        } catch (java.nio.file.FileSystemException e) {
            throw new QvlmException(what + ": cannot write in " + dir + " (" + (e.getReason() != null ? e.getReason()
                    : "file system error") + (e.getFile() != null && !e.getFile().equals(dir.toString()) ? ": " + e.getFile() : "") + ")");
        } catch (IOException | SecurityException e) {
            throw new QvlmException(what + ": cannot write in " + dir + " (" + e.getMessage() + ")");
        }
    }
}
