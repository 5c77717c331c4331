package dev.qvlm.cuda;

/**
 * Grid and block sizes of every kernel in cuda-kernels/, computed on the host (pure Java, unit-tested on the CPU).
 * The launch geometry each kernel expects is documented next to it in the .cuh files; this class is the one place
 * that produces it.
 */
public final class LaunchGeometry {
    private LaunchGeometry() {}

    /** One launch: grid (x, y), 1-D block, dynamic shared memory in bytes. */
    public record Launch(int gridX, int gridY, int block, int sharedBytes) {
        public Launch {
            if (gridX < 1 || gridY < 1 || gridY > MAX_GRID_Y || block < 1 || block > MAX_BLOCK || sharedBytes < 0)
                throw new IllegalArgumentException("bad launch " + gridX + "x" + gridY + " / " + block + " / " + sharedBytes);
        }
    }

    public static final int MAX_BLOCK = 1024;
    public static final int MAX_GRID_Y = 65535;
    /** Static + dynamic shared memory a block may use without opting in (cuFuncSetAttribute). */
    public static final int DEFAULT_SHARED_LIMIT = 48 * 1024;
    public static final int ELEMENTWISE_BLOCK = 256;
    /** Grid-stride kernels stop adding blocks at this many per SM: more only adds scheduling overhead. */
    public static final int BLOCKS_PER_SM = 8;
    /** QVLM_MAX_HEAD_DIM of common.cuh: the attention kernels keep headDim / 32 floats per lane in registers. */
    public static final int MAX_HEAD_DIM = 256;
    public static final int MAX_KEY_TILE = 32;
    /** At most this many query rows go to the split (flash-decoding) kernel; more use the tiled prefill kernel. */
    public static final int SPLIT_MAX_ROWS = 4;
    public static final int ATTENTION_WARPS = 4;
    public static final int PREFILL_WARPS = 8;
    public static final int MAX_SPLITS = 64;
    /** A split covers at least this many keys: shorter ones cost more in the combine than they save. */
    public static final int MIN_SPLIT_KEYS = 64;

    static int ceilDiv(long a, long b) {
        long q = (a + b - 1) / b;
        if (q > Integer.MAX_VALUE) throw new IllegalArgumentException(a + "/" + b + " overflows int");
        return (int) q;
    }

    /** A grid-stride launch over n elements: enough blocks for every element, capped at BLOCKS_PER_SM per SM. */
    public static Launch elementwise(long n, int smCount) {
        if (n < 0 || smCount < 1) throw new IllegalArgumentException("elementwise " + n + " on " + smCount + " SMs");
        int blocks = (int) Math.min(Math.max(1, ceilDiv(n, ELEMENTWISE_BLOCK)), (long) smCount * BLOCKS_PER_SM);
        return new Launch(blocks, 1, ELEMENTWISE_BLOCK, 0);
    }

    /**
     * Block size of a one-block-per-row kernel (norms, argmax): about four elements per thread, rounded up to a
     * whole warp, within [32, 1024]. Always a multiple of 32 (block_sum requires it).
     */
    public static int rowBlock(int cols) {
        int t = ceilDiv(Math.max(1, cols), 4);
        t = ceilDiv(t, 32) * 32;
        return Math.max(32, Math.min(MAX_BLOCK, t));
    }

    /** One block per row (the kernels grid-stride over rows, so capping the grid is also correct). */
    public static Launch perRow(int rows, int cols) {
        if (rows < 1) throw new IllegalArgumentException("rows " + rows);
        return new Launch(rows, 1, rowBlock(cols), 0);
    }

    /** The embedding gather: one block per token, up to 256 threads striding the row. */
    public static Launch embed(int tokens, int cols) {
        return new Launch(Math.max(1, tokens), 1, Math.min(ELEMENTWISE_BLOCK, Math.max(32, ceilDiv(cols, 32) * 32)), 0);
    }

    public enum AttentionKind { PREFILL, SPLIT }

