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
#include "q4.cuh"
#include "calib.cuh"

#define QVLM_KERNELS(T, SUF)                                                                                         \
    extern "C" __global__ void qvlm_embed_##SUF(T* out, const __half* table, const int* ids, int n, int cols,       \
                                                int vocab) {                                                          \
        embed_impl<T>(out, table, ids, n, cols, vocab);                                                              \
    }                                                                                                                \
    extern "C" __global__ void qvlm_rmsnorm_##SUF(T* out, const T* in, const float* gamma, int rows, int cols,      \
                                                  float eps) {                                                        \
        rmsnorm_impl<T>(out, in, gamma, rows, cols, eps);                                                            \
    }                                                                                                                \
    extern "C" __global__ void qvlm_add_rmsnorm_##SUF(T* acc, const T* x, T* out, const float* gamma, int rows,     \
                                                      int cols, float eps) {                                          \
        add_rmsnorm_impl<T>(acc, x, out, gamma, rows, cols, eps);                                                    \
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
    extern "C" __global__ void qvlm_fake_quant_##SUF(T* out, const T* in, long long n, float scale, float zero,       \
                                                     float maxCode) {                                                 \
        fake_quant_impl<T>(out, in, n, scale, zero, maxCode);                                                        \
    }                                                                                                                \
    extern "C" __global__ void qvlm_rope_##SUF(T* x, int rows, int rowStride, int heads, int headDim, int startPos, \
                                               double theta) {                                                        \
        rope_impl<T>(x, rows, rowStride, heads, headDim, startPos, theta);                                           \
    }                                                                                                                \
    extern "C" __global__ void qvlm_rope_q_store_##SUF(T* keys, T* values, T* k, const T* v, T* q, int rows,        \
                                                       int srcStride, int dstStride, int qStride, int heads,          \
                                                       int kvHeads, int headDim, int startPos,                        \
                                                       const int* startPosDev, double theta) {                        \
        rope_q_store_impl<T>(keys, values, k, v, q, rows, srcStride, dstStride, qStride, heads, kvHeads, headDim,     \
                             startPos, startPosDev, theta);                                                           \
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
                                                     int kvStride, int oStride, int splits,                           \
                                                     const int* posLenDev) {                                          \
        attn_split_impl<T>(out, partAcc, partMl, q, k, v, n, kvLen, heads, kvHeads, headDim, qPos0, causal, scale,  \
                           qStride, kvStride, oStride, splits, posLenDev);                                           \
    }                                                                                                                \
    extern "C" __global__ void qvlm_attn_combine_##SUF(T* out, const float* partAcc, const float* partMl, int n,    \
                                                       int heads, int headDim, int splits, int oStride) {             \
        attn_combine_impl<T>(out, partAcc, partMl, n, heads, headDim, splits, oStride);                              \
    }                                                                                                                \
    extern "C" __global__ void qvlm_softmax_rows_##SUF(T* p, const float* s, int rows, int n, int kvLen,           \
                                                       int qPos0, int causal, float scale) {                         \
        softmax_rows_impl<T>(p, s, rows, n, kvLen, qPos0, causal, scale);                                            \
    }                                                                                                                \
    extern "C" __global__ void qvlm_argmax_##SUF(const T* x, int rows, int cols, int* out) {                       \
        argmax_impl<T>(x, rows, cols, out);                                                                          \
    }

QVLM_KERNELS(__half, f16)
QVLM_KERNELS(float, f32)

