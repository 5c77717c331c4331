// Calibration kernels of Q-VLM. Java references (the semantics, tested on the CPU) are in dev.qvlm.cuda.CalibKernels.
#pragma once
#include "common.cuh"

#define QVLM_HIST_MAX_BINS 4096   // CalibKernels.HIST_MAX_BINS: M * Mb floats of shared memory (16 KiB)
#define QVLM_HIST_MAX_LEVELS 64   // CalibKernels.HIST_MAX_LEVELS: soft weights of b per thread
#define QVLM_SCORE_MAX_CAND 16    // CalibKernels.SCORE_MAX_CANDIDATES
#define QVLM_SCORE_TILE 16        // CalibKernels.SCORE_TILE: tokens x rows of one block
#define QVLM_SCORE_KT 32          // CalibKernels.SCORE_K_TILE

// Soft assignment of x to M uniform levels lo + m*step (Entropy.soft): w[m] = exp(-(x - q_m)^2 / step - max),
// returned unnormalised; the sum comes back.
__device__ __forceinline__ float soft_levels(float x, float lo, float step, int M, float* w) {
    float mx = -INFINITY;
    for (int m = 0; m < M; m++) {
        const float d = x - (lo + m * step);
        w[m] = -(d * d) / step;
        mx = fmaxf(mx, w[m]);
    }
    float s = 0.f;
    for (int m = 0; m < M; m++) {
        w[m] = expf(w[m] - mx);
        s += w[m];
    }
    return s;
}

// joint[m * Mb + n] += sum_i pa_i(m) * pb_i(n) over the n element pairs (a[i], b[i]) (Entropy.dependency before its
// division by the element count; pa(m) < 1e-12 skipped as there). Privatised: each block accumulates an M x Mb
// histogram in dynamic shared memory (M * Mb * 4 bytes) with shared atomics, then adds it to joint with one global
// atomic per bin. 1-D grid-stride, any block size.
__device__ __forceinline__ void soft_joint_hist_impl(float* joint, const float* a, const float* b, int64_t n, float loA,
                                                     float stepA, int M, float loB, float stepB, int Mb) {
    extern __shared__ float hist[];
    for (int i = threadIdx.x; i < M * Mb; i += blockDim.x) hist[i] = 0.f;
    __syncthreads();
    float wa[QVLM_HIST_MAX_LEVELS], wb[QVLM_HIST_MAX_LEVELS];
    QVLM_GRID_STRIDE(i, n) {
        const float sa = soft_levels(a[i], loA, stepA, M, wa);
        const float sb = soft_levels(b[i], loB, stepB, Mb, wb);
        for (int m = 0; m < M; m++) {
            const float pm = wa[m] / sa;
            if (pm < 1e-12f) continue;
            for (int k = 0; k < Mb; k++) atomicAdd(&hist[m * Mb + k], pm * (wb[k] / sb));
        }
    }
    __syncthreads();
    for (int i = threadIdx.x; i < M * Mb; i += blockDim.x)
        if (hist[i] != 0.f) atomicAdd(&joint[i], hist[i]);
}

// hist[b] += the number of x[0..n) in bin b = floor((x - lo) / width) (in double), clamped to 0..bins-1: the
// calibration's percentile histogram (ActRange, Statistics.histogram). Privatised: each block counts into `bins`
// unsigned ints of dynamic shared memory (bins * 4 bytes), then adds them to hist (unsigned 32-bit counts, as
// CalibKernels.histogram downloads them; it launches for n < 2^32 only) with one atomic per bin.
// 1-D grid-stride, any block size.
template <typename T>
__device__ __forceinline__ void range_hist_impl(const T* x, int64_t n, double lo, double width, int bins,
                                                unsigned int* hist) {
    extern __shared__ unsigned int counts[];
    for (int i = threadIdx.x; i < bins; i += blockDim.x) counts[i] = 0u;
    __syncthreads();
    QVLM_GRID_STRIDE(i, n) {
        // Java's (int) truncation then clamp, written as clamp then truncation (the same bin for every double)
        const double t = ((double)ld(x, i) - lo) / width;
        atomicAdd(&counts[(int)fmin(fmax(t, 0.0), (double)(bins - 1))], 1u);
    }
    __syncthreads();
    for (int i = threadIdx.x; i < bins; i += blockDim.x)
        if (counts[i] != 0u) atomicAdd(&hist[i], counts[i]);
}

// Per-block (min, max) of x[0..n) into partial[2 * blockIdx.x], [2 * blockIdx.x + 1]; NaNs ignored (fminf/fmaxf);
// an empty share gives (+inf, -inf). The host reduces the partials. 1-D grid-stride; blockDim a multiple of 32.
template <typename T>
__device__ __forceinline__ void minmax_impl(const T* x, int64_t n, float* partial) {
    float lo = INFINITY, hi = -INFINITY;
    QVLM_GRID_STRIDE(i, n) {
        const float v = ld(x, i);
        lo = fminf(lo, v);
        hi = fmaxf(hi, v);
    }
    block_pair_partial(lo, hi, [](float p, float q) { return fminf(p, q); }, [](float p, float q) { return fmaxf(p, q); },
                       partial);
}

