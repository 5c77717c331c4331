package dev.qvlm.quant;

import dev.qvlm.cpu.Matmul;
import dev.qvlm.tensor.F32Matrix;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;
import org.junit.jupiter.api.Test;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class Q4MatrixTest {
    private static final ValueLayout.OfInt LE = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private static QuantizedWeight quantized(int rows, int cols, QuantArgs a, long seed) {
        return WeightQuantizer.quantize(new F32Matrix(rows, cols, TorchReference.fp16Weights(rows * cols, seed)), a, 1.0);
    }

    @Test
    void packingFollowsCompressedTensors() {
        // one row of codes 0..15: word 0 holds columns 0..7 at bits 4j, word 1 columns 8..15
        byte[] codes = new byte[16];
        for (int i = 0; i < 16; i++) codes[i] = (byte) i;
        QuantizedWeight q = new QuantizedWeight(QuantArgs.perChannel(4, true), 1, 16, codes, new float[] {1f}, new int[] {8});
        Q4Matrix m = Q4Matrix.from(q);
        assertEquals(0x76543210, m.packed().getAtIndex(LE, 0));
        assertEquals(0xFEDCBA98, m.packed().getAtIndex(LE, 1));
        // little-endian: byte c/2 holds column c in its low nibble and c+1 in its high nibble
        assertEquals((byte) 0x10, m.packed().get(ValueLayout.JAVA_BYTE, 0));
        assertEquals(-8f, m.get(0, 0)); // code 0 = q -8 (symmetric zero point 8)
        assertEquals(7f, m.get(0, 15));
        assertNull(m.packedZeros());
        // zero points pack along the output dimension: row r of group g at bits 4(r%8) of word [r/8, g]
        int rows = 9;
        byte[] c9 = new byte[rows * 8];
        int[] zeros = new int[rows];
        for (int r = 0; r < rows; r++) zeros[r] = r + 3;
        Q4Matrix z = Q4Matrix.from(new QuantizedWeight(QuantArgs.perChannel(4, false), rows, 8, c9, new float[rows], zeros));
        int[] pz = z.packedZeros();
        assertEquals(2, pz.length); // [ceil(9/8), 1]
        assertEquals(0xA9876543, pz[0]); // rows 0..7 -> zero points 3..10 at nibbles 0..7
        assertEquals(11, pz[1]);             // row 8 -> 11 in word [1, 0], padding nibbles 0
        assertArrayEquals(z.zeros(), Q4Matrix.unpackZeros(pz, rows, 1));
    }

    @Test
    void getEqualsQuantizedWeightGet() {
        for (QuantArgs a : new QuantArgs[] {QuantArgs.perGroup(4, false, 128), QuantArgs.perGroup(4, true, 32),
                QuantArgs.perChannel(4, false), QuantArgs.perChannel(4, true), QuantArgs.perTensor(4, false)}) {
            QuantizedWeight q = quantized(13, 256, a, 5);
            Q4Matrix m = q.toPackedMatrix();
            for (int r = 0; r < q.rows(); r++)
                for (int c = 0; c < q.cols(); c++) {
                    assertEquals(q.code(r, c), m.code(r, c));
                    assertEquals(q.get(r, c), m.get(r, c), a + " at " + r + "," + c);
                }
            assertArrayEquals(q.dequantize(), m.toFloatArray(), a.label());
        }
        assertThrows(IllegalArgumentException.class, () -> quantized(2, 16, QuantArgs.perChannel(8, false), 1).toPackedMatrix());
    }

    @Test
    void rowToFloatEqualsGetForOddShapes() {
        // cols = 8k but not a multiple of the vector width (136), rows not a multiple of 4, cols not a multiple of 8
        // (the last word is padded), group sizes that are not a multiple of 8
        int[][] shapes = {{7, 136, 0}, {5, 8, 0}, {3, 264, 8}, {6, 136, 68}, {3, 36, 0}, {2, 12, 4}, {9, 1000, 40}, {1, 3, 0}};
        for (int[] s : shapes) {
            QuantArgs a = QuantArgs.weights(4, false, s[2]);
            Q4Matrix m = quantized(s[0], s[1], a, s[0] * 31L + s[1]).toPackedMatrix();
            float[] want = new float[s[1] + 3], got = new float[s[1] + 3];
            for (int r = 0; r < s[0]; r++) {
                for (int c = 0; c < s[1]; c++) want[c + 3] = m.get(r, c);
                m.rowToFloat(r, got, 3);
                assertArrayEquals(want, got, s[0] + "x" + s[1] + " g" + s[2] + " row " + r);
                // every vector width, also those this CPU does not have (the Vector API emulates them)
                for (VectorShape shape : new VectorShape[] {VectorShape.S_64_BIT, VectorShape.S_128_BIT, VectorShape.S_256_BIT, VectorShape.S_512_BIT}) {
                    VectorSpecies<Float> sp = VectorSpecies.of(float.class, shape);
                    float[] g2 = new float[s[1] + 3];
                    m.rowToFloat(sp, r, g2, 3);
                    assertArrayEquals(want, g2, s[0] + "x" + s[1] + " g" + s[2] + " row " + r + " " + shape);
                }
            }
        }
    }

    @Test
    void matmulWithQ4EqualsScalarReference() {
        SplittableRandom rnd = new SplittableRandom(12);
        int[][] shapes = {{37, 264, 0}, {22, 256, 128}, {13, 512, 64}, {5, 136, 8}};
        for (int[] s : shapes) {
            int rows = s[0], cols = s[1];
            Q4Matrix m = quantized(rows, cols, QuantArgs.weights(4, s[2] == 64, s[2]), rows + cols).toPackedMatrix();
            for (int n : new int[] {1, 2, 5}) {
                float[] x = new float[n * cols];
                for (int i = 0; i < x.length; i++) x[i] = (float) (rnd.nextDouble() * 2 - 1);
                float[] bias = new float[rows];
                for (int i = 0; i < rows; i++) bias[i] = (float) rnd.nextDouble();
                float[] ref = new float[n * rows], got = new float[n * rows], fused = new float[n * rows];
                Matmul.matmulScalar(ref, 0, x, 0, n, m, bias);
                Matmul.matmul(got, 0, x, 0, n, m, bias);
                m.matmul(fused, 0, x, 0, n, bias);
                for (int t = 0; t < n; t++)
                    for (int o = 0; o < rows; o++) {
                        double mag = Math.abs(bias[o]);
                        for (int i = 0; i < cols; i++) mag += Math.abs(x[t * cols + i] * m.get(o, i));
                        double tol = 1e-5 * mag + 1e-6;
                        String at = rows + "x" + cols + " n=" + n + " token " + t + " row " + o;
                        assertEquals(ref[t * rows + o], got[t * rows + o], tol, "Matmul.matmul " + at);
                        assertEquals(ref[t * rows + o], fused[t * rows + o], tol, "Q4Matrix.matmul " + at);
                    }
            }
        }
    }

    @Test
    void fusedKernelLayout() {
        // the permuted activations put nibble j of the L words of a block next to each other
        int L = FloatVector.SPECIES_PREFERRED.length(), cols = 2 * Q4Matrix.BLOCK;
        float[] x = new float[cols], xp = new float[cols];
        for (int i = 0; i < cols; i++) x[i] = i;
        Q4Matrix.permute(x, 0, xp, 0, cols);
        for (int b = 0; b < 2; b++)
            for (int j = 0; j < 8; j++)
                for (int i = 0; i < L; i++) assertEquals(b * Q4Matrix.BLOCK + 8 * i + j, (int) xp[b * Q4Matrix.BLOCK + j * L + i]);
    }

    @Test
    void storageAndHeapSegments() {
        QuantizedWeight q = quantized(16, 256, QuantArgs.perGroup(4, false, 128), 9);
        Q4Matrix m = q.toPackedMatrix();
        assertEquals(16 * 128 + 4 * 32 + 32, m.storageBytes()); // packed + FP32 scales + zero bytes
        assertEquals(m.storageBytes(), Q4Matrix.storageBytes(16, 256, 128, false));
        assertEquals("q4g128", m.storageName());
        assertEquals("q4ch", quantized(2, 16, QuantArgs.perChannel(4, true), 1).toPackedMatrix().storageName());
        // a heap segment works too (copied off-heap once)
        byte[] bytes = m.packed().toArray(ValueLayout.JAVA_BYTE);
        Q4Matrix h = new Q4Matrix(16, 256, 128, MemorySegment.ofArray(bytes), m.scales(), m.zeros());
        assertTrue(h.packed().isNative());
        assertArrayEquals(m.toFloatArray(), h.toFloatArray());
        assertThrows(IllegalArgumentException.class, () -> new Q4Matrix(16, 256, 100, m.packed(), m.scales(), m.zeros()));
        assertThrows(IllegalArgumentException.class, () -> new Q4Matrix(15, 256, 128, m.packed(), m.scales(), m.zeros()));
    }
}
