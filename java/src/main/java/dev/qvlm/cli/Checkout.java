package dev.qvlm.cli;

import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;

/** The repository checkout the CLI runs from (for bundled files such as the LLaVA-1.5 tokenizer). */
final class Checkout {
    private Checkout() {}

    /** -Dqvlm.root, else the folder above java/target/qvlm.jar (or java/target/classes), else the working directory. */
    static Path root() {
        String p = System.getProperty("qvlm.root");
        if (p != null) return Path.of(p).toAbsolutePath().normalize();
        try {
            Path code = Path.of(Checkout.class.getProtectionDomain().getCodeSource().getLocation().toURI());
            // .../java/target/qvlm.jar or .../java/target/classes
            Path r = code.getParent() != null && code.getParent().getParent() != null ? code.getParent().getParent().getParent() : null;
            if (r != null && Files.isDirectory(r.resolve("models"))) return r;
        } catch (URISyntaxException | SecurityException | NullPointerException ignored) {
            // fall through
        }
        return Path.of("").toAbsolutePath();
    }
}
