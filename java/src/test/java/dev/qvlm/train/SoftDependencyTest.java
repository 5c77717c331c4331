package dev.qvlm.train;

import dev.qvlm.calib.Entropy;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * L_ent's differentiable D against the calibrator's own estimate ({@link Entropy#dependency}, double precision):
 * the values agree, and the gradient of Σ_k c_k·D(k, k+1) with respect to every element of every layer output
 * matches central finite differences of that double-precision reference (h = 1e-4; tolerance 1e-3 of the largest
 * gradient entry + 1e-6).
 */
class SoftDependencyTest {
    @Test
    void valueAndGradientMatchTheReferenceEstimate() {
        Random rnd = new Random(5);
        int S = 2, L = 3, n = 12, M = 4;
        float[][][] outs = new float[S][L][n];
        for (float[][] s : outs) for (float[] l : s) for (int i = 0; i < n; i++) l[i] = (float) rnd.nextGaussian();
        Entropy.Levels[] lv = new Entropy.Levels[L];
        for (int l = 0; l < L; l++) lv[l] = new Entropy.Levels(-2.5, 2.5, M);
        double[] c = {0.7, 1.3};
        SoftDependency.Result r = SoftDependency.compute(outs, lv, c, 1, 0);
        for (int k = 0; k + 1 < L; k++) assertEquals(reference(outs, lv, k), r.d()[k], 1e-5, "D(" + k + "," + (k + 1) + ")");

        double h = 1e-4, max = 0;
        double[][][] fd = new double[S][L][n];
        for (int s = 0; s < S; s++)
            for (int l = 0; l < L; l++)
                for (int i = 0; i < n; i++) {
                    float keep = outs[s][l][i];
                    outs[s][l][i] = (float) (keep + h);
                    double p = weighted(outs, lv, c);
                    outs[s][l][i] = (float) (keep - h);
                    double m = weighted(outs, lv, c);
                    outs[s][l][i] = keep;
                    // the perturbation actually applied is the float difference
                    fd[s][l][i] = (p - m) / ((float) (keep + h) - (float) (keep - h));
                    max = Math.max(max, Math.abs(fd[s][l][i]));
                }
        assertTrue(max > 1e-3, "the gradient is not trivially zero");
        for (int s = 0; s < S; s++)
            for (int l = 0; l < L; l++)
                for (int i = 0; i < n; i++)
                    assertEquals(fd[s][l][i], r.grad()[s][l][i], 1e-3 * max + 1e-6, "dL/dx[" + s + "][" + l + "][" + i + "]");
    }

    @Test
    void strideKeepsOnlyTheSampledElements() {
        Random rnd = new Random(6);
        float[][][] outs = new float[1][2][10];
        for (float[] l : outs[0]) for (int i = 0; i < 10; i++) l[i] = (float) rnd.nextGaussian();
        Entropy.Levels[] lv = {new Entropy.Levels(-2, 2, 4), new Entropy.Levels(-2, 2, 4)};
        SoftDependency.Result r = SoftDependency.compute(outs, lv, new double[]{1}, 3, 1);
        // elements 1, 4, 7 only: the same D as the full estimate over those three
        float[][][] sub = new float[1][2][3];
        for (int l = 0; l < 2; l++) for (int e = 0; e < 3; e++) sub[0][l][e] = outs[0][l][1 + 3 * e];
        assertEquals(reference(sub, lv, 0), r.d()[0], 1e-5);
        for (int i = 0; i < 10; i++) if (i % 3 != 1) assertEquals(0f, r.grad()[0][0][i]);
    }

    private static double weighted(float[][][] outs, Entropy.Levels[] lv, double[] c) {
        double s = 0;
        for (int k = 0; k < c.length; k++) s += c[k] * reference(outs, lv, k);
        return s;
    }

    private static double reference(float[][][] outs, Entropy.Levels[] lv, int k) {
        List<float[]> a = new ArrayList<>(), b = new ArrayList<>();
        for (float[][] s : outs) {
            a.add(s[k]);
            b.add(s[k + 1]);
        }
        return Entropy.dependency(a, b, lv[k], lv[k + 1]).conditionalEntropy();
    }
}
