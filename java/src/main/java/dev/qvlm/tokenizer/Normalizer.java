package dev.qvlm.tokenizer;

import com.fasterxml.jackson.databind.JsonNode;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.regex.Pattern;

/** A tokenizer.json "normalizer": rewrites one segment of input text (segments are split on added tokens first). */
interface Normalizer {
    String normalize(String s);

    /** Parses a normalizer; JSON {@code null} gives {@code null} (no normalization). */
    static Normalizer fromJson(JsonNode n) {
        if (Json.isNull(n)) {
            return null;
        }
        String ctx = "normalizer";
        String type = Json.type(n, ctx);
        ctx = "normalizer " + type;
        switch (type) {
            case "Sequence": {
                List<Normalizer> list = new ArrayList<>();
                for (JsonNode c : Json.array(n, "normalizers", ctx)) {
                    Normalizer x = fromJson(c);
                    if (x != null) {
                        list.add(x);
                    }
                }
                Normalizer[] arr = list.toArray(new Normalizer[0]);
                return s -> {
                    for (Normalizer x : arr) {
                        s = x.normalize(s);
                    }
                    return s;
                };
            }
            case "Prepend": {
                String p = Json.text(n, "prepend", ctx);
                // HF prepends only to non-empty strings.
                return s -> s.isEmpty() ? s : p + s;
            }
            case "Replace": {
                Pattern p = Patterns.compile(Json.field(n, "pattern", ctx), ctx);
                return Patterns.replacer(p, Json.text(n, "content", ctx))::apply;
            }
            case "NFC":
                return s -> java.text.Normalizer.normalize(s, java.text.Normalizer.Form.NFC);
            case "NFD":
                return s -> java.text.Normalizer.normalize(s, java.text.Normalizer.Form.NFD);
            case "NFKC":
                return s -> java.text.Normalizer.normalize(s, java.text.Normalizer.Form.NFKC);
            case "NFKD":
                return s -> java.text.Normalizer.normalize(s, java.text.Normalizer.Form.NFKD);
            case "Lowercase":
                return Normalizer::lowercase;
            case "Strip": {
                boolean left = Json.boolOr(n, "strip_left", true, ctx);
                boolean right = Json.boolOr(n, "strip_right", true, ctx);
                return s -> strip(s, left, right);
            }
            case "StripAccents":
                return s -> {
                    StringBuilder b = new StringBuilder(s.length());
                    s.codePoints().filter(cp -> Character.getType(cp) != Character.NON_SPACING_MARK)
                            .forEach(b::appendCodePoint);
                    return b.toString();
                };
            default:
                throw Json.error("normalizer type '" + type + "' is not supported (supported: Sequence, Prepend, "
                        + "Replace, NFC, NFD, NFKC, NFKD, Lowercase, Strip, StripAccents)");
        }
    }

    /** Per-character lower-casing (no context-dependent rules such as final sigma), like HF's Lowercase. */
    static String lowercase(String s) {
        StringBuilder b = new StringBuilder(s.length());
        for (int i = 0; i < s.length(); ) {
            int cp = s.codePointAt(i);
            i += Character.charCount(cp);
            b.append(new String(Character.toChars(cp)).toLowerCase(Locale.ROOT));
        }
        return b.toString();
    }

    static String strip(String s, boolean left, boolean right) {
        int a = 0;
        int b = s.length();
        if (left) {
            while (a < b && Patterns.isWhitespace(s.codePointAt(a))) {
                a += Character.charCount(s.codePointAt(a));
            }
        }
        if (right) {
            while (b > a && Patterns.isWhitespace(s.codePointBefore(b))) {
                b -= Character.charCount(s.codePointBefore(b));
            }
        }
        return s.substring(a, b);
    }
}
