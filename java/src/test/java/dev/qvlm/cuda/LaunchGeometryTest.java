package dev.qvlm.cuda;

import dev.qvlm.backend.Tensor;
import dev.qvlm.cpu.CpuBackend;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.util.Random;

import static dev.qvlm.cuda.LaunchGeometry.*;
import static org.junit.jupiter.api.Assertions.*;

/** Launch geometry on the CPU: limits of the hardware and of the kernels' documented assumptions. */
class LaunchGeometryTest {
    @Test
    void elementwiseCoversEveryElementWithinTheCap() {
        for (long n : new long[]{0, 1, 255, 256, 257, 1 << 20, 600L * 32000, 3_000_000_000L}) {
            Launch g = elementwise(n, 132);
            assertEquals(ELEMENTWISE_BLOCK, g.block());
            assertTrue(g.gridX() >= 1 && g.gridX() <= 132 * BLOCKS_PER_SM, n + ": " + g);
            // grid-stride: either one thread per element or the cap
            assertTrue((long) g.gridX() * g.block() >= n || g.gridX() == 132 * BLOCKS_PER_SM, n + ": " + g);
        }
        assertEquals(1, elementwise(100, 132).gridX());
        assertEquals(4, elementwise(1000, 132).gridX());
    }

    @Test
    void rowBlocksAreWholeWarpsWithinLimits() {
        for (int cols = 1; cols <= 20000; cols += 37) {
            int b = rowBlock(cols);
            assertEquals(0, b % 32, "cols " + cols);
            assertTrue(b >= 32 && b <= 1024, "cols " + cols);
        }
        assertEquals(32, rowBlock(1));
        assertEquals(1024, rowBlock(4096));
        assertEquals(1024, rowBlock(32000));
        assertEquals(64, rowBlock(256));
        assertEquals(new Launch(7, 1, 1024, 0), perRow(7, 5120));
    }

    @Test
    void embedBlockStridesTheRow() {
        assertEquals(new Launch(5, 1, 256, 0), embed(5, 4096));
        assertEquals(new Launch(3, 1, 64, 0), embed(3, 40));
    }

    @ParameterizedTest
    @CsvSource({"64", "80", "96", "128", "160", "256"})
    void prefillTilesFitSharedMemory(int headDim) {
        AttentionPlan p = attention(577, 577, 16, headDim, 0, false, 132, DEFAULT_SHARED_LIMIT);
        assertEquals(AttentionKind.PREFILL, p.kind());
        assertTrue(p.keyTile() >= 1 && p.keyTile() <= MAX_KEY_TILE);
        assertEquals(0, Integer.bitCount(p.keyTile()) - 1, "power of two");
        assertTrue(p.main().sharedBytes() <= DEFAULT_SHARED_LIMIT);
        assertEquals(prefillSharedBytes(PREFILL_WARPS, headDim, p.keyTile()), p.main().sharedBytes());
        assertEquals(ceilDiv(577, PREFILL_WARPS), p.main().gridX());
        assertEquals(16, p.main().gridY());
        assertEquals(32 * PREFILL_WARPS, p.main().block());
        if (headDim <= 128) assertEquals(32, p.keyTile()); // the LLaVA shapes get full tiles
    }

    @Test
    void headDimOutsideTheKernelsIsRefused() {
        assertThrows(IllegalArgumentException.class, () -> attention(1, 10, 8, 257, 9, true, 132, DEFAULT_SHARED_LIMIT));
        assertThrows(IllegalArgumentException.class, () -> attention(1, 10, 8, 0, 9, true, 132, DEFAULT_SHARED_LIMIT));
    }

