package dev.qvlm.util;

import dev.qvlm.QvlmException;

import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Regex matching under a step budget. Patterns from untrusted files (a tokenizer.json pre-tokenizer or normalizer,
 * a compressed-tensors {@code re:} target) can backtrack catastrophically — {@code (a+)+$} takes 2^n steps on n
 * characters — and {@link java.util.regex} has no timeout. Every character the engine reads goes through
 * {@link Budgeted#charAt}, which counts; past the budget the match fails with a {@link QvlmException} naming the
 * pattern's source, so a hostile pattern costs at most a bounded number of steps, never a hang.
 */
public final class RegexBudget {
    /**
     * Character reads allowed per input character (plus a fixed floor): linear patterns such as GPT-2's or
     * LLaMA-3's read each character a handful of times; exponential backtracking blows past this at ~25 chars.
     */
    public static final long STEPS_PER_CHAR = 1_000;
    public static final long MIN_STEPS = 1_000_000;

    private RegexBudget() {}

    /** A matcher over {@code s} whose every character read is charged against the budget. */
    public static Matcher matcher(Pattern p, CharSequence s, String source) {
        long budget = MIN_STEPS + STEPS_PER_CHAR * s.length();
        return p.matcher(new Budgeted(s, new long[]{budget}, source, p));
    }

    private record Budgeted(CharSequence s, long[] left, String source, Pattern p) implements CharSequence {
        @Override
        public int length() {
            return s.length();
        }

        @Override
        public char charAt(int index) {
            if (--left[0] < 0)
                throw new QvlmException(source + ": regex " + Confine.quote(p.pattern())
                        + " needs too many steps (catastrophic backtracking?); refusing it");
            return s.charAt(index);
        }

        @Override
        public CharSequence subSequence(int start, int end) {
            return new Budgeted(s.subSequence(start, end), left, source, p);
        }

        @Override
        public String toString() {
            return s.toString();
        }
    }
}
