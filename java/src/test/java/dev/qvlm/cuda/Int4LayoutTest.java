package dev.qvlm.cuda;

import dev.qvlm.cpu.Matmul;
import dev.qvlm.quant.Q4Matrix;
import dev.qvlm.tensor.GeneratedMatrix;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The device layout of int4 weights and the CPU emulation of the int4 kernels (Int4Layout, q4.cuh) against the
 * Q4Matrix reference (Matmul.matmulScalar / Q4Matrix.get). Two bounds per output o, with S = Σ_k |x_k · W[o,k]|:
 * against the matrix with its scales rounded to FP16 (what the device holds) |Δ| ≤ 1e-5·S (FP32 reassociation
 * only), against the original FP32-scale matrix |Δ| ≤ 2^-11·S + 1e-5·S (one FP16 rounding of each scale).
 */
class Int4LayoutTest {
    static final ValueLayout.OfInt LE = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** A random Q4Matrix: every nibble random, scales around 1e-2 (not FP16-exact), zero points random or none. */
    static Q4Matrix random(long seed, int rows, int cols, int group, boolean symmetric) {
        Random r = new Random(seed);
        int wpr = cols / 8, gpr = cols / group;
        MemorySegment seg = Arena.ofAuto().allocate((long) rows * wpr * 4, 64);
        for (long i = 0; i < (long) rows * wpr; i++) seg.setAtIndex(LE, i, r.nextInt());
        float[] s = new float[rows * gpr];
        byte[] z = symmetric ? null : new byte[rows * gpr];
        for (int i = 0; i < s.length; i++) {
            s[i] = (float) (0.005 + 0.01 * r.nextDouble());
            if (z != null) z[i] = (byte) r.nextInt(16);
        }
        return new Q4Matrix(rows, cols, group, seg, s, z);
    }

    /** The same matrix with every scale rounded to FP16 (the device's view). */
    static Q4Matrix halfScales(Q4Matrix m) {
        float[] s = m.scales().clone();
        for (int i = 0; i < s.length; i++) s[i] = Half.toFloat(Half.fromFloat(s[i]));
        return new Q4Matrix(m.rows(), m.cols(), m.groupSize(), m.packed(), s, m.zeros());
    }

    static short[] randomHalf(long seed, int n) {
        Random r = new Random(seed);
        short[] x = new short[n];
        for (int i = 0; i < n; i++) x[i] = Half.fromFloat((float) r.nextGaussian());
        return x;
    }

    static float[] halfRandFloats(int n) {
        return Half.toFloats(randomHalf(n, n));
    }

    /** Checks rows [r0, r1) of the emulated GEMV against both references. */
    static void check(Q4Matrix m, short[] xh, int n, float[] got, int r0, int r1) {
        Q4Matrix h = halfScales(m);
        int K = m.cols();
        float[] x = Half.toFloats(xh);
        double worst = 0;
        for (int t = 0; t < n; t++)
            for (int o = r0; o < r1; o++) {
                double exact = 0, exactHalf = 0, s = 0;
                for (int k = 0; k < K; k++) {
                    exact += (double) x[t * K + k] * m.get(o, k);
                    exactHalf += (double) x[t * K + k] * h.get(o, k);
                    s += Math.abs((double) x[t * K + k] * m.get(o, k));
                }
                double g = got[t * m.rows() + o];
                assertTrue(Math.abs(g - exactHalf) <= 1e-5 * s + 1e-9, "FP16-scale reference at (" + t + ", " + o + "): " + g + " vs " + exactHalf);
                assertTrue(Math.abs(g - exact) <= (0x1p-11 + 1e-5) * s + 1e-9, "reference at (" + t + ", " + o + "): " + g + " vs " + exact);
                worst = Math.max(worst, Math.abs(g - exact) / Math.max(s, 1e-30));
            }
        System.out.printf("int4 emulation %dx%d g%d n=%d rows %d..%d: max |Δ|/Σ|wx| = %.2e%n", m.rows(), K, m.groupSize(), n, r0, r1, worst);
    }