    @ParameterizedTest
    @CsvSource({
            // n, kvLen, heads, qPos0, causal
            "1, 1, 32, 0, true",
            "1, 600, 32, 599, true",
            "1, 4096, 40, 4095, true",
            "1, 100000, 8, 99999, true",
            "4, 700, 32, 696, true",
            "2, 50, 1, 48, false",
            "1, 4096, 2, 10, true"})
    void splitsCoverTheVisibleKeysWithoutEmptySplits(int n, int kvLen, int heads, int qPos0, boolean causal) {
        AttentionPlan p = attention(n, kvLen, heads, 128, qPos0, causal, 132, DEFAULT_SHARED_LIMIT);
        assertEquals(AttentionKind.SPLIT, p.kind());
        int keys = visibleKeys(n, kvLen, qPos0, causal);
        assertTrue(p.splits() >= 1 && p.splits() <= MAX_SPLITS, p.toString());
        assertTrue((long) p.splits() * p.chunk() >= keys, p.toString());
        assertTrue((long) (p.splits() - 1) * p.chunk() < keys, "no empty split: " + p);
        assertEquals((Math.max(1, keys) + p.splits() - 1) / p.splits(), p.chunk(), "the kernel's chunk formula: " + p);
        if (p.splits() > 1) {
            assertTrue(p.chunk() >= MIN_SPLIT_KEYS, p.toString());
            assertNotNull(p.combine());
            assertEquals(n * heads, p.combine().gridX());
        } else assertNull(p.combine());
        assertEquals(n * heads, p.main().gridX());
        assertEquals(p.splits(), p.main().gridY());
        assertEquals(splitSharedBytes(ATTENTION_WARPS, 128), p.main().sharedBytes());
    }

    @Test
    void decodeOfALongContextFillsTheGpu() {
        AttentionPlan p = attention(1, 4096, 40, 128, 4095, true, 132, DEFAULT_SHARED_LIMIT);
        assertTrue((long) p.main().gridX() * p.main().gridY() >= 132, "at least one block per SM: " + p);
        // the causal limit of the rows, not the cache capacity, bounds the work
        assertEquals(1, attention(1, 4096, 40, 128, 0, true, 132, DEFAULT_SHARED_LIMIT).splits());
    }

    @Test
    void visibleKeysFollowTheCausalMask() {
        assertEquals(10, visibleKeys(3, 100, 7, true));
        assertEquals(100, visibleKeys(3, 100, 7, false));
        assertEquals(100, visibleKeys(3, 100, 99, true));
        assertEquals(Integer.MAX_VALUE, visibleKeys(2, Integer.MAX_VALUE, Integer.MAX_VALUE - 1, true));
    }

    /**
     * The split kernel's arithmetic, replayed on the CPU with the plan's splits and warps: per-warp online softmax,
     * block merge, then the combine kernel's merge. Must equal plain softmax attention (CpuBackend).
     */
    @ParameterizedTest
    @CsvSource({"1, 300, 4, 2, 64, 299, true", "3, 777, 8, 2, 32, 774, true", "2, 130, 2, 1, 16, 0, false", "1, 9, 2, 2, 8, 8, true"})
    void splitAttentionMathMatchesTheReference(int n, int kvLen, int heads, int kvHeads, int hd, int qPos0, boolean causal) {
        Random rnd = new Random(n * 31L + kvLen);
        float[] q = rand(rnd, n * heads * hd), k = rand(rnd, kvLen * kvHeads * hd), v = rand(rnd, kvLen * kvHeads * hd);
        float scale = (float) (1 / Math.sqrt(hd));
        CpuBackend cpu = new CpuBackend();
        Tensor out = cpu.allocate(n, heads * hd);
        cpu.attention(out, cpu.upload(q, n, heads * hd), cpu.upload(k, kvLen, kvHeads * hd), cpu.upload(v, kvLen, kvHeads * hd),
                kvLen, heads, kvHeads, hd, qPos0, causal, scale);
        float[] ref = cpu.download(out);
        // few SMs force several splits even for short contexts
        AttentionPlan p = attention(n, kvLen, heads, hd, qPos0, causal, 64, DEFAULT_SHARED_LIMIT);
        assertTrue(p.splits() > 1 || kvLen < 2 * MIN_SPLIT_KEYS, p.toString());
        float[] got = replaySplit(p, q, k, v, n, kvLen, heads, kvHeads, hd, qPos0, causal, scale);
        for (int i = 0; i < ref.length; i++) assertEquals(ref[i], got[i], 1e-5, "element " + i + " of " + p);
    }

