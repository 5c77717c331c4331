// The one translation unit of the qvlm fatbin (cmake/build-kernels.sh compiles it with nvcc -fatbin; the CUDA
// backend loads the result with cuModuleLoadData). Entry points are extern "C" so their names are stable; each
// templated kernel is instantiated for FP16 (_f16) and FP32 (_f32) activation storage. The names must match
// dev.qvlm.cuda.Kernels (KernelNamesTest checks both sides).
#include "common.cuh"
#include "elementwise.cuh"
#include "norm.cuh"
#include "rope.cuh"
#include "attention.cuh"
#include "argmax.cuh"

#define QVLM_KERNELS(T, SUF)                                                                                         \
    extern "C" __global__ void qvlm_embed_##SUF(T* out, const __half* table, const int* ids, int n, int cols,       \
                                                int vocab) {                                                          \
        embed_impl<T>(out, table, ids, n, cols, vocab);                                                              \
    }                                                                                                                \
    extern "C" __global__ void qvlm_rmsnorm_##SUF(T* out, const T* in, const float* gamma, int rows, int cols,      \
                                                  float eps) {                                                        \
        rmsnorm_impl<T>(out, in, gamma, rows, cols, eps);                                                            \
    }                                                                                                                \
    extern "C" __global__ void qvlm_layernorm_##SUF(T* out, const T* in, const float* gamma, const float* beta,     \
                                                    int rows, int cols, float eps) {                                  \
        layernorm_impl<T>(out, in, gamma, beta, rows, cols, eps);                                                    \
    }                                                                                                                \
    extern "C" __global__ void qvlm_add_##SUF(T* acc, const T* x, long long n) { add_impl<T>(acc, x, n); }         \
    extern "C" __global__ void qvlm_bias_add_##SUF(T* out, const float* bias, int rows, int cols) {                \
        bias_add_impl<T>(out, bias, rows, cols);                                                                     \
    }                                                                                                                \
    extern "C" __global__ void qvlm_act_##SUF(T* x, long long n, int act) { act_impl<T>(x, n, act); }              \
    extern "C" __global__ void qvlm_gated_act_##SUF(T* gate, const T* up, long long n, int act) {                  \
        gated_act_impl<T>(gate, up, n, act);                                                                         \
    }                                                                                                                \
    extern "C" __global__ void qvlm_copy_##SUF(T* dst, const T* src, long long n) { copy_impl<T>(dst, src, n); }   \
    extern "C" __global__ void qvlm_rope_##SUF(T* x, int rows, int rowStride, int heads, int headDim, int startPos, \
                                               double theta) {                                                        \
        rope_impl<T>(x, rows, rowStride, heads, headDim, startPos, theta);                                           \
    }                                                                                                                \
    extern "C" __global__ void qvlm_attn_prefill_##SUF(T* out, const T* q, const T* k, const T* v, int n, int kvLen,\
                                                       int heads, int kvHeads, int headDim, int qPos0, int causal,    \
                                                       float scale, int qStride, int kvStride, int oStride,           \
                                                       int keyTile) {                                                 \
        attn_prefill_impl<T>(out, q, k, v, n, kvLen, heads, kvHeads, headDim, qPos0, causal, scale, qStride,        \
                             kvStride, oStride, keyTile);                                                            \
    }                                                                                                                \
    extern "C" __global__ void qvlm_attn_split_##SUF(T* out, float* partAcc, float* partMl, const T* q, const T* k, \
                                                     const T* v, int n, int kvLen, int heads, int kvHeads,            \
                                                     int headDim, int qPos0, int causal, float scale, int qStride,    \
                                                     int kvStride, int oStride, int splits, int chunk) {              \
        attn_split_impl<T>(out, partAcc, partMl, q, k, v, n, kvLen, heads, kvHeads, headDim, qPos0, causal, scale,  \
                           qStride, kvStride, oStride, splits, chunk);                                               \
    }                                                                                                                \
    extern "C" __global__ void qvlm_attn_combine_##SUF(T* out, const float* partAcc, const float* partMl, int n,    \
                                                       int heads, int headDim, int splits, int oStride) {             \
        attn_combine_impl<T>(out, partAcc, partMl, n, heads, headDim, splits, oStride);                              \
    }                                                                                                                \
    extern "C" __global__ void qvlm_argmax_##SUF(const T* x, int rows, int cols, int* out) {                       \
        argmax_impl<T>(x, rows, cols, out);                                                                          \
    }

QVLM_KERNELS(__half, f16)
QVLM_KERNELS(float, f32)

// FP32 <-> FP16 (round to nearest even, as Float.floatToFloat16 on the host). 1-D grid-stride.
extern "C" __global__ void qvlm_f32_to_f16(__half* out, const float* in, long long n) {
    QVLM_GRID_STRIDE(i, n) out[i] = __float2half_rn(in[i]);
}
extern "C" __global__ void qvlm_f16_to_f32(float* out, const __half* in, long long n) {
    QVLM_GRID_STRIDE(i, n) out[i] = __half2float(in[i]);
}
