package dev.qvlm.cuda;

import dev.qvlm.QvlmException;
import dev.qvlm.quant.Q4Matrix;

/**
 * The device layout of 4-bit weights, made once at upload from the standard compressed-tensors layout of
 * {@link Q4Matrix} (which stays the on-disk format), and a host emulation of the int4 kernels of
 * cuda-kernels/q4.cuh that follows their index math step by step: which thread loads which 16-byte word group,
 * how it unpacks nibbles, in which order it accumulates. The CPU tests check the emulation against
 * {@link dev.qvlm.cpu.Matmul#matmulScalar}; that is how the layout is verified without a GPU.
 *
 * <pre>
 * rows are grouped in tiles of R = {@value #TILE_ROWS} (the last tile padded with zero words), columns in chunks of
 * {@value #CHUNK_COLS} (one uint4 = 4 words = 32 nibbles per row):
 *
 * words  int32 [tiles][chunks][R][4]      uint4 (t·chunks + u)·R + r = columns 32u .. 32u+31 of row t·R + r;
 *                                          a block's threads read consecutive chunks, so one step of a warp is
 *                                          32·R·16 = 2 KiB of contiguous memory
 * word j of a chunk holds columns 32u + 8j .. +7 with its nibbles interleaved: position p = 0..3 holds column 2p,
 *        p = 4..7 column 2p−7, so ((w &gt;&gt; 4i) &amp; 0x000f000f) | 0x64006400 is the FP16 pair (1024 + q[2i],
 *        1024 + q[2i+1]): two consecutive columns, matching one half2 of the activations
 * params half2 [tiles][groups][R]         (scale, 1024 + zero point) per row and group, FP16: R of them are one
 *                                          uint4; symmetric weights have zero point 8
 * </pre>
 *
 * The kernels need cols % 32 == 0 and groupSize % 32 == 0 (per channel: groupSize = cols), so that a chunk never
 * straddles two groups; {@link #supported} says whether a matrix qualifies. Dequantised weight = (q − z) · scale,
 * with the scale rounded to FP16 here (the only rounding the layout adds: relative 2^-11 at most).
 */
public final class Int4Layout {
    private Int4Layout() {}

    public static final int TILE_ROWS = 4;
    public static final int CHUNK_COLS = 32;
    public static final int WORDS_PER_CHUNK = 4;
    /** FP16 1024.0: OR-ing a nibble into its mantissa gives 1024 + nibble exactly. */
    public static final int MAGIC_HALF = 0x6400;
    /** The GEMV kernel handles up to this many tokens (activation rows); more go through dequantise + GemmEx. */
    public static final int GEMV_MAX_TOKENS = 8;
    /** Token counts the GEMV kernel is instantiated for (a call with n tokens uses the smallest bucket ≥ n). */
    public static final int[] GEMV_BUCKETS = {1, 2, 4, 8};
    public static final int MAX_WARPS = 8;

    /** A matrix in the device layout (host copy), ready to upload: words and params as int32 words. */
    public record Relaid(int rows, int cols, int groupSize, int groups, int tiles, int chunks, int[] words, int[] params) {
        public long wordBytes() {
            return 4L * words.length;
        }

        public long paramBytes() {
            return 4L * params.length;
        }

        /** Bytes one pass of the GEMV reads: every word and every param. */
        public long bytes() {
            return wordBytes() + paramBytes();
        }
    }

    /** Shapes the int4 kernels take (others are dequantised on the host to FP16). */
    public static boolean supported(int cols, int groupSize) {
        return cols > 0 && cols % CHUNK_COLS == 0 && groupSize > 0 && cols % groupSize == 0 && groupSize % CHUNK_COLS == 0;
    }

    public static boolean supported(Q4Matrix m) {
        return supported(m.cols(), m.groupSize());
    }

    public static int tiles(int rows) {
        return (rows + TILE_ROWS - 1) / TILE_ROWS;
    }

    /** int32 words of the device layout for a rows × cols matrix. */
    public static long wordCount(int rows, int cols) {
        return (long) tiles(rows) * (cols / CHUNK_COLS) * TILE_ROWS * WORDS_PER_CHUNK;
    }

    /** int32 (half2) params of the device layout. */
    public static long paramCount(int rows, int cols, int groupSize) {
        return (long) tiles(rows) * (cols / groupSize) * TILE_ROWS;
    }

