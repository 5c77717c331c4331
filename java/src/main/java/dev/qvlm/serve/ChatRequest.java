package dev.qvlm.serve;

import com.fasterxml.jackson.databind.JsonNode;

import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * A parsed {@code POST /v1/chat/completions} body (OpenAI schema). Parsing is strict: a field the server does not
 * know, a wrong type or an out-of-range value is a 400 naming the parameter, so a client never silently gets
 * something other than what it asked for. Fields OpenAI defines that only have a neutral value here
 * (n = 1, penalties 0, logprobs false) are accepted with that value and refused otherwise.
 *
 * @param maxTokens null when the request names no limit
 * @param seed      null when absent (sampling then draws a random seed)
 * @param ignoreEos vLLM's extension: keep generating past end-of-sequence (benchmarks with fixed lengths)
 */
public record ChatRequest(String model, List<Message> messages, Integer maxTokens, float temperature, float topP,
                          Long seed, List<String> stop, boolean stream, boolean includeUsage, boolean ignoreEos) {

    /** One message: role system|user|assistant, its text parts and (user only) its image URLs, in order. */
    public record Message(String role, List<String> texts, List<String> imageUrls, List<String> imageParams) {}

    private static final Set<String> FIELDS = Set.of("model", "messages", "max_tokens", "max_completion_tokens",
            "temperature", "top_p", "seed", "stop", "stream", "stream_options", "n", "frequency_penalty",
            "presence_penalty", "logprobs", "user", "ignore_eos");

    static ChatRequest parse(JsonNode root) {
        if (root == null || !root.isObject()) throw ApiException.invalid(null, "the request body must be a JSON object");
        for (Iterator<String> it = root.fieldNames(); it.hasNext(); ) {
            String f = it.next();
            if (!FIELDS.contains(f)) throw ApiException.invalid(f, "unknown or unsupported parameter '" + f + "'");
        }
        String model = root.has("model") ? text(root.get("model"), "model") : null;
        JsonNode msgs = root.get("messages");
        if (msgs == null || !msgs.isArray() || msgs.isEmpty())
            throw ApiException.invalid("messages", "'messages' must be a non-empty array");
        List<Message> messages = new ArrayList<>();
        for (int i = 0; i < msgs.size(); i++) messages.add(message(msgs.get(i), "messages[" + i + "]"));
        if (!messages.getLast().role().equals("user"))
            throw ApiException.invalid("messages", "the last message must be from the user");
        Integer maxTokens = null;
        for (String f : new String[]{"max_tokens", "max_completion_tokens"})
            if (root.has(f) && !root.get(f).isNull()) {
                int v = integer(root.get(f), f);
                if (v < 1) throw ApiException.invalid(f, "'" + f + "' must be at least 1, got " + v);
                if (maxTokens != null && maxTokens != v)
                    throw ApiException.invalid(f, "max_tokens and max_completion_tokens disagree");
                maxTokens = v;
            }
        float temperature = (float) number(root, "temperature", 1.0);
        if (!(temperature >= 0 && temperature <= 2)) throw ApiException.invalid("temperature", "'temperature' must be in [0, 2]");
        float topP = (float) number(root, "top_p", 1.0);
        if (!(topP > 0 && topP <= 1)) throw ApiException.invalid("top_p", "'top_p' must be in (0, 1]");
        Long seed = null;
        if (root.has("seed") && !root.get("seed").isNull()) {
            JsonNode s = root.get("seed");
            if (!s.isIntegralNumber() || !s.canConvertToLong()) throw ApiException.invalid("seed", "'seed' must be an integer");
            seed = s.longValue();
        }
        List<String> stop = new ArrayList<>();
        JsonNode st = root.get("stop");
        if (st != null && !st.isNull()) {
            if (st.isTextual()) stop.add(st.textValue());
            else if (st.isArray()) for (int i = 0; i < st.size(); i++) stop.add(text(st.get(i), "stop"));
            else throw ApiException.invalid("stop", "'stop' must be a string or an array of strings");
            if (stop.size() > 4) throw ApiException.invalid("stop", "at most 4 stop sequences");
            for (String s : stop) if (s.isEmpty() || s.length() > 256) throw ApiException.invalid("stop", "stop sequences must have 1 to 256 characters");
        }
        boolean stream = bool(root, "stream", false);
        boolean includeUsage = false;
        JsonNode so = root.get("stream_options");
        if (so != null && !so.isNull()) {
            if (!so.isObject()) throw ApiException.invalid("stream_options", "'stream_options' must be an object");
            for (Iterator<Map.Entry<String, JsonNode>> it = so.fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> e = it.next();
                if (!e.getKey().equals("include_usage"))
                    throw ApiException.invalid("stream_options." + e.getKey(), "unknown parameter 'stream_options." + e.getKey() + "'");
            }
            includeUsage = bool(so, "include_usage", false);
        }
        if (root.has("n") && !root.get("n").isNull() && integer(root.get("n"), "n") != 1)
            throw ApiException.invalid("n", "only n = 1 is supported");
        for (String f : new String[]{"frequency_penalty", "presence_penalty"})
            if (number(root, f, 0) != 0) throw ApiException.invalid(f, "'" + f + "' is not supported (only 0)");
        if (bool(root, "logprobs", false)) throw ApiException.invalid("logprobs", "logprobs are not supported");
        if (root.has("user") && !root.get("user").isNull()) text(root.get("user"), "user");
        boolean ignoreEos = bool(root, "ignore_eos", false);
        return new ChatRequest(model, List.copyOf(messages), maxTokens, temperature, topP, seed, List.copyOf(stop),
                stream, includeUsage, ignoreEos);
    }

    private static Message message(JsonNode m, String where) {
        if (m == null || !m.isObject()) throw ApiException.invalid(where, where + " must be an object");
        for (Iterator<String> it = m.fieldNames(); it.hasNext(); ) {
            String f = it.next();
            if (!f.equals("role") && !f.equals("content") && !f.equals("name"))
                throw ApiException.invalid(where + "." + f, "unknown or unsupported message field '" + f + "'");
        }
        JsonNode r = m.get("role");
        if (r == null) throw ApiException.invalid(where + ".role", where + " has no role");
        String role = text(r, where + ".role");
        if (role.equals("developer")) role = "system";
        if (!role.equals("system") && !role.equals("user") && !role.equals("assistant"))
            throw ApiException.invalid(where + ".role", "role '" + role + "' is not supported (system, user, assistant)");
        JsonNode c = m.get("content");
        List<String> texts = new ArrayList<>(), images = new ArrayList<>(), params = new ArrayList<>();
        if (c == null || c.isNull()) throw ApiException.invalid(where + ".content", where + " has no content");
        if (c.isTextual()) texts.add(c.textValue());
        else if (c.isArray()) {
            for (int i = 0; i < c.size(); i++) {
                String pw = where + ".content[" + i + "]";
                JsonNode p = c.get(i);
                if (!p.isObject() || !p.has("type")) throw ApiException.invalid(pw, pw + " must be an object with a 'type'");
                String type = text(p.get("type"), pw + ".type");
                switch (type) {
                    case "text" -> {
                        only(p, pw, "type", "text");
                        if (p.get("text") == null) throw ApiException.invalid(pw + ".text", pw + " has no text");
                        texts.add(text(p.get("text"), pw + ".text"));
                    }
                    case "image_url" -> {
                        only(p, pw, "type", "image_url");
                        if (!role.equals("user")) throw ApiException.invalid(pw, "images are only accepted in user messages");
                        JsonNode iu = p.get("image_url");
                        String url;
                        if (iu == null) throw ApiException.invalid(pw + ".image_url", pw + " has no image_url");
                        if (iu.isTextual()) url = iu.textValue();
                        else if (iu.isObject()) {
                            only(iu, pw + ".image_url", "url", "detail");
                            if (iu.get("url") == null) throw ApiException.invalid(pw + ".image_url.url", pw + " has no image_url.url");
                            url = text(iu.get("url"), pw + ".image_url.url");
                        } else throw ApiException.invalid(pw + ".image_url", "image_url must be an object with a url");
                        images.add(url);
                        params.add(pw + ".image_url.url");
                    }
                    default -> throw ApiException.invalid(pw + ".type", "content part type '" + type + "' is not supported (text, image_url)");
                }
            }
        } else throw ApiException.invalid(where + ".content", "content must be a string or an array of parts");
        return new Message(role, List.copyOf(texts), List.copyOf(images), List.copyOf(params));
    }

    private static void only(JsonNode o, String where, String... allowed) {
        for (Iterator<String> it = o.fieldNames(); it.hasNext(); ) {
            String f = it.next();
            if (!List.of(allowed).contains(f)) throw ApiException.invalid(where + "." + f, "unknown field '" + f + "' in " + where);
        }
    }

    private static String text(JsonNode n, String param) {
        if (n == null || !n.isTextual()) throw ApiException.invalid(param, "'" + param + "' must be a string");
        return n.textValue();
    }

    private static int integer(JsonNode n, String param) {
        if (!n.isIntegralNumber() || !n.canConvertToInt()) throw ApiException.invalid(param, "'" + param + "' must be an integer");
        return n.intValue();
    }

    private static double number(JsonNode root, String f, double dflt) {
        JsonNode n = root.get(f);
        if (n == null || n.isNull()) return dflt;
        if (!n.isNumber()) throw ApiException.invalid(f, "'" + f + "' must be a number");
        return n.doubleValue();
    }

    private static boolean bool(JsonNode root, String f, boolean dflt) {
        JsonNode n = root.get(f);
        if (n == null || n.isNull()) return dflt;
        if (!n.isBoolean()) throw ApiException.invalid(f, "'" + f + "' must be true or false");
        return n.booleanValue();
    }
}
