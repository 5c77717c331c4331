package dev.qvlm.cpu;

import dev.qvlm.backend.Tensor;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** The CPU attention kernel against plain softmax attention in double precision, and against itself row by row. */
class AttentionTest {
    private final CpuBackend cpu = new CpuBackend();

    // head dims: multiples of every lane count (vector path), and 4 / 12 / 20 (the plain loop where L > 4, 8...);
    // key counts: below, at and across block boundaries
    @ParameterizedTest
    @CsvSource({"1, 1, 8, 4, 32, 0, true", "1, 17, 8, 4, 32, 16, true", "1, 216, 8, 4, 32, 215, true",
            "3, 40, 4, 2, 64, 37, true", "5, 5, 2, 1, 128, 0, true", "4, 33, 4, 4, 16, 0, false",
            "2, 9, 4, 2, 4, 7, true", "2, 31, 2, 2, 12, 29, true", "1, 70, 3, 1, 20, 69, true"})
    void matchesSoftmaxAttention(int n, int kvLen, int heads, int kvHeads, int hd, int qPos0, boolean causal) {
        Random r = new Random(kvLen * 31L + hd);
        float[] q = rand(r, n * heads * hd), k = rand(r, kvLen * kvHeads * hd), v = rand(r, kvLen * kvHeads * hd);
        float scale = (float) (1 / Math.sqrt(hd));
        Tensor out = cpu.allocate(n, heads * hd);
        cpu.attention(out, cpu.upload(q, n, heads * hd), cpu.upload(k, kvLen, kvHeads * hd),
                cpu.upload(v, kvLen, kvHeads * hd), kvLen, heads, kvHeads, hd, qPos0, causal, scale);
        float[] got = cpu.download(out);
        int group = heads / kvHeads;
        for (int t = 0; t < n; t++)
            for (int h = 0; h < heads; h++) {
                int kh = h / group, len = causal ? Math.min(kvLen, qPos0 + t + 1) : kvLen;
                double[] s = new double[len];
                double max = Double.NEGATIVE_INFINITY, sum = 0;
                for (int j = 0; j < len; j++) {
                    for (int d = 0; d < hd; d++) s[j] += (double) q[(t * heads + h) * hd + d] * k[(j * kvHeads + kh) * hd + d];
                    s[j] *= scale;
                    max = Math.max(max, s[j]);
                }
                for (int j = 0; j < len; j++) sum += s[j] = Math.exp(s[j] - max);
                for (int d = 0; d < hd; d++) {
                    double o = 0;
                    for (int j = 0; j < len; j++) o += s[j] / sum * v[(j * kvHeads + kh) * hd + d];
                    assertEquals(o, got[(t * heads + h) * hd + d], 2e-6 + 2e-6 * Math.abs(o),
                            "row " + t + " head " + h + " dim " + d);
                }
            }
        // a row alone (as one sequence of a batched step) gets the same bits as in the block of rows
        for (int t = 0; t < n; t++) {
            Tensor one = cpu.allocate(1, heads * hd);
            cpu.attention(one, cpu.upload(java.util.Arrays.copyOfRange(q, t * heads * hd, (t + 1) * heads * hd), 1, heads * hd),
                    cpu.upload(k, kvLen, kvHeads * hd), cpu.upload(v, kvLen, kvHeads * hd), kvLen, heads, kvHeads, hd,
                    qPos0 + t, causal, scale);
            float[] alone = cpu.download(one);
            for (int i = 0; i < alone.length; i++)
                assertEquals(Float.floatToIntBits(got[t * heads * hd + i]), Float.floatToIntBits(alone[i]), "row " + t + " element " + i);
        }
    }

    /** A batched call over sequences of different lengths (decode rows and a prefill block) = one call each. */
    @org.junit.jupiter.api.Test
    void batchedCallGivesEachSequenceItsOwnBits() {
        int heads = 8, kvHeads = 4, hd = 32, cap = 64, D = heads * hd, KD = kvHeads * hd;
        int[][] seqs = {{1, 40}, {3, 17}, {1, 1}, {1, 63}}; // rows, kvLen (the rows are the last positions)
        Random r = new Random(5);
        int total = 0;
        for (int[] sq : seqs) total += sq[0];
        float[] q = rand(r, total * D);
        Tensor qt = cpu.upload(q, total, D), batched = cpu.allocate(total, D);
        java.util.List<dev.qvlm.backend.Backend.AttentionSegment> segs = new java.util.ArrayList<>();
        Tensor[] ks = new Tensor[seqs.length], vs = new Tensor[seqs.length];
        int row = 0;
        for (int s = 0; s < seqs.length; s++) {
            ks[s] = cpu.upload(rand(r, cap * KD), cap, KD);
            vs[s] = cpu.upload(rand(r, cap * KD), cap, KD);
            segs.add(new dev.qvlm.backend.Backend.AttentionSegment(row, seqs[s][0], ks[s], vs[s], seqs[s][1], seqs[s][1] - seqs[s][0]));
            row += seqs[s][0];
        }
        cpu.attention(batched, qt, segs, heads, kvHeads, hd, true, 0.2f);
        float[] got = cpu.download(batched);
        row = 0;
        for (int s = 0; s < seqs.length; s++) {
            int n = seqs[s][0];
            Tensor one = cpu.allocate(n, D);
            cpu.attention(one, cpu.view(qt, row, n), ks[s], vs[s], seqs[s][1], heads, kvHeads, hd, seqs[s][1] - n, true, 0.2f);
            float[] alone = cpu.download(one);
            for (int i = 0; i < alone.length; i++)
                assertEquals(Float.floatToIntBits(alone[i]), Float.floatToIntBits(got[row * D + i]), "sequence " + s + " element " + i);
            row += n;
        }
    }

    /** The grouped kernel gives every query head the bits of the one-head kernel, at every group size and length. */
    @ParameterizedTest
    @CsvSource({"8, 64, 1", "8, 64, 16", "8, 64, 37", "8, 64, 216", "4, 32, 40", "3, 32, 17", "6, 128, 33", "2, 16, 5",
            "5, 48, 20", "1, 64, 30"})
    void groupOfHeadsEqualsOneHeadAtATime(int g, int hd, int len) {
        Random r = new Random(g * 1000L + hd * 10L + len);
        int kvHeads = 2, ks = kvHeads * hd + 3, kh = 1; // row stride wider than the heads, second key/value head
        float[] q = rand(r, 7 + g * hd), k = rand(r, 5 + len * ks), v = rand(r, 5 + len * ks);
        float scale = (float) (1 / Math.sqrt(hd));
        float[] want = new float[2 + g * hd], got = new float[2 + g * hd];
        for (int h = 0; h < g; h++) Attention.head(q, 7 + h * hd, k, 5, ks, v, 5, ks, kh * hd, len, hd, scale, want, 2 + h * hd);
        Attention.group(q, 7, g, k, 5, ks, v, 5, ks, kh * hd, len, hd, scale, got, 2);
        for (int i = 0; i < got.length; i++)
            assertEquals(Float.floatToIntBits(want[i]), Float.floatToIntBits(got[i]), "element " + i + " (head " + (i - 2) / hd + ")");
    }

    private static float[] rand(Random r, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float) (r.nextGaussian() * 1.5);
        return a;
    }
}
