// Multi-head attention with grouped KV heads (GQA), FP32 scores and an online softmax (running max m, running sum
// l, unnormalised accumulator), the semantics of Backend.attention / CpuBackend.attention:
//   q:   [n x heads*headDim]   (row stride qStride), query row t sits at position qPos0 + t
//   k,v: [kvLen x kvHeads*headDim] (row stride kvStride), query head h reads KV head h / (heads / kvHeads)
//   out: [n x heads*headDim]   (row stride oStride)
// causal: query row t sees keys j <= qPos0 + t. Scores are scaled by `scale`. headDim <= QVLM_MAX_HEAD_DIM.
//
// Two kernels, chosen on the host by LaunchGeometry.attention:
//  * prefill (many query rows): a block of W warps owns W consecutive query rows of one head; K/V tiles of
//    `keyTile` (<= 32) keys are staged in shared memory and reused by all W rows; lane j scores key j of the tile,
//    lane d accumulates output dimensions d, d+32, ...
//    grid = (ceil(n / W), heads), block = 32*W, dynamic shared memory = LaunchGeometry.prefillSharedBytes.
//  * split (decode: few query rows, long contexts): flash-decoding. grid = (n*heads, splits), block = 32*W; split s
//    covers keys [s*chunk, (s+1)*chunk), chunk = ceil(visible keys / splits); each warp walks every W-th key of it (coalesced 32-lane dot products).
//    With one split the block writes the normalised output; otherwise it writes its (m, l, acc) to FP32 scratch
//    and qvlm_attn_combine merges the splits. Dynamic shared memory = LaunchGeometry.splitSharedBytes.
#pragma once
#include "common.cuh"

template <typename T>
__device__ __forceinline__ void attn_prefill_impl(T* out, const T* q, const T* k, const T* v, int n, int kvLen,
                                                  int heads, int kvHeads, int headDim, int qPos0, int causal,
                                                  float scale, int qStride, int kvStride, int oStride, int keyTile) {
    extern __shared__ float smem[];
    const int W = blockDim.x >> 5, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int hd = headDim, kStride = hd + 1;  // +1: lane j reads row j of the K tile, so pad to dodge bank conflicts
    float* qs = smem;                          // [W][hd]
    float* ks = qs + W * hd;                   // [keyTile][hd + 1]
    float* vs = ks + keyTile * kStride;        // [keyTile][hd]
    const int h = blockIdx.y, kh = h / (heads / kvHeads);
    const int t0 = blockIdx.x * W, t = t0 + warp;
    const bool active = t < n;
    const int limit = !active ? 0 : causal ? min(kvLen, qPos0 + t + 1) : kvLen;
    const int lastRow = min(n, t0 + W) - 1;
    const int blockLimit = causal ? min(kvLen, qPos0 + lastRow + 1) : kvLen;

    if (active)
        for (int d = lane; d < hd; d += 32) qs[warp * hd + d] = ld(q, (int64_t)t * qStride + (int64_t)h * hd + d);

    float m = -INFINITY, l = 0.f, acc[QVLM_HEAD_REGS];
#pragma unroll
    for (int i = 0; i < QVLM_HEAD_REGS; i++) acc[i] = 0.f;

    for (int j0 = 0; j0 < blockLimit; j0 += keyTile) {
        __syncthreads();  // the previous tile is consumed (and, the first time, qs is written)
        for (int idx = threadIdx.x; idx < keyTile * hd; idx += blockDim.x) {
            const int jj = idx / hd, d = idx - jj * hd, j = j0 + jj;
            const int64_t g = (int64_t)j * kvStride + (int64_t)kh * hd + d;
            ks[jj * kStride + d] = j < kvLen ? ld(k, g) : 0.f;
            vs[jj * hd + d] = j < kvLen ? ld(v, g) : 0.f;
        }
        __syncthreads();
        if (!active || j0 >= limit) continue;  // warp-uniform; the barriers above are still reached by every warp

        const int j = j0 + lane;
        float s = -INFINITY;
        if (lane < keyTile && j < limit) {
            float dot = 0.f;
            for (int d = 0; d < hd; d++) dot += qs[warp * hd + d] * ks[lane * kStride + d];
            s = dot * scale;
        }
        const float mNew = fmaxf(m, warp_max(s));  // finite: key j0 < limit is in this tile
        const float corr = expf(m - mNew);         // m = -inf the first time: corr = 0 on zeros
        const float p = s == -INFINITY ? 0.f : expf(s - mNew);
        l = l * corr + warp_sum(p);
#pragma unroll
        for (int i = 0; i < QVLM_HEAD_REGS; i++) acc[i] *= corr;
        const int tileKeys = min(keyTile, limit - j0);
        for (int jj = 0; jj < tileKeys; jj++) {
            const float pj = __shfl_sync(QVLM_FULL_MASK, p, jj);
#pragma unroll
            for (int i = 0; i < QVLM_HEAD_REGS; i++) {
                const int d = lane + 32 * i;
                if (d < hd) acc[i] += pj * vs[jj * hd + d];
            }
        }
        m = mNew;
    }
    if (!active) return;
    const float inv = l > 0.f ? 1.f / l : 0.f;
#pragma unroll
    for (int i = 0; i < QVLM_HEAD_REGS; i++) {
        const int d = lane + 32 * i;
        if (d < hd) st(out, (int64_t)t * oStride + (int64_t)h * hd + d, acc[i] * inv);
    }
}

