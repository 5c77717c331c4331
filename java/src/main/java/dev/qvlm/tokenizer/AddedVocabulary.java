package dev.qvlm.tokenizer;

import com.fasterxml.jackson.databind.JsonNode;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The {@code added_tokens} of tokenizer.json. They are cut out of the input before normalization: tokens with
 * {@code normalized: false} are matched in the raw text, those with {@code normalized: true} in each normalized
 * segment (against their own normalized form). Matching is leftmost-longest; single_word, lstrip and rstrip behave
 * as in HF.
 */
final class AddedVocabulary {

    record AddedToken(int id, String content, boolean special, boolean singleWord, boolean lstrip, boolean rstrip,
                      boolean normalized) {
    }

    /** A part of a string: [start, end) and the added token it is, or {@code null} for ordinary text. */
    record Segment(int start, int end, AddedToken token) {
    }

    private final List<AddedToken> tokens;
    private final Map<String, Integer> contentToId = new HashMap<>();
    /** id -> the text the id stands for: the content, normalized for tokens flagged {@code normalized}. */
    private final Map<Integer, String> idText = new HashMap<>();
    private final Set<String> special = new HashSet<>();
    private final Trie rawTrie = new Trie();
    private final Trie normalizedTrie = new Trie();

    AddedVocabulary(List<AddedToken> tokens, Normalizer normalizer) {
        this.tokens = List.copyOf(tokens);
        for (AddedToken t : tokens) {
            contentToId.put(t.content(), t.id());
            if (t.special()) {
                special.add(t.content());
            }
        }
        for (AddedToken t : tokens) {
            if (t.normalized()) {
                String pattern = normalizer == null ? t.content() : normalizer.normalize(t.content());
                if (!pattern.isEmpty()) {
                    normalizedTrie.add(pattern, t);
                }
                // HF's id_to_token gives the normalized form of such tokens (e.g. "▁Foo▁Bar" for "Foo Bar").
                idText.put(t.id(), pattern);
            } else {
                rawTrie.add(t.content(), t);
                idText.put(t.id(), t.content());
            }
        }
    }

    static AddedVocabulary fromJson(JsonNode arr, Normalizer normalizer) {
        List<AddedToken> list = new ArrayList<>();
        if (!Json.isNull(arr)) {
            if (!arr.isArray()) {
                throw Json.error("added_tokens must be an array");
            }
            int i = 0;
            for (JsonNode t : arr) {
                String ctx = "added_tokens[" + i++ + "]";
                if (!t.isObject()) {
                    throw Json.error(ctx + ": expected an object");
                }
                JsonNode idNode = Json.field(t, "id", ctx);
                if (!idNode.isIntegralNumber() || !idNode.canConvertToInt() || idNode.intValue() < 0) {
                    throw Json.error(ctx + ": 'id' must be a non-negative integer, got " + idNode);
                }
                String content = Json.text(t, "content", ctx);
                if (content.isEmpty()) {
                    continue; // HF ignores empty added tokens
                }
                boolean special = Json.boolOr(t, "special", false, ctx);
                list.add(new AddedToken(idNode.intValue(), content, special,
                        Json.boolOr(t, "single_word", false, ctx),
                        Json.boolOr(t, "lstrip", false, ctx),
                        Json.boolOr(t, "rstrip", false, ctx),
                        Json.boolOr(t, "normalized", !special, ctx)));
            }
        }
        return new AddedVocabulary(list, normalizer);
    }

    List<AddedToken> tokens() {
        return tokens;
    }

    int tokenToId(String content) {
        Integer id = contentToId.get(content);
        return id == null ? -1 : id;
    }

    /** The text of added token {@code id} as HF's id_to_token gives it, or {@code null} if not an added token. */
    String idToText(int id) {
        return idText.get(id);
    }

    boolean isSpecial(String content) {
        return special.contains(content);
    }

    List<Segment> splitRaw(String s) {
        return split(s, rawTrie);
    }

    List<Segment> splitNormalized(String s) {
        return split(s, normalizedTrie);
    }

    /** HF's find_matches: covers {@code s} with text segments and added-token segments. */
    private static List<Segment> split(String s, Trie trie) {
        List<Segment> out = new ArrayList<>();
        int n = s.length();
        if (trie.isEmpty() || n == 0) {
            out.add(new Segment(0, n, null));
            return out;
        }
        int startOffset = 0;
        int from = 0;
        while (from < n) {
            Trie.Match m = trie.findLeftmostLongest(s, from);
            if (m == null) {
                break;
            }
            int start = m.start();
            int stop = m.end();
            from = stop;
            AddedToken t = m.token();
            if (t.singleWord()) {
                boolean startSpace = start == 0 || !Patterns.isWordChar(s.codePointBefore(start));
                boolean stopSpace = stop == n || !Patterns.isWordChar(s.codePointAt(stop));
                if (!startSpace || !stopSpace) {
                    continue;
                }
            }
            if (t.lstrip()) {
                int newStart = start;
                while (newStart > 0 && Patterns.isWhitespace(s.codePointBefore(newStart))) {
                    newStart -= Character.charCount(s.codePointBefore(newStart));
                }
                start = Math.max(newStart, startOffset);
            }
            if (t.rstrip()) {
                while (stop < n && Patterns.isWhitespace(s.codePointAt(stop))) {
                    stop += Character.charCount(s.codePointAt(stop));
                }
                from = stop;
            }
            if (startOffset < start) {
                out.add(new Segment(startOffset, start, null));
            }
            out.add(new Segment(start, stop, t));
            startOffset = stop;
        }
        if (startOffset != n) {
            out.add(new Segment(startOffset, n, null));
        }
        return out;
    }

    /** A character trie over the added-token strings. */
    static final class Trie {
        record Match(int start, int end, AddedToken token) {
        }

        private static final class Node {
            final Map<Character, Node> children = new HashMap<>(4);
            AddedToken token;
        }

        private final Node root = new Node();
        private boolean empty = true;

        void add(String pattern, AddedToken t) {
            Node node = root;
            for (int i = 0; i < pattern.length(); i++) {
                node = node.children.computeIfAbsent(pattern.charAt(i), c -> new Node());
            }
            if (node.token == null) { // the first token with this text wins, like aho-corasick's pattern order
                node.token = t;
            }
            empty = false;
        }

        boolean isEmpty() {
            return empty;
        }

        /** The leftmost match at or after {@code from}; among those starting there, the longest. */
        Match findLeftmostLongest(String s, int from) {
            int n = s.length();
            for (int i = from; i < n; i++) {
                Node node = root.children.get(s.charAt(i));
                if (node == null) {
                    continue;
                }
                AddedToken best = null;
                int bestEnd = -1;
                int j = i;
                while (node != null) {
                    j++;
                    if (node.token != null) {
                        best = node.token;
                        bestEnd = j;
                    }
                    if (j >= n) {
                        break;
                    }
                    node = node.children.get(s.charAt(j));
                }
                if (best != null) {
                    return new Match(i, bestEnd, best);
                }
            }
            return null;
        }
    }
}
