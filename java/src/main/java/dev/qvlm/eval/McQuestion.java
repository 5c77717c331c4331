package dev.qvlm.eval;

import java.nio.file.Path;
import java.util.List;

/** One ScienceQA-format multiple-choice row. {@code image} is resolved against the data file's folder (or null). */
public record McQuestion(String id, String question, List<String> choices, int answer, Path image, String hint,
                         String task, int line) {
    public static final String LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";

    /**
     * The LLaVA-1.5 single-letter prompt (as in the fixtures' README and LLaVA's ScienceQA evaluation):
     * {@code USER: <image>\n[Context: hint\n]question\nA. c0\nB. c1...\nAnswer with the option's letter from the
     * given choices directly. ASSISTANT:}
     */
    public String prompt() {
        StringBuilder sb = new StringBuilder("USER: ");
        if (image != null) sb.append("<image>\n");
        if (hint != null && !hint.isBlank()) sb.append("Context: ").append(hint).append('\n');
        sb.append(question);
        for (int i = 0; i < choices.size(); i++) sb.append('\n').append(LETTERS.charAt(i)).append(". ").append(choices.get(i));
        sb.append("\nAnswer with the option's letter from the given choices directly. ASSISTANT:");
        return sb.toString();
    }
}
