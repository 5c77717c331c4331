package dev.qvlm.tokenizer;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * HF's BPE model: a word is split into characters (unknown ones become byte-fallback tokens {@code <0xNN>} or the
 * unk token), then the adjacent pair with the lowest merge rank is merged, leftmost first, until no ranked pair is
 * left. Merging uses a heap of candidate pairs over a linked list of symbols, O(n log n) per word, and finished
 * words are cached. Thread-safe.
 */
final class BpeModel {
    private static final int CACHE_CAPACITY = 10_000;
    /** Words longer than this (in UTF-16 units) are not cached, to keep the cache's memory bounded. */
    private static final int CACHE_MAX_WORD = 256;

    private final Map<String, Integer> vocab;
    private final String[] idToToken;
    private final PairMap merges;
    private final int unkId;
    private final boolean fuseUnk;
    private final boolean byteFallback;
    private final boolean ignoreMerges;
    private final String prefix;
    private final String suffix;
    /** byteIds[b] = id of "&lt;0xNN&gt;", or -1. */
    private final int[] byteIds = new int[256];
    /** Finished words: word -> ids. Bounded; once full, new words are not cached (like HF's cache). */
    private final ConcurrentHashMap<String, int[]> cache = new ConcurrentHashMap<>();

    private BpeModel(Map<String, Integer> vocab, String[] idToToken, PairMap merges, int unkId, boolean fuseUnk,
                     boolean byteFallback, boolean ignoreMerges, String prefix, String suffix) {
        this.vocab = vocab;
        this.idToToken = idToToken;
        this.merges = merges;
        this.unkId = unkId;
        this.fuseUnk = fuseUnk;
        this.byteFallback = byteFallback;
        this.ignoreMerges = ignoreMerges;
        this.prefix = prefix;
        this.suffix = suffix;
        for (int b = 0; b < 256; b++) {
            Integer id = vocab.get(byteToken(b));
            byteIds[b] = id == null ? -1 : id;
        }
    }

    static String byteToken(int b) {
        return String.format("<0x%02X>", b);
    }

    /**
     * Reads the "model" object with a streaming parser positioned on its START_OBJECT. The vocab and merges (the
     * bulk of the file) are streamed straight into the model's tables; the other fields are small and read as trees.
     */
    static BpeModel parse(JsonParser p) throws IOException {
        String ctx = "model";
        ObjectNode opts = Json.NODES.objectNode();
        Map<String, Integer> vocab = null;
        int maxId = -1;
        List<String> mergePairs = null; // a0, b0, a1, b1, ...
        JsonToken t;
        while ((t = p.nextToken()) == JsonToken.FIELD_NAME) {
            String name = p.currentName();
            JsonToken vt = p.nextToken();
            if (name.equals("vocab") && vt == JsonToken.START_OBJECT) {
                vocab = new HashMap<>(1 << 16);
                while (p.nextToken() == JsonToken.FIELD_NAME) {
                    String tok = p.currentName();
                    if (p.nextToken() != JsonToken.VALUE_NUMBER_INT || p.getValueAsLong() < 0
                            || p.getValueAsLong() > Integer.MAX_VALUE - 1) {
                        throw Json.error(ctx + ": vocab entry \"" + tok + "\" has id " + p.getText()
                                + ", expected a non-negative integer");
                    }
                    int id = p.getIntValue();
                    vocab.put(tok, id);
                    maxId = Math.max(maxId, id);
                }
            } else if (name.equals("merges") && vt == JsonToken.START_ARRAY) {
                mergePairs = new ArrayList<>(1 << 17);
                JsonToken mt;
                while ((mt = p.nextToken()) != JsonToken.END_ARRAY) {
                    int rank = mergePairs.size() / 2;
                    if (mt == JsonToken.VALUE_STRING) {
                        String m = p.getText();
                        int sp = m.indexOf(' ');
                        if (sp < 0 || m.indexOf(' ', sp + 1) >= 0) {
                            throw Json.error(ctx + ": merge #" + rank + " \"" + m + "\" must be two tokens "
                                    + "separated by one space");
                        }
                        mergePairs.add(m.substring(0, sp));
                        mergePairs.add(m.substring(sp + 1));
                    } else if (mt == JsonToken.START_ARRAY && p.nextToken() == JsonToken.VALUE_STRING) {
                        String a = p.getText();
                        if (p.nextToken() != JsonToken.VALUE_STRING) {
                            throw Json.error(ctx + ": merge #" + rank + " must be [\"a\", \"b\"]");
                        }
                        String b = p.getText();
                        if (p.nextToken() != JsonToken.END_ARRAY) {
                            throw Json.error(ctx + ": merge #" + rank + " must be [\"a\", \"b\"]");
                        }
                        mergePairs.add(a);
                        mergePairs.add(b);
                    } else {
                        throw Json.error(ctx + ": merge #" + rank + " must be \"a b\" or [\"a\", \"b\"]");
                    }
                }
            } else {
                opts.set(name, Json.readTree(p));
            }
        }
        String type = Json.textOr(opts, "type", "BPE", ctx);
        if (!type.equals("BPE")) {
            throw Json.error("model type '" + type + "' is not supported (only BPE)");
        }
        ctx = "model BPE";
        // Other shapes of vocab/merges were kept in opts so that an unsupported type is reported first.
        if (vocab == null) {
            throw Json.error(ctx + (Json.isNull(opts.get("vocab")) ? ": missing field 'vocab'"
                    : ": 'vocab' must be an object mapping token to id, got " + opts.get("vocab").getNodeType()));
        }
        if (!Json.isNull(opts.get("merges"))) {
            throw Json.error(ctx + ": 'merges' must be an array, got " + opts.get("merges").getNodeType());
        }
        JsonNode dropout = opts.get("dropout");
        if (!Json.isNull(dropout) && dropout.asDouble() != 0.0) {
            throw Json.error(ctx + ": dropout " + dropout + " is not supported (inference needs deterministic BPE)");
        }
        String[] idToToken = new String[maxId + 1];
        for (Map.Entry<String, Integer> e : vocab.entrySet()) {
            idToToken[e.getValue()] = e.getKey();
        }
        String prefix = Json.textOr(opts, "continuing_subword_prefix", null, ctx);
        String suffix = Json.textOr(opts, "end_of_word_suffix", null, ctx);
        int nMerges = mergePairs == null ? 0 : mergePairs.size() / 2;
        PairMap merges = new PairMap(nMerges);
        for (int rank = 0; rank < nMerges; rank++) {
            String a = mergePairs.get(2 * rank);
            String b = mergePairs.get(2 * rank + 1);
            Integer ia = vocab.get(a);
            Integer ib = vocab.get(b);
            String merged = a + (prefix != null && b.startsWith(prefix) ? b.substring(prefix.length()) : b);
            Integer im = vocab.get(merged);
            if (ia == null || ib == null || im == null) {
                String missing = ia == null ? a : ib == null ? b : merged;
                throw Json.error(ctx + ": merge #" + rank + " (" + a + ", " + b + ") uses token \"" + missing
                        + "\" that is not in the vocab");
            }
            merges.put(ia, ib, rank, im);
        }
        String unk = Json.textOr(opts, "unk_token", null, ctx);
        int unkId = -1;
        if (unk != null) {
            Integer id = vocab.get(unk);
            if (id == null) {
                throw Json.error(ctx + ": unk_token \"" + unk + "\" is not in the vocab");
            }
            unkId = id;
        }
        return new BpeModel(vocab, idToToken, merges, unkId,
                Json.boolOr(opts, "fuse_unk", false, ctx),
                Json.boolOr(opts, "byte_fallback", false, ctx),
                Json.boolOr(opts, "ignore_merges", false, ctx),
                prefix, suffix);
    }

