// RMSNorm (LLaMA) and LayerNorm (CLIP): one block per row (grid.x = rows, LaunchGeometry.rowBlock picks the block
// size: a multiple of 32, at most 1024). Statistics in FP32; LayerNorm uses two passes (mean, then the centred sum
// of squares) like the CPU reference, which avoids the cancellation of E[x²] − E[x]². out may alias in: every
// element is read and written by the same thread.
#pragma once
#include "common.cuh"

template <typename T>
__device__ __forceinline__ void rmsnorm_impl(T* out, const T* in, const float* gamma, int rows, int cols, float eps) {
    for (int r = blockIdx.x; r < rows; r += gridDim.x) {
        const T* x = in + (int64_t)r * cols;
        T* o = out + (int64_t)r * cols;
        float ss = 0.f;
        for (int c = threadIdx.x; c < cols; c += blockDim.x) {
            const float v = ld(x, c);
            ss += v * v;
        }
        ss = block_sum(ss);
        const float inv = 1.f / sqrtf(ss / cols + eps);
        for (int c = threadIdx.x; c < cols; c += blockDim.x) st(o, c, gamma[c] * (ld(x, c) * inv));
    }
}

// Backend.addRmsNorm: acc += x (stored in T, as qvlm_add), then out = RMSNorm(acc) of the stored values, in one pass
// over the row (the sums are rmsnorm_impl's). Each element is written and read back by the same thread.
template <typename T>
__device__ __forceinline__ void add_rmsnorm_impl(T* acc, const T* x, T* out, const float* gamma, int rows, int cols,
                                                 float eps) {
    for (int r = blockIdx.x; r < rows; r += gridDim.x) {
        T* a = acc + (int64_t)r * cols;
        const T* b = x + (int64_t)r * cols;
        T* o = out + (int64_t)r * cols;
        float ss = 0.f;
        for (int c = threadIdx.x; c < cols; c += blockDim.x) {
            st(a, c, ld(a, c) + ld(b, c));
            const float v = ld(a, c);
            ss += v * v;
        }
        ss = block_sum(ss);
        const float inv = 1.f / sqrtf(ss / cols + eps);
        for (int c = threadIdx.x; c < cols; c += blockDim.x) st(o, c, gamma[c] * (ld(a, c) * inv));
    }
}

template <typename T>
__device__ __forceinline__ void layernorm_impl(T* out, const T* in, const float* gamma, const float* beta, int rows,
                                               int cols, float eps) {
    for (int r = blockIdx.x; r < rows; r += gridDim.x) {
        const T* x = in + (int64_t)r * cols;
        T* o = out + (int64_t)r * cols;
        float s = 0.f;
        for (int c = threadIdx.x; c < cols; c += blockDim.x) s += ld(x, c);
        const float mean = block_sum(s) / cols;
        float ss = 0.f;
        for (int c = threadIdx.x; c < cols; c += blockDim.x) {
            const float d = ld(x, c) - mean;
            ss += d * d;
        }
        const float inv = 1.f / sqrtf(block_sum(ss) / cols + eps);
        for (int c = threadIdx.x; c < cols; c += blockDim.x) st(o, c, (ld(x, c) - mean) * inv * gamma[c] + beta[c]);
    }
}
