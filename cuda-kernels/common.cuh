// Shared helpers of the qvlm kernels: storage traits (FP16 or FP32 activations, FP32 arithmetic), warp/block
// reductions, and the activation functions with HF's definitions (dev.qvlm.cpu.Activations is the reference).
//
// Conventions for every kernel in this folder:
//  * Matrices are row-major; a tensor argument is a base pointer plus (where views matter) a row stride in
//    elements. Weight matrices are FP16 (__half); weight vectors (norm gamma/beta, biases) are FP32.
//  * Activation storage is the template parameter T (__half or float); all arithmetic is FP32.
//  * Block sizes are chosen by the host (dev.qvlm.cuda.LaunchGeometry); kernels that reduce across a block require
//    blockDim.x to be a multiple of 32 and at most 1024, nothing else. Every index is bounds-checked, so any grid
//    at least as large as documented is correct.
#pragma once

#include <cuda_fp16.h>
#include <math.h>
#include <stdint.h>

#define QVLM_FULL_MASK 0xffffffffu

// The largest head dimension the attention kernels hold in registers (per lane: QVLM_MAX_HEAD_DIM / 32 floats).
#define QVLM_MAX_HEAD_DIM 256
#define QVLM_HEAD_REGS (QVLM_MAX_HEAD_DIM / 32)

// Activation codes: the ordinal of dev.qvlm.config.Activation (SILU, GELU, GELU_TANH, QUICK_GELU, RELU).
#define QVLM_ACT_SILU 0
#define QVLM_ACT_GELU 1
#define QVLM_ACT_GELU_TANH 2
#define QVLM_ACT_QUICK_GELU 3
#define QVLM_ACT_RELU 4

__device__ __forceinline__ float ld(const __half* p, int64_t i) { return __half2float(p[i]); }
__device__ __forceinline__ float ld(const float* p, int64_t i) { return p[i]; }
__device__ __forceinline__ void st(__half* p, int64_t i, float v) { p[i] = __float2half_rn(v); }
__device__ __forceinline__ void st(float* p, int64_t i, float v) { p[i] = v; }

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(QVLM_FULL_MASK, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(QVLM_FULL_MASK, v, o));
    return v;
}

// Sum (MAX false) or maximum (MAX true) over the whole block, returned to every thread. blockDim.x: a multiple of 32,
// at most 1024. Safe to call repeatedly (the leading barrier protects the scratch from the previous call's readers).
template <bool MAX>
__device__ __forceinline__ float block_reduce(float v) {
    __shared__ float scratch[32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = MAX ? warp_max(v) : warp_sum(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < warps ? scratch[lane] : (MAX ? -INFINITY : 0.f);
    return MAX ? warp_max(v) : warp_sum(v);
}

__device__ __forceinline__ float block_sum(float v) { return block_reduce<false>(v); }

// Two per-thread values reduced over the block, each with its own operation (xor shuffles within each warp, then
// thread 0 over the warps in order), and written by thread 0 to partial[2 * blockIdx.x] and [2 * blockIdx.x + 1]:
// the per-block partials a host reduces (qvlm_minmax, qvlm_err_sums). blockDim.x: a multiple of 32.
template <typename V, typename OpA, typename OpB>
__device__ __forceinline__ void block_pair_partial(V a, V b, OpA opA, OpB opB, V* partial) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        a = opA(a, __shfl_xor_sync(QVLM_FULL_MASK, a, o));
        b = opB(b, __shfl_xor_sync(QVLM_FULL_MASK, b, o));
    }
    __shared__ V sa[32], sb[32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) {
        sa[warp] = a;
        sb[warp] = b;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int k = 1; k < (int)(blockDim.x >> 5); k++) {
            a = opA(a, sa[k]);
            b = opB(b, sb[k]);
        }
        partial[2 * blockIdx.x] = a;
        partial[2 * blockIdx.x + 1] = b;
    }
}

__device__ __forceinline__ float block_max(float v) { return block_reduce<true>(v); }

__device__ __forceinline__ float apply_act(float x, int act) {
    switch (act) {
        case QVLM_ACT_SILU: return x / (1.f + expf(-x));
        case QVLM_ACT_GELU: return 0.5f * x * (1.f + erff(x * 0.70710678118654752f));
        case QVLM_ACT_GELU_TANH: return 0.5f * x * (1.f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
        case QVLM_ACT_QUICK_GELU: return x / (1.f + expf(-1.702f * x));
        case QVLM_ACT_RELU: return fmaxf(x, 0.f);
        default: return __int_as_float(0x7fc00000);  // unknown code: NaN makes the mistake visible
    }
}

// Grid-stride loop over [0, n): any 1-D grid covers any n.
#define QVLM_GRID_STRIDE(i, n) \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)