    int vocabSize() {
        return vocab.size();
    }

    int tokenToId(String token) {
        Integer id = vocab.get(token);
        return id == null ? -1 : id;
    }

    String idToToken(int id) {
        return id >= 0 && id < idToToken.length ? idToToken[id] : null;
    }

    /** Appends the ids of {@code word} to {@code out}. */
    void tokenize(String word, IntList out) {
        if (word.isEmpty()) {
            return;
        }
        if (ignoreMerges) {
            Integer id = vocab.get(word);
            if (id != null) {
                out.add(id);
                return;
            }
        }
        int[] hit = cache.get(word);
        if (hit == null) {
            hit = mergeWord(word);
            if (word.length() <= CACHE_MAX_WORD && cache.size() < CACHE_CAPACITY) {
                cache.putIfAbsent(word, hit);
            }
        }
        out.addAll(hit);
    }

    private int[] mergeWord(String w) {
        IntList syms = new IntList(w.length() + 4);
        int unk = -1; // pending unk run: id, or -1 for none
        int n = w.length();
        for (int i = 0; i < n; ) {
            int cp = w.codePointAt(i);
            int end = i + Character.charCount(cp);
            String s = w.substring(i, end);
            if (prefix != null && i > 0) {
                s = prefix + s;
            }
            if (suffix != null && end == n) {
                s = s + suffix;
            }
            i = end;
            Integer id = vocab.get(s);
            if (id != null) {
                if (unk >= 0) {
                    syms.add(unk);
                    unk = -1;
                }
                syms.add(id);
                continue;
            }
            if (byteFallback) {
                byte[] bytes = s.getBytes(StandardCharsets.UTF_8);
                boolean all = true;
                for (byte b : bytes) {
                    if (byteIds[b & 0xFF] < 0) {
                        all = false;
                        break;
                    }
                }
                if (all) {
                    // As in HF, a pending unk run is not flushed before byte-fallback tokens.
                    for (byte b : bytes) {
                        syms.add(byteIds[b & 0xFF]);
                    }
                    continue;
                }
            }
            if (unkId >= 0) {
                if (unk >= 0 && !fuseUnk) {
                    syms.add(unk);
                }
                unk = unkId;
            }
            // Without an unk token the character is dropped, as in HF.
        }
        if (unk >= 0) {
            syms.add(unk);
        }
        return mergeAll(syms.toArray());
    }