    @Test
    void interleaveIsABijectionAndTheMagicPairsAreConsecutiveColumns() {
        Random r = new Random(1);
        float[] d = new float[2];
        for (int it = 0; it < 10000; it++) {
            int w = r.nextInt();
            assertEquals(w, Int4Layout.deinterleave(Int4Layout.interleave(w)));
            int iw = Int4Layout.interleave(w);
            int z = r.nextInt(16);
            float zb = 1024f + z;
            for (int i = 0; i < 4; i++) {
                Int4Layout.pair(iw, i, zb, d);
                assertEquals(((w >>> (8 * i)) & 0xf) - z, d[0], "pair " + i + " low");
                assertEquals(((w >>> (8 * i + 4)) & 0xf) - z, d[1], "pair " + i + " high");
            }
        }
    }

    @ParameterizedTest
    @CsvSource({
            // rows, cols, group, symmetric, tokens
            "64, 1024, 128, false, 1",
            "37, 640, 128, false, 3",    // 5 groups (odd), padded last tile, bucket 4
            "20, 1152, 128, true, 2",    // 9 groups, symmetric
            "12, 384, 384, false, 5",    // per channel, 3 chunks, bucket 8
            "9, 4096, 4096, true, 8",    // per channel, symmetric, 2 warps
            "8, 13824, 128, false, 1",   // 108 groups, 7 warps: the down projection's K
            "5, 11008, 128, false, 2",   // 86 groups (7B's intermediate size)
    })
    void emulatedGemvMatchesTheReference(int rows, int cols, int group, boolean sym, int n) {
        Q4Matrix m = random(rows * 31L + cols, rows, cols, group, sym);
        short[] x = randomHalf(cols, n * cols);
        float[] got = Int4Layout.emulateGemv(Int4Layout.relayout(m, "test"), x, n);
        check(m, x, n, got, 0, rows);
        // and the CPU matmul agrees with the reference it is tested against (sanity of the harness)
        float[] ref = new float[n * rows];
        Matmul.matmulScalar(ref, 0, Half.toFloats(x), 0, n, m, null);
        for (int i = 0; i < ref.length; i++) assertEquals(ref[i], got[i], 2e-3 * Math.max(1, Math.abs(ref[i])));
    }

    @Test
    void llama13bShapes() {
        // q/k/v/o 5120x5120: every row, one token
        Q4Matrix sq = random(5120, 5120, 5120, 128, false);
        short[] x = randomHalf(7, 5120);
        check(sq, x, 1, Int4Layout.emulateGemv(Int4Layout.relayout(sq, "q_proj"), x, 1), 0, 5120);
        // gate/up 13824x5120 and down 5120x13824: sampled row tiles (first, middle, last), two tokens
        Q4Matrix up = random(13824, 13824, 5120, 128, false);
        Int4Layout.Relaid ru = Int4Layout.relayout(up, "up_proj");
        short[] x2 = randomHalf(8, 2 * 5120);
        for (int t0 : new int[]{0, 1700, ru.tiles() - 2}) check(up, x2, 2, Int4Layout.emulateGemv(ru, x2, 2, t0, t0 + 2), 4 * t0, 4 * t0 + 8);
        Q4Matrix down = random(5121, 5120, 13824, 128, true);
        Int4Layout.Relaid rd = Int4Layout.relayout(down, "down_proj");
        short[] x3 = randomHalf(9, 13824);
        for (int t0 : new int[]{0, 640, rd.tiles() - 2}) check(down, x3, 1, Int4Layout.emulateGemv(rd, x3, 1, t0, t0 + 2), 4 * t0, 4 * t0 + 8);
        assertEquals(5120L * 13824 / 2 + 5120L * 108 * 4, rd.bytes(), "4.03 bits per weight on the device");
    }

    @Test
    void emulatedDequantIsTheFp16WeightRoundedOnce() {
        Q4Matrix m = random(3, 13, 640, 128, false);
        Q4Matrix h = halfScales(m);
        short[] d = Int4Layout.emulateDequant(Int4Layout.relayout(m, "t"));
        for (int r = 0; r < 13; r++)
            for (int c = 0; c < 640; c++)
                assertEquals(Half.fromFloat(h.get(r, c)), d[r * 640 + c], "(" + r + ", " + c + ")");
    }

