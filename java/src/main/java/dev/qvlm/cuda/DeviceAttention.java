package dev.qvlm.cuda;

/**
 * Attention on the device, three ways, chosen per call: decode (a few query rows) with the split-sequence kernel and
 * its combine; prefill with cuBLAS (S = Q·Kᵀ and O = P·V as strided-batched GEMMs over the heads, on tensor cores,
 * with a softmax kernel between) while S fits {@link #GEMM_SCORE_BYTES}; and the tiled prefill kernel (FP32 CUDA
 * cores) beyond that. The semantics are Backend.attention's; the CPU backend is the reference of all three.
 */
final class DeviceAttention {
    /** Prefill rows from which the GEMM path is taken (below: the split or the tiled kernel). */
    static final int GEMM_MIN_ROWS = 32;
    /** The largest FP32 score buffer (heads · n · kvLen · 4 bytes) the GEMM path allocates; longer prompts tile. */
    static final long GEMM_SCORE_BYTES = 512L << 20;

    private final OpStream ops;
    private final Storage storage;

    DeviceAttention(OpStream ops, Storage storage) {
        this.ops = ops;
        this.storage = storage;
    }

    /** Whether a call of this shape takes the GEMM path. */
    static boolean byGemm(int n, int kvLen, int heads) {
        return n >= GEMM_MIN_ROWS && 4L * heads * n * kvLen <= GEMM_SCORE_BYTES;
    }

    void run(CudaTensor o, CudaTensor q, CudaTensor k, CudaTensor v, int kvLen, int heads, int kvHeads, int headDim,
             int qPos0, boolean causal, float scale) {
        int n = q.rows();
        if (byGemm(n, kvLen, heads)) {
            byGemm(o, q, k, v, n, kvLen, heads, kvHeads, headDim, qPos0, causal, scale);
            return;
        }
        LaunchGeometry.AttentionPlan p = LaunchGeometry.attention(n, kvLen, heads, headDim, qPos0, causal, ops.smCount(),
                LaunchGeometry.DEFAULT_SHARED_LIMIT);
        int cz = causal ? 1 : 0;
        if (p.kind() == LaunchGeometry.AttentionKind.PREFILL) {
            ops.launch(Kernel.ATTN_PREFILL, p.main(), o.address(), q.address(), k.address(), v.address(), n, kvLen,
                    heads, kvHeads, headDim, qPos0, cz, scale, q.cols(), k.cols(), o.cols(), p.keyTile());
            return;
        }
        long accFloats = (long) n * heads * p.splits() * headDim;
        long part = p.splits() > 1 ? ops.take(4 * LaunchGeometry.splitScratchFloats(n, heads, p.splits(), headDim)) : 0;
        long partAcc = part, partMl = part == 0 ? 0 : part + 4 * accFloats;
        // in a graph's step the kernel reads {qPos0, kvLen} from the device (and derives its chunk): the node stays
        long posLen = ops.graphing() ? ops.deviceInts(qPos0, kvLen) : 0;
        ops.launch(Kernel.ATTN_SPLIT, p.main(), o.address(), partAcc, partMl, q.address(), k.address(), v.address(), n,
                posLen == 0 ? kvLen : 0, heads, kvHeads, headDim, posLen == 0 ? qPos0 : 0, cz, scale, q.cols(), k.cols(),
                o.cols(), p.splits(), posLen);
        if (p.combine() != null) {
            ops.launch(Kernel.ATTN_COMBINE, p.combine(), o.address(), partAcc, partMl, n, heads, headDim, p.splits(), o.cols());
            ops.give(part);
        }
    }

    /**
     * Prefill through cuBLAS. Per offset j within a group of heads sharing a KV head (group = heads / kvHeads), one
     * strided batch over the KV heads g (query head h = g·group + j): S_h [n × kvLen] = Q_h · K_gᵀ (FP32 out), then
     * softmax rows into P (storage type), then O_h [n × hd] = P_h · V_g. Column-major for cuBLAS: S_hᵀ = K_g·Q_hᵀ
     * with A = K (ld kvStride, transposed), B = Q (ld qStride); O_hᵀ = V_gᵀ·P_hᵀ with A = V (ld kvStride), B = P (ld
     * kvLen). FP16 storage: FP16 operands, FP32 accumulation; FP32 storage: FP32 throughout (no TF32).
     */
    private void byGemm(CudaTensor o, CudaTensor q, CudaTensor k, CudaTensor v, int n, int kvLen, int heads, int kvHeads,
                        int hd, int qPos0, boolean causal, float scale) {
        int group = heads / kvHeads, t = storage == Storage.F16 ? Gemm.CUDA_R_16F : Gemm.CUDA_R_32F, b = storage.bytes();
        long scores = (long) heads * n * kvLen;
        long s = ops.take(4 * scores), p = ops.take(b * scores);
        for (int j = 0; j < group; j++) {
            Gemm qk = new Gemm(Gemm.OP_T, Gemm.OP_N, kvLen, n, hd, k.address(), t, k.cols(),
                    q.address() + (long) b * j * hd, t, q.cols(), s + 4L * j * n * kvLen, Gemm.CUDA_R_32F, kvLen);
            ops.gemm(new Gemm.Batched(qk, kvHeads, hd, (long) group * hd, (long) group * n * kvLen));
        }
        ops.launch(Kernel.SOFTMAX_ROWS, new LaunchGeometry.Launch((int) Math.min(heads * (long) n, 65535L * 16), 1, 256, 0), p, s,
                heads * n, n, kvLen, qPos0, causal ? 1 : 0, scale);
        for (int j = 0; j < group; j++) {
            Gemm pv = new Gemm(Gemm.OP_N, Gemm.OP_N, hd, n, kvLen, v.address(), t, v.cols(),
                    p + (long) b * j * n * kvLen, t, kvLen, o.address() + (long) b * j * hd, t, o.cols());
            ops.gemm(new Gemm.Batched(pv, kvHeads, hd, (long) group * n * kvLen, (long) group * hd));
        }
        ops.give(s);
        ops.give(p);
    }
}