    private static float[] replaySplit(AttentionPlan p, float[] q, float[] k, float[] v, int n, int kvLen, int heads,
                                       int kvHeads, int hd, int qPos0, boolean causal, float scale) {
        int W = p.main().block() / 32, S = p.splits(), group = heads / kvHeads;
        float[] partAcc = new float[n * heads * S * hd], partMl = new float[n * heads * S * 2];
        for (int row = 0; row < n * heads; row++)
            for (int s = 0; s < S; s++) {
                int t = row / heads, h = row % heads, kh = h / group;
                int limit = causal ? Math.min(kvLen, qPos0 + t + 1) : kvLen;
                int start = s * p.chunk(), end = Math.min(limit, start + p.chunk());
                float[] wm = new float[W], wl = new float[W];
                float[][] wacc = new float[W][hd];
                for (int w = 0; w < W; w++) {
                    float m = Float.NEGATIVE_INFINITY, l = 0;
                    for (int j = start + w; j < end; j += W) {
                        float sc = 0;
                        for (int d = 0; d < hd; d++) sc += q[t * heads * hd + h * hd + d] * scale * k[j * kvHeads * hd + kh * hd + d];
                        float mNew = Math.max(m, sc), corr = (float) Math.exp(m - mNew), pr = (float) Math.exp(sc - mNew);
                        l = l * corr + pr;
                        for (int d = 0; d < hd; d++) wacc[w][d] = wacc[w][d] * corr + pr * v[j * kvHeads * hd + kh * hd + d];
                        m = mNew;
                    }
                    wm[w] = m;
                    wl[w] = l;
                }
                float M = Float.NEGATIVE_INFINITY, L = 0;
                for (int w = 0; w < W; w++) M = Math.max(M, wm[w]);
                for (int w = 0; w < W; w++) L += wm[w] == Float.NEGATIVE_INFINITY ? 0 : wl[w] * (float) Math.exp(wm[w] - M);
                for (int d = 0; d < hd; d++) {
                    float a = 0;
                    for (int w = 0; w < W; w++) a += wm[w] == Float.NEGATIVE_INFINITY ? 0 : wacc[w][d] * (float) Math.exp(wm[w] - M);
                    partAcc[(row * S + s) * hd + d] = a;
                }
                partMl[(row * S + s) * 2] = M;
                partMl[(row * S + s) * 2 + 1] = L;
            }
        float[] out = new float[n * heads * hd];
        for (int row = 0; row < n * heads; row++) {
            float M = Float.NEGATIVE_INFINITY, L = 0;
            for (int s = 0; s < S; s++) M = Math.max(M, partMl[(row * S + s) * 2]);
            for (int s = 0; s < S; s++) {
                float ms = partMl[(row * S + s) * 2];
                if (ms != Float.NEGATIVE_INFINITY) L += partMl[(row * S + s) * 2 + 1] * (float) Math.exp(ms - M);
            }
            for (int d = 0; d < hd; d++) {
                float a = 0;
                for (int s = 0; s < S; s++) {
                    float ms = partMl[(row * S + s) * 2];
                    if (ms != Float.NEGATIVE_INFINITY) a += partAcc[(row * S + s) * hd + d] * (float) Math.exp(ms - M);
                }
                out[row * hd + d] = a / L;
            }
        }
        return out;
    }

    static float[] rand(Random r, int n) {
        float[] x = new float[n];
        for (int i = 0; i < n; i++) x[i] = (float) r.nextGaussian();
        return x;
    }
}
