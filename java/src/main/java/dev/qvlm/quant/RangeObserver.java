package dev.qvlm.quant;

import dev.qvlm.model.Linear;

import java.util.Arrays;

/**
 * Streaming statistics of one tensor's values over many calls (a linear's input over the calibration set), for
 * static activation ranges with percentile clipping: exact min/max, and quantiles from bounded memory in one pass.
 *
 * <p>The first {@code exactLimit} values (default 65,536) are kept as they are, so small inputs get exact
 * quantiles. Beyond that the values go into a histogram of {@code bins} equal bins (default 16,384, 128 KiB) that
 * always covers [min, max] seen so far. When a value falls outside, the bin width is multiplied by the smallest
 * power of two f with (bins − 1)·width·f &gt; max − min and the histogram re-anchored on an edge of the new grid
 * at or below min (every old edge stays an edge, so old bins merge whole into new ones: no value is ever re-binned
 * approximately). Consequently at least (bins − 1)/2 bins (8,191 by default) cover [min, max], i.e.
 * {@link #binWidth()} ≤ 2·(max − min)/(bins − 1).
 *
 * <p>Accuracy: a quantile is interpolated (numpy 'linear', position (N−1)·q) between two order statistics, each
 * estimated inside the bin that holds it (assuming its bin's values evenly spread) and clamped to the exact
 * [min, max]; the error is at most one bin width, about range/8192 by default, 1/550 of a 4-bit step (range/15).
 * q = 0 and q = 1 are exact. NaN values are ignored. Methods are synchronized: one observer may be fed from
 * several threads.
 */
public final class RangeObserver {
    public static final int DEFAULT_BINS = 16384;
    public static final int DEFAULT_EXACT_LIMIT = 1 << 16;

    private final int bins, exactLimit;
    private long count;
    private double min = Double.POSITIVE_INFINITY, max = Double.NEGATIVE_INFINITY;
    private float[] exact = new float[64];
    private int exactCount;
    private boolean exactSorted;
    private long[] hist;
    private double origin, width;

    public RangeObserver() {
        this(DEFAULT_BINS, DEFAULT_EXACT_LIMIT);
    }

    /** @param bins histogram bins (≥ 8192 keeps the ≥ 4096-bins-over-[min, max] guarantee); exactLimit values kept exactly first */
    public RangeObserver(int bins, int exactLimit) {
        if (bins < 16 || bins > 1 << 24) throw new IllegalArgumentException("bins must be in 16..2^24, got " + bins);
        if (exactLimit < 0) throw new IllegalArgumentException("exactLimit must be >= 0");
        this.bins = bins;
        this.exactLimit = exactLimit;
    }

    public synchronized void observe(float[] x, int off, int n) {
        if (n <= 0) return;
        double lo = min, hi = max;
        int valid = 0;
        for (int i = off, e = off + n; i < e; i++) {
            float v = x[i];
            if (v != v) continue;
            valid++;
            if (v < lo) lo = v;
            if (v > hi) hi = v;
        }
        if (valid == 0) return;
        min = lo;
        max = hi;
        count += valid;
        if (hist == null && exactCount + valid <= exactLimit) {
            if (exactCount + valid > exact.length)
                exact = Arrays.copyOf(exact, Math.min(exactLimit, Math.max(exactCount + valid, 2 * exact.length)));
            for (int i = off, e = off + n; i < e; i++) if (x[i] == x[i]) exact[exactCount++] = x[i];
            exactSorted = false;
            return;
        }
        if (hist == null) {
            start();
            for (int i = 0; i < exactCount; i++) add(exact[i]);
            exact = null;
            exactCount = 0;
        } else {
            cover();
        }
        for (int i = off, e = off + n; i < e; i++) if (x[i] == x[i]) add(x[i]);
    }

    /** A hook for {@link Linear#setInputQuantizer} that records a linear's inputs and leaves them unchanged. */
    public Linear.InputQuantizer asObserverHook() {
        return (x, off, rows, cols) -> observe(x, off, rows * cols);
    }

