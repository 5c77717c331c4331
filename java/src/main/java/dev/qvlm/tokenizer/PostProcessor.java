package dev.qvlm.tokenizer;

import com.fasterxml.jackson.databind.JsonNode;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * A tokenizer.json "post_processor" for a single sequence: adds the special tokens (BOS etc.) around the encoded
 * ids. Only called when special tokens are requested.
 */
interface PostProcessor {
    int[] process(int[] ids);

    /** Parses a post-processor; JSON {@code null} gives {@code null}. */
    static PostProcessor fromJson(JsonNode n) {
        if (Json.isNull(n)) {
            return null;
        }
        String type = Json.type(n, "post_processor");
        String ctx = "post_processor " + type;
        switch (type) {
            case "Sequence": {
                List<PostProcessor> list = new ArrayList<>();
                for (JsonNode c : Json.array(n, "processors", ctx)) {
                    PostProcessor p = fromJson(c);
                    if (p != null) {
                        list.add(p);
                    }
                }
                PostProcessor[] arr = list.toArray(new PostProcessor[0]);
                return ids -> {
                    for (PostProcessor p : arr) {
                        ids = p.process(ids);
                    }
                    return ids;
                };
            }
            case "ByteLevel":
                return ids -> ids; // only adjusts offsets in HF
            case "TemplateProcessing":
                return template(n, ctx);
            case "RobertaProcessing":
            case "BertProcessing": {
                int cls = pairId(Json.field(n, "cls", ctx), ctx, "cls");
                int sep = pairId(Json.field(n, "sep", ctx), ctx, "sep");
                return ids -> {
                    int[] out = new int[ids.length + 2];
                    out[0] = cls;
                    System.arraycopy(ids, 0, out, 1, ids.length);
                    out[ids.length + 1] = sep;
                    return out;
                };
            }
            default:
                throw Json.error("post_processor type '" + type + "' is not supported (supported: "
                        + "TemplateProcessing, Sequence, ByteLevel, RobertaProcessing, BertProcessing)");
        }
    }

    private static int pairId(JsonNode pair, String ctx, String name) {
        if (!pair.isArray() || pair.size() != 2 || !pair.get(1).canConvertToInt()) {
            throw Json.error(ctx + ": '" + name + "' must be [token, id], got " + pair);
        }
        return pair.get(1).intValue();
    }

    private static PostProcessor template(JsonNode n, String ctx) {
        Map<String, int[]> specials = new HashMap<>();
        JsonNode st = n.get("special_tokens");
        if (!Json.isNull(st)) {
            if (!st.isObject()) {
                throw Json.error(ctx + ": 'special_tokens' must be an object");
            }
            for (Map.Entry<String, JsonNode> e : st.properties()) {
                JsonNode idsNode = Json.array(e.getValue(), "ids", ctx + " special token " + e.getKey());
                int[] ids = new int[idsNode.size()];
                for (int i = 0; i < ids.length; i++) {
                    if (!idsNode.get(i).canConvertToInt()) {
                        throw Json.error(ctx + ": special token " + e.getKey() + " has a non-integer id");
                    }
                    ids[i] = idsNode.get(i).intValue();
                }
                specials.put(e.getKey(), ids);
            }
        }
        JsonNode single = Json.field(n, "single", ctx);
        // Each item is the ids of a special token, or null for the sequence ($A).
        List<int[]> items = new ArrayList<>();
        if (single.isTextual()) {
            for (String piece : single.asText().trim().split("\\s+")) {
                if (piece.isEmpty()) {
                    continue;
                }
                if (piece.startsWith("$")) {
                    items.add(null);
                } else {
                    String name = piece.contains(":") ? piece.substring(0, piece.lastIndexOf(':')) : piece;
                    items.add(special(specials, name, ctx));
                }
            }
        } else if (single.isArray()) {
            for (JsonNode item : single) {
                if (item.has("Sequence")) {
                    String id = Json.textOr(item.get("Sequence"), "id", "A", ctx);
                    if (!id.equals("A")) {
                        throw Json.error(ctx + ": the single template refers to sequence " + id + ", expected A");
                    }
                    items.add(null);
                } else if (item.has("SpecialToken")) {
                    items.add(special(specials, Json.text(item.get("SpecialToken"), "id", ctx), ctx));
                } else {
                    throw Json.error(ctx + ": template item " + item + " is neither Sequence nor SpecialToken");
                }
            }
        } else {
            throw Json.error(ctx + ": 'single' must be a list or a string");
        }
        int[][] parts = items.toArray(new int[0][]);
        return ids -> {
            int len = 0;
            for (int[] p : parts) {
                len += p == null ? ids.length : p.length;
            }
            int[] out = new int[len];
            int k = 0;
            for (int[] p : parts) {
                int[] src = p == null ? ids : p;
                System.arraycopy(src, 0, out, k, src.length);
                k += src.length;
            }
            return out;
        };
    }

    private static int[] special(Map<String, int[]> specials, String name, String ctx) {
        int[] ids = specials.get(name);
        if (ids == null) {
            throw Json.error(ctx + ": template uses special token " + name + " missing from 'special_tokens'");
        }
        return ids;
    }
}
