package dev.qvlm.quant;

import dev.qvlm.model.Linear;
import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ActQuantizerTest {
    @Test
    void handComputedStatic2Bit() {
        // lo -1, hi 2, 2 bits: scale 3/3 = 1, zero 1, codes clamp to 0..3 => values -1..2
        ActQuantizer q = ActQuantizer.staticPerTensor(QuantArgs.perTensor(2, false), -1f, 2f);
        assertEquals(1f, q.scale());
        assertEquals(1, q.zeroPoint());
        float[] x = {9f, -1.6f, -0.5f, 0.5f, 1.5f, 2.6f, 7f, -9f};
        q.apply(x, 1, 2, 3); // only x[1..7) are touched
        assertArrayEquals(new float[] {9f, -1f, 0f, 0f, 2f, 2f, 2f, -9f}, x);
    }

    @Test
    void staticRangeIsWidenedToIncludeZero() {
        ActQuantizer q = ActQuantizer.staticPerTensor(QuantArgs.perTensor(2, false), 0.5f, 3f);
        assertEquals(1f, q.scale()); // [0, 3] / 3
        assertEquals(0, q.zeroPoint());
        ActQuantizer n = ActQuantizer.staticPerTensor(QuantArgs.perTensor(8, false), -4f, -1f);
        assertEquals(4f / 255, n.scale());
        assertEquals(255, n.zeroPoint());
        ActQuantizer s = ActQuantizer.staticPerTensor(QuantArgs.perTensor(4, true), -2f, 3.5f);
        assertEquals(0.5f, s.scale()); // amax 3.5 / 7
        assertEquals(8, s.zeroPoint());
        float[] x = {-5f, -3.9f, 1.25f, 3.6f};
        s.apply(x, 0, 1, 4);
        assertArrayEquals(new float[] {-4f, -4f, 1f, 3.5f}, x); // -8 is the lowest level; 2.5 -> 2
    }

    @Test
    void staticMatchesStaticReferenceBitExactly() {
        SplittableRandom rnd = new SplittableRandom(17);
        for (int bits = 2; bits <= 8; bits++) {
            float[] x = randomActivations(rnd, 37 * 29);
            float lo = -1.7f, hi = 2.3f; // some values fall outside and saturate
            float[] ref = TorchReference.staticQ(x, lo, hi, bits);
            ActQuantizer.staticPerTensor(QuantArgs.perTensor(bits, false), lo, hi).apply(x, 0, 37, 29);
            assertArrayEquals(ref, x, "bits " + bits);
        }
    }

    @Test
    void dynamicPerTokenMatchesActQBitExactly() {
        SplittableRandom rnd = new SplittableRandom(3);
        for (int bits = 2; bits <= 8; bits++)
            for (int cols : new int[] {1, 7, 64, 133}) {
                int rows = 5;
                float[] x = randomActivations(rnd, rows * cols);
                for (int c = 0; c < cols; c++) x[2 * cols + c] = Math.abs(x[2 * cols + c]); // an all-positive token
                Arrays.fill(x, 3 * cols, 4 * cols, 0f);                                  // an all-zero token
                float[] ref = TorchReference.actQ(x, rows, cols, bits);
                float[] padded = new float[x.length + 3];
                System.arraycopy(x, 0, padded, 2, x.length);
                ActQuantizer.dynamicPerToken(QuantArgs.perToken(bits, false)).apply(padded, 2, rows, cols);
                assertArrayEquals(ref, Arrays.copyOfRange(padded, 2, 2 + x.length), "bits " + bits + " cols " + cols);
                for (float v : padded) assertFalse(Float.isNaN(v));
            }
    }

    @Test
    void dynamicPerTensorUsesOneRangeForTheCall() {
        SplittableRandom rnd = new SplittableRandom(8);
        float[] x = randomActivations(rnd, 6 * 40);
        float mn = Float.POSITIVE_INFINITY, mx = Float.NEGATIVE_INFINITY;
        for (float v : x) {
            mn = Math.min(mn, v);
            mx = Math.max(mx, v);
        }
        float[] ref = TorchReference.staticQ(x, mn, mx, 4);
        ActQuantizer.dynamicPerTensor(QuantArgs.perTensor(4, false)).apply(x, 0, 6, 40);
        assertArrayEquals(ref, x);
    }

    @Test
    void vectorPathEqualsScalarFormula() {
        SplittableRandom rnd = new SplittableRandom(99);
        float[] x = randomActivations(rnd, 1001);
        x[5] = 1e30f; // quotient beyond 2^22: clamps like the scalar formula
        x[6] = -1e30f;
        float[] want = x.clone();
        for (int i = 0; i < want.length; i++) want[i] = Uniform.value(Uniform.code(want[i], 0.013f, 77, 255), 77, 0.013f);
        ActQuantizer.fakeQuant(x, 0, x.length, 0.013f, 77, 255);
        assertArrayEquals(want, x);
    }

    @Test
    void accessorsAndRestoring() {
        ActQuantizer a = ActQuantizer.staticPerTensor(QuantArgs.perTensor(8, false), -0.3f, 1.9f);
        ActQuantizer b = ActQuantizer.fromScale(QuantArgs.perTensor(8, false), a.scale(), a.zeroPoint());
        float[] x = randomActivations(new SplittableRandom(1), 300), y = x.clone();
        a.apply(x, 0, 10, 30);
        b.apply(y, 0, 10, 30);
        assertArrayEquals(x, y);
        assertTrue(a.isStatic());
        assertEquals(ActQuantizer.Mode.DYNAMIC_TOKEN, ActQuantizer.dynamicPerToken(QuantArgs.perToken(8, false)).mode());
        assertThrows(IllegalStateException.class, () -> ActQuantizer.dynamicPerToken(QuantArgs.perToken(8, false)).scale());
        assertThrows(IllegalArgumentException.class, () -> ActQuantizer.fromScale(QuantArgs.perTensor(8, true), 0.1f, 3));
        Linear.InputQuantizer asHook = a; // plugs into Linear.setInputQuantizer
        assertTrue(asHook.toString().contains("static"));
    }

    static float[] randomActivations(SplittableRandom rnd, int n) {
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            double v = TorchReference.gaussian(rnd);
            if (rnd.nextInt(50) == 0) v *= 20;
            x[i] = Float.float16ToFloat(Float.floatToFloat16((float) v));
        }
        return x;
    }
}