template <typename T>
__device__ __forceinline__ void attn_split_impl(T* out, float* partAcc, float* partMl, const T* q, const T* k,
                                                const T* v, int n, int kvLen, int heads, int kvHeads, int headDim,
                                                int qPos0, int causal, float scale, int qStride, int kvStride,
                                                int oStride, int splits, const int* posLenDev) {
    extern __shared__ float smem[];
    if (posLenDev != nullptr) {  // a decode step in a CUDA graph: {qPos0, kvLen} from device memory
        qPos0 = posLenDev[0];
        kvLen = posLenDev[1];
    }
    // LaunchGeometry.attention's chunk: the visible keys (at least 1) over the splits, rounded up
    const int chunk = (max(1, causal ? min(kvLen, qPos0 + n) : kvLen) + splits - 1) / splits;
    const int W = blockDim.x >> 5, warp = threadIdx.x >> 5, lane = threadIdx.x & 31, hd = headDim;
    float* wm = smem;          // [W] running max of each warp
    float* wl = wm + W;        // [W] running sum
    float* wacc = wl + W;      // [W][hd] accumulators
    const int row = blockIdx.x;  // = t * heads + h
    if (row >= n * heads) return;  // whole block: uniform, before any barrier
    const int t = row / heads, h = row - t * heads, kh = h / (heads / kvHeads), s = blockIdx.y;
    const int limit = causal ? min(kvLen, qPos0 + t + 1) : kvLen;
    const int start = s * chunk, end = min(limit, start + chunk);

    float qr[QVLM_HEAD_REGS];
#pragma unroll
    for (int i = 0; i < QVLM_HEAD_REGS; i++) {
        const int d = lane + 32 * i;
        qr[i] = d < hd ? ld(q, (int64_t)t * qStride + (int64_t)h * hd + d) * scale : 0.f;
    }
    float m = -INFINITY, l = 0.f, acc[QVLM_HEAD_REGS];
#pragma unroll
    for (int i = 0; i < QVLM_HEAD_REGS; i++) acc[i] = 0.f;
    for (int j = start + warp; j < end; j += W) {
        const int64_t base = (int64_t)j * kvStride + (int64_t)kh * hd;
        float dot = 0.f;
#pragma unroll
        for (int i = 0; i < QVLM_HEAD_REGS; i++) {
            const int d = lane + 32 * i;
            if (d < hd) dot += qr[i] * ld(k, base + d);
        }
        const float sc = warp_sum(dot);
        const float mNew = fmaxf(m, sc);
        const float corr = expf(m - mNew), p = expf(sc - mNew);
        l = l * corr + p;
#pragma unroll
        for (int i = 0; i < QVLM_HEAD_REGS; i++) {
            const int d = lane + 32 * i;
            acc[i] = acc[i] * corr + (d < hd ? p * ld(v, base + d) : 0.f);
        }
        m = mNew;
    }
    if (lane == 0) { wm[warp] = m; wl[warp] = l; }
#pragma unroll
    for (int i = 0; i < QVLM_HEAD_REGS; i++) {
        const int d = lane + 32 * i;
        if (d < hd) wacc[warp * hd + d] = acc[i];
    }
    __syncthreads();
    // merge the warps: every thread recomputes the (cheap, W-long) statistics and owns dimensions d = tid, tid+B...
    float M = -INFINITY;
    for (int w = 0; w < W; w++) M = fmaxf(M, wm[w]);
    float L = 0.f;
    for (int w = 0; w < W; w++) L += wm[w] == -INFINITY ? 0.f : wl[w] * expf(wm[w] - M);
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        float a = 0.f;
        for (int w = 0; w < W; w++) a += wm[w] == -INFINITY ? 0.f : wacc[w * hd + d] * expf(wm[w] - M);
        if (splits == 1) {
            st(out, (int64_t)t * oStride + (int64_t)h * hd + d, L > 0.f ? a / L : 0.f);
        } else {
            partAcc[((int64_t)row * splits + s) * hd + d] = a;
        }
    }
    if (splits > 1 && threadIdx.x == 0) {
        partMl[((int64_t)row * splits + s) * 2] = M;
        partMl[((int64_t)row * splits + s) * 2 + 1] = L;
    }
}

