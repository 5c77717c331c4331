package dev.qvlm.cuda;

import dev.qvlm.QvlmException;
import dev.qvlm.quant.Q4Matrix;
import dev.qvlm.tensor.F32Matrix;
import dev.qvlm.tensor.HalfMatrix;
import org.junit.jupiter.api.Test;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

import static org.junit.jupiter.api.Assertions.*;

/** Host FP16 conversions: IEEE round-to-nearest-even, the device's __float2half_rn. */
class HalfTest {
    @Test
    void knownValuesAndRounding() {
        assertEquals((short) 0x3C00, Half.fromFloat(1f));
        assertEquals((short) 0xC000, Half.fromFloat(-2f));
        assertEquals((short) 0x7BFF, Half.fromFloat(65504f));
        assertEquals((short) 0x7C00, Half.fromFloat(65520f), "halfway above MAX rounds to infinity");
        assertEquals((short) 0x7BFF, Half.fromFloat(65519f));
        assertEquals((short) 0x0001, Half.fromFloat(0x1p-24f), "smallest subnormal");
        assertEquals((short) 0x0000, Half.fromFloat(0x1p-25f), "tie to even: zero");
        assertEquals((short) 0x3C00, Half.fromFloat(1f + 0x1p-11f), "tie to even: down");
        assertEquals((short) 0x3C02, Half.fromFloat(1f + 3 * 0x1p-11f), "tie to even: up");
        assertEquals((short) 0x8000, Half.fromFloat(-0f));
        assertTrue(Float.isNaN(Half.toFloat(Half.fromFloat(Float.NaN))));
    }

    @Test
    void everyHalfRoundTrips() {
        for (int b = 0; b < 0x10000; b++) {
            short h = (short) b;
            float f = Half.toFloat(h);
            if (Float.isNaN(f)) continue;
            assertEquals(h, Half.fromFloat(f), Integer.toHexString(b));
        }
    }

    @Test
    void relativeErrorIsHalfAnUlp() {
        java.util.Random r = new java.util.Random(1);
        for (int i = 0; i < 100_000; i++) {
            float x = (float) (r.nextGaussian() * Math.pow(10, r.nextInt(8) - 4));
            if (Math.abs(x) < 0x1p-14f) continue; // subnormals have absolute, not relative, error
            float y = Half.toFloat(Half.fromFloat(x));
            assertTrue(Math.abs(y - x) <= Math.abs(x) * 0x1p-11f, x + " -> " + y);
        }
    }

    @Test
    void bf16ConvertsThroughFp32() {
        short bfOne = (short) 0x3F80;
        assertEquals((short) 0x3C00, Half.fromBf16(bfOne));
        assertEquals((short) 0x7C00, Half.fromBf16((short) 0x4780), "65536 overflows FP16");
    }

    private static MemorySegment le16(short[] v) {
        MemorySegment s = MemorySegment.ofArray(new byte[v.length * 2]);
        for (int i = 0; i < v.length; i++) s.setAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), i, v[i]);
        return s;
    }

    @Test
    void matrixRowsAreRowMajorFp16() {
        // F16 storage: bit-exact, row-major, rows [1, 3) of a 3x4 matrix
        short[] bits = new short[12];
        for (int i = 0; i < 12; i++) bits[i] = Half.fromFloat(i * 0.37f - 1.5f);
        HalfMatrix h = new HalfMatrix(3, 4, le16(bits), HalfMatrix.Kind.F16);
        assertArrayEquals(java.util.Arrays.copyOfRange(bits, 4, 12), Half.rows(h, 1, 2, "w"));
        // BF16 storage goes through FP32
        short[] bf = {(short) 0x3F80, (short) 0xC040, (short) 0x3E00, (short) 0x0000};
        HalfMatrix b = new HalfMatrix(2, 2, le16(bf), HalfMatrix.Kind.BF16);
        short[] got = Half.rows(b, 0, 2, "w");
        assertArrayEquals(new float[]{1f, -3f, 0.125f, 0f}, Half.toFloats(got));
        // F32 storage is rounded to nearest even
        float[] f = {0.1f, 1f + 0x1p-11f, -7.25f, 3e-6f};
        short[] r = Half.rows(new F32Matrix(2, 2, f), 0, 2, "w");
        for (int i = 0; i < 4; i++) assertEquals(Half.fromFloat(f[i]), r[i]);
    }

    @Test
    void outOfRangeWeightsNameTheTensor() {
        QvlmException e = assertThrows(QvlmException.class,
                () -> Half.rows(new F32Matrix(1, 2, new float[]{1f, 1e6f}), 0, 1, "model.layers.0.mlp.up_proj"));
        assertTrue(e.getMessage().contains("model.layers.0.mlp.up_proj") && e.getMessage().contains("[0, 1]"), e.getMessage());
        // infinities were infinities already: kept, not an error
        assertEquals((short) 0x7C00, Half.rows(new F32Matrix(1, 1, new float[]{Float.POSITIVE_INFINITY}), 0, 1, "w")[0]);
    }

    @Test
    void q4WeightsTheKernelsDoNotTakeAreDequantisedOnTheHost() {
        // 2 x 8 with group 8: cols not a multiple of 32, so the backend uploads FP16 rows decoded on the host
        Q4Matrix q = new Q4Matrix(2, 8, 8, MemorySegment.ofArray(new int[]{0x76543210, 0xfedcba98}), new float[]{0.5f, 2f}, null);
        short[] h = Half.rows(q, 0, 2, "lm_head");
        for (int r = 0; r < 2; r++)
            for (int c = 0; c < 8; c++) assertEquals(q.get(r, c), Half.toFloat(h[r * 8 + c]), "(" + r + ", " + c + ")");
    }
}