    /** Applies the ranked merges to the symbol ids {@code c}; returns the final ids. */
    private int[] mergeAll(int[] c) {
        int n = c.length;
        if (n < 2) {
            return c;
        }
        int[] prev = new int[n];
        int[] next = new int[n];
        boolean[] dead = new boolean[n];
        for (int i = 0; i < n; i++) {
            prev[i] = i - 1;
            next[i] = i + 1 < n ? i + 1 : -1;
        }
        // Heap entries: rank << 32 | position; the smallest is the lowest rank, then leftmost.
        LongHeap heap = new LongHeap(n);
        for (int i = 0; i + 1 < n; i++) {
            long m = merges.get(c[i], c[i + 1]);
            if (m >= 0) {
                heap.push((m & 0xFFFFFFFF00000000L) | i);
            }
        }
        int alive = n;
        while (!heap.isEmpty()) {
            long top = heap.pop();
            int pos = (int) top;
            int rank = (int) (top >>> 32);
            if (dead[pos] || next[pos] < 0) {
                continue;
            }
            int right = next[pos];
            long m = merges.get(c[pos], c[right]);
            // An entry is stale when the pair at pos changed since it was queued.
            if (m < 0 || (int) (m >>> 32) != rank) {
                continue;
            }
            c[pos] = (int) m;
            dead[right] = true;
            alive--;
            int rn = next[right];
            next[pos] = rn;
            if (rn >= 0) {
                prev[rn] = pos;
            }
            int p = prev[pos];
            if (p >= 0) {
                long pm = merges.get(c[p], c[pos]);
                if (pm >= 0) {
                    heap.push((pm & 0xFFFFFFFF00000000L) | p);
                }
            }
            if (rn >= 0) {
                long nm = merges.get(c[pos], c[rn]);
                if (nm >= 0) {
                    heap.push((nm & 0xFFFFFFFF00000000L) | pos);
                }
            }
        }
        int[] out = new int[alive];
        int k = 0;
        for (int i = 0; i >= 0; i = next[i]) {
            out[k++] = c[i];
        }
        return out;
    }

    /** Open-addressing map from a pair of ids to (rank &lt;&lt; 32 | merged id); absent pairs give -1. */
    static final class PairMap {
        private long[] keys;
        private long[] values;
        private int size;
        private int mask;

        PairMap(int expected) {
            int cap = Integer.highestOneBit(Math.max(16, expected * 2) - 1) << 1;
            keys = new long[cap];
            values = new long[cap];
            Arrays.fill(keys, -1L);
            mask = cap - 1;
        }

        private static long key(int a, int b) {
            return ((long) a << 32) | (b & 0xFFFFFFFFL);
        }

        private static int slot(long k, int mask) {
            long h = k * 0x9E3779B97F4A7C15L;
            return (int) (h ^ (h >>> 29)) & mask;
        }

        /** Later entries for the same pair replace earlier ones, as in HF. */
        void put(int a, int b, int rank, int merged) {
            if ((size + 1) * 2 > keys.length) {
                grow();
            }
            long k = key(a, b);
            int i = slot(k, mask);
            while (keys[i] != -1L && keys[i] != k) {
                i = (i + 1) & mask;
            }
            if (keys[i] == -1L) {
                size++;
            }
            keys[i] = k;
            values[i] = ((long) rank << 32) | (merged & 0xFFFFFFFFL);
        }

        long get(int a, int b) {
            long k = key(a, b);
            int i = slot(k, mask);
            while (true) {
                long x = keys[i];
                if (x == k) {
                    return values[i];
                }
                if (x == -1L) {
                    return -1L;
                }
                i = (i + 1) & mask;
            }
        }

        private void grow() {
            long[] ok = keys;
            long[] ov = values;
            keys = new long[ok.length * 2];
            values = new long[ok.length * 2];
            Arrays.fill(keys, -1L);
            mask = keys.length - 1;
            for (int i = 0; i < ok.length; i++) {
                if (ok[i] != -1L) {
                    int j = slot(ok[i], mask);
                    while (keys[j] != -1L) {
                        j = (j + 1) & mask;
                    }
                    keys[j] = ok[i];
                    values[j] = ov[i];
                }
            }
        }
    }

    /** Binary min-heap of longs. */
    static final class LongHeap {
        private long[] a;
        private int n;

        LongHeap(int capacity) {
            a = new long[Math.max(4, capacity)];
        }

        boolean isEmpty() {
            return n == 0;
        }

        void push(long v) {
            if (n == a.length) {
                a = Arrays.copyOf(a, n * 2);
            }
            int i = n++;
            while (i > 0) {
                int p = (i - 1) >>> 1;
                if (a[p] <= v) {
                    break;
                }
                a[i] = a[p];
                i = p;
            }
            a[i] = v;
        }

        long pop() {
            long top = a[0];
            long v = a[--n];
            int i = 0;
            int half = n >>> 1;
            while (i < half) {
                int c = 2 * i + 1;
                if (c + 1 < n && a[c + 1] < a[c]) {
                    c++;
                }
                if (v <= a[c]) {
                    break;
                }
                a[i] = a[c];
                i = c;
            }
            a[i] = v;
            return top;
        }
    }
}
