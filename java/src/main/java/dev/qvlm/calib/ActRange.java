package dev.qvlm.calib;

/**
 * Static activation statistics of one linear's input over the calibration set, in two passes with bounded memory:
 * pass 1 exact min/max, pass 2 a histogram of {@value #BINS} bins over [min, max]. Quantiles for percentile
 * clipping are read from the histogram (linear inside a bin), so their error is at most one bin, range/4096,
 * far below a 4-bit step (range/15).
 */
public final class ActRange {
    public static final int BINS = 4096;
    private double min = Double.POSITIVE_INFINITY, max = Double.NEGATIVE_INFINITY;
    private long[] hist;
    private long count;

    private double perCallP = 1.0;
    private double callLo = Double.POSITIVE_INFINITY, callHi = Double.NEGATIVE_INFINITY;

    /**
     * Also track, per observed call (one prompt through one linear), the k-th smallest and largest value with
     * k = max(1, ⌊n·(1 − p)⌋), aggregated as the minimum and maximum over calls: the clipped static ranges of the
     * PyTorch reference (static_reference.py), which differ from a quantile over all values pooled.
     */
    public synchronized void trackPerCallQuantile(double p) {
        this.perCallP = p;
    }

    /** {lo, hi} of the per-call quantiles (see {@link #trackPerCallQuantile}). */
    public synchronized double[] perCallBounds() {
        return new double[]{callLo, callHi};
    }

    public void observeRange(float[] x, int off, int n) {
        if (perCallP < 1.0 && n > 0) {
            float[] v = java.util.Arrays.copyOfRange(x, off, off + n);
            java.util.Arrays.sort(v);
            int k = Math.max(1, (int) (n * (1 - perCallP)));
            synchronized (this) {
                callLo = Math.min(callLo, v[k - 1]);
                callHi = Math.max(callHi, v[n - k]);
            }
        }
        observeMinMax(x, off, n);
    }

    private synchronized void observeMinMax(float[] x, int off, int n) {
        double lo = min, hi = max;
        for (int i = off; i < off + n; i++) {
            float v = x[i];
            if (v < lo) lo = v;
            if (v > hi) hi = v;
        }
        min = lo;
        max = hi;
    }

    public synchronized void observeHistogram(float[] x, int off, int n) {
        if (hist == null) hist = new long[BINS];
        double w = (max - min) / BINS;
        if (!(w > 0)) {
            hist[0] += n;
            count += n;
            return;
        }
        for (int i = off; i < off + n; i++) {
            int b = (int) ((x[i] - min) / w);
            hist[Math.max(0, Math.min(BINS - 1, b))]++;
        }
        count += n;
    }

    public boolean hasRange() {
        return min <= max;
    }

    public double min() {
        return min;
    }

    public double max() {
        return max;
    }

    /** {lo, hi}: the (1−p) and p quantiles; p = 1 gives exact min and max without needing the histogram. */
    public double[] bounds(double p) {
        return bounds(p, p);
    }

    /** {lo, hi} with the lower and upper tails clipped separately: the (1 − pLo) and pHi quantiles. */
    public double[] bounds(double pLo, double pHi) {
        double lo = pLo >= 1.0 || hist == null || count == 0 ? min : quantile(1 - pLo);
        double hi = pHi >= 1.0 || hist == null || count == 0 ? max : quantile(pHi);
        return new double[]{lo, hi};
    }

    private double quantile(double q) {
        double target = q * count;
        double w = (max - min) / BINS;
        long cum = 0;
        for (int b = 0; b < BINS; b++) {
            if (cum + hist[b] >= target) {
                double frac = hist[b] == 0 ? 0 : (target - cum) / hist[b];
                return min + (b + frac) * w;
            }
            cum += hist[b];
        }
        return max;
    }
}
