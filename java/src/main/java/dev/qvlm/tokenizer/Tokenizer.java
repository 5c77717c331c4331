package dev.qvlm.tokenizer;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.qvlm.QvlmException;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * A Hugging Face {@code tokenizer.json} tokenizer (BPE model) in pure Java, producing the same ids as the
 * {@code tokenizers} library.
 *
 * <p>Encoding follows HF's pipeline: added tokens are cut out of the raw text first; each remaining segment is
 * normalized on its own (so with LLaMA's {@code Prepend("▁")} normalizer every segment gets its own ▁), split by the
 * pre-tokenizer into words, and each word is BPE-encoded; the post-processor then adds special tokens such as BOS.
 * Decoding maps ids to token strings (dropping special tokens if asked) and runs the decoder chain.
 *
 * <p>Supported: the BPE model (ranked merges as "a b" or [a, b], byte_fallback, unk_token, fuse_unk,
 * ignore_merges, continuing_subword_prefix, end_of_word_suffix); normalizers Sequence, Prepend, Replace, NFC, NFD,
 * NFKC, NFKD, Lowercase, Strip, StripAccents; pre-tokenizers Sequence, Metaspace, ByteLevel, Split, Whitespace,
 * WhitespaceSplit, CharDelimiterSplit, Digits; post-processors TemplateProcessing, Sequence, ByteLevel,
 * RobertaProcessing, BertProcessing; decoders Sequence, Replace, ByteFallback, Fuse, Strip, Metaspace, ByteLevel,
 * BPEDecoder. Anything else is rejected at load time with a {@link QvlmException}. The file's "truncation" and
 * "padding" settings are ignored (as transformers' tokenizers do by default): {@link #encode} never cuts or pads.
 *
 * <p>Instances are immutable apart from an internal word cache, and safe to share between threads.
 */
public final class Tokenizer {
    /** Field names are not interned: the 32k vocab keys would only fill the symbol table. */
    private static final JsonFactory JSON = JsonFactory.builder()
            .disable(JsonFactory.Feature.CANONICALIZE_FIELD_NAMES)
            .disable(JsonFactory.Feature.INTERN_FIELD_NAMES)
            .build();

    /** Largest tokenizer.json read: 256 MiB. */
    public static final long MAX_FILE_BYTES = 256L << 20;

    private final BpeModel model;
    private final AddedVocabulary added;
    private final Normalizer normalizer;
    private final PreTokenizer preTokenizer;
    private final PostProcessor postProcessor;
    private final Decoder decoder;
    private final int vocabSize;
    private final int bosId;
    private final int eosId;

    private Tokenizer(BpeModel model, AddedVocabulary added, Normalizer normalizer, PreTokenizer preTokenizer,
                      PostProcessor postProcessor, Decoder decoder) {
        this.model = model;
        this.added = added;
        this.normalizer = normalizer;
        this.preTokenizer = preTokenizer;
        this.postProcessor = postProcessor;
        this.decoder = decoder;
        Set<String> extra = new HashSet<>();
        for (AddedVocabulary.AddedToken t : added.tokens()) {
            if (model.tokenToId(t.content()) < 0) {
                extra.add(t.content());
            }
        }
        this.vocabSize = model.vocabSize() + extra.size();
        this.bosId = tokenId("<s>");
        this.eosId = tokenId("</s>");
    }

    /**
     * Loads a {@code tokenizer.json}.
     *
     * @throws QvlmException if the file is missing or unreadable, is not valid JSON, or uses a component or
     *                       option this implementation does not support; the message names the file and the problem
     */
    public static Tokenizer load(Path tokenizerJson) {
        byte[] bytes;
        try {
            // real tokenizer.json files are ≤ ~30 MB (large multilingual vocabularies); a bigger one only costs memory
            if (Files.isRegularFile(tokenizerJson) && Files.size(tokenizerJson) > MAX_FILE_BYTES)
                throw new QvlmException("tokenizer file " + tokenizerJson + " has " + Files.size(tokenizerJson)
                        + " bytes, more than the " + (MAX_FILE_BYTES >> 20) + " MiB limit");
            bytes = Files.readAllBytes(tokenizerJson);
        } catch (NoSuchFileException e) {
            throw new QvlmException("tokenizer file " + tokenizerJson + " does not exist");
        } catch (IOException e) {
            throw new QvlmException("cannot read tokenizer file " + tokenizerJson + ": " + e, e);
        }
        return fromBytes(bytes, tokenizerJson.toString());
    }

    /**
     * Parses the bytes of a {@code tokenizer.json}; {@code source} names them in errors. Same checks as
     * {@link #load}.
     */
    public static Tokenizer fromBytes(byte[] bytes, String source) {
        try (JsonParser p = JSON.createParser(bytes)) {
            return parse(p);
        } catch (JsonProcessingException e) {
            var loc = e.getLocation();
            throw new QvlmException("tokenizer file " + source + " is not valid JSON: "
                    + e.getOriginalMessage() + (loc == null ? "" : " (line " + loc.getLineNr()
                    + ", column " + loc.getColumnNr() + ")"), e);
        } catch (IOException e) {
            throw new QvlmException("cannot read tokenizer file " + source + ": " + e, e);
        } catch (Json.FormatError e) {
            throw new QvlmException("tokenizer file " + source + ": " + e.getMessage(), e);
        } catch (QvlmException e) {
            throw e;
        } catch (RuntimeException e) {
            // A shape the checks did not anticipate; still the file's fault, not a bug to crash on.
            throw new QvlmException("tokenizer file " + source + " has an unexpected structure: " + e, e);
        }
    }

    /**
     * Streams the top level: the big "model" object goes to {@link BpeModel#parse}, the other (small) components
     * are read as trees.
     */
    private static Tokenizer parse(JsonParser p) throws IOException {
        JsonToken first = p.nextToken();
        if (first == null) {
            throw Json.error("the file is empty");
        }
        if (first != JsonToken.START_OBJECT) {
            throw Json.error("expected a JSON object at the top level, got " + first);
        }
        ObjectNode root = Json.NODES.objectNode();
        BpeModel model = null;
        while (p.nextToken() == JsonToken.FIELD_NAME) {
            String name = p.currentName();
            JsonToken vt = p.nextToken();
            if (name.equals("model") && vt == JsonToken.START_OBJECT) {
                model = BpeModel.parse(p);
            } else {
                root.set(name, Json.readTree(p));
            }
        }
        if (p.nextToken() != null) {
            throw Json.error("unexpected content after the top-level object");
        }
        if (model == null) {
            throw Json.error("no 'model' object (is this a Hugging Face tokenizer.json?)");
        }
        Normalizer normalizer = Normalizer.fromJson(root.get("normalizer"));
        PreTokenizer preTokenizer = PreTokenizer.fromJson(root.get("pre_tokenizer"));
        PostProcessor post = PostProcessor.fromJson(root.get("post_processor"));
        Decoder decoder = Decoder.fromJson(root.get("decoder"));
        AddedVocabulary added = AddedVocabulary.fromJson(root.get("added_tokens"), normalizer);
        return new Tokenizer(model, added, normalizer, preTokenizer, post, decoder);
    }

    /** Encodes {@code text} with special tokens (e.g. BOS), like HF's {@code encode(text)}. */
    public int[] encode(String text) {
        return encode(text, true);
    }

    /** Encodes {@code text}; {@code addSpecialTokens} runs the post-processor (BOS etc.). */
    public int[] encode(String text, boolean addSpecialTokens) {
        IntList out = new IntList(text.length() / 2 + 8);
        for (AddedVocabulary.Segment seg : added.splitRaw(text)) {
            if (seg.token() != null) {
                out.add(seg.token().id());
                continue;
            }
            String raw = text.substring(seg.start(), seg.end());
            String norm = normalizer == null ? raw : normalizer.normalize(raw);
            for (AddedVocabulary.Segment sub : added.splitNormalized(norm)) {
                if (sub.token() != null) {
                    out.add(sub.token().id());
                    continue;
                }
                String piece = norm.substring(sub.start(), sub.end());
                if (piece.isEmpty()) {
                    continue;
                }
                boolean atStart = seg.start() == 0 && sub.start() == 0;
                if (preTokenizer == null) {
                    model.tokenize(piece, out);
                } else {
                    PreTokenizer.Piece whole = new PreTokenizer.Piece(piece, atStart);
                    for (PreTokenizer.Piece word : preTokenizer.apply(List.of(whole))) {
                        model.tokenize(word.text(), out);
                    }
                }
            }
        }
        int[] ids = out.toArray();
        return addSpecialTokens && postProcessor != null ? postProcessor.process(ids) : ids;
    }

    /** Decodes {@code ids}, skipping special tokens (HF's default). */
    public String decode(int[] ids) {
        return decode(ids, true);
    }

    /**
     * Decodes {@code ids} through the decoder chain. With {@code skipSpecialTokens}, added tokens flagged special
     * (BOS, EOS, &lt;image&gt;, ...) are left out. Ids outside the vocabulary are ignored, as in HF.
     */
    public String decode(int[] ids, boolean skipSpecialTokens) {
        List<String> tokens = new ArrayList<>(ids.length);
        for (int id : ids) {
            String t = tokenText(id);
            if (t == null || (skipSpecialTokens && added.isSpecial(t))) {
                continue;
            }
            tokens.add(t);
        }
        if (decoder == null) {
            return String.join(" ", tokens);
        }
        return String.join("", decoder.decodeChain(tokens));
    }

    /**
     * The raw vocabulary string of {@code id} (e.g. "▁Hello", "&lt;0x0A&gt;", "&lt;image&gt;"), or {@code null} if
     * there is none. As in HF, an added token flagged {@code normalized} gives its normalized form.
     */
    public String tokenText(int id) {
        String t = added.idToText(id);
        return t != null ? t : model.idToToken(id);
    }

    /** The id of the vocabulary string {@code token} (added tokens included), or -1. */
    public int tokenId(String token) {
        int id = added.tokenToId(token);
        return id >= 0 ? id : model.tokenToId(token);
    }

    /** The number of distinct tokens, added tokens included (HF's {@code get_vocab_size(true)}). */
    public int vocabSize() {
        return vocabSize;
    }

    /** The id of "&lt;s&gt;" (an added token, else a vocab entry), or -1 if there is none. */
    public int bosId() {
        return bosId;
    }

    /** The id of "&lt;/s&gt;" (an added token, else a vocab entry), or -1 if there is none. */
    public int eosId() {
        return eosId;
    }
}