    /** Device bytes of one matrix in this layout. */
    public static long deviceBytes(int rows, int cols, int groupSize) {
        return 4 * (wordCount(rows, cols) + paramCount(rows, cols, groupSize));
    }

    /** Standard nibble order (column j at bits 4j) → the kernel's (column 2p at position p, 2p+1 at position 4+p). */
    public static int interleave(int w) {
        int out = 0;
        for (int p = 0; p < 8; p++) {
            int col = p < 4 ? 2 * p : 2 * (p - 4) + 1;
            out |= ((w >>> (4 * col)) & 0xf) << (4 * p);
        }
        return out;
    }

    /** Inverse of {@link #interleave}. */
    public static int deinterleave(int w) {
        int out = 0;
        for (int p = 0; p < 8; p++) {
            int col = p < 4 ? 2 * p : 2 * (p - 4) + 1;
            out |= ((w >>> (4 * p)) & 0xf) << (4 * col);
        }
        return out;
    }

    /** The half2 param word: low half the FP16 scale, high half 1024 + zero point (exact in FP16). */
    public static int param(float scale, int zero, String what) {
        short s = Half.fromFloat(scale);
        if (!Float.isFinite(Half.toFloat(s)))
            throw new QvlmException(what + ": group scale " + scale + " is outside the FP16 range of the int4 kernels");
        return (s & 0xffff) | ((Half.fromFloat(1024f + zero) & 0xffff) << 16);
    }

    /** Re-lays a {@link Q4Matrix} for the device; {@code what} names it in errors. */
    public static Relaid relayout(Q4Matrix m, String what) {
        if (!supported(m))
            throw new IllegalArgumentException(what + ": " + m.rows() + "x" + m.cols() + " with group size " + m.groupSize()
                    + " does not fit the int4 kernels (cols and group size must be multiples of " + CHUNK_COLS + ")");
        int rows = m.rows(), cols = m.cols(), g = m.groupSize(), groups = m.groupsPerRow();
        int tiles = tiles(rows), chunks = cols / CHUNK_COLS, wpr = m.wordsPerRow();
        int[] words = new int[Math.toIntExact(wordCount(rows, cols))];
        int[] params = new int[Math.toIntExact(paramCount(rows, cols, g))];
        var seg = m.packed();
        var le = java.lang.foreign.ValueLayout.JAVA_INT_UNALIGNED.withOrder(java.nio.ByteOrder.LITTLE_ENDIAN);
        float[] sc = m.scales();
        byte[] zs = m.zeros();
        for (int row = 0; row < rows; row++) {
            int t = row / TILE_ROWS, r = row % TILE_ROWS;
            long base = (long) row * wpr;
            for (int u = 0; u < chunks; u++) {
                int dst = ((t * chunks + u) * TILE_ROWS + r) * WORDS_PER_CHUNK;
                for (int j = 0; j < WORDS_PER_CHUNK; j++)
                    words[dst + j] = interleave(seg.getAtIndex(le, base + WORDS_PER_CHUNK * u + j));
            }
            for (int gi = 0; gi < groups; gi++)
                params[(t * groups + gi) * TILE_ROWS + r] =
                        param(sc[row * groups + gi], zs == null ? 8 : zs[row * groups + gi], what);
        }
        for (int row = rows; row < tiles * TILE_ROWS; row++) // padding rows: scale 0, never stored by the kernel
            for (int gi = 0; gi < groups; gi++) params[((row / TILE_ROWS) * groups + gi) * TILE_ROWS + row % TILE_ROWS] = param(0, 8, what);
        return new Relaid(rows, cols, g, groups, tiles, chunks, words, params);
    }

    // ------------------------------------------------------------------ launch geometry (shared with the backend)

    private static volatile int warpsOverride;

    /**
     * Warps per block of the GEMV: about two chunks per thread, 1..{@value #MAX_WARPS}; or the fixed count set by
     * {@link #overrideGemvWarps} (the kernel takes any count: its reduction order follows the block size, and the
     * emulation reads the same count).
     */
    public static int gemvWarps(int chunks) {
        int w = warpsOverride;
        return w > 0 ? w : Math.max(1, Math.min(MAX_WARPS, (chunks + 63) / 64));
    }

