package dev.qvlm.tokenizer;

import com.fasterxml.jackson.databind.JsonNode;

import java.util.ArrayList;
import java.util.List;
import java.util.function.IntPredicate;
import java.util.regex.Pattern;

/**
 * A tokenizer.json "pre_tokenizer": splits a normalized segment into the words that the model tokenizes
 * independently (and may rewrite them, as ByteLevel does).
 */
interface PreTokenizer {

    /**
     * A piece of text. {@code atStart} is true when the piece begins at offset 0 of the original input (what
     * Metaspace's {@code prepend_scheme: "first"} tests).
     */
    record Piece(String text, boolean atStart) {
    }

    /** Splits (and possibly rewrites) one piece, appending the non-empty results to {@code out}. */
    void split(Piece piece, List<Piece> out);

    default List<Piece> apply(List<Piece> pieces) {
        List<Piece> out = new ArrayList<>(pieces.size() * 2);
        for (Piece p : pieces) {
            split(p, out);
        }
        return out;
    }

    /** HF's SplitDelimiterBehavior. */
    enum Behavior {
        REMOVED, ISOLATED, MERGED_WITH_PREVIOUS, MERGED_WITH_NEXT, CONTIGUOUS;

        static Behavior parse(String s, String ctx) {
            return switch (s) {
                case "Removed" -> REMOVED;
                case "Isolated" -> ISOLATED;
                case "MergedWithPrevious" -> MERGED_WITH_PREVIOUS;
                case "MergedWithNext" -> MERGED_WITH_NEXT;
                case "Contiguous" -> CONTIGUOUS;
                default -> throw Json.error(ctx + ": unknown behavior '" + s + "' (expected Removed, Isolated, "
                        + "MergedWithPrevious, MergedWithNext or Contiguous)");
            };
        }
    }

    /**
     * Splits {@code piece} at {@code spans} (which cover it, as from {@link Patterns#findMatches}) following
     * {@code behavior}, and appends the non-empty parts.
     */
    static void splitSpans(Piece piece, List<Patterns.Span> spans, Behavior behavior, List<Piece> out) {
        String s = piece.text();
        int n = spans.size();
        int[] starts = new int[n];
        int[] ends = new int[n];
        boolean[] remove = new boolean[n];
        int k = 0;
        switch (behavior) {
            case ISOLATED -> {
                for (Patterns.Span sp : spans) {
                    starts[k] = sp.start();
                    ends[k++] = sp.end();
                }
            }
            case REMOVED -> {
                for (Patterns.Span sp : spans) {
                    starts[k] = sp.start();
                    ends[k] = sp.end();
                    remove[k++] = sp.match();
                }
            }
            case CONTIGUOUS -> {
                boolean prevMatch = false;
                for (Patterns.Span sp : spans) {
                    if (sp.match() == prevMatch && k > 0) {
                        ends[k - 1] = sp.end();
                    } else {
                        starts[k] = sp.start();
                        ends[k++] = sp.end();
                    }
                    prevMatch = sp.match();
                }
            }
            case MERGED_WITH_PREVIOUS -> {
                boolean prevMatch = false;
                for (Patterns.Span sp : spans) {
                    if (sp.match() && !prevMatch && k > 0) {
                        ends[k - 1] = sp.end();
                    } else {
                        starts[k] = sp.start();
                        ends[k++] = sp.end();
                    }
                    prevMatch = sp.match();
                }
            }
            case MERGED_WITH_NEXT -> {
                // Walk backwards: a match joins the piece that follows it.
                int[] rs = new int[n];
                int[] re = new int[n];
                boolean prevMatch = false;
                for (int i = n - 1; i >= 0; i--) {
                    Patterns.Span sp = spans.get(i);
                    if (sp.match() && !prevMatch && k > 0) {
                        rs[k - 1] = sp.start();
                    } else {
                        rs[k] = sp.start();
                        re[k++] = sp.end();
                    }
                    prevMatch = sp.match();
                }
                for (int i = 0; i < k; i++) {
                    starts[i] = rs[k - 1 - i];
                    ends[i] = re[k - 1 - i];
                }
            }
        }
        for (int i = 0; i < k; i++) {
            if (remove[i] || starts[i] == ends[i]) {
                continue;
            }
            out.add(new Piece(s.substring(starts[i], ends[i]), piece.atStart() && starts[i] == 0));
        }
    }

    /** Spans where each character satisfying {@code p} is its own match (HF's char-predicate pattern). */
    static List<Patterns.Span> charSpans(String s, IntPredicate p) {
        List<Patterns.Span> out = new ArrayList<>();
        if (s.isEmpty()) {
            out.add(new Patterns.Span(0, 0, false));
            return out;
        }
        int last = 0;
        for (int i = 0; i < s.length(); ) {
            int cp = s.codePointAt(i);
            int len = Character.charCount(cp);
            if (p.test(cp)) {
                if (last < i) {
                    out.add(new Patterns.Span(last, i, false));
                }
                out.add(new Patterns.Span(i, i + len, true));
                last = i + len;
            }
            i += len;
        }
        if (last < s.length()) {
            out.add(new Patterns.Span(last, s.length(), false));
        }
        return out;
    }

    static List<Patterns.Span> invert(List<Patterns.Span> spans) {
        List<Patterns.Span> out = new ArrayList<>(spans.size());
        for (Patterns.Span sp : spans) {
            out.add(new Patterns.Span(sp.start(), sp.end(), !sp.match()));
        }
        return out;
    }

    /** Rust's {@code char::is_numeric}: Unicode general categories Nd, Nl and No. */
    static boolean isNumeric(int cp) {
        int t = Character.getType(cp);
        return t == Character.DECIMAL_DIGIT_NUMBER || t == Character.LETTER_NUMBER || t == Character.OTHER_NUMBER;
    }

