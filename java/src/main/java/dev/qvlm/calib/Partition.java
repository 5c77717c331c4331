package dev.qvlm.calib;

import java.util.ArrayList;
import java.util.List;

/**
 * Q-VLM's block partition (Eq. 6–7), read as a greedy left-to-right scan: a block starting at layer r extends to
 * layer s while it has at most {@code maxLayers} layers and its span dependency per link,
 * D(r, s) / (s − r) = mean of D(k, k+1) for r ≤ k < s, exceeds h0.
 */
public final class Partition {
    private Partition() {}

    /** d[k] = D(k, k+1) for k = 0..L-2; returns blocks as [first, last] layer indices (inclusive). */
    public static List<int[]> greedy(double[] d, int layers, double h0, int maxLayers) {
        List<int[]> blocks = new ArrayList<>();
        int r = 0;
        while (r < layers) {
            int s = r;
            double span = 0;
            while (s + 1 < layers && s + 1 - r + 1 <= maxLayers) {
                double next = span + d[s];
                if (next / (s + 1 - r) > h0) {
                    span = next;
                    s++;
                } else {
                    break;
                }
            }
            blocks.add(new int[]{r, s});
            r = s + 1;
        }
        return blocks;
    }

    public static double mean(double[] d) {
        if (d.length == 0) return 0;
        double s = 0;
        for (double v : d) s += v;
        return s / d.length;
    }
}
