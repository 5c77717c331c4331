// Greedy decoding: the index of the largest value of each row (the first one on ties, as the CPU's argmax).
// One block per row (grid.x = rows), blockDim.x a multiple of 32, at most 1024. NaNs are never selected.
#pragma once
#include "common.cuh"

__device__ __forceinline__ void argmax_pick(float& bv, int& bi, float v, int i) {
    if (v > bv || (v == bv && i < bi)) { bv = v; bi = i; }
}

template <typename T>
__device__ __forceinline__ void argmax_impl(const T* x, int rows, int cols, int* out) {
    __shared__ float sv[32];
    __shared__ int si[32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    for (int r = blockIdx.x; r < rows; r += gridDim.x) {
        float bv = -INFINITY;
        int bi = 0x7fffffff;
        for (int c = threadIdx.x; c < cols; c += blockDim.x) argmax_pick(bv, bi, ld(x, (int64_t)r * cols + c), c);
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) {
            const float ov = __shfl_xor_sync(QVLM_FULL_MASK, bv, o);
            const int oi = __shfl_xor_sync(QVLM_FULL_MASK, bi, o);
            argmax_pick(bv, bi, ov, oi);
        }
        __syncthreads();  // sv/si of the previous row are consumed
        if (lane == 0) { sv[warp] = bv; si[warp] = bi; }
        __syncthreads();
        if (warp == 0) {
            bv = lane < warps ? sv[lane] : -INFINITY;
            bi = lane < warps ? si[lane] : 0x7fffffff;
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) {
                const float ov = __shfl_xor_sync(QVLM_FULL_MASK, bv, o);
                const int oi = __shfl_xor_sync(QVLM_FULL_MASK, bi, o);
                argmax_pick(bv, bi, ov, oi);
            }
            // a row of only NaN / -inf has no strict maximum: report 0 like a scan that never moves
            if (lane == 0) out[r] = bi == 0x7fffffff ? 0 : bi;
        }
    }
}
