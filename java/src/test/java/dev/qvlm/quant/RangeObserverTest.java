package dev.qvlm.quant;

import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class RangeObserverTest {
    /** np.quantile(sorted, q) with the default 'linear' method. */
    static double exactQuantile(float[] sorted, double q) {
        double h = (sorted.length - 1) * q;
        int j = (int) Math.floor(h);
        if (j >= sorted.length - 1) return sorted[sorted.length - 1];
        return sorted[j] + (h - j) * ((double) sorted[j + 1] - sorted[j]);
    }

    @Test
    void smallInputsGiveExactQuantiles() {
        RangeObserver o = new RangeObserver();
        float[] all = new float[1000];
        SplittableRandom rnd = new SplittableRandom(2);
        for (int i = 0; i < all.length; i++) all[i] = (float) TorchReference.gaussian(rnd);
        for (int i = 0; i < all.length; i += 100) o.observe(all, i, 100);
        float[] s = all.clone();
        Arrays.sort(s);
        assertEquals(0, o.binWidth());
        assertEquals(s[0], o.min());
        assertEquals(s[999], o.max());
        for (double p : new double[] {1.0, 0.995, 0.99, 0.985, 0.98, 0.9, 0.5}) {
            double[] b = o.bounds(p);
            assertEquals(exactQuantile(s, 1 - p), b[0], 1e-9, "p " + p);
            assertEquals(exactQuantile(s, p), b[1], 1e-9, "p " + p);
        }
        assertArrayEquals(new double[] {s[0], s[999]}, o.bounds(1.0), 0);
    }

    @Test
    void histogramQuantilesAreWithinOneBinOfTheExactOnes() {
        // 2.5 M values in chunks whose range grows over time (the histogram re-anchors and widens several times):
        // a Gaussian bulk, a drifting offset and rare large outliers, as LLM activations have
        SplittableRandom rnd = new SplittableRandom(7);
        int n = 2_500_000;
        float[] all = new float[n];
        for (int i = 0; i < n; i++) {
            double v = TorchReference.gaussian(rnd) * (1 + i / 500_000.0);
            if (rnd.nextInt(5000) == 0) v = 40 + rnd.nextDouble() * 60 * (i / (double) n);
            if (rnd.nextInt(7000) == 0) v = -20 * rnd.nextDouble() * (i / (double) n);
            all[i] = (float) v;
        }
        RangeObserver o = new RangeObserver();
        for (int i = 0, step = 1000; i < n; i += step, step = Math.min(step * 2, 131072)) o.observe(all, i, Math.min(step, n - i));
        assertEquals(n, o.count());
        float[] s = all.clone();
        Arrays.sort(s);
        assertEquals(s[0], o.min());
        assertEquals(s[n - 1], o.max());
        double w = o.binWidth();
        assertTrue(w > 0);
        // the documented resolution: at least (bins - 1)/2 bins over [min, max]
        assertTrue(w <= 2 * (o.max() - o.min()) / (o.bins() - 1) * (1 + 1e-9), "bin width " + w);
        assertTrue((o.max() - o.min()) / w >= 4096);
        for (double p : new double[] {1.0, 0.995, 0.99, 0.985, 0.98, 0.999, 0.9, 0.75}) {
            double[] b = o.bounds(p);
            assertEquals(exactQuantile(s, 1 - p), b[0], w * (1 + 1e-6), "lower, p " + p);
            assertEquals(exactQuantile(s, p), b[1], w * (1 + 1e-6), "upper, p " + p);
        }
        assertArrayEquals(new double[] {s[0], s[n - 1]}, o.bounds(1.0), 0);
    }

    @Test
    void constantInputAndHook() {
        RangeObserver o = new RangeObserver(64, 0); // histogram from the first value on
        float[] x = new float[500];
        Arrays.fill(x, 0.5f);
        o.asObserverHook().apply(x, 0, 10, 50);
        assertEquals(0.5f, x[0]); // the hook does not modify its input
        assertArrayEquals(new double[] {0.5, 0.5}, o.bounds(0.99), 1e-6);
        // later, wider data: the histogram grows from a tiny span
        float[] y = {-3f, 7f, 1f};
        o.observe(y, 0, 3);
        assertEquals(-3, o.min());
        assertEquals(7, o.max());
        assertEquals(0.5, o.quantile(0.5), o.binWidth());
        // NaN is ignored
        o.observe(new float[] {Float.NaN}, 0, 1);
        assertEquals(503, o.count());
    }
}