    /** Parses a pre-tokenizer; JSON {@code null} gives {@code null} (each segment is one word). */
    static PreTokenizer fromJson(JsonNode n) {
        if (Json.isNull(n)) {
            return null;
        }
        String type = Json.type(n, "pre_tokenizer");
        String ctx = "pre_tokenizer " + type;
        switch (type) {
            case "Sequence": {
                List<PreTokenizer> list = new ArrayList<>();
                for (JsonNode c : Json.array(n, "pretokenizers", ctx)) {
                    PreTokenizer p = fromJson(c);
                    if (p != null) {
                        list.add(p);
                    }
                }
                PreTokenizer[] arr = list.toArray(new PreTokenizer[0]);
                return new PreTokenizer() {
                    @Override
                    public void split(Piece piece, List<Piece> out) {
                        out.addAll(apply(List.of(piece)));
                    }

                    @Override
                    public List<Piece> apply(List<Piece> pieces) {
                        for (PreTokenizer p : arr) {
                            pieces = p.apply(pieces);
                        }
                        return pieces;
                    }
                };
            }
            case "Metaspace":
                return metaspace(n, ctx);
            case "ByteLevel": {
                boolean addPrefixSpace = Json.boolOr(n, "add_prefix_space", true, ctx);
                boolean useRegex = Json.boolOr(n, "use_regex", true, ctx);
                return (piece, out) -> {
                    String s = piece.text();
                    if (addPrefixSpace && !s.isEmpty() && s.charAt(0) != ' ') {
                        s = " " + s;
                    }
                    Piece p = new Piece(s, piece.atStart());
                    List<Piece> parts = new ArrayList<>();
                    if (useRegex) {
                        splitSpans(p, Patterns.findMatches(ByteLevel.GPT2_REGEX, s), Behavior.ISOLATED, parts);
                    } else if (!s.isEmpty()) {
                        parts.add(p);
                    }
                    for (Piece q : parts) {
                        out.add(new Piece(ByteLevel.encode(q.text()), q.atStart()));
                    }
                };
            }
            case "Split": {
                Pattern pat = Patterns.compile(Json.field(n, "pattern", ctx), ctx);
                Behavior behavior = Behavior.parse(Json.text(n, "behavior", ctx), ctx);
                boolean invert = Json.boolOr(n, "invert", false, ctx);
                boolean emptyLiteral = "".equals(Patterns.literalText(pat));
                return (piece, out) -> {
                    List<Patterns.Span> spans = emptyLiteral
                            ? List.of(new Patterns.Span(0, piece.text().length(), false))
                            : Patterns.findMatches(pat, piece.text());
                    splitSpans(piece, invert ? invert(spans) : spans, behavior, out);
                };
            }
            case "Whitespace": {
                Pattern pat = Patterns.regex("\\w+|[^\\w\\s]+", ctx);
                return (piece, out) -> splitSpans(piece, invert(Patterns.findMatches(pat, piece.text())),
                        Behavior.REMOVED, out);
            }
            case "WhitespaceSplit":
                return (piece, out) -> splitSpans(piece, charSpans(piece.text(), Patterns::isWhitespace),
                        Behavior.REMOVED, out);
            case "CharDelimiterSplit": {
                int delim = Json.singleCodePoint(Json.text(n, "delimiter", ctx), ctx, "delimiter");
                return (piece, out) -> splitSpans(piece, charSpans(piece.text(), cp -> cp == delim),
                        Behavior.REMOVED, out);
            }
            case "Digits": {
                boolean individual = Json.boolOr(n, "individual_digits", false, ctx);
                Behavior b = individual ? Behavior.ISOLATED : Behavior.CONTIGUOUS;
                return (piece, out) -> splitSpans(piece, charSpans(piece.text(), PreTokenizer::isNumeric), b, out);
            }
            default:
                throw Json.error("pre_tokenizer type '" + type + "' is not supported (supported: Sequence, "
                        + "Metaspace, ByteLevel, Split, Whitespace, WhitespaceSplit, CharDelimiterSplit, Digits)");
        }
    }

    private static PreTokenizer metaspace(JsonNode n, String ctx) {
        int repl = Json.singleCodePoint(Json.textOr(n, "replacement", "\u2581", ctx), ctx, "replacement");
        String replStr = new String(Character.toChars(repl));
        String scheme = Json.textOr(n, "prepend_scheme", null, ctx);
        if (scheme == null) {
            // Files written before prepend_scheme existed carry add_prefix_space instead.
            scheme = Json.boolOr(n, "add_prefix_space", true, ctx) ? "always" : "never";
        }
        if (!scheme.equals("always") && !scheme.equals("first") && !scheme.equals("never")) {
            throw Json.error(ctx + ": prepend_scheme must be always, first or never, got '" + scheme + "'");
        }
        String prepend = scheme;
        boolean split = Json.boolOr(n, "split", true, ctx);
        return (piece, out) -> {
            String s = piece.text().replace(" ", replStr);
            boolean doPrepend = switch (prepend) {
                case "always" -> true;
                case "first" -> piece.atStart();
                default -> false;
            };
            if (doPrepend && !s.isEmpty() && !s.startsWith(replStr)) {
                s = replStr + s;
            }
            Piece p = new Piece(s, piece.atStart());
            if (split) {
                splitSpans(p, charSpans(s, cp -> cp == repl), Behavior.MERGED_WITH_NEXT, out);
            } else if (!s.isEmpty()) {
                out.add(p);
            }
        };
    }
}