    private static volatile int unrollOverride = 1;

    /**
     * Chunks whose weight loads a thread of the one-token GEMV issues before using any (1, 2 or 4; same sums).
     * 1 until a card's measurements say otherwise (GpuGemvBench's int4-uN kernels).
     */
    public static int gemvUnroll() {
        return unrollOverride;
    }

    /** For the GEMV benchmark's sweep and the GPU tests: 1, 2 or 4 chunks in flight per thread (1: the default). */
    public static void overrideGemvUnroll(int unroll) {
        if (unroll != 1 && unroll != 2 && unroll != 4) throw new IllegalArgumentException("GEMV unroll " + unroll + ": 1, 2 or 4");
        unrollOverride = unroll;
    }

    /** For the GEMV benchmark's sweep: every GEMV launch uses {@code warps} warps (1..{@value #MAX_WARPS}); 0 restores the rule. */
    public static void overrideGemvWarps(int warps) {
        if (warps < 0 || warps > MAX_WARPS) throw new IllegalArgumentException("GEMV warps " + warps + " outside 0.." + MAX_WARPS);
        warpsOverride = warps;
    }

    /** The smallest instantiated token bucket ≥ n (1 ≤ n ≤ {@value #GEMV_MAX_TOKENS}). */
    public static int bucket(int n) {
        for (int b : GEMV_BUCKETS) if (n <= b) return b;
        throw new IllegalArgumentException(n + " tokens exceed the GEMV's " + GEMV_MAX_TOKENS);
    }

    /** GEMV launch: one block per row tile, 32·warps threads, no dynamic shared memory. */
    public static LaunchGeometry.Launch gemvLaunch(int rows, int cols) {
        return new LaunchGeometry.Launch(tiles(rows), 1, 32 * gemvWarps(cols / CHUNK_COLS), 0);
    }

    // ------------------------------------------------------------------ emulation of cuda-kernels/q4.cuh

    /**
     * q4_dequant_word of q4.cuh for pair i: (q[2i] − z, q[2i+1] − z) as floats (exact, as the half2 ops are). Even
     * pairs: lop3(w or w &gt;&gt; 8, 0x000f000f, 0x64006400) = 1024 + q, minus zb = 1024 + z. Odd pairs: mask 0x00f000f0
     * gives 1024 + 16q, times 1/16 plus zodd = −(zb − 960) = −(64 + z).
     */
    static void pair(int word, int i, float zb, float[] d) {
        int w = (i >= 2) ? word >>> 8 : word;
        int h2 = (w & ((i & 1) == 0 ? 0x000f000f : 0x00f000f0)) | (MAGIC_HALF << 16 | MAGIC_HALF);
        float lo = Half.toFloat((short) h2), hi = Half.toFloat((short) (h2 >>> 16));
        if ((i & 1) == 0) {
            d[0] = lo - zb;
            d[1] = hi - zb;
        } else {
            float zodd = -(zb - 960f);
            d[0] = lo * 0.0625f + zodd;
            d[1] = hi * 0.0625f + zodd;
        }
    }

    /**
     * qvlm_q4_gemv, emulated: out[t·rows + o] = Σ_k x[t, k] · W[o, k] for t &lt; n, x FP16 bits [n, cols]. Per
     * thread (warp w, lane l of a block of W warps) chunks u = s·32W + 32w + l; per chunk and row r of the tile an
     * FP32 partial p = Σ fma over the chunk's 32 columns in word/pair order (low half first), then acc = fma(scale,
     * p, acc); a xor-butterfly warp sum; lane 0 of each warp stores to shared memory and the block sums the warps in
     * order. Every float operation is the kernel's, in the kernel's order.
     */
    public static float[] emulateGemv(Relaid m, short[] x, int n) {
        return emulateGemv(m, x, n, 0, m.tiles());
    }

