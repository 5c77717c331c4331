package dev.qvlm.util;

import dev.qvlm.QvlmException;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.List;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The confinement rule for names read from files, and the regex step budget. */
class ConfineTest {
    static final Path ROOT = Path.of("/data/set");

    @Test
    void relativePathsInsideTheRootResolve() {
        assertEquals(Path.of("/data/set/images/a.png"), Confine.inside(ROOT, "images/a.png", "w"));
        assertEquals(Path.of("/data/set/a.png"), Confine.inside(ROOT, "images/../a.png", "w"));
        assertEquals(Path.of("/data/set/a.png"), Confine.inside(ROOT, "./a.png", "w"));
    }

    @Test
    void everyWayOutIsRefused() {
        for (String bad : List.of("../a.png", "images/../../a.png", "/etc/passwd", "\\\\server\\share\\a.png", "C:/a.png",
                "a\0.png", "", ".", "images/..")) {
            QvlmException e = assertThrows(QvlmException.class, () -> Confine.inside(ROOT, bad, "f.jsonl:3"), bad);
            assertTrue(e.getMessage().startsWith("f.jsonl:3"), e.getMessage());
            assertTrue(!e.getMessage().contains("\0"), "control characters are escaped");
        }
    }

    @Test
    void quotingEscapesControlCharactersAndCuts() {
        assertEquals("'a\\x0ab'", Confine.quote("a\nb"));
        assertTrue(Confine.quote("x".repeat(500)).length() < 100);
    }

    @Test
    void catastrophicBacktrackingHitsTheBudget() {
        // (a*)*\1b on 40 a's needs ~2^40 steps in java.util.regex (the backreference defeats its loop memo)
        Pattern p = Pattern.compile("(a*)*\\1b");
        QvlmException e = assertThrows(QvlmException.class, () -> RegexBudget.matcher(p, "a".repeat(40), "tokenizer").find());
        assertTrue(e.getMessage().contains("tokenizer") && e.getMessage().contains("too many steps"), e.getMessage());
        // an ordinary pattern over a long text stays well inside it and matches as before
        String text = "Hello world, 123 times! ".repeat(5000);
        var m = RegexBudget.matcher(Pattern.compile("\\p{L}+|\\p{N}+|\\s+|[^\\s\\p{L}\\p{N}]+"), text, "t");
        int n = 0;
        while (m.find()) n++;
        var plain = Pattern.compile("\\p{L}+|\\p{N}+|\\s+|[^\\s\\p{L}\\p{N}]+").matcher(text);
        int k = 0;
        while (plain.find()) k++;
        assertEquals(k, n);
    }
}
