package dev.qvlm.quant;

import dev.qvlm.tensor.F32Matrix;
import dev.qvlm.tensor.HalfMatrix;
import dev.qvlm.tensor.Matrix;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class WeightQuantizerTest {
    private static QuantizedWeight q(float[] row, QuantArgs a) {
        return WeightQuantizer.quantize(new F32Matrix(1, row.length, row), a, 1.0);
    }

    private static int[] codes(QuantizedWeight q) {
        int[] c = new int[q.rows() * q.cols()];
        for (int r = 0; r < q.rows(); r++) for (int i = 0; i < q.cols(); i++) c[r * q.cols() + i] = q.code(r, i);
        return c;
    }

    private static float[] values(QuantizedWeight q) {
        return q.dequantize();
    }

    /**
     * Equal as numbers: the reference's symmetric q·scale gives −0.0 where round(w/scale) is −0 (a small negative
     * weight), ours (code − zero)·scale gives +0.0; every other value must match bit for bit.
     */
    static void assertSameValues(float[] want, float[] got, String what) {
        assertEquals(want.length, got.length, what);
        for (int i = 0; i < want.length; i++)
            if (!(want[i] == got[i]))
                throw new AssertionError(what + ": element " + i + " expected " + want[i] + " but was " + got[i]);
    }

    @Test
    void handComputed2BitAsymmetric() {
        // mn = -1, mx = 2, qmax = 3 -> scale 1, zero 1; 0.5 rounds half to even (0), 2 -> 3
        QuantizedWeight q = q(new float[] {-1f, 0f, 0.5f, 2f}, QuantArgs.perChannel(2, false));
        assertEquals(1f, q.scales()[0]);
        assertEquals(1, q.zeros()[0]);
        assertArrayEquals(new int[] {0, 1, 1, 3}, codes(q));
        assertArrayEquals(new float[] {-1f, 0f, 0f, 2f}, values(q));
    }

    @Test
    void handComputed3BitAsymmetricPositiveRow() {
        // all positive: range widened to [0, 3.5], scale 0.5, zero 0; 1.75/0.5 = 3.5 -> 4 (even), 0.25/0.5 = 0.5 -> 0
        QuantizedWeight q = q(new float[] {0.5f, 1.75f, 3.5f, 0.25f}, QuantArgs.perChannel(3, false));
        assertEquals(0.5f, q.scales()[0]);
        assertEquals(0, q.zeros()[0]);
        assertArrayEquals(new int[] {1, 4, 7, 0}, codes(q));
        assertArrayEquals(new float[] {0.5f, 2f, 3.5f, 0f}, values(q));
    }

    @Test
    void handComputed4BitAsymmetric() {
        // mn = -3, mx = 4.5: scale 7.5/15 = 0.5, zero rint(6) = 6
        QuantizedWeight q = q(new float[] {-3f, 4.5f, 0f, 1f, -0.75f}, QuantArgs.perChannel(4, false));
        assertEquals(0.5f, q.scales()[0]);
        assertEquals(6, q.zeros()[0]);
        // -0.75/0.5 = -1.5 -> -2 (even) + 6 = 4
        assertArrayEquals(new int[] {0, 15, 6, 8, 4}, codes(q));
        assertArrayEquals(new float[] {-3f, 4.5f, 0f, 1f, -1f}, values(q));
    }

    @Test
    void handComputedSymmetric() {
        // 4-bit sym: amax 3.5, qmax 7 -> scale 0.5; q = -4, 1, rint(3.5) = 4, 7, -7; codes = q + 8
        QuantizedWeight q4 = q(new float[] {-2f, 0.5f, 1.75f, 3.5f, -3.5f}, QuantArgs.perChannel(4, true));
        assertEquals(0.5f, q4.scales()[0]);
        assertEquals(8, q4.zeros()[0]);
        assertArrayEquals(new int[] {4, 9, 12, 15, 1}, codes(q4));
        assertArrayEquals(new float[] {-2f, 0.5f, 2f, 3.5f, -3.5f}, values(q4));
        // 3-bit sym: qmax 3, amax 3 -> scale 1; -2.5 -> -2 (even), 1.5 -> 2
        QuantizedWeight q3 = q(new float[] {-3f, -2.5f, 1.5f, 0.4f}, QuantArgs.perChannel(3, true));
        assertEquals(1f, q3.scales()[0]);
        assertArrayEquals(new int[] {1, 2, 6, 4}, codes(q3));
        assertArrayEquals(new float[] {-3f, -2f, 2f, 0f}, values(q3));
        // 2-bit sym: qmax 1, scale = amax; 0.6 -> 1, -1 -> -1 (code 1), and -2^(b-1) = -2 never used at p = 1
        QuantizedWeight q2 = q(new float[] {-1f, 0.4f, 0.6f, 1f}, QuantArgs.perChannel(2, true));
        assertArrayEquals(new int[] {1, 2, 3, 3}, codes(q2));
        assertArrayEquals(new float[] {-1f, 0f, 1f, 1f}, values(q2));
    }

    @Test
    void matchesTorchRtnBitExactly() {
        int rows = 7, cols = 256;
        float[] w = TorchReference.fp16Weights(rows * cols, 42);
        Matrix m = new F32Matrix(rows, cols, w);
        for (int bits = 2; bits <= 8; bits++)
            for (boolean sym : new boolean[] {false, true})
                for (int group : new int[] {0, 128, 32}) {
                    QuantArgs a = QuantArgs.weights(bits, sym, group);
                    QuantizedWeight q = WeightQuantizer.quantize(m, a, 1.0);
                    TorchReference.Result ref = TorchReference.rtn(w, rows, cols, bits, group, sym);
                    String what = a.label();
                    assertArrayEquals(ref.codes(), codes(q), what);
                    assertSameValues(ref.values(), values(q), what);
                    // the prepared (sorted) path gives the same result at p = 1
                    QuantizedWeight p = WeightQuantizer.prepare(m, a).quantize(1.0);
                    assertArrayEquals(q.codes(), p.codes(), what);
                    assertArrayEquals(q.scales(), p.scales(), what);
                    assertArrayEquals(q.zeros(), p.zeros(), what);
                    // and the fake-quant matrix is the same numbers
                    assertSameValues(ref.values(), q.toMatrix().toFloatArray(), what);
                }
    }

    @Test
    void perGroup128On256ColumnsHasIndependentScales() {
        int rows = 3, cols = 256;
        float[] w = new float[rows * cols];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++) w[r * cols + c] = (c < 128 ? 0.01f : 1f) * ((c * 37 + r * 11) % 29 - 14) / (r + 1);
        QuantizedWeight q = WeightQuantizer.quantize(new F32Matrix(rows, cols, w), QuantArgs.perGroup(4, false, 128), 1.0);
        assertEquals(128, q.groupSize());
        assertEquals(2, q.groupsPerRow());
        assertEquals(rows * 2, q.scales().length);
        for (int r = 0; r < rows; r++)
            for (int g = 0; g < 2; g++) {
                float mn = 0, mx = 0;
                for (int c = g * 128; c < g * 128 + 128; c++) {
                    mn = Math.min(mn, w[r * cols + c]);
                    mx = Math.max(mx, w[r * cols + c]);
                }
                assertEquals(Math.max(mx - mn, 1e-8f) / 15, q.scales()[r * 2 + g], "row " + r + " group " + g);
                assertEquals(g * 128, q.groupIndex(r, g * 128) % 2 * 128);
            }
        assertTrue(q.scales()[1] > 50 * q.scales()[0]);
        TorchReference.Result ref = TorchReference.rtn(w, rows, cols, 4, 128, false);
        assertArrayEquals(ref.codes(), codes(q));
    }

    @Test
    void perTensorHasOneScale() {
        float[] w = TorchReference.fp16Weights(5 * 64, 7);
        QuantizedWeight q = WeightQuantizer.quantize(new F32Matrix(5, 64, w), QuantArgs.perTensor(8, false), 1.0);
        assertEquals(1, q.scales().length);
        assertEquals(5 * 64, q.groupSize());
        TorchReference.Result ref = TorchReference.rtn(w, 1, 5 * 64, 8, 0, false); // the whole matrix as one group
        assertArrayEquals(ref.codes(), codes(q));
        assertSameValues(ref.values(), values(q), "per tensor");
    }

    @Test
    void constantRowsGiveNoNaN() {
        float[] w = new float[4 * 16];
        Arrays.fill(w, 16, 32, 5f);
        Arrays.fill(w, 32, 48, -3f);
        Arrays.fill(w, 48, 64, 1e-30f);
        for (boolean sym : new boolean[] {false, true})
            for (double clip : new double[] {1.0, 0.99}) {
                QuantizedWeight q = WeightQuantizer.quantize(new F32Matrix(4, 16, w), QuantArgs.perChannel(4, sym), clip);
                float[] v = q.dequantize();
                for (int i = 0; i < v.length; i++) assertTrue(Float.isFinite(v[i]), "element " + i + " = " + v[i]);
                for (float s : q.scales()) assertTrue(s > 0 && Float.isFinite(s), "scale " + s);
                for (int i = 0; i < 16; i++) assertEquals(0f, v[i]);
                for (int i = 16; i < 32; i++) assertEquals(5f, v[i], 1e-6f);
                for (int i = 32; i < 48; i++) assertEquals(-3f, v[i], 1e-6f);
                for (int i = 48; i < 64; i++) assertEquals(0f, v[i], 1e-8f);
            }
    }

    @Test
    void clipBelowOneUsesNumpyLinearQuantiles() {
        // 0, 1, ..., 99 and one outlier 1000 (n = 101): np.quantile(x, 0.995) = 99 + 0.5 * (1000 - 99) = 549.5,
        // np.quantile(x, 0.99) = 99, np.quantile(x, 0.01) = 1, np.quantile(x, 0.005) = 0.5
        float[] row = new float[101];
        for (int i = 0; i < 100; i++) row[i] = i;
        row[100] = 1000;
        // shuffle so that sorting matters
        for (int i = 0; i < row.length; i++) {
            int j = (i * 53) % row.length;
            float t = row[i];
            row[i] = row[j];
            row[j] = t;
        }
        Matrix m = new F32Matrix(1, 101, row);
        WeightQuantizer.Prepared p = WeightQuantizer.prepare(m, QuantArgs.perChannel(4, false));
        assertArrayEquals(new double[] {0.5, 549.5}, p.bounds(0, 0.995), 1e-9);
        assertArrayEquals(new double[] {1, 99}, p.bounds(0, 0.99), 1e-9);
        assertArrayEquals(new double[] {0, 1000}, p.bounds(0, 1.0), 0);
        QuantizedWeight full = p.quantize(1.0), clipped = p.quantize(0.99);
        assertEquals(1000f / 15, full.scales()[0], 1e-4f);
        assertEquals(99f / 15, clipped.scales()[0], 1e-4f); // lo = 1 widened to 0
        // the outlier saturates at the top code, the bulk gets a 10x finer grid
        int at = 0;
        while (row[at] != 1000) at++;
        assertEquals(15, clipped.code(0, at));
        assertEquals(99f, clipped.get(0, at), 1e-4f);
        assertTrue(clipped.scales()[0] * 10 < full.scales()[0]);
    }

    @Test
    void clipReducesTheRangeOfAGaussianAsExpected() {
        // 64 rows of 4096 N(0,1) values: the 0.99 quantile of N(0,1) is 2.326, the max of 4096 draws about 3.5
        int rows = 64, cols = 4096;
        float[] w = new float[rows * cols];
        java.util.SplittableRandom rnd = new java.util.SplittableRandom(5);
        for (int i = 0; i < w.length; i++) w[i] = (float) TorchReference.gaussian(rnd);
        WeightQuantizer.Prepared p = WeightQuantizer.prepare(new F32Matrix(rows, cols, w), QuantArgs.perChannel(4, true));
        double hi = 0, lo = 0;
        for (int g = 0; g < rows; g++) {
            double[] b = p.bounds(g, 0.99);
            lo += b[0] / rows;
            hi += b[1] / rows;
        }
        assertEquals(2.326, hi, 0.05);
        assertEquals(-2.326, lo, 0.05);
        QuantizedWeight q = p.quantize(0.99);
        float amax = (float) Math.max(Math.abs(p.bounds(0, 0.99)[0]), Math.abs(p.bounds(0, 0.99)[1]));
        assertEquals(amax / 7, q.scales()[0], 1e-6f);
        // symmetric clipping may now reach -2^(b-1): the code 0
        boolean sawCodeZero = false;
        for (int c = 0; c < cols; c++) sawCodeZero |= q.code(0, c) == 0;
        assertTrue(sawCodeZero);
        // at 4 bits, a 0.99 clip of Gaussian weights has a lower error than min-max
        assertTrue(p.mse(0.99) < p.mse(1.0), p.mse(0.99) + " vs " + p.mse(1.0));
    }

    @Test
    void mseMatchesTheQuantizedWeight() {
        int rows = 9, cols = 256;
        float[] w = TorchReference.fp16Weights(rows * cols, 3);
        Matrix m = new F32Matrix(rows, cols, w);
        for (QuantArgs a : new QuantArgs[] {QuantArgs.perGroup(3, false, 128), QuantArgs.perChannel(4, true), QuantArgs.perTensor(2, false)}) {
            WeightQuantizer.Prepared p = WeightQuantizer.prepare(m, a);
            for (double clip : new double[] {1.0, 0.995, 0.99, 0.985, 0.98, 0.93}) {
                QuantizedWeight q = p.quantize(clip);
                double direct = 0;
                for (int i = 0; i < w.length; i++) {
                    double d = q.get(i / cols, i % cols) - w[i];
                    direct += d * d;
                }
                assertEquals(direct, p.mse(clip), 1e-12 * Math.max(1, direct), a + " clip " + clip);
                assertEquals(direct, q.squaredError(m), 1e-12 * Math.max(1, direct));
                // quantize(matrix, args, clip) is the same as the prepared path
                assertArrayEquals(q.codes(), WeightQuantizer.quantize(m, a, clip).codes());
            }
        }
        WeightQuantizer.Prepared p = WeightQuantizer.prepare(m, QuantArgs.perChannel(4, false));
        assertThrows(IllegalArgumentException.class, () -> p.quantize(0.5)); // below the default minClip 0.9
        assertThrows(IllegalArgumentException.class, () -> p.quantize(1.5));
        // a lower minClip keeps more order statistics: the median is reachable
        double[] med = WeightQuantizer.prepare(m, QuantArgs.perChannel(4, false), 0.5).bounds(0, 0.5);
        assertEquals(med[0], med[1]);
    }

    @Test
    void readsHalfStorage() {
        int rows = 3, cols = 64;
        float[] w = TorchReference.fp16Weights(rows * cols, 11);
        MemorySegment seg = Arena.ofAuto().allocate((long) rows * cols * 2);
        for (int i = 0; i < w.length; i++)
            seg.setAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), i, Float.floatToFloat16(w[i]));
        Matrix h = new HalfMatrix(rows, cols, seg, HalfMatrix.Kind.F16);
        QuantizedWeight a = WeightQuantizer.quantize(h, QuantArgs.perChannel(4, false), 1.0);
        QuantizedWeight b = WeightQuantizer.quantize(new F32Matrix(rows, cols, w), QuantArgs.perChannel(4, false), 1.0);
        assertArrayEquals(b.codes(), a.codes());
        assertArrayEquals(b.scales(), a.scales());
    }
}
