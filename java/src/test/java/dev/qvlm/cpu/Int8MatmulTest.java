package dev.qvlm.cpu;

import dev.qvlm.quant.Q4Matrix;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The int8-activation path: activation quantization and the int4 × int8 kernel against scalar references. */
class Int8MatmulTest {
    /** A Q4Matrix with the given nibbles (row-major codes 0..15), group size, scales and zero points. */
    static Q4Matrix q4(int rows, int cols, int group, byte[] codes, float[] scales, byte[] zeros) {
        int wpr = (cols + 7) / 8;
        MemorySegment seg = Arena.ofAuto().allocate(4L * rows * wpr, 64);
        for (int r = 0; r < rows; r++)
            for (int w = 0; w < wpr; w++) {
                int word = 0;
                for (int j = 0; j < 8 && 8 * w + j < cols; j++) word |= (codes[r * cols + 8 * w + j] & 0xf) << (4 * j);
                seg.setAtIndex(ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), (long) r * wpr + w, word);
            }
        return new Q4Matrix(rows, cols, group, seg, scales, zeros);
    }

    static Q4Matrix random(int rows, int cols, int group, boolean symmetric, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        byte[] codes = new byte[rows * cols];
        for (int i = 0; i < codes.length; i++) codes[i] = (byte) r.nextInt(16);
        int groups = rows * (cols / group);
        float[] scales = new float[groups];
        for (int i = 0; i < groups; i++) scales[i] = (float) (0.01 + 0.05 * r.nextDouble());
        byte[] zeros = null;
        if (!symmetric) {
            zeros = new byte[groups];
            for (int i = 0; i < groups; i++) zeros[i] = (byte) r.nextInt(16);
        }
        return q4(rows, cols, group, codes, scales, zeros);
    }

    static float[] gaussian(int n, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        float[] x = new float[n];
        for (int i = 0; i < n; i++) x[i] = (float) r.nextGaussian();
        return x;
    }

    @Test
    void blockQuantizationIsQ8ZeroByHand() {
        float[] x = new float[40]; // one whole block and a short last one (8 columns)
        x[0] = 2.54f; // max |x| of block 0: d = 0.02
        x[1] = -1.27f; // ≈ −63.5·d: x·(1/d) rounded to nearest (ties to even), as Math.rint
        x[2] = 0.03f; // ≈ 1.5·d
        x[3] = -2.54f;
        x[32] = -0.5f; // block 1: d = 0.5/127
        x[33] = 0.25f;
        Int8Rows q = Int8Rows.quantize(x, 0, 1, 40);
        float d0 = 2.54f / 127f, id0 = 1f / d0;
        assertEquals(d0, q.scale(0, 0));
        assertEquals(127, q.code(0, 0));
        assertEquals((int) Math.rint(-1.27f * id0), q.code(0, 1));
        assertEquals((int) Math.rint(0.03f * id0), q.code(0, 2));
        assertEquals(-127, q.code(0, 3));
        assertEquals(0, q.code(0, 4));
        assertEquals(0.5f / 127f, q.scale(0, 1));
        assertEquals(-127, q.code(0, 32));
        assertEquals((int) Math.rint(0.25f * (1f / (0.5f / 127f))), q.code(0, 33));
        // an all-zero block: scale 0, codes 0 (no division by zero)
        Int8Rows z = Int8Rows.quantize(new float[64], 0, 1, 64);
        assertEquals(0f, z.scale(0, 1));
        assertEquals(0, z.code(0, 40));
    }

    @Test
    void vectorQuantizationEqualsTheScalarReferenceAndRoundTrips() {
        for (int cols : new int[]{32, 200, 256, 384, 1000}) {
            float[] x = gaussian(3 * cols, cols);
            for (int i = 0; i < x.length; i += 97) x[i] *= 40; // outliers
            Int8Rows q = Int8Rows.quantize(x, 0, 3, cols);
            int[] ref = new int[Int8Rows.BLOCK];
            for (int t = 0; t < 3; t++)
                for (int b = 0; b * Int8Rows.BLOCK < cols; b++) {
                    int c0 = b * Int8Rows.BLOCK, len = Math.min(Int8Rows.BLOCK, cols - c0);
                    float d = Int8Rows.quantizeScalar(x, t * cols + c0, len, ref);
                    assertEquals(Float.floatToIntBits(d), Float.floatToIntBits(q.scale(t, b)), "scale of block " + b);
                    for (int k = 0; k < len; k++) {
                        assertEquals(ref[k], q.code(t, c0 + k), "code of column " + (c0 + k));
                        assertTrue(Math.abs(q.code(t, c0 + k) * d - x[t * cols + c0 + k]) <= 0.5001f * d, "round-trip error");
                    }
                }
        }
    }

    /**
     * Block scales d = 1 (each block holds ±127) and weight scales 1: every float step of the kernel is exact, so its
     * result must equal the exact integer Σ (q − z)·x, whatever the lane order.
     */
    @Test
    void integerSumsAreExact() {
        int[][] shapes = {{37, 256, 128}, {5, 384, 384}, {16, 4096, 128}, {9, 1024, 1024}};
        for (int[] sh : shapes)
            for (boolean sym : new boolean[]{true, false}) {
                int rows = sh[0], cols = sh[1], group = sh[2];
                SplittableRandom r = new SplittableRandom(rows * 31L + cols);
                byte[] codes = new byte[rows * cols];
                for (int i = 0; i < codes.length; i++) codes[i] = (byte) r.nextInt(16);
                codes[0] = 15;
                codes[1] = 0;
                float[] scales = new float[rows * (cols / group)];
                Arrays.fill(scales, 1f);
                byte[] zeros = null;
                if (!sym) {
                    zeros = new byte[scales.length];
                    for (int i = 0; i < zeros.length; i++) zeros[i] = (byte) r.nextInt(16);
                    zeros[0] = 0; // the largest |q − z| = 15 against x = ±127
                }
                Q4Matrix w = q4(rows, cols, group, codes, scales, zeros);
                assertTrue(Int8Matmul.supports(w));
                int n = 3;
                float[] x = new float[n * cols];
                for (int i = 0; i < x.length; i++) x[i] = r.nextInt(255) - 127;
                for (int i = 0; i < x.length; i += Int8Rows.BLOCK) x[i] = (i / Int8Rows.BLOCK) % 2 == 0 ? 127 : -127;
                x[1] = 127;
                float[] out = new float[n * rows];
                Int8Matmul.matmul(out, 0, x, 0, n, w, null);
                for (int t = 0; t < n; t++)
                    for (int o = 0; o < rows; o++) {
                        long s = 0;
                        for (int c = 0; c < cols; c++) {
                            int z = sym ? 8 : zeros[o * (cols / group) + c / group];
                            s += (long) (w.code(o, c) - z) * (long) x[t * cols + c];
                        }
                        assertEquals((float) s, out[t * rows + o], "row " + o + " token " + t + " " + Arrays.toString(sh) + (sym ? " sym" : " asym"));
                    }
            }
    }

    @Test
    void matchesTheScalarImplementationOfTheSameQuantization() {
        for (int[] sh : new int[][]{{33, 256, 128}, {8, 512, 512}, {20, 1152, 128}})
            for (boolean sym : new boolean[]{true, false}) {
                Q4Matrix w = random(sh[0], sh[1], sh[2], sym, sh[0] + sh[1]);
                float[] x = gaussian(2 * sh[1], 7);
                x[5] = 30; // an outlier in block 0
                float[] bias = gaussian(sh[0], 8);
                Int8Rows xq = Int8Rows.quantize(x, 0, 2, sh[1]);
                float[] got = new float[2 * sh[0]], ref = new float[2 * sh[0]];
                Int8Matmul.matmul(got, 0, xq, w, bias);
                Int8Matmul.matmulScalar(ref, 0, xq, w, bias);
                for (int i = 0; i < got.length; i++) assertEquals(ref[i], got[i], 2e-5f * (1 + Math.abs(ref[i])), "output " + i);
                // and it approximates the exact FP32-activation product
                float[] exact = new float[2 * sh[0]];
                Matmul.matmulScalar(exact, 0, x, 0, 2, w, bias);
                double err = 0, mag = 0;
                for (int i = 0; i < got.length; i++) {
                    err += Math.abs(got[i] - exact[i]);
                    mag += Math.abs(exact[i] - bias[i % sh[0]]);
                }
                assertTrue(err / mag < 0.02, "relative error of int8 activations " + err / mag);
            }
    }

    @Test
    void rowsOfABatchEqualSingleRowsAndThreadCountsGiveTheSameBits() {
        Q4Matrix w = random(300, 512, 128, false, 3);
        float[] x = gaussian(5 * 512, 4);
        float[] batched = new float[5 * 300];
        Int8Matmul.matmul(batched, 0, x, 0, 5, w, null);
        for (int t = 0; t < 5; t++) {
            float[] one = new float[300];
            Int8Matmul.matmul(one, 0, x, t * 512, 1, w, null);
            assertArrayEquals(one, Arrays.copyOfRange(batched, t * 300, (t + 1) * 300), "token " + t);
        }
        int before = Parallel.threads();
        try {
            // the exact paths too: fused int4 (n ≤ 32) and decode-once rows (n > 32)
            float[] x40 = gaussian(40 * 512, 6);
            Parallel.setThreads(1);
            float[] fused = new float[5 * 300], rowsOnce = new float[40 * 300];
            Matmul.matmul(fused, 0, x, 0, 5, w, null);
            Matmul.matmul(rowsOnce, 0, x40, 0, 40, w, null);
            for (int th : new int[]{1, 2, 4, 8, 16}) {
                Parallel.setThreads(th);
                float[] again = new float[5 * 300];
                Int8Matmul.matmul(again, 0, x, 0, 5, w, null);
                assertArrayEquals(batched, again, th + " threads");
                float[] f = new float[5 * 300], r = new float[40 * 300];
                Matmul.matmul(f, 0, x, 0, 5, w, null);
                Matmul.matmul(r, 0, x40, 0, 40, w, null);
                assertArrayEquals(fused, f, "fused int4, " + th + " threads");
                assertArrayEquals(rowsOnce, r, "decode-once rows, " + th + " threads");
            }
        } finally {
            Parallel.setThreads(before);
        }
    }

    @Test
    void groupsSmallerThanAStepAreLeftToTheExactPath() {
        assertFalse(Int8Matmul.supports(random(4, 256, 32, true, 1)));
        assertTrue(Int8Matmul.supports(random(4, 256, 256, true, 1)) == (256 % Int8Rows.STEP == 0));
    }

    /** Several matrices of one input in one call (q, k, v): every output the bits of its matrix's own call. */
    @Test
    void severalMatricesInOneCallEqualOneCallEach() {
        int before = Parallel.threads();
        try {
            int cols = 256;
            Q4Matrix[] ws = {random(80, cols, 128, true, 1), random(16, cols, 128, false, 2), random(33, cols, 256, true, 3)};
            float[][] bias = {null, gaussian(16, 4), gaussian(33, 5)};
            for (int n : new int[]{1, 3}) {
                float[] x = gaussian(n * cols, 6 + n);
                Int8Rows xq = Int8Rows.quantize(x, 0, n, cols);
                for (int th : new int[]{1, 2, 8}) {
                    Parallel.setThreads(th);
                    float[][] outs = new float[ws.length][];
                    int[] offs = {0, 5, 2};
                    for (int i = 0; i < ws.length; i++) outs[i] = new float[offs[i] + n * ws[i].rows()];
                    Int8Matmul.matmul(outs, offs, xq, ws, bias);
                    for (int i = 0; i < ws.length; i++) {
                        float[] one = new float[n * ws[i].rows()];
                        Int8Matmul.matmul(one, 0, xq, ws[i], bias[i]);
                        assertArrayEquals(one, Arrays.copyOfRange(outs[i], offs[i], outs[i].length), "matrix " + i + ", n=" + n + ", " + th + " threads");
                    }
                }
            }
        } finally {
            Parallel.setThreads(before);
        }
    }
}
