package dev.qvlm.tokenizer;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.io.IOException;

/**
 * Small helpers for reading the {@code tokenizer.json} tree. Every failure is a {@link FormatError} whose message
 * says which component and which field is wrong; {@link Tokenizer#load} prefixes it with the file name.
 */
final class Json {
    private Json() {
    }

    /** A problem with the content of tokenizer.json (not with the file as such). */
    static final class FormatError extends RuntimeException {
        private static final long serialVersionUID = 1L;

        FormatError(String message) {
            super(message);
        }
    }

    static final JsonNodeFactory NODES = JsonNodeFactory.instance;

    /**
     * Reads the value at the parser's current token as a tree. (Building nodes directly avoids creating an
     * ObjectMapper, whose start-up costs more than parsing a whole tokenizer.)
     */
    static JsonNode readTree(JsonParser p) throws IOException {
        JsonToken t = p.currentToken();
        if (t == null) {
            throw error("unexpected end of input");
        }
        switch (t) {
            case START_OBJECT: {
                ObjectNode o = NODES.objectNode();
                while (p.nextToken() == JsonToken.FIELD_NAME) {
                    String name = p.currentName();
                    p.nextToken();
                    o.set(name, readTree(p));
                }
                return o;
            }
            case START_ARRAY: {
                ArrayNode a = NODES.arrayNode();
                while (p.nextToken() != JsonToken.END_ARRAY) {
                    a.add(readTree(p));
                }
                return a;
            }
            case VALUE_STRING:
                return NODES.textNode(p.getText());
            case VALUE_NUMBER_INT:
                return switch (p.getNumberType()) {
                    case INT -> NODES.numberNode(p.getIntValue());
                    case LONG -> NODES.numberNode(p.getLongValue());
                    default -> NODES.numberNode(p.getBigIntegerValue());
                };
            case VALUE_NUMBER_FLOAT:
                return NODES.numberNode(p.getDoubleValue());
            case VALUE_TRUE:
                return NODES.booleanNode(true);
            case VALUE_FALSE:
                return NODES.booleanNode(false);
            case VALUE_NULL:
                return NODES.nullNode();
            default:
                throw error("unexpected JSON token " + t);
        }
    }

    static FormatError error(String message) {
        return new FormatError(message);
    }

    static boolean isNull(JsonNode n) {
        return n == null || n.isNull() || n.isMissingNode();
    }

    static JsonNode field(JsonNode obj, String name, String ctx) {
        JsonNode n = obj.get(name);
        if (isNull(n)) {
            throw error(ctx + ": missing field '" + name + "'");
        }
        return n;
    }

    static String text(JsonNode obj, String name, String ctx) {
        JsonNode n = field(obj, name, ctx);
        if (!n.isTextual()) {
            throw error(ctx + ": field '" + name + "' must be a string, got " + n.getNodeType());
        }
        return n.asText();
    }

    static String textOr(JsonNode obj, String name, String dflt, String ctx) {
        JsonNode n = obj.get(name);
        if (isNull(n)) {
            return dflt;
        }
        if (!n.isTextual()) {
            throw error(ctx + ": field '" + name + "' must be a string, got " + n.getNodeType());
        }
        return n.asText();
    }

    static boolean boolOr(JsonNode obj, String name, boolean dflt, String ctx) {
        JsonNode n = obj.get(name);
        if (isNull(n)) {
            return dflt;
        }
        if (!n.isBoolean()) {
            throw error(ctx + ": field '" + name + "' must be a boolean, got " + n.getNodeType());
        }
        return n.booleanValue();
    }

    static int intOr(JsonNode obj, String name, int dflt, String ctx) {
        JsonNode n = obj.get(name);
        if (isNull(n)) {
            return dflt;
        }
        if (!n.canConvertToInt() || !n.isIntegralNumber()) {
            throw error(ctx + ": field '" + name + "' must be an integer, got " + n);
        }
        return n.intValue();
    }

    static JsonNode array(JsonNode obj, String name, String ctx) {
        JsonNode n = field(obj, name, ctx);
        if (!n.isArray()) {
            throw error(ctx + ": field '" + name + "' must be an array, got " + n.getNodeType());
        }
        return n;
    }

    static String type(JsonNode obj, String ctx) {
        if (obj == null || !obj.isObject()) {
            throw error(ctx + ": expected an object, got " + (obj == null ? "nothing" : obj.getNodeType()));
        }
        return text(obj, "type", ctx);
    }

    /** Exactly one code point, as HF's {@code char} fields require. */
    static int singleCodePoint(String s, String ctx, String name) {
        if (s.isEmpty() || s.codePointCount(0, s.length()) != 1) {
            throw error(ctx + ": field '" + name + "' must be a single character, got \"" + s + "\"");
        }
        return s.codePointAt(0);
    }
}
