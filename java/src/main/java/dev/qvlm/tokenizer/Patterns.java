package dev.qvlm.tokenizer;

import com.fasterxml.jackson.databind.JsonNode;

import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.regex.PatternSyntaxException;

/**
 * The {@code {"String": ...}} / {@code {"Regex": ...}} patterns of tokenizer.json and HF's "find matches" that
 * covers a string with alternating non-matched and matched spans. Regexes are written for Oniguruma / Rust; Java's
 * engine with {@link Pattern#UNICODE_CHARACTER_CLASS} understands the patterns used in practice (GPT-2, LLaMA-3,
 * Qwen: {@code \p{L}}, {@code \p{N}}, {@code (?i:...)}, {@code (?!\S)}).
 */
final class Patterns {
    private Patterns() {
    }

    /** One span of a string: [start, end) in UTF-16 units, and whether it is a match of the pattern. */
    record Span(int start, int end, boolean match) {
    }

    static Pattern compile(JsonNode pattern, String ctx) {
        if (pattern == null || !pattern.isObject()) {
            throw Json.error(ctx + ": 'pattern' must be an object {\"String\": ...} or {\"Regex\": ...}");
        }
        JsonNode s = pattern.get("String");
        if (s != null && s.isTextual()) {
            return literal(s.asText());
        }
        JsonNode r = pattern.get("Regex");
        if (r != null && r.isTextual()) {
            return regex(r.asText(), ctx);
        }
        throw Json.error(ctx + ": 'pattern' must be {\"String\": ...} or {\"Regex\": ...}, got " + pattern);
    }

    static Pattern literal(String s) {
        return Pattern.compile(s, Pattern.LITERAL);
    }

    /** The text of a pattern made by {@link #literal}, or {@code null} for a regex. */
    static String literalText(Pattern p) {
        return (p.flags() & Pattern.LITERAL) != 0 ? p.pattern() : null;
    }

    /** Replaces every match of {@code p} in {@code s} with the plain text {@code content}, as HF's Replace does. */
    static java.util.function.UnaryOperator<String> replacer(Pattern p, String content) {
        String lit = literalText(p);
        if (lit != null) {
            // The empty literal matches nothing in HF.
            return lit.isEmpty() ? s -> s : s -> s.replace(lit, content);
        }
        String repl = java.util.regex.Matcher.quoteReplacement(content);
        return s -> dev.qvlm.util.RegexBudget.matcher(p, s, "tokenizer.json Replace").replaceAll(repl);
    }

    static Pattern regex(String re, String ctx) {
        try {
            return Pattern.compile(re, Pattern.UNICODE_CHARACTER_CLASS);
        } catch (PatternSyntaxException e) {
            throw Json.error(ctx + ": regex " + re + " is not supported: " + e.getDescription());
        }
    }

    /**
     * The spans of {@code s}: every match of {@code p} and every gap between them, in order, covering {@code s}.
     * Empty matches give empty spans (callers drop empty pieces, as HF does). An empty string gives one empty
     * non-matched span. The literal empty pattern matches nothing.
     */
    static List<Span> findMatches(Pattern p, String s) {
        List<Span> out = new ArrayList<>();
        if (s.isEmpty()) {
            out.add(new Span(0, 0, false));
            return out;
        }
        if ("".equals(literalText(p))) {
            out.add(new Span(0, s.length(), false));
            return out;
        }
        Matcher m = dev.qvlm.util.RegexBudget.matcher(p, s, "tokenizer.json pre_tokenizer");
        int prev = 0;
        while (m.find()) {
            int a = m.start();
            int b = m.end();
            if (prev != a) {
                out.add(new Span(prev, a, false));
            }
            out.add(new Span(a, b, true));
            prev = b;
        }
        if (prev != s.length()) {
            out.add(new Span(prev, s.length(), false));
        }
        return out;
    }

    /** Unicode White_Space, which is what Rust's {@code char::is_whitespace} and regex {@code \s} test. */
    static boolean isWhitespace(int cp) {
        return switch (cp) {
            case '\t', '\n', 0x0B, '\f', '\r', ' ', 0x85, 0xA0, 0x1680, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000 -> true;
            default -> cp >= 0x2000 && cp <= 0x200A;
        };
    }

    /** Unicode {@code \w} as Rust's regex crate defines it (alphabetic, marks, decimal digits, connectors). */
    static boolean isWordChar(int cp) {
        if (Character.isAlphabetic(cp) || Character.isDigit(cp)) {
            return true;
        }
        int t = Character.getType(cp);
        return t == Character.NON_SPACING_MARK || t == Character.ENCLOSING_MARK
                || t == Character.COMBINING_SPACING_MARK || t == Character.CONNECTOR_PUNCTUATION
                || cp == 0x200C || cp == 0x200D;
    }
}
