package dev.qvlm.cpu;

import jdk.incubator.vector.FloatVector;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class VectorMathTest {
    @Test
    void expIsAccurateAndTheSameInVectorAndScalarForm() {
        Random r = new Random(3);
        int n = FloatVector.SPECIES_PREFERRED.length() * 4096;
        float[] x = new float[n];
        for (int i = 0; i < n; i++) x[i] = (float) (r.nextDouble() * 174.9 - 87); // below -87.3 the result is clamped to ~1e-38
        x[0] = 0f;
        x[1] = -87f;
        x[2] = 87.9f;
        float[] v = x.clone();
        double sum = VectorMath.expShiftSum(v, 0, n, 0f); // vectorised over whole vectors
        double maxRel = 0, check = 0;
        for (int i = 0; i < n; i++) {
            float s = VectorMath.exp(x[i]);
            assertEquals(Float.floatToIntBits(s), Float.floatToIntBits(v[i]), "vector and scalar differ at " + x[i]);
            double e = Math.exp(x[i]);
            maxRel = Math.max(maxRel, Math.abs(s - e) / e);
            check += s;
        }
        assertEquals(1f, VectorMath.exp(0f));
        assertTrue(VectorMath.exp(-1000f) < 1.2e-38f && VectorMath.exp(-1000f) >= 0f, "underflow stays tiny");
        assertTrue(maxRel < 4e-7, "max relative error " + maxRel);
        assertEquals(check, sum, Math.abs(check) * 1e-6); // lanes are summed in float first
    }

    @Test
    void sigmoidGateMatchesTheDefinition() {
        float[] x = {-20f, -1f, 0f, 0.5f, 3f, 30f, -2f, 7f, 1.25f};
        float[] y = x.clone();
        VectorMath.sigmoidGate(y, 0, y.length, 1f, null, 0);
        for (int i = 0; i < x.length; i++)
            assertEquals(x[i] / (1 + Math.exp(-x[i])), y[i], 1e-6 * Math.max(1, Math.abs(x[i])));
    }
}
