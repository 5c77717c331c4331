package dev.qvlm.quant;

import dev.qvlm.QvlmException;

import java.util.Locale;

/**
 * One uniform quantizer's settings: b bits, symmetric or asymmetric (min–max with 0 inside the range), and the
 * granularity its scale and zero point are shared over. Weights use TENSOR, CHANNEL (one per output row) or GROUP
 * (groupSize consecutive input columns of a row); activations use TENSOR (static, calibrated) or TOKEN (per row of
 * the activation, at run time).
 *
 * @param groupSize input columns per group for GROUP; 0 for every other granularity
 */
public record QuantArgs(int bits, boolean symmetric, Granularity granularity, int groupSize) {
    public static final int MIN_BITS = 2, MAX_BITS = 8;

    public enum Granularity { TENSOR, CHANNEL, GROUP, TOKEN }

    public QuantArgs {
        if (bits < MIN_BITS || bits > MAX_BITS)
            throw new QvlmException("quantization bits must be in " + MIN_BITS + ".." + MAX_BITS + ", got " + bits);
        if (granularity == null) throw new QvlmException("quantization granularity is missing");
        if (granularity == Granularity.GROUP) {
            if (groupSize <= 0)
                throw new QvlmException("group quantization needs a positive group size, got " + groupSize);
        } else {
            groupSize = 0;
        }
    }

    public static QuantArgs perTensor(int bits, boolean symmetric) {
        return new QuantArgs(bits, symmetric, Granularity.TENSOR, 0);
    }

    public static QuantArgs perChannel(int bits, boolean symmetric) {
        return new QuantArgs(bits, symmetric, Granularity.CHANNEL, 0);
    }

    public static QuantArgs perGroup(int bits, boolean symmetric, int groupSize) {
        return new QuantArgs(bits, symmetric, Granularity.GROUP, groupSize);
    }

    public static QuantArgs perToken(int bits, boolean symmetric) {
        return new QuantArgs(bits, symmetric, Granularity.TOKEN, 0);
    }

    /** Weight quantizer: per group of {@code groupSize} input columns, or per output channel when groupSize ≤ 0. */
    public static QuantArgs weights(int bits, boolean symmetric, int groupSize) {
        return groupSize > 0 ? perGroup(bits, symmetric, groupSize) : perChannel(bits, symmetric);
    }

    /** Number of codes, 2^b. Codes are stored unsigned, 0 .. 2^b − 1, for both modes. */
    public int levels() {
        return 1 << bits;
    }

    /** Largest code, 2^b − 1. */
    public int maxCode() {
        return (1 << bits) - 1;
    }

    /**
     * Divisor of the range: 2^b − 1 (asymmetric, the span max − min covers all steps) or 2^(b−1) − 1 (symmetric,
     * amax maps to the largest positive level; −2^(b−1) is reachable only after clipping), as in the reference rtn().
     */
    public int qmax() {
        return symmetric ? (1 << (bits - 1)) - 1 : (1 << bits) - 1;
    }

    /** The fixed unsigned zero point of symmetric quantization, 2^(b−1) (code = q + 2^(b−1)). */
    public int symmetricZero() {
        return 1 << (bits - 1);
    }

    /**
     * Input columns sharing one scale for a (rows × cols) weight: groupSize for GROUP, cols for CHANNEL,
     * rows·cols for TENSOR (one scale for the whole matrix). Call {@link #validateFor} first.
     */
    public int effectiveGroupSize(int rows, int cols) {
        return switch (granularity) {
            case GROUP -> groupSize;
            case CHANNEL -> cols;
            case TENSOR -> Math.multiplyExact(rows, cols);
            case TOKEN -> throw new QvlmException("per-token granularity applies to activations, not weights");
        };
    }

