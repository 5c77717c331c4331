package dev.qvlm.calib;

import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class EntropyTest {
    @Test
    void softAssignmentByHand() {
        // levels {0, 1}: step 1; x = 0 → weights ∝ (e^0, e^-1)
        double[] w = new double[2];
        Entropy.soft(0.0, new Entropy.Levels(0, 1, 2), w);
        double a = 1 / (1 + Math.exp(-1));
        assertEquals(a, w[0], 1e-12);
        assertEquals(1 - a, w[1], 1e-12);
    }

    @Test
    void conditionalEntropyOfOnePairByHand() {
        // one element: layer k at level 0, layer k+1 at level 1 (levels {0,1})
        Entropy.Levels lv = new Entropy.Levels(0, 1, 2);
        Entropy.Dependency d = Entropy.dependency(List.of(new float[]{0f}), List.of(new float[]{1f}), lv, lv);
        double a = 1 / (1 + Math.exp(-1)), b = 1 - a;
        // P(m, m') = pa(m) pb(m') with pa = (a, b), pb = (b, a): independent, so D = H(pb)
        double hb = -(a * Math.log(a) + b * Math.log(b));
        assertEquals(hb, d.conditionalEntropy(), 1e-12);
        assertEquals(hb, d.entropyA(), 1e-12);
        assertEquals(a * b, d.joint()[0], 1e-12);
        assertEquals(a * a, d.joint()[1], 1e-12);
    }

    @Test
    void dependentLayersHaveLowConditionalEntropy() {
        // values on a 16-level grid with a wide step (sharp assignment); b = a is fully predictable, c is not
        Random r = new Random(1);
        int n = 20000;
        float[] a = new float[n], c = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = 10f * r.nextInt(16);
            c[i] = 10f * r.nextInt(16);
        }
        Entropy.Levels lv = new Entropy.Levels(0, 150, 16);
        double same = Entropy.dependency(List.of(a), List.of(a), lv, lv).conditionalEntropy();
        double indep = Entropy.dependency(List.of(a), List.of(c), lv, lv).conditionalEntropy();
        assertTrue(same < 0.01, "D(a, a) = " + same); // neighbours still get e^-10 of the weight
        assertEquals(Math.log(16), indep, 0.02); // uniform independent levels: H(c) = log 16
    }
}