    private void start() {
        hist = new long[bins];
        double span = max - min;
        if (!(span > 0)) span = Math.max(Math.abs(min) * 0x1p-10, 0x1p-100); // all equal so far: any small span
        origin = max > min ? min : min - span / 2;
        width = span / bins * (1 + 0x1p-40); // a hair wider so max lands inside the last bin
    }

    /** Re-anchors and widens the histogram (power-of-two merges) until it covers [min, max]. */
    private void cover() {
        if (min >= origin && max < origin + bins * width) return;
        // New width f·width, f the smallest power of two with (bins − 1)·f·width > max − min; new origin
        // o2 = origin − m·f·width, the new-grid edge at or below min. Every old bin edge is a new one shifted by a
        // whole number of old bins, so old bin i lies inside new bin m + floor(i / f).
        double range = max - min;
        double f = 1;
        while ((bins - 1) * width * f <= range) f *= 2;
        long m;
        double o2;
        while (true) {
            double w2 = width * f;
            m = (long) Math.ceil((origin - min) / w2);
            o2 = origin - m * w2;
            if (o2 > min) o2 = origin - ++m * w2; // rounding
            if (o2 + bins * w2 > max) break;
            f *= 2;
        }
        long[] h2 = new long[bins];
        for (int i = 0; i < bins; i++) {
            if (hist[i] == 0) continue;
            long j = m + (long) Math.floor(i / f);
            h2[(int) Math.max(0, Math.min(bins - 1, j))] += hist[i];
        }
        hist = h2;
        origin = o2;
        width *= f;
    }

    private void add(float v) {
        int b = (int) ((v - origin) / width);
        hist[b < 0 ? 0 : Math.min(b, bins - 1)]++;
    }

    public synchronized long count() {
        return count;
    }

    public synchronized double min() {
        return min;
    }

    public synchronized double max() {
        return max;
    }

    /** Current histogram bin width: the bound on quantile error; 0 while all values are still kept exactly. */
    public synchronized double binWidth() {
        return hist == null ? 0 : width;
    }

    public int bins() {
        return bins;
    }

    /** {lo, hi}: the (1−p) and p quantiles, p ∈ (0, 1]; p = 1 gives the exact min and max. */
    public synchronized double[] bounds(double p) {
        Uniform.checkClip(p);
        if (count == 0) throw new IllegalStateException("no values observed");
        double a = quantile(1 - p), b = quantile(p);
        return new double[] {Math.min(a, b), Math.max(a, b)};
    }

    /** The q-quantile, q ∈ [0, 1], numpy 'linear' method; within {@link #binWidth()} of the exact value. */
    public synchronized double quantile(double q) {
        if (!(q >= 0 && q <= 1)) throw new IllegalArgumentException("quantile must be in [0, 1], got " + q);
        if (count == 0) throw new IllegalStateException("no values observed");
        double h = (count - 1) * q;
        long j = (long) Math.floor(h);
        if (j >= count - 1) return max;
        double t = h - j;
        double a = orderStatistic(j);
        return t == 0 ? a : Uniform.lerp(a, orderStatistic(j + 1), t);
    }

    /** The j-th smallest value (0-based): exact while values are kept, else estimated inside its bin. */
    private double orderStatistic(long j) {
        if (j <= 0) return min;
        if (j >= count - 1) return max;
        if (hist == null) {
            if (!exactSorted) {
                Arrays.sort(exact, 0, exactCount);
                exactSorted = true;
            }
            return exact[(int) j];
        }
        long cum = 0;
        for (int b = 0; b < bins; b++) {
            long c = hist[b];
            if (j < cum + c) {
                double v = origin + (b + (j - cum + 0.5) / c) * width;
                return Math.max(min, Math.min(max, v));
            }
            cum += c;
        }
        return max;
    }
}
