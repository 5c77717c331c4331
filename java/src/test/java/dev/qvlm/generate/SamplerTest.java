package dev.qvlm.generate;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class SamplerTest {
    @Test
    void greedyIsArgmax() {
        float[] l = {0.1f, 3f, -2f, 2.9f};
        assertEquals(1, new Sampler(SamplingOptions.greedy(1)).next(l, 0, 4));
        // argmax over a window: offset 1 skips the 9; index is relative to the window
        assertEquals(3, Sampler.argmax(new float[]{9, 0, 1, 5, 7}, 1, 4));
    }

    @Test
    void topPKeepsOnlyTheNucleus() {
        // probabilities ~ {0.665, 0.245, 0.090}: top-p 0.6 keeps only the first token
        float[] l = {2f, 1f, 0f};
        Sampler s = new Sampler(new SamplingOptions(1, 1f, 0.6f, 7));
        for (int i = 0; i < 200; i++) assertEquals(0, s.next(l, 0, 3));
        // top-p 0.8 keeps the first two, never the third
        Sampler s2 = new Sampler(new SamplingOptions(1, 1f, 0.8f, 7));
        int[] counts = new int[3];
        for (int i = 0; i < 4000; i++) counts[s2.next(l, 0, 3)]++;
        assertEquals(0, counts[2]);
        double p0 = counts[0] / 4000.0; // renormalised: 0.665 / 0.910 = 0.731
        assertTrue(Math.abs(p0 - 0.731) < 0.03, "p0 = " + p0);
    }

    @Test
    void temperatureMatchesSoftmaxFrequencies() {
        float[] l = {1f, 0f};
        Sampler s = new Sampler(new SamplingOptions(1, 0.5f, 1f, 3));
        int zero = 0, n = 20000;
        for (int i = 0; i < n; i++) if (s.next(l, 0, 2) == 0) zero++;
        double expected = 1 / (1 + Math.exp(-2)); // softmax([2, 0])[0] = 0.881
        assertTrue(Math.abs(zero / (double) n - expected) < 0.01, "freq " + zero / (double) n);
    }

    @Test
    void sameSeedSameSequence() {
        float[] l = {0.3f, 0.2f, 0.1f, 0f, -0.1f};
        Sampler a = new Sampler(new SamplingOptions(1, 1f, 0.95f, 42)), b = new Sampler(new SamplingOptions(1, 1f, 0.95f, 42));
        for (int i = 0; i < 100; i++) assertEquals(a.next(l, 0, 5), b.next(l, 0, 5));
    }
}
