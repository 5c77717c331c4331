package dev.qvlm.tokenizer;

import com.fasterxml.jackson.databind.JsonNode;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.function.UnaryOperator;
import java.util.regex.Pattern;

/** A tokenizer.json "decoder": turns the token strings back into text, as a chain over the token list. */
interface Decoder {
    List<String> decodeChain(List<String> tokens);

    static Decoder fromJson(JsonNode n) {
        if (Json.isNull(n)) {
            return null;
        }
        String type = Json.type(n, "decoder");
        String ctx = "decoder " + type;
        switch (type) {
            case "Sequence": {
                List<Decoder> list = new ArrayList<>();
                for (JsonNode c : Json.array(n, "decoders", ctx)) {
                    Decoder d = fromJson(c);
                    if (d != null) {
                        list.add(d);
                    }
                }
                Decoder[] arr = list.toArray(new Decoder[0]);
                return tokens -> {
                    for (Decoder d : arr) {
                        tokens = d.decodeChain(tokens);
                    }
                    return tokens;
                };
            }
            case "Replace": {
                Pattern p = Patterns.compile(Json.field(n, "pattern", ctx), ctx);
                UnaryOperator<String> replace = Patterns.replacer(p, Json.text(n, "content", ctx));
                return tokens -> {
                    List<String> out = new ArrayList<>(tokens.size());
                    for (String t : tokens) {
                        out.add(replace.apply(t));
                    }
                    return out;
                };
            }
            case "ByteFallback":
                return Decoder::byteFallback;
            case "Fuse":
                return tokens -> List.of(String.join("", tokens));
            case "Strip": {
                int content = Json.singleCodePoint(Json.text(n, "content", ctx), ctx, "content");
                int start = Json.intOr(n, "start", 0, ctx);
                int stop = Json.intOr(n, "stop", 0, ctx);
                return tokens -> {
                    List<String> out = new ArrayList<>(tokens.size());
                    for (String t : tokens) {
                        out.add(strip(t, content, start, stop));
                    }
                    return out;
                };
            }
            case "Metaspace": {
                int repl = Json.singleCodePoint(Json.textOr(n, "replacement", "\u2581", ctx), ctx, "replacement");
                String scheme = Json.textOr(n, "prepend_scheme", null, ctx);
                boolean dropFirst = scheme == null ? Json.boolOr(n, "add_prefix_space", true, ctx)
                        : !scheme.equals("never");
                return tokens -> {
                    List<String> out = new ArrayList<>(tokens.size());
                    for (int i = 0; i < tokens.size(); i++) {
                        String t = tokens.get(i);
                        StringBuilder b = new StringBuilder(t.length());
                        for (int k = 0; k < t.length(); ) {
                            int cp = t.codePointAt(k);
                            k += Character.charCount(cp);
                            if (cp == repl) {
                                // HF drops every replacement character of the first token.
                                if (!(i == 0 && dropFirst)) {
                                    b.append(' ');
                                }
                            } else {
                                b.appendCodePoint(cp);
                            }
                        }
                        out.add(b.toString());
                    }
                    return out;
                };
            }
            case "ByteLevel":
                return tokens -> {
                    ByteArrayOutputStream bytes = new ByteArrayOutputStream();
                    for (String t : tokens) {
                        ByteLevel.decodeInto(t, bytes);
                    }
                    // Invalid UTF-8 becomes U+FFFD, like Rust's from_utf8_lossy.
                    return List.of(bytes.toString(StandardCharsets.UTF_8));
                };
            case "BPEDecoder": {
                String suffix = Json.textOr(n, "suffix", "</w>", ctx);
                return tokens -> {
                    List<String> out = new ArrayList<>(tokens.size());
                    for (int i = 0; i < tokens.size(); i++) {
                        out.add(tokens.get(i).replace(suffix, i == tokens.size() - 1 ? "" : " "));
                    }
                    return out;
                };
            }
            default:
                throw Json.error("decoder type '" + type + "' is not supported (supported: Sequence, Replace, "
                        + "ByteFallback, Fuse, Strip, Metaspace, ByteLevel, BPEDecoder)");
        }
    }

    /** Runs of "&lt;0xNN&gt;" tokens become the UTF-8 text they encode, or one U+FFFD per byte if invalid. */
    static List<String> byteFallback(List<String> tokens) {
        List<String> out = new ArrayList<>(tokens.size());
        ByteArrayOutputStream pending = new ByteArrayOutputStream();
        for (String t : tokens) {
            int b = parseByteToken(t);
            if (b >= 0) {
                pending.write(b);
                continue;
            }
            flushBytes(pending, out);
            out.add(t);
        }
        flushBytes(pending, out);
        return out;
    }

    private static int parseByteToken(String t) {
        if (t.length() != 6 || !t.startsWith("<0x") || t.charAt(5) != '>') {
            return -1;
        }
        int hi = hexDigit(t.charAt(3));
        int lo = hexDigit(t.charAt(4));
        return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
    }

    private static int hexDigit(char c) {
        if (c >= '0' && c <= '9') {
            return c - '0';
        }
        if (c >= 'a' && c <= 'f') {
            return c - 'a' + 10;
        }
        if (c >= 'A' && c <= 'F') {
            return c - 'A' + 10;
        }
        return -1;
    }

    private static void flushBytes(ByteArrayOutputStream pending, List<String> out) {
        if (pending.size() == 0) {
            return;
        }
        byte[] bytes = pending.toByteArray();
        pending.reset();
        try {
            out.add(StandardCharsets.UTF_8.newDecoder().decode(ByteBuffer.wrap(bytes)).toString());
        } catch (CharacterCodingException e) {
            for (int i = 0; i < bytes.length; i++) {
                out.add("\uFFFD");
            }
        }
    }

    /** Removes up to {@code start} leading and {@code stop} trailing {@code content} characters. */
    static String strip(String t, int content, int start, int stop) {
        int[] cps = t.codePoints().toArray();
        int a = 0;
        while (a < start && a < cps.length && cps[a] == content) {
            a++;
        }
        int b = cps.length;
        int removed = 0;
        while (removed < stop && b > a && cps[b - 1] == content) {
            b--;
            removed++;
        }
        return new String(cps, a, b - a);
    }
}
