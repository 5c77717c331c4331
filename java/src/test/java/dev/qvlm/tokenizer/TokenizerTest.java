package dev.qvlm.tokenizer;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.qvlm.QvlmException;
import dev.qvlm.TestPaths;
import dev.qvlm.safetensors.SafeTensors;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class TokenizerTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final int IMAGE_ID = 579;

    private static Tokenizer tiny;
    private static Tokenizer real;
    private static long realLoadNanos;
    private static long realLoadCpuNanos;

    @BeforeAll
    static void loadTokenizers() {
        tiny = Tokenizer.load(TestPaths.tinyModel().resolve("tokenizer.json"));
        ThreadMXBean mx = ManagementFactory.getThreadMXBean();
        long c0 = mx.getCurrentThreadCpuTime();
        long t0 = System.nanoTime();
        real = Tokenizer.load(TestPaths.realTokenizer());
        realLoadNanos = System.nanoTime() - t0;
        realLoadCpuNanos = mx.getCurrentThreadCpuTime() - c0;
    }

    // ---------------------------------------------------------------- fixtures from HF

    @Test
    void goldenInputIdsMatchHuggingFace() throws IOException {
        JsonNode samples = JSON.readTree(TestPaths.golden().resolve("golden.json").toFile())
                .get("samples");
        assertEquals(4, samples.size());
        try (SafeTensors st = SafeTensors.open(TestPaths.golden().resolve("golden.safetensors"))) {
            for (int k = 0; k < samples.size(); k++) {
                String prompt = samples.get(k).get("prompt").asText();
                long[] golden = st.toLongArray("s" + k + ".input_ids");
                // The HF processor expands the single <image> token into 64 copies; collapse the run again.
                List<Integer> collapsed = new ArrayList<>();
                int images = 0;
                for (int i = 0; i < golden.length; i++) {
                    if (golden[i] == IMAGE_ID) {
                        images++;
                        if (i > 0 && golden[i - 1] == IMAGE_ID) {
                            continue;
                        }
                    }
                    collapsed.add((int) golden[i]);
                }
                assertEquals(64, images, "sample " + k + ": expected 64 image tokens in the golden ids");
                int[] expected = collapsed.stream().mapToInt(Integer::intValue).toArray();
                assertArrayEquals(expected, tiny.encode(prompt), "sample " + k + ": " + prompt);
            }
        }
    }

    @Test
    void realTokenizerMatchesKnownEncoding() {
        assertArrayEquals(new int[] {1, 15043, 1432, 711, 4518, 29892, 920, 526, 366, 29973},
                real.encode("Hello everyobdy, how are you?"));
        assertArrayEquals(new int[] {15043, 1432, 711, 4518, 29892, 920, 526, 366, 29973},
                real.encode("Hello everyobdy, how are you?", false));
        // Each segment around an added token gets its own ▁ from the Prepend normalizer: "▁\n" after <image>.
        assertArrayEquals(new int[] {1, 3148, 1001, 29901, 29871, 32000, 29871, 13, 18567},
                real.encode("USER: <image>\nHi"));
    }

    @Test
    void realTokenizerLoads() {
        // the load time is printed for the record, not asserted: speed belongs to benchmarks, not to unit tests
        System.out.printf("[TokenizerTest] 32k-vocab tokenizer.json (61,249 merges) loaded in %.1f ms "
                + "(%.1f ms CPU on the loading thread)%n", realLoadNanos / 1e6, realLoadCpuNanos / 1e6);
        assertEquals(32002, real.vocabSize());
    }

    @Test
    void vocabularyAccessors() {
        assertEquals(581, tiny.vocabSize());
        assertEquals(1, tiny.bosId());
        assertEquals(2, tiny.eosId());
        assertEquals(IMAGE_ID, tiny.tokenId("<image>"));
        assertEquals(580, tiny.tokenId("<pad>"));
        assertEquals(32000, real.tokenId("<image>"));
        assertEquals("<image>", real.tokenText(32000));
        assertEquals("▁Hello", real.tokenText(15043));
        assertEquals(15043, real.tokenId("▁Hello"));
        assertEquals("<0x0A>", real.tokenText(13));
        assertEquals(-1, real.tokenId("no-such-token"));
        assertNull(real.tokenText(99999));
        assertNull(real.tokenText(-1));
    }

    // ---------------------------------------------------------------- decode

    private static final String[] ROUND_TRIP = {
        "", "a", " a", "a ", "  a  b   c  ", "Hello world", "multiple   spaces   here", " leading", "trailing ",
        "\n", "\n\nHi\n\n", "line1\r\nline2", "tab\tseparated\tvalues", "\t\tindented",
        "emoji 😀🎉👍🏽 test", "CJK 你好世界 日本語 한국어", "accents: café naïve résumé Ångström ñ ü ß",
        "Ελληνικά Русский עברית العربية", "combining e\u0301 and nbsp\u00a0here", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 math",
        "1234567890 3.14159 -42", "$%^&*()_+-=[]{}|;':\",./<>?`~", "it's we're they've I'm you'll",
        "USER: How many objects are in the image?\nA. one\nB. two\nAnswer with the option's letter. ASSISTANT: B",
    };

    @Test
    void decodeInvertsEncodeOnBothTokenizers() {
        for (Tokenizer t : new Tokenizer[] {tiny, real}) {
            for (String text : ROUND_TRIP) {
                int[] ids = t.encode(text);
                assertEquals(text, t.decode(ids), "round trip of \"" + text + "\"");
                assertEquals(text, t.decode(t.encode(text, false), true), "round trip without BOS of \"" + text + "\"");
            }
        }
    }

    @Test
    void decodeSkipsOrKeepsSpecialTokens() {
        int[] ids = real.encode("USER: <image>\nHi");
        assertEquals("USER:  \nHi", real.decode(ids));
        assertEquals("USER:  \nHi", real.decode(ids, true));
        assertEquals("<s> USER: <image> \nHi", real.decode(ids, false));
    }

    // ---------------------------------------------------------------- prompt format

    @Test
    void answerLetterIsOneTokenAfterAssistant() throws IOException {
        String line = Files.readAllLines(TestPaths.data().resolve("eval.jsonl")).get(0);
        JsonNode rec = JSON.readTree(line);
        StringBuilder prompt = new StringBuilder("USER: <image>\n").append(rec.get("question").asText()).append('\n');
        JsonNode choices = rec.get("choices");
        for (int i = 0; i < choices.size(); i++) {
            prompt.append((char) ('A' + i)).append(". ").append(choices.get(i).asText()).append('\n');
        }
        prompt.append("Answer with the option's letter from the given choices directly. ASSISTANT:");
        for (Tokenizer t : new Tokenizer[] {tiny, real}) {
            int[] base = t.encode(prompt.toString());
            assertEquals(1, Arrays.stream(base).filter(id -> id == t.tokenId("<image>")).count());
            for (char letter = 'A'; letter <= 'D'; letter++) {
                int[] ids = t.encode(prompt + " " + letter);
                assertEquals(base.length + 1, ids.length, "\" " + letter + "\" must add exactly one token");
                assertArrayEquals(base, Arrays.copyOf(ids, base.length));
                int last = ids[ids.length - 1];
                assertEquals("▁" + letter, t.tokenText(last));
                assertTrue(t.decode(ids).endsWith("ASSISTANT: " + letter), t.decode(ids));
            }
        }
        assertArrayEquals(new int[] {363, 342}, tiny.encode("ASSISTANT: A", false));
        assertArrayEquals(new int[] {319, 1799, 9047, 13566, 29901, 319}, real.encode("ASSISTANT: A", false));
    }

    // ---------------------------------------------------------------- byte fallback

    @Test
    void byteFallbackForCharactersOutsideTheVocab() {
        // Neither tokenizer has the emoji: ▁ then its four UTF-8 bytes as <0xNN> tokens.
        int[] emoji = {29871, 243, 162, 155, 131};
        assertArrayEquals(emoji, real.encode("😀", false));
        String[] bytes = {"<0xF0>", "<0x9F>", "<0x98>", "<0x80>"};
        for (int i = 0; i < 4; i++) {
            assertEquals(bytes[i], real.tokenText(emoji[i + 1]));
        }
        // The tiny vocab lacks even 'é' and '中'.
        assertArrayEquals(new int[] {tiny.tokenId("▁"), tiny.tokenId("<0xE4>"), tiny.tokenId("<0xB8>"),
            tiny.tokenId("<0xAD>")}, tiny.encode("中", false));
        assertArrayEquals(new int[] {327, 198, 172, 320, 198, 172}, tiny.encode("été", false));
        assertEquals("été", tiny.decode(tiny.encode("été")));
        // Invalid UTF-8 from stray byte tokens decodes to one U+FFFD per byte, as in HF.
        assertEquals("\uFFFD\uFFFDa", real.decode(new int[] {243, 162, real.tokenId("a")}));
    }

    // ---------------------------------------------------------------- errors

    @Test
    void missingFileNamesTheFile(@TempDir Path dir) {
        Path missing = dir.resolve("nope/tokenizer.json");
        QvlmException e = assertThrows(QvlmException.class, () -> Tokenizer.load(missing));
        assertTrue(e.getMessage().contains(missing.toString()), e.getMessage());
        assertTrue(e.getMessage().contains("does not exist"), e.getMessage());
    }

    @Test
    void malformedJsonNamesTheFileAndTheProblem(@TempDir Path dir) throws IOException {
        Path bad = dir.resolve("tokenizer.json");
        Files.writeString(bad, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0,}");
        QvlmException e = assertThrows(QvlmException.class, () -> Tokenizer.load(bad));
        assertTrue(e.getMessage().contains(bad.toString()), e.getMessage());
        assertTrue(e.getMessage().contains("not valid JSON"), e.getMessage());

        Files.writeString(bad, "");
        e = assertThrows(QvlmException.class, () -> Tokenizer.load(bad));
        assertTrue(e.getMessage().contains(bad.toString()) && e.getMessage().contains("empty"), e.getMessage());

        Files.writeString(bad, "{\"version\": \"1.0\"}");
        e = assertThrows(QvlmException.class, () -> Tokenizer.load(bad));
        assertTrue(e.getMessage().contains(bad.toString()) && e.getMessage().contains("model"), e.getMessage());

        Files.writeString(bad, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a b\"]}}");
        e = assertThrows(QvlmException.class, () -> Tokenizer.load(bad));
        assertTrue(e.getMessage().contains(bad.toString()) && e.getMessage().contains("\"b\""), e.getMessage());

        Files.writeString(bad, "{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}");
        e = assertThrows(QvlmException.class, () -> Tokenizer.load(bad));
        assertTrue(e.getMessage().contains("Unigram"), e.getMessage());

        Files.writeString(bad, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []},"
                + " \"normalizer\": {\"type\": \"Precompiled\"}}");
        e = assertThrows(QvlmException.class, () -> Tokenizer.load(bad));
        assertTrue(e.getMessage().contains("Precompiled"), e.getMessage());
    }

    // ---------------------------------------------------------------- hand-built tokenizers

    private static Tokenizer loadJson(Path dir, String name, String json) throws IOException {
        Path p = dir.resolve(name);
        Files.writeString(p, json);
        return Tokenizer.load(p);
    }

    /** GPT-2 style: ByteLevel pre-tokenizer (regex split, byte-to-char mapping), "a b" merges, ByteLevel decoder. */
    private static String byteLevelJson(boolean addPrefixSpace) {
        return """
            {"version": "1.0", "truncation": null, "padding": null,
             "added_tokens": [{"id": 22, "content": "<|endoftext|>", "single_word": false, "lstrip": false,
                               "rstrip": false, "normalized": false, "special": true}],
             "normalizer": null,
             "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": %s, "trim_offsets": true, "use_regex": true},
             "post_processor": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false,
                                "use_regex": true},
             "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
             "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
               "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
               "vocab": {"H": 0, "e": 1, "l": 2, "o": 3, "Ġ": 4, "w": 5, "r": 6, "d": 7, "!": 8, "Ã": 9, "©": 10,
                         "Ċ": 11, "He": 12, "ll": 13, "Hell": 14, "Hello": 15, "Ġw": 16, "or": 17, "Ġwor": 18,
                         "ld": 19, "Ġworld": 20, "Ã©": 21},
               "merges": ["H e", "l l", "He ll", "Hell o", "Ġ w", "o r", "Ġw or", "l d", "Ġwor ld", "Ã ©"]}}
            """.formatted(addPrefixSpace);
    }

    @Test
    void byteLevelPreTokenizerLikeGpt2(@TempDir Path dir) throws IOException {
        Tokenizer t = loadJson(dir, "bl.json", byteLevelJson(false));
        // "Hello" | "Ġworld" | "!"; Ġworld is reached through ranks Ġw, or, Ġwor, ld, Ġworld.
        assertArrayEquals(new int[] {15, 20, 8}, t.encode("Hello world!"));
        // é is bytes C3 A9 -> "Ã©"; \n is byte 0A -> "Ċ" (U+010A), isolated by the \s+ branch of the regex.
        assertArrayEquals(new int[] {21, 11}, t.encode("é\n"));
        assertEquals("é\n", t.decode(new int[] {21, 11}));
        // Without a merge for "Ġ" + "H", the first space of a double space stays alone.
        assertArrayEquals(new int[] {15, 4, 20}, t.encode("Hello  world"));
        assertEquals("Hello  world", t.decode(t.encode("Hello  world")));
        // Leftmost pair first when ranks tie: l l | l.
        assertArrayEquals(new int[] {13, 2}, t.encode("lll"));
        // No merge joins w-or-ld without Ġ.
        assertArrayEquals(new int[] {5, 17, 19}, t.encode("world"));
        int[] withEot = t.encode("Hello<|endoftext|> world");
        assertArrayEquals(new int[] {15, 22, 20}, withEot);
        assertEquals("Hello world", t.decode(withEot));
        assertEquals("Hello<|endoftext|> world", t.decode(withEot, false));
        assertEquals(-1, t.bosId());
        assertEquals(23, t.vocabSize());

        Tokenizer prefixed = loadJson(dir, "bl2.json", byteLevelJson(true));
        assertArrayEquals(new int[] {20}, prefixed.encode("world"));
        assertArrayEquals(new int[] {4, 15, 20, 8}, prefixed.encode("Hello world!"));
        // The prefix space goes on each segment between added tokens.
        assertArrayEquals(new int[] {4, 15, 22, 20}, prefixed.encode("Hello<|endoftext|> world"));
    }

    /** SentencePiece style: Metaspace pre-tokenizer and decoder, [a, b] merges, fused unk. */
    private static String metaspaceJson(String scheme, boolean fuseUnk) {
        return """
            {"version": "1.0",
             "added_tokens": [
               {"id": 0, "content": "<unk>", "single_word": false, "lstrip": false, "rstrip": false,
                "normalized": false, "special": true},
               {"id": 20, "content": "[X]", "single_word": false, "lstrip": false, "rstrip": false,
                "normalized": false, "special": false}],
             "normalizer": null,
             "pre_tokenizer": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "%1$s", "split": true},
             "post_processor": null,
             "decoder": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "%1$s", "split": true},
             "model": {"type": "BPE", "dropout": null, "unk_token": "<unk>", "fuse_unk": %2$s,
               "byte_fallback": false,
               "vocab": {"<unk>": 0, "▁": 1, "H": 2, "e": 3, "y": 4, "f": 5, "r": 6, "i": 7, "n": 8, "d": 9,
                         "!": 10, "▁H": 11, "▁He": 12, "▁Hey": 13, "▁f": 14, "▁fr": 15, "ie": 16, "nd": 17,
                         "▁frie": 18, "▁friend": 19},
               "merges": [["▁", "H"], ["▁H", "e"], ["▁He", "y"], ["▁", "f"], ["▁f", "r"], ["i", "e"],
                          ["n", "d"], ["▁fr", "ie"], ["▁frie", "nd"]]}}
            """.formatted(scheme, fuseUnk);
    }

    @Test
    void metaspacePreTokenizer(@TempDir Path dir) throws IOException {
        Tokenizer always = loadJson(dir, "always.json", metaspaceJson("always", true));
        // "▁Hey" | "▁" | "▁" | "▁friend!" (split keeps each ▁ with the text after it).
        int[] ids = always.encode("Hey   friend!");
        assertArrayEquals(new int[] {13, 1, 1, 19, 10}, ids);
        assertEquals("Hey   friend!", always.decode(ids));
        // "always" prepends ▁ to the segment after an added token too.
        assertArrayEquals(new int[] {13, 20, 13}, always.encode("Hey[X]Hey"));
        assertEquals("Hey[X] Hey", always.decode(new int[] {13, 20, 13}));
        // z is unknown (no byte fallback): the two z fuse into one <unk>, which decode skips as special.
        assertArrayEquals(new int[] {12, 0}, always.encode("Hezz"));
        assertEquals("He", always.decode(new int[] {12, 0}));
        assertEquals("He<unk>", always.decode(new int[] {12, 0}, false));

        Tokenizer first = loadJson(dir, "first.json", metaspaceJson("first", true));
        // "first" prepends only at the very start of the input.
        assertArrayEquals(new int[] {13, 20, 2, 3, 4}, first.encode("Hey[X]Hey"));
        assertEquals("Hey[X]Hey", first.decode(new int[] {13, 20, 2, 3, 4}));

        Tokenizer never = loadJson(dir, "never.json", metaspaceJson("never", true));
        assertArrayEquals(new int[] {2, 3, 4, 1, 1, 19, 10}, never.encode("Hey   friend!"));
        assertArrayEquals(new int[] {13}, never.encode(" Hey"));
        assertEquals(" Hey", never.decode(new int[] {13}));

        Tokenizer unfused = loadJson(dir, "nofuse.json", metaspaceJson("always", false));
        assertArrayEquals(new int[] {12, 0, 0}, unfused.encode("Hezz"));
    }

    @Test
    void splitPreTokenizerBehaviors(@TempDir Path dir) throws IOException {
        String[] behaviors = {"Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous"};
        // Words as vocabulary entries; ignore_merges maps a pre-token found in the vocab straight to its id.
        String vocab = """
            {"a": 0, "b": 1, "-": 2, "a-": 3, "-b": 4, "--": 5, "a--": 6, "--b": 7}""";
        // "a--b" split on "-" (each dash a separate match).
        int[][] expected = {
            {0, 1},          // Removed: a | b
            {0, 2, 2, 1},    // Isolated: a | - | - | b
            {3, 2, 1},       // MergedWithPrevious: a- | - | b
            {0, 2, 4},       // MergedWithNext: a | - | -b
            {0, 5, 1},       // Contiguous: a | -- | b
        };
        for (int i = 0; i < behaviors.length; i++) {
            String json = """
                {"model": {"type": "BPE", "vocab": %s, "merges": [], "ignore_merges": true},
                 "pre_tokenizer": {"type": "Split", "pattern": {"String": "-"}, "behavior": "%s", "invert": false}}
                """.formatted(vocab, behaviors[i]);
            Tokenizer t = loadJson(dir, behaviors[i] + ".json", json);
            assertArrayEquals(expected[i], t.encode("a--b"), behaviors[i]);
            // No decoder: tokens are joined with spaces, as in HF.
            assertEquals(String.join(" ", Arrays.stream(expected[i]).mapToObj(t::tokenText).toList()),
                    t.decode(t.encode("a--b")));
        }
        // Regex pattern with invert: the matches are the words kept, the rest removed.
        Tokenizer inv = loadJson(dir, "inv.json", """
            {"model": {"type": "BPE", "vocab": %s, "merges": []},
             "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "[ab]"}, "behavior": "Removed", "invert": true}}
            """.formatted(vocab));
        assertArrayEquals(new int[] {0, 1}, inv.encode("a--b"));
    }

    @Test
    void normalizersAndTemplate(@TempDir Path dir) throws IOException {
        // NFKC turns the full-width letters into ASCII; Replace regex collapses whitespace; the template wraps.
        Tokenizer t = loadJson(dir, "norm.json", """
            {"added_tokens": [{"id": 3, "content": "<s>", "special": true, "normalized": false},
                              {"id": 4, "content": "</s>", "special": true, "normalized": false}],
             "normalizer": {"type": "Sequence", "normalizers": [{"type": "NFKC"},
                            {"type": "Replace", "pattern": {"Regex": "\\\\s+"}, "content": "_"}]},
             "post_processor": {"type": "TemplateProcessing",
               "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                          {"SpecialToken": {"id": "</s>", "type_id": 0}}],
               "special_tokens": {"<s>": {"id": "<s>", "ids": [3], "tokens": ["<s>"]},
                                  "</s>": {"id": "</s>", "ids": [4], "tokens": ["</s>"]}}},
             "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "_": 2, "a_": 5, "a_b": 6},
                       "merges": [["a", "_"], ["a_", "b"]]}}
            """);
        assertArrayEquals(new int[] {3, 6, 4}, t.encode("ａ \t b"));
        assertArrayEquals(new int[] {6}, t.encode("ａ \t b", false));
        assertEquals(3, t.bosId());
        assertEquals(4, t.eosId());
    }
}