// W4A16 GEMV (q4.cuh), one instantiation per token bucket (Int4Layout.GEMV_BUCKETS): registers scale with the bucket,
// so decode (1 token) is not charged for the 8-token variant's accumulators. x is FP16 whatever the storage.
#define QVLM_Q4_GEMV(T, SUF)                                                                                         \
    extern "C" __global__ void __launch_bounds__(256) qvlm_q4_gemv1_##SUF(T* out, const __half* x, const uint4* w,  \
        const uint4* params, int n, int rows, int cols, int groupSize, int groups) {                                 \
        q4_gemv_impl<T, 1, 1>(out, x, w, params, n, rows, cols, groupSize, groups);                                     \
    }                                                                                                                \
    extern "C" __global__ void __launch_bounds__(256) qvlm_q4_gemv2_##SUF(T* out, const __half* x, const uint4* w,  \
        const uint4* params, int n, int rows, int cols, int groupSize, int groups) {                                 \
        q4_gemv_impl<T, 2, 1>(out, x, w, params, n, rows, cols, groupSize, groups);                                     \
    }                                                                                                                \
    extern "C" __global__ void __launch_bounds__(256) qvlm_q4_gemv4_##SUF(T* out, const __half* x, const uint4* w,  \
        const uint4* params, int n, int rows, int cols, int groupSize, int groups) {                                 \
        q4_gemv_impl<T, 4, 1>(out, x, w, params, n, rows, cols, groupSize, groups);                                     \
    }                                                                                                                \
    extern "C" __global__ void __launch_bounds__(256) qvlm_q4_gemv8_##SUF(T* out, const __half* x, const uint4* w,  \
        const uint4* params, int n, int rows, int cols, int groupSize, int groups) {                                 \
        q4_gemv_impl<T, 8, 1>(out, x, w, params, n, rows, cols, groupSize, groups);                                     \
    }                                                                                                                \
    /* one token with U = 2 or 4 chunks of loads in flight per thread (Int4Layout.overrideGemvUnroll; same sums) */  \
    extern "C" __global__ void __launch_bounds__(256) qvlm_q4_gemv1u2_##SUF(T* out, const __half* x, const uint4* w,\
        const uint4* params, int n, int rows, int cols, int groupSize, int groups) {                                 \
        q4_gemv_impl<T, 1, 2>(out, x, w, params, n, rows, cols, groupSize, groups);                                  \
    }                                                                                                                \
    extern "C" __global__ void __launch_bounds__(256) qvlm_q4_gemv1u4_##SUF(T* out, const __half* x, const uint4* w,\
        const uint4* params, int n, int rows, int cols, int groupSize, int groups) {                                 \
        q4_gemv_impl<T, 1, 4>(out, x, w, params, n, rows, cols, groupSize, groups);                                  \
    }                                                                                                                \
    extern "C" __global__ void __launch_bounds__(256) qvlm_q4_gemv_multi1_##SUF(T* o0, T* o1, T* o2,                 \
        const __half* x, const uint4* w0, const uint4* p0, const uint4* w1, const uint4* p1, const uint4* w2,         \
        const uint4* p2, int n, int r0, int r1, int r2, int cols, int groupSize, int groups) {                       \
        q4_gemv_multi_impl<T, 1, 1>(o0, o1, o2, x, w0, p0, w1, p1, w2, p2, n, r0, r1, r2, cols, groupSize, groups); \
    }                                                                                                                \
    extern "C" __global__ void __launch_bounds__(256) qvlm_q4_gemv_multi1u2_##SUF(T* o0, T* o1, T* o2,               \
        const __half* x, const uint4* w0, const uint4* p0, const uint4* w1, const uint4* p1, const uint4* w2,         \
        const uint4* p2, int n, int r0, int r1, int r2, int cols, int groupSize, int groups) {                       \
        q4_gemv_multi_impl<T, 1, 2>(o0, o1, o2, x, w0, p0, w1, p1, w2, p2, n, r0, r1, r2, cols, groupSize, groups); \
    }                                                                                                                \
    extern "C" __global__ void __launch_bounds__(256) qvlm_q4_gemv_multi1u4_##SUF(T* o0, T* o1, T* o2,               \
        const __half* x, const uint4* w0, const uint4* p0, const uint4* w1, const uint4* p1, const uint4* w2,         \
        const uint4* p2, int n, int r0, int r1, int r2, int cols, int groupSize, int groups) {                       \
        q4_gemv_multi_impl<T, 1, 4>(o0, o1, o2, x, w0, p0, w1, p1, w2, p2, n, r0, r1, r2, cols, groupSize, groups); \
    }                                                                                                                \
    extern "C" __global__ void __launch_bounds__(256) qvlm_q4_gemv_multi2_##SUF(T* o0, T* o1, T* o2,               \
        const __half* x, const uint4* w0, const uint4* p0, const uint4* w1, const uint4* p1, const uint4* w2,         \
        const uint4* p2, int n, int r0, int r1, int r2, int cols, int groupSize, int groups) {                       \
        q4_gemv_multi_impl<T, 2, 1>(o0, o1, o2, x, w0, p0, w1, p1, w2, p2, n, r0, r1, r2, cols, groupSize, groups); \
    }                                                                                                                \
    extern "C" __global__ void __launch_bounds__(256) qvlm_q4_gemv_multi4_##SUF(T* o0, T* o1, T* o2,               \
        const __half* x, const uint4* w0, const uint4* p0, const uint4* w1, const uint4* p1, const uint4* w2,         \
        const uint4* p2, int n, int r0, int r1, int r2, int cols, int groupSize, int groups) {                       \
        q4_gemv_multi_impl<T, 4, 1>(o0, o1, o2, x, w0, p0, w1, p1, w2, p2, n, r0, r1, r2, cols, groupSize, groups); \
    }                                                                                                                \
    extern "C" __global__ void __launch_bounds__(256) qvlm_q4_gemv_multi8_##SUF(T* o0, T* o1, T* o2,               \
        const __half* x, const uint4* w0, const uint4* p0, const uint4* w1, const uint4* p1, const uint4* w2,         \
        const uint4* p2, int n, int r0, int r1, int r2, int cols, int groupSize, int groups) {                       \
        q4_gemv_multi_impl<T, 8, 1>(o0, o1, o2, x, w0, p0, w1, p1, w2, p2, n, r0, r1, r2, cols, groupSize, groups); \
    }                                                                                                                \
    extern "C" __global__ void qvlm_err_sums_##SUF(const T* y, const T* t, long long n, double* partial) {          \
        err_sums_impl<T>(y, t, n, partial);                                                                          \
    }                                                                                                                \
    extern "C" __global__ void qvlm_minmax_##SUF(const T* x, long long n, float* partial) {                          \
        minmax_impl<T>(x, n, partial);                                                                               \
    }                                                                                                                \
    extern "C" __global__ void qvlm_range_hist_##SUF(const T* x, long long n, double lo, double width, int bins,     \
                                                     unsigned int* hist) {                                            \
        range_hist_impl<T>(x, n, lo, width, bins, hist);                                                             \
    }