    @Test
    void layoutTilesChunksAndPadding() {
        Q4Matrix m = random(4, 6, 64, 32, false);
        Int4Layout.Relaid r = Int4Layout.relayout(m, "t");
        assertEquals(2, r.tiles());
        assertEquals(2, r.chunks());
        assertEquals(2 * 2 * 4 * 4, r.words().length);
        // row 5 = tile 1, r 1; chunk 1, word 2 = columns 48..55 = standard word 6 of row 5
        int std = m.packed().getAtIndex(LE, 5L * 8 + 6);
        assertEquals(Int4Layout.interleave(std), r.words()[((1 * 2 + 1) * 4 + 1) * 4 + 2]);
        assertEquals(0, r.words()[((1 * 2 + 1) * 4 + 3) * 4], "padding rows are zero");
        int prm = r.params()[(1 * 2 + 1) * 4 + 1]; // tile 1, group 1, row 1
        assertEquals(Half.fromFloat(m.scales()[5 * 2 + 1]), (short) prm);
        assertEquals(1024f + m.zeros()[5 * 2 + 1], Half.toFloat((short) (prm >>> 16)));
        assertFalse(Int4Layout.supported(40, 40));
        assertFalse(Int4Layout.supported(128, 64 + 16));
        assertTrue(Int4Layout.supported(5120, 128));
        assertThrows(IllegalArgumentException.class, () -> Int4Layout.relayout(random(1, 2, 40, 8, true), "w"));
    }

    @Test
    void gemvGeometry() {
        assertEquals(1, Int4Layout.gemvWarps(32));
        assertEquals(3, Int4Layout.gemvWarps(160));   // K = 5120
        assertEquals(7, Int4Layout.gemvWarps(432));   // K = 13824
        assertEquals(8, Int4Layout.gemvWarps(10000));
        assertEquals(new LaunchGeometry.Launch(1280, 1, 96, 0), Int4Layout.gemvLaunch(5120, 5120));
        assertEquals(4, Int4Layout.bucket(3));
        assertEquals(8, Int4Layout.bucket(5));
        assertThrows(IllegalArgumentException.class, () -> Int4Layout.bucket(9));
        assertEquals(Kernel.Q4_GEMV2, Kernel.q4Gemv(2));
        // the benchmark's sweep: a fixed block size for every launch, then the rule again
        try {
            Int4Layout.overrideGemvWarps(2);
            assertEquals(2, Int4Layout.gemvWarps(432));
            assertEquals(new LaunchGeometry.Launch(1280, 1, 64, 0), Int4Layout.gemvLaunch(5120, 5120));
        } finally {
            Int4Layout.overrideGemvWarps(0);
        }
        assertEquals(7, Int4Layout.gemvWarps(432));
        assertThrows(IllegalArgumentException.class, () -> Int4Layout.overrideGemvWarps(9));
    }

    @Test
    void generatedMatricesMaterialiseToTheirDefinition() {
        GeneratedMatrix f = GeneratedMatrix.f16(7, 33, 5, 0.25f);
        GeneratedMatrix q = GeneratedMatrix.q4(9, 64, 6, 0.01f, 32, false);
        var mf = f.materialize();
        var mq = q.materialize();
        for (int r = 0; r < 7; r++) for (int c = 0; c < 33; c++) {
            assertEquals(f.get(r, c), mf.get(r, c));
            assertTrue(Math.abs(f.get(r, c)) <= 0.25f);
        }
        for (int r = 0; r < 9; r++) for (int c = 0; c < 64; c++) assertEquals(q.get(r, c), mq.get(r, c));
        assertEquals(q.storageBytes(), mq.storageBytes());
        assertNotEquals(GeneratedMatrix.hash(1, 0), GeneratedMatrix.hash(1, 1));
        assertEquals(GeneratedMatrix.hash(0xdeadbeef, 12345), GeneratedMatrix.hash(0xdeadbeef, 12345));
    }
}