    /** Scales per weight row (1 for CHANNEL, cols / groupSize for GROUP); 0 for TENSOR (one scale in total). */
    public int groupsPerRow(int cols) {
        return switch (granularity) {
            case GROUP -> cols / groupSize;
            case CHANNEL -> 1;
            case TENSOR -> 0;
            case TOKEN -> throw new QvlmException("per-token granularity applies to activations, not weights");
        };
    }

    /** Checks that these settings can quantize the weight of a linear with {@code cols} input features. */
    public void validateFor(int cols, String layerName) {
        if (granularity == Granularity.TOKEN)
            throw new QvlmException(layerName + ": per-token granularity is for activations; weights need tensor, channel or group");
        if (granularity == Granularity.GROUP && (cols % groupSize != 0))
            throw new QvlmException(layerName + ": group size " + groupSize + " does not divide the input width " + cols
                    + " (use a divisor of " + cols + ", or per-channel quantization)");
    }

    /** A short label: int4 asym g128, int8 sym channel, int8 asym token, ... */
    public String label() {
        String g = switch (granularity) {
            case GROUP -> "g" + groupSize;
            case CHANNEL -> "channel";
            case TENSOR -> "tensor";
            case TOKEN -> "token";
        };
        return "int" + bits + " " + (symmetric ? "sym" : "asym") + " " + g;
    }

    @Override
    public String toString() {
        return label();
    }

    /**
     * Parses a bit-width setting "w4a16", "W8A8", "w4" (activations unquantized) into {weightBits, activationBits};
     * 16 (or more) activation bits mean "not quantized". Throws a QvlmException naming the text otherwise.
     */
    public static int[] parseBits(String spec) {
        String s = spec == null ? "" : spec.trim().toLowerCase(Locale.ROOT);
        java.util.regex.Matcher m = java.util.regex.Pattern.compile("w(\\d+)(?:a(\\d+))?").matcher(s);
        if (!m.matches())
            throw new QvlmException("bad bit setting '" + spec + "': expected wBaB like w4a16, w4a8 or w8a8");
        int w = Integer.parseInt(m.group(1));
        int a = m.group(2) == null ? 16 : Integer.parseInt(m.group(2));
        if (w < MIN_BITS || (w > MAX_BITS && w < 16))
            throw new QvlmException("bad bit setting '" + spec + "': weight bits must be in " + MIN_BITS + ".." + MAX_BITS
                    + " (or 16 for unquantized), got " + w);
        if (a < MIN_BITS || (a > MAX_BITS && a < 16))
            throw new QvlmException("bad bit setting '" + spec + "': activation bits must be in " + MIN_BITS + ".." + MAX_BITS
                    + " (or 16 for unquantized), got " + a);
        return new int[] {w, a};
    }

    /**
     * Parses a weight group setting: "g128" or "128" → 128; "channel", "g-1", "-1", "none" or "" → 0 (per output
     * channel).
     */
    public static int parseGroup(String spec) {
        String s = spec == null ? "" : spec.trim().toLowerCase(Locale.ROOT);
        if (s.isEmpty() || s.equals("channel") || s.equals("none") || s.equals("-1") || s.equals("g-1")) return 0;
        String digits = s.startsWith("g") ? s.substring(1) : s;
        try {
            int g = Integer.parseInt(digits);
            if (g <= 0) throw new NumberFormatException();
            return g;
        } catch (NumberFormatException e) {
            throw new QvlmException("bad group setting '" + spec + "': expected g<N> with N > 0 (e.g. g128) or 'channel'");
        }
    }

    /** Parses a granularity name: tensor, channel, token, or g&lt;N&gt; (group). */
    public static QuantArgs parse(int bits, boolean symmetric, String granularity) {
        String s = granularity == null ? "" : granularity.trim().toLowerCase(Locale.ROOT);
        return switch (s) {
            case "tensor" -> perTensor(bits, symmetric);
            case "channel", "" -> perChannel(bits, symmetric);
            case "token" -> perToken(bits, symmetric);
            default -> weights(bits, symmetric, parseGroup(s));
        };
    }
}
