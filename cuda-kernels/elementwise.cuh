// Element-wise kernels and the embedding gather. Launch: 1-D grid-stride (LaunchGeometry.elementwise), any block
// size; the gather uses one block per token (grid.x = tokens) and strides the row with the block.
#pragma once
#include "common.cuh"

// out[t, :] = table[ids[t], :]; table: FP16 [vocab x cols]. Out-of-range ids (the host rejects them first) give a
// zero row rather than a wild read.
template <typename T>
__device__ __forceinline__ void embed_impl(T* out, const __half* table, const int* ids, int n, int cols, int vocab) {
    for (int t = blockIdx.x; t < n; t += gridDim.x) {
        const int id = ids[t];
        const bool ok = id >= 0 && id < vocab;
        for (int c = threadIdx.x; c < cols; c += blockDim.x)
            st(out, (int64_t)t * cols + c, ok ? __half2float(table[(int64_t)id * cols + c]) : 0.f);
    }
}

template <typename T>
__device__ __forceinline__ void add_impl(T* acc, const T* x, int64_t n) {
    QVLM_GRID_STRIDE(i, n) st(acc, i, ld(acc, i) + ld(x, i));
}

// out[r, c] += bias[c] (the bias of a linear, after the GEMM)
template <typename T>
__device__ __forceinline__ void bias_add_impl(T* out, const float* bias, int rows, int cols) {
    QVLM_GRID_STRIDE(i, (int64_t)rows * cols) st(out, i, ld(out, i) + bias[i % cols]);
}

template <typename T>
__device__ __forceinline__ void act_impl(T* x, int64_t n, int act) {
    QVLM_GRID_STRIDE(i, n) st(x, i, apply_act(ld(x, i), act));
}

// gate = act(gate) * up (LLaMA's SiLU MLP; any activation code)
template <typename T>
__device__ __forceinline__ void gated_act_impl(T* gate, const T* up, int64_t n, int act) {
    QVLM_GRID_STRIDE(i, n) st(gate, i, apply_act(ld(gate, i), act) * ld(up, i));
}

template <typename T>
__device__ __forceinline__ void copy_impl(T* dst, const T* src, int64_t n) {
    QVLM_GRID_STRIDE(i, n) dst[i] = src[i];
}

// Static per-tensor fake quantisation of a linear's input (ActQuantizer STATIC_TENSOR, Uniform.code / value):
// out = (clamp(rint(x / scale) + zero, 0, maxCode) - zero) * scale, each step rounded in FP32 as the Java code does
// (the _rn intrinsics keep nvcc from contracting it into an FMA). NaN becomes code 0, as Java's (int) cast makes it.
template <typename T>
__device__ __forceinline__ void fake_quant_impl(T* out, const T* in, int64_t n, float scale, float zero, float maxCode) {
    QVLM_GRID_STRIDE(i, n) {
        const float q = __fadd_rn(rintf(__fdiv_rn(ld(in, i), scale)), zero);
        const float c = isnan(q) ? q : fminf(fmaxf(q, 0.f), maxCode);  // NaN stays NaN, as ActQuantizer's vector path
        st(out, i, __fmul_rn(__fsub_rn(c, zero), scale));
    }
}
