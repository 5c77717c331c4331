package dev.qvlm.calib;

import dev.qvlm.backend.Backend;
import dev.qvlm.backend.Statistics;
import dev.qvlm.backend.Tensor;

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

    /** Pass 1 over one call's input, where it lives: its min and max (and per-call quantiles when tracked). */
    public void observeRange(Backend b, Tensor x) {
        if (perCallP < 1.0) { // needs the call's sorted values
            float[] v = b.download(x);
            observeRange(v, 0, v.length);
            return;
        }
        float[] mm = b.minMax(x);
        synchronized (this) {
            if (mm[0] < min) min = mm[0];
            if (mm[1] > max) max = mm[1];
        }
    }

    /** Pass 2: one call's input counted into the histogram over [min, max], where it lives. */
    public void observeHistogram(Backend b, Tensor x) {
        long n = (long) x.rows() * x.cols();
        double w = (max - min) / BINS;
        long[] h = new long[BINS];
        if (w > 0) b.histogram(x, min, w, h);
        else h[0] = n;
        synchronized (this) {
            if (hist == null) hist = new long[BINS];
            for (int i = 0; i < BINS; i++) hist[i] += h[i];
            count += n;
        }
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
        if (w > 0) Statistics.histogram(x, off, n, min, w, hist);
        else hist[0] += n;
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
