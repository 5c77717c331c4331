package dev.qvlm.serve;

import dev.qvlm.runtime.Llava;

import java.util.List;

/**
 * LLaVA-1.5's conversation template as llava-hf's chat_template renders it: each message is
 * {@code "ROLE: "} (no prefix for system), then one {@code "<image>\n"} per image, then each text part followed by a
 * space; the prompt ends with {@code "ASSISTANT:"}. One user turn with one image gives exactly
 * {@link Llava#PROMPT_TEMPLATE} ({@code "USER: <image>\n{text} ASSISTANT:"}), what {@code qvlm generate} uses, and
 * a text-only turn {@code "USER: {text} ASSISTANT:"}. Multi-turn:
 * {@code "USER: <image>\nQ1 ASSISTANT: A1 USER: Q2 ASSISTANT:"} (llava-hf puts no {@code </s>} between turns,
 * unlike the original LLaVA repository's conv_vicuna_v1).
 */
final class ChatTemplate {
    private ChatTemplate() {}

    static String render(List<ChatRequest.Message> messages) {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < messages.size(); i++) {
            ChatRequest.Message m = messages.get(i);
            if (!m.role().equals("system")) sb.append(m.role().toUpperCase(java.util.Locale.ROOT)).append(": ");
            for (int k = 0; k < m.imageUrls().size(); k++) sb.append(Llava.IMAGE_TOKEN).append('\n');
            for (int k = 0; k < m.texts().size(); k++) {
                String t = m.texts().get(k);
                // a literal <image> in text would become an image token without an image behind it
                if (t.contains(Llava.IMAGE_TOKEN))
                    throw ApiException.invalid("messages[" + i + "].content", "text must not contain the '<image>' token; send images as image_url parts");
                sb.append(t).append(' ');
            }
        }
        return sb.append("ASSISTANT:").toString();
    }
}