    /** {@link #emulateGemv} for row tiles [tile0, tile1) only (the other outputs stay 0): for sampled big shapes. */
    public static float[] emulateGemv(Relaid m, short[] x, int n, int tile0, int tile1) {
        if (n < 1 || n > GEMV_MAX_TOKENS) throw new IllegalArgumentException("n = " + n);
        if (x.length < n * m.cols()) throw new IllegalArgumentException("x: " + x.length + " < " + n + "x" + m.cols());
        int R = TILE_ROWS, K = m.cols(), warps = gemvWarps(m.chunks()), threads = 32 * warps;
        float[] out = new float[n * m.rows()];
        float[][] xf = new float[n][K];
        for (int t = 0; t < n; t++) for (int k = 0; k < K; k++) xf[t][k] = Half.toFloat(x[t * K + k]);
        float[] d = new float[2];
        for (int tile = tile0; tile < tile1; tile++) {
            float[][][] shared = new float[warps][R][n];
            for (int w = 0; w < warps; w++) {
                float[][][] acc = new float[32][R][n]; // per lane
                for (int lane = 0; lane < 32; lane++)
                    for (int u = 32 * w + lane; u < m.chunks(); u += threads) {
                        int g = u * CHUNK_COLS / m.groupSize();
                        for (int r = 0; r < R; r++) {
                            int prm = m.params()[(tile * m.groups() + g) * R + r];
                            float scale = Half.toFloat((short) prm);
                            float zb = Half.toFloat((short) (prm >>> 16));
                            int wbase = ((tile * m.chunks() + u) * R + r) * WORDS_PER_CHUNK;
                            for (int t = 0; t < n; t++) {
                                float p = 0f;
                                for (int j = 0; j < WORDS_PER_CHUNK; j++) {
                                    int word = m.words()[wbase + j];
                                    for (int i = 0; i < 4; i++) {
                                        pair(word, i, zb, d);
                                        int c = u * CHUNK_COLS + 8 * j + 2 * i;
                                        p = Math.fma(d[0], xf[t][c], p);
                                        p = Math.fma(d[1], xf[t][c + 1], p);
                                    }
                                }
                                acc[lane][r][t] = Math.fma(scale, p, acc[lane][r][t]);
                            }
                        }
                    }
                for (int r = 0; r < R; r++)
                    for (int t = 0; t < n; t++) {
                        float[] v = new float[32];
                        for (int l = 0; l < 32; l++) v[l] = acc[l][r][t];
                        shared[w][r][t] = warpSum(v);
                    }
            }
            for (int r = 0; r < R; r++) {
                int row = tile * R + r;
                if (row >= m.rows()) continue;
                for (int t = 0; t < n; t++) {
                    float s = 0f;
                    for (int w = 0; w < warps; w++) s += shared[w][r][t];
                    out[t * m.rows() + row] = s;
                }
            }
        }
        return out;
    }

    /** warp_sum of common.cuh: v += shfl_xor(v, o) for o = 16, 8, 4, 2, 1; lane 0's result. */
    static float warpSum(float[] v) {
        float[] a = v.clone();
        for (int o = 16; o > 0; o >>= 1) {
            float[] b = new float[32];
            for (int l = 0; l < 32; l++) b[l] = a[l] + a[l ^ o];
            a = b;
        }
        return a[0];
    }

    /**
     * qvlm_q4_dequant, emulated: the FP16 weight [rows, cols] row-major that GemmEx consumes, element = FP16 of
     * (q − z) · scale (hsub2 exact, hmul2 rounds once).
     */
    public static short[] emulateDequant(Relaid m) {
        int R = TILE_ROWS, K = m.cols();
        short[] out = new short[Math.multiplyExact(m.rows(), K)];
        float[] d = new float[2];
        for (int row = 0; row < m.rows(); row++) {
            int tile = row / R, r = row % R;
            for (int u = 0; u < m.chunks(); u++) {
                int prm = m.params()[(tile * m.groups() + u * CHUNK_COLS / m.groupSize()) * R + r];
                float scale = Half.toFloat((short) prm), zb = Half.toFloat((short) (prm >>> 16));
                int wbase = ((tile * m.chunks() + u) * R + r) * WORDS_PER_CHUNK;
                for (int j = 0; j < WORDS_PER_CHUNK; j++)
                    for (int i = 0; i < 4; i++) {
                        pair(m.words()[wbase + j], i, zb, d);
                        int c = row * K + u * CHUNK_COLS + 8 * j + 2 * i;
                        out[c] = Half.fromFloat(Half.toFloat(Half.fromFloat(d[0])) * scale);
                        out[c + 1] = Half.fromFloat(Half.toFloat(Half.fromFloat(d[1])) * scale);
                    }
            }
        }
        return out;
    }
}