    /**
     * How one attention call runs. PREFILL: {@code main} is qvlm_attn_prefill with {@code keyTile}. SPLIT: main is
     * qvlm_attn_split over {@code splits} chunks of {@code chunk} = ceil(visible keys / splits) keys (the kernel
     * computes chunk itself, so a graph's node needs only the key count), followed by {@code combine}
     * (qvlm_attn_combine) when splits &gt; 1; combine is null otherwise.
     */
    public record AttentionPlan(AttentionKind kind, Launch main, int keyTile, int splits, int chunk, Launch combine) {}

    /** Shared memory of the prefill kernel: q rows [W][hd], K tile [tile][hd+1], V tile [tile][hd], FP32. */
    public static int prefillSharedBytes(int warps, int headDim, int keyTile) {
        return 4 * (warps * headDim + keyTile * (headDim + 1) + keyTile * headDim);
    }

    /** Shared memory of the split kernel: per-warp max and sum, per-warp accumulators [W][hd], FP32. */
    public static int splitSharedBytes(int warps, int headDim) {
        return 4 * (2 * warps + warps * headDim);
    }

    /** The number of keys the query rows can see at most: the causal limit of the last row, or all of them. */
    public static int visibleKeys(int n, int kvLen, int qPos0, boolean causal) {
        return causal ? (int) Math.min(kvLen, (long) qPos0 + n) : kvLen;
    }

    /**
     * Picks the kernel and its geometry. Few query rows (decode) use the split kernel, with enough splits that
     * about two blocks per SM are busy, each split covering at least MIN_SPLIT_KEYS keys; many rows (prefill, the
     * vision tower) use the tiled kernel with the largest K/V tile that fits the shared memory limit.
     */
    public static AttentionPlan attention(int n, int kvLen, int heads, int headDim, int qPos0, boolean causal,
                                          int smCount, int sharedLimit) {
        if (n < 1 || kvLen < 1 || heads < 1 || smCount < 1)
            throw new IllegalArgumentException("attention n=" + n + " kvLen=" + kvLen + " heads=" + heads);
        if (headDim < 1 || headDim > MAX_HEAD_DIM)
            throw new IllegalArgumentException("attention: head dimension " + headDim + " is outside 1.." + MAX_HEAD_DIM
                    + " (the CUDA kernels keep a head in registers)");
        if (heads > MAX_GRID_Y) throw new IllegalArgumentException("attention: " + heads + " heads");
        if (n <= SPLIT_MAX_ROWS) {
            int keys = Math.max(1, visibleKeys(n, kvLen, qPos0, causal));
            int rowsHeads = n * heads;
            int wanted = ceilDiv(2L * smCount, rowsHeads);
            int splits = Math.max(1, Math.min(Math.min(wanted, MAX_SPLITS), ceilDiv(keys, MIN_SPLIT_KEYS)));
            splits = ceilDiv(keys, ceilDiv(keys, splits)); // no empty trailing split
            int chunk = ceilDiv(keys, splits); // the kernel computes the same from the key count it reads
            Launch main = new Launch(rowsHeads, splits, 32 * ATTENTION_WARPS, splitSharedBytes(ATTENTION_WARPS, headDim));
            Launch combine = splits > 1 ? new Launch(rowsHeads, 1, Math.min(MAX_BLOCK, ceilDiv(headDim, 32) * 32), 0) : null;
            return new AttentionPlan(AttentionKind.SPLIT, main, 0, splits, chunk, combine);
        }
        int tile = MAX_KEY_TILE;
        while (tile > 1 && prefillSharedBytes(PREFILL_WARPS, headDim, tile) > sharedLimit) tile /= 2;
        if (prefillSharedBytes(PREFILL_WARPS, headDim, tile) > sharedLimit)
            throw new IllegalArgumentException("attention: head dimension " + headDim + " does not fit shared memory");
        Launch main = new Launch(ceilDiv(n, PREFILL_WARPS), heads, 32 * PREFILL_WARPS,
                prefillSharedBytes(PREFILL_WARPS, headDim, tile));
        return new AttentionPlan(AttentionKind.PREFILL, main, tile, 1, kvLen, null);
    }

    /** Floats of split-attention scratch: accumulators [n*heads][splits][hd] and (max, sum) [n*heads][splits][2]. */
    public static long splitScratchFloats(int n, int heads, int splits, int headDim) {
        return (long) n * heads * splits * (headDim + 2);
    }
}