// Merges the splits of attn_split: grid.x = n*heads (one block per query row and head), any block size.
// partAcc: [n*heads][splits][hd], partMl: [n*heads][splits][2] = (max, sum); empty splits have max = -inf.
template <typename T>
__device__ __forceinline__ void attn_combine_impl(T* out, const float* partAcc, const float* partMl, int n, int heads,
                                                  int headDim, int splits, int oStride) {
    for (int row = blockIdx.x; row < n * heads; row += gridDim.x) {
        const int t = row / heads, h = row - t * heads;
        const float* ml = partMl + (int64_t)row * splits * 2;
        float M = -INFINITY;
        for (int s = 0; s < splits; s++) M = fmaxf(M, ml[2 * s]);
        float L = 0.f;
        for (int s = 0; s < splits; s++) L += ml[2 * s] == -INFINITY ? 0.f : ml[2 * s + 1] * expf(ml[2 * s] - M);
        const float inv = L > 0.f ? 1.f / L : 0.f;
        for (int d = threadIdx.x; d < headDim; d += blockDim.x) {
            float a = 0.f;
            for (int s = 0; s < splits; s++)
                if (ml[2 * s] != -INFINITY) a += partAcc[((int64_t)row * splits + s) * headDim + d] * expf(ml[2 * s] - M);
            st(out, (int64_t)t * oStride + (int64_t)h * headDim + d, a * inv);
        }
    }
}

// The softmax step of prefill attention through GEMMs (CudaBackend.attentionByGemm: S = Q·Kᵀ and O = P·V run on
// cuBLAS): s is FP32 [rows][kvLen] with row r the scores of query t = r % n of one head; p gets softmax(scale·s) in
// the storage type, keys past the causal limit qPos0 + t masked to 0. The CPU's formula: scores dot·scale, max,
// exp(x − max), sum, divide. One block per row (grid-stride over rows).
template <typename T>
__device__ __forceinline__ void softmax_rows_impl(T* p, const float* s, int rows, int n, int kvLen, int qPos0,
                                                  int causal, float scale) {
    for (int r = blockIdx.x; r < rows; r += gridDim.x) {
        const int t = r % n;
        const int limit = causal ? min(kvLen, qPos0 + t + 1) : kvLen;
        const float* sr = s + (int64_t)r * kvLen;
        float m = -INFINITY;
        for (int j = threadIdx.x; j < limit; j += blockDim.x) m = fmaxf(m, sr[j] * scale);
        m = block_max(m);
        float sum = 0.f;
        for (int j = threadIdx.x; j < limit; j += blockDim.x) sum += expf(sr[j] * scale - m);
        sum = block_sum(sum);
        const float inv = sum > 0.f ? 1.f / sum : 0.f;
        for (int j = threadIdx.x; j < kvLen; j += blockDim.x)
            st(p, (int64_t)r * kvLen + j, j < limit ? expf(sr[j] * scale - m) * inv : 0.f);
    }
}
