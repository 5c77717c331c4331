package dev.qvlm;

import java.nio.file.Files;
import java.nio.file.Path;

/** Where the bundled fixtures live, from the repository root (set by surefire as qvlm.root, else found upwards). */
public final class TestPaths {
    private TestPaths() {}

    public static Path root() {
        String p = System.getProperty("qvlm.root");
        if (p != null) return Path.of(p).toAbsolutePath().normalize();
        Path d = Path.of("").toAbsolutePath();
        while (d != null && !Files.exists(d.resolve("models/tiny-llava-shapes"))) d = d.getParent();
        if (d == null) throw new IllegalStateException("cannot find repository root");
        return d;
    }

    public static Path tinyModel() {
        return root().resolve("models/tiny-llava-shapes");
    }

    public static Path realTokenizer() {
        return root().resolve("models/llava-1.5-tokenizer/tokenizer.json");
    }

    public static Path golden() {
        return root().resolve("java/src/test/resources/golden");
    }

    public static Path data() {
        return root().resolve("data/shapes-vqa");
    }
}
