package dev.qvlm.tokenizer;

import java.nio.charset.StandardCharsets;
import java.util.regex.Pattern;

/**
 * GPT-2's reversible byte-to-character mapping: printable Latin-1 bytes map to themselves, the other 68 bytes to
 * U+0100 onwards, so every byte string becomes a string of visible characters (a space becomes 'Ġ').
 */
final class ByteLevel {
    private ByteLevel() {
    }

    /** GPT-2's pre-tokenization regex. */
    static final Pattern GPT2_REGEX = Patterns.regex(
            "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+", "ByteLevel");

    /** BYTE_TO_CHAR[b] = the character that stands for byte b. */
    static final char[] BYTE_TO_CHAR = new char[256];
    /** CHAR_TO_BYTE[c] = the byte for character c, or -1; covers c &lt; 512. */
    static final int[] CHAR_TO_BYTE = new int[512];

    static {
        boolean[] direct = new boolean[256];
        for (int b = '!'; b <= '~'; b++) {
            direct[b] = true;
        }
        for (int b = 0xA1; b <= 0xAC; b++) {
            direct[b] = true;
        }
        for (int b = 0xAE; b <= 0xFF; b++) {
            direct[b] = true;
        }
        int n = 0;
        for (int b = 0; b < 256; b++) {
            BYTE_TO_CHAR[b] = direct[b] ? (char) b : (char) (256 + n++);
        }
        java.util.Arrays.fill(CHAR_TO_BYTE, -1);
        for (int b = 0; b < 256; b++) {
            CHAR_TO_BYTE[BYTE_TO_CHAR[b]] = b;
        }
    }

    /** The UTF-8 bytes of {@code s}, each written as its stand-in character. */
    static String encode(String s) {
        byte[] bytes = s.getBytes(StandardCharsets.UTF_8);
        char[] out = new char[bytes.length];
        for (int i = 0; i < bytes.length; i++) {
            out[i] = BYTE_TO_CHAR[bytes[i] & 0xFF];
        }
        return new String(out);
    }

    /**
     * Appends the bytes that {@code token} stands for. A token with a character outside the mapping (e.g. an added
     * token such as "&lt;image&gt;" containing a space) contributes its own UTF-8 bytes instead, as HF does.
     */
    static void decodeInto(String token, java.io.ByteArrayOutputStream out) {
        byte[] tmp = new byte[token.length()];
        for (int i = 0; i < token.length(); i++) {
            char c = token.charAt(i);
            int b = c < CHAR_TO_BYTE.length ? CHAR_TO_BYTE[c] : -1;
            if (b < 0) {
                out.writeBytes(token.getBytes(StandardCharsets.UTF_8));
                return;
            }
            tmp[i] = (byte) b;
        }
        out.write(tmp, 0, token.length());
    }
}