// Output error of every clipping candidate of one weight quantizer, in one pass over X and W:
//   out[c] += sum_{t<T, o<N} (sum_k x[t,k] * fq_c(w[o,k]) - yref[t,o])^2   for c < C,   out[C] += sum yref^2
// fq_c(w) = (clamp(rint(w / s) + z, 0, maxCode) - z) * s with s = scales[(c*N + o)*groups + k/groupSize], z likewise
// from zeros (WeightQuantizer's fake-quant, FP32). x [T,K], w [N,K], yref [T,N] FP32 row-major; out FP64 (atomics).
// Grid (ceil(N/16), ceil(T/16)), block 256 = 16 x 16 (threadIdx.x: row, threadIdx.y... flattened: tx = i % 16 row,
// ty = i / 16 token); K in tiles of 32 through shared memory, where each W element is fake-quantised once per
// candidate for the whole tile of tokens.
__device__ __forceinline__ void fq_score_impl(double* out, const float* x, const float* w, const float* yref,
                                              const float* scales, const float* zeros, int T, int N, int K,
                                              int groupSize, int C, int maxCode) {
    constexpr int TS = QVLM_SCORE_TILE, KT = QVLM_SCORE_KT, CM = QVLM_SCORE_MAX_CAND;
    __shared__ float xs[TS][KT + 1];
    __shared__ float ws[CM][TS][KT + 1];
    const int tx = threadIdx.x % TS, ty = threadIdx.x / TS;
    const int o0 = blockIdx.x * TS, t0 = blockIdx.y * TS;
    const int groups = K / groupSize;
    float acc[CM];
#pragma unroll
    for (int c = 0; c < CM; c++) acc[c] = 0.f;
    for (int k0 = 0; k0 < K; k0 += KT) {
        for (int e = threadIdx.x; e < TS * KT; e += blockDim.x) {
            const int rr = e / KT, kk = e % KT, k = k0 + kk;
            const int t = t0 + rr, o = o0 + rr;
            xs[rr][kk] = (t < T && k < K) ? x[(int64_t)t * K + k] : 0.f;
            const bool ok = o < N && k < K;
            const float v = ok ? w[(int64_t)o * K + k] : 0.f;
            const int64_t gi = ok ? (int64_t)o * groups + k / groupSize : 0;
#pragma unroll
            for (int c = 0; c < CM; c++) {
                if (c >= C) break;
                float q = 0.f;
                if (ok) {
                    const float s = scales[(int64_t)c * N * groups + gi], z = zeros[(int64_t)c * N * groups + gi];
                    const float code = fminf(fmaxf(rintf(__fdiv_rn(v, s)) + z, 0.f), (float)maxCode);
                    q = __fmul_rn(code - z, s);
                }
                ws[c][rr][kk] = q;
            }
        }
        __syncthreads();
#pragma unroll 4
        for (int kk = 0; kk < KT; kk++) {
            const float xv = xs[ty][kk];
#pragma unroll
            for (int c = 0; c < CM; c++)
                if (c < C) acc[c] = fmaf(xv, ws[c][tx][kk], acc[c]);
        }
        __syncthreads();
    }
    const int t = t0 + ty, o = o0 + tx;
    const bool ok = t < T && o < N;
    const float ref = ok ? yref[(int64_t)t * N + o] : 0.f;
    __shared__ float red[CM + 1][8];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    for (int c = 0; c <= C && c <= CM; c++) {
        float e = 0.f;
        if (ok) {
            float a = 0.f;
#pragma unroll
            for (int k = 0; k < CM; k++)
                if (k == c) a = acc[k];
            e = c < C ? (a - ref) * (a - ref) : ref * ref;
        }
        e = warp_sum(e);
        if (lane == 0) red[c][warp] = e;
    }
    __syncthreads();
    if (threadIdx.x <= C && threadIdx.x <= CM) {
        double s = 0;
        for (int k = 0; k < (int)(blockDim.x >> 5); k++) s += red[threadIdx.x][k];
        atomicAdd(&out[threadIdx.x], s);
    }
}

// The quantization search's error of one sample (Backend.errorSums): partial[2b] = Σ (y − t)², partial[2b + 1] = Σ t²
// over block b's grid-stride share, in FP64 (the host adds the blocks' partials in order). 1-D grid, blockDim.x a
// multiple of 32.
template <typename T>
__device__ __forceinline__ void err_sums_impl(const T* y, const T* t, int64_t n, double* partial) {
    double e = 0.0, d = 0.0;
    QVLM_GRID_STRIDE(i, n) {
        const float tv = ld(t, i);
        const double diff = ld(y, i) - tv;  // the difference in FP32, as the CPU's relMse takes it
        e += diff * diff;
        d += (double)tv * tv;
    }
    const auto add = [](double p, double q) { return p + q; };
    block_pair_partial(e, d, add, add, partial);
}
