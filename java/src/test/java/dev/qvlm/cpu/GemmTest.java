package dev.qvlm.cpu;

import dev.qvlm.quant.Q4Matrix;
import dev.qvlm.quant.QuantArgs;
import dev.qvlm.quant.WeightQuantizer;
import dev.qvlm.tensor.F32Matrix;
import dev.qvlm.tensor.HalfMatrix;
import dev.qvlm.tensor.Matrix;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * {@link Gemm} against two references: the scalar double-precision {@link Matmul#matmulScalar} (within rounding), and
 * the numeric contract itself, each output computed by {@link VectorMath#dot4} on rows decoded with
 * {@link Matrix#rowToFloat} (bit for bit, whatever n, tile position, panel or thread split).
 */
class GemmTest {
    private static final ValueLayout.OfShort LE16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private static float[] gaussian(int n, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        float[] a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float) r.nextGaussian();
        return a;
    }

    private static HalfMatrix half(int rows, int cols, float[] w, HalfMatrix.Kind kind) {
        MemorySegment seg = Arena.ofAuto().allocate(2L * w.length);
        for (int i = 0; i < w.length; i++)
            seg.setAtIndex(LE16, i, kind == HalfMatrix.Kind.F16 ? Float.floatToFloat16(w[i])
                    : (short) (Float.floatToRawIntBits(w[i]) >>> 16));
        return new HalfMatrix(rows, cols, seg, kind);
    }

    /** Every storage Gemm reads: F32 on the heap and mapped-style off-heap, F16, BF16, packed int4 (where the group fits). */
    private static List<Matrix> storages(int rows, int cols, long seed) {
        float[] w = gaussian(rows * cols, seed);
        F32Matrix f32 = new F32Matrix(rows, cols, w);
        MemorySegment off = Arena.ofAuto().allocate(4L * w.length);
        MemorySegment.copy(w, 0, off, ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 0, w.length);
        List<Matrix> list = new ArrayList<>(List.of(f32, new F32Matrix(rows, cols, off),
                half(rows, cols, w, HalfMatrix.Kind.F16), half(rows, cols, w, HalfMatrix.Kind.BF16),
                WeightQuantizer.quantize(f32, QuantArgs.perChannel(4, false), 1.0).toPackedMatrix()));
        if (cols % 32 == 0)
            list.add(WeightQuantizer.quantize(f32, QuantArgs.perGroup(4, true, 32), 1.0).toPackedMatrix());
        return list;
    }

    /** The contract: rows decoded to FP32, four at a time through dot4 (a partial quartet repeats its first row), + bias. */
    private static float[] contract(Matrix m, float[] x, int n, float[] bias) {
        int rows = m.rows(), cols = m.cols();
        float[] w = m.toFloatArray(), out = new float[n * rows], tmp = new float[4];
        for (int t = 0; t < n; t++)
            for (int r = 0; r < rows; r += 4) {
                int nr = Math.min(4, rows - r), o = r * cols;
                VectorMath.dot4(w, o, nr > 1 ? o + cols : o, nr > 2 ? o + 2 * cols : o, nr > 3 ? o + 3 * cols : o,
                        x, t * cols, cols, tmp, 0, 1);
                for (int k = 0; k < nr; k++) out[t * rows + r + k] = tmp[k] + (bias == null ? 0 : bias[r + k]);
            }
        return out;
    }

    private static void assertBits(float[] want, float[] got, String what) {
        assertEquals(want.length, got.length, what);
        for (int i = 0; i < want.length; i++)
            if (Float.floatToRawIntBits(want[i]) != Float.floatToRawIntBits(got[i]))
                fail(what + ": element " + i + " is " + got[i] + ", the contract gives " + want[i]);
    }

    @Test
    void bitIdenticalToTheDot4ContractForEveryTokenCount() {
        // rows: one partial tile, several, not a multiple of 4; cols: below one vector, vector tails of every kind,
        // long enough for several panels (1100 floats: 56-row panels, 130 rows = three panels)
        int[][] shapes = {{1, 7}, {3, 16}, {5, 17}, {13, 33}, {37, 129}, {130, 1100}, {64, 200}};
        int[] counts = {1, 2, 3, 4, 5, 7, 8, 13, 32, 33, 67, 200};
        for (int[] s : shapes) {
            int rows = s[0], cols = s[1];
            float[] bias = gaussian(rows, 7);
            for (Matrix m : storages(rows, cols, rows * 1000L + cols))
                for (int n : counts) {
                    if ((long) rows * cols * n > 3_000_000) continue; // keep the suite cheap
                    float[] x = gaussian(n * cols, n);
                    boolean withBias = n % 2 == 1;
                    float[] want = contract(m, x, n, withBias ? bias : null);
                    // both ways of summing the lanes: the 16 x 16 transpose (AVX-512) and the scalar one (other CPUs)
                    for (boolean transpose : Gemm.TRANSPOSE ? new boolean[] {true, false} : new boolean[] {false}) {
                        float[] got = new float[n * rows];
                        Gemm.matmul(got, 0, x, 0, n, m, withBias ? bias : null, transpose);
                        assertBits(want, got, m.storageName() + " " + rows + "x" + cols + " n=" + n + " transpose=" + transpose);
                    }
                }
        }
    }

    @Test
    void rowsDoNotDependOnTheBatch() {
        // the single-token call through Matmul (whatever kernel serves n = 1) gives each batched row's bits
        int rows = 581, cols = 256; // the bundled model's lm_head: rows not a multiple of 4
        float[] bias = gaussian(rows, 3);
        for (Matrix m : storages(rows, cols, 11)) {
            if (m instanceof Q4Matrix) continue; // n <= 32 runs the fused int4 kernel, another order (Q4MatrixTest)
            int n = 9;
            float[] x = gaussian(n * cols, 5);
            float[] batched = new float[n * rows];
            Gemm.matmul(batched, 0, x, 0, n, m, bias);
            for (int t = 0; t < n; t++) {
                float[] one = new float[rows];
                Matmul.matmul(one, 0, x, t * cols, 1, m, bias);
                float[] row = java.util.Arrays.copyOfRange(batched, t * rows, (t + 1) * rows);
                assertBits(one, row, m.storageName() + " token " + t);
            }
        }
    }

    @Test
    void closeToTheScalarReferenceThroughMatmul() {
        // offsets into larger buffers, as the forward pass passes them; n = 40 takes Gemm for int4 too
        int rows = 45, cols = 160, n = 40, xOff = 3, outOff = 5;
        float[] bias = gaussian(rows, 9);
        for (Matrix m : storages(rows, cols, 21)) {
            float[] x = gaussian(xOff + n * cols, 4);
            float[] got = new float[outOff + n * rows + 2], want = new float[outOff + n * rows + 2];
            Matmul.matmul(got, outOff, x, xOff, n, m, bias);
            Matmul.matmulScalar(want, outOff, x, xOff, n, m, bias);
            for (int i = 0; i < want.length; i++) {
                int t = (i - outOff) / rows, o = (i - outOff) % rows;
                double mag = 0;
                if (i >= outOff && t < n)
                    for (int c = 0; c < cols; c++) mag += Math.abs((double) x[xOff + t * cols + c] * m.get(o, c));
                // FP32 accumulation of cols terms against double: a few ulps of the sum of magnitudes
                assertTrue(Math.abs(got[i] - want[i]) <= 1e-6 * mag + 1e-6,
                        m.storageName() + " element " + i + ": " + got[i] + " vs " + want[i]);
            }
        }
    }
}