QVLM_Q4_GEMV(__half, f16)
QVLM_Q4_GEMV(float, f32)

// 4-bit weights -> FP16 [rows, cols] for cuBLAS (prefill and batches above the GEMV's 8 tokens)
extern "C" __global__ void qvlm_q4_dequant(__half* out, const uint4* w, const uint4* params, int rows, int cols,
                                           int groupSize, int groups) {
    q4_dequant_impl(out, w, params, rows, cols, groupSize, groups);
}

// a Q4Matrix's exact FP32 values (the calibration's exact path)
extern "C" __global__ void qvlm_q4_decode32(float* out, const uint32_t* packed, const float* scales,
                                            const unsigned char* zeros, int rows, int cols, int groupSize) {
    q4_decode32_impl(out, packed, scales, zeros, rows, cols, groupSize);
}

// Synthetic weights for benchmarks, made on the device (dev.qvlm.tensor.GeneratedMatrix is the host twin)
extern "C" __global__ void qvlm_fill_f16(__half* out, long long n, int seed, float amp) {
    fill_f16_impl(out, n, (uint32_t)seed, amp);
}
extern "C" __global__ void qvlm_fill_q4(unsigned int* words, unsigned int* params, int rows, int cols, int groupSize,
                                        int seed, float scaleAmp, int symmetric) {
    fill_q4_impl(words, params, rows, cols, groupSize, (uint32_t)seed, scaleAmp, symmetric);
}

// Calibration (calib.cuh)
extern "C" __global__ void qvlm_soft_joint_hist(float* joint, const float* a, const float* b, long long n, float loA,
                                                float stepA, int M, float loB, float stepB, int Mb) {
    soft_joint_hist_impl(joint, a, b, n, loA, stepA, M, loB, stepB, Mb);
}
extern "C" __global__ void qvlm_fq_score(double* out, const float* x, const float* w, const float* yref,
                                         const float* scales, const float* zeros, int T, int N, int K, int groupSize,
                                         int C, int maxCode) {
    fq_score_impl(out, x, w, yref, scales, zeros, T, N, K, groupSize, C, maxCode);
}

// FP32 <-> FP16 (round to nearest even, as Float.floatToFloat16 on the host). 1-D grid-stride.
extern "C" __global__ void qvlm_f32_to_f16(__half* out, const float* in, long long n) {
    QVLM_GRID_STRIDE(i, n) out[i] = __float2half_rn(in[i]);
}
extern "C" __global__ void qvlm_f16_to_f32(float* out, const __half* in, long long n) {
    QVLM_GRID_STRIDE(i, n) out[i] = __half2float(in[i]);
}

// Holds the stream for ns nanoseconds (one thread polls the global timer): `qvlm bench --profile-ops` launches it
// before a profiled decode step so that the host has enqueued the whole step before the GPU starts it, and each
// op's events then time the GPU alone, not the host's launches.
extern "C" __global__ void qvlm_spin(long long ns) {
    unsigned long long t0, t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t0));
    do {
        __nanosleep(1000);
        asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    } while ((long long)(t - t0) < ns);
}
