package dev.qvlm.cpu;

import dev.qvlm.tensor.HalfMatrix;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** The in-register F16/BF16 matvec gives the bits of decode-to-FP32 + {@link VectorMath#dot4} (the contract's order). */
class HalfMatvecTest {
    @Test
    void sameBitsAsDecodedRowsThroughDot4() {
        SplittableRandom r = new SplittableRandom(5);
        int before = Parallel.threads();
        try {
            for (HalfMatrix.Kind kind : HalfMatrix.Kind.values())
                for (int[] sh : new int[][]{{8, 256}, {7, 37}, {13, 100}, {66, 257}, {5, 3}, {6, 2100}}) {
                    int rows = sh[0], cols = sh[1];
                    MemorySegment seg = Arena.ofAuto().allocate(2L * rows * cols);
                    for (long i = 0; i < (long) rows * cols; i++) {
                        short h = (short) r.nextInt(1 << 16);
                        if (kind == HalfMatrix.Kind.F16 && (h & 0x7c00) == 0x7c00) h &= (short) 0xbfff; // no inf/NaN
                        if (kind == HalfMatrix.Kind.BF16 && (h & 0x7f80) == 0x7f80) h &= (short) 0xbfff;
                        seg.setAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), i, h);
                    }
                    HalfMatrix w = new HalfMatrix(rows, cols, seg, kind);
                    float[] x = new float[cols + 3], bias = new float[rows];
                    for (int i = 0; i < x.length; i++) x[i] = (float) r.nextGaussian();
                    for (int i = 0; i < rows; i++) bias[i] = (float) r.nextGaussian();
                    // reference: rows decoded to FP32, four at a time through dot4 (a last partial block repeats its row)
                    float[] ref = new float[rows], dec = new float[4 * cols], tmp = new float[4];
                    for (int b = 0; b < rows; b += 4) {
                        int nr = Math.min(4, rows - b);
                        for (int k = 0; k < nr; k++) w.rowToFloat(b + k, dec, k * cols);
                        int[] o = new int[4];
                        for (int k = 0; k < 4; k++) o[k] = Math.min(k, nr - 1) * cols;
                        VectorMath.dot4(dec, o[0], o[1], o[2], o[3], x, 3, cols, tmp, 0, 1);
                        for (int k = 0; k < nr; k++) ref[b + k] = tmp[k] + bias[b + k];
                    }
                    for (int th : new int[]{1, 2, 16}) {
                        Parallel.setThreads(th);
                        float[] got = new float[rows + 1];
                        HalfMatvec.matvec(got, 1, x, 3, w, bias);
                        for (int o = 0; o < rows; o++)
                            assertEquals(Float.floatToIntBits(ref[o]), Float.floatToIntBits(got[o + 1]),
                                    kind + " " + rows + "x" + cols + " row " + o + ", " + th + " threads");
                    }
                }
        } finally {
            Parallel.setThreads(before);
        }
    }
}
