// Rotary position embedding, HF "rotate_half" convention: within each head, element i pairs with i + headDim/2.
// Row r of x is the token at position startPos + r. One thread per (row, head, i < headDim/2): 1-D grid-stride
// (LaunchGeometry.elementwise over rows*heads*headDim/2).
//
// Angles follow HF and CpuBackend.ropeTable exactly: inv_freq = 1/theta^(2i/d) rounded to FP32, angle = pos *
// inv_freq in FP32, and cos/sin of that FP32 angle evaluated in double (positions reach 10^4 radians, where
// single-precision sincosf would cost a few ulps more than the CPU reference).
#pragma once
#include "common.cuh"

// The rotation of element pair (i, i + headDim/2) of a head at position pos: (x1, x2) -> (y1, y2).
__device__ __forceinline__ void rope_pair(float x1, float x2, int pos, int i, int headDim, double theta, float& y1,
                                          float& y2) {
    const float invFreq = (float)(1.0 / pow(theta, (2.0 * i) / headDim));
    const float ang = (float)pos * invFreq;
    double sn, cs;
    sincos((double)ang, &sn, &cs);
    const float c = (float)cs, s = (float)sn;
    y1 = x1 * c - x2 * s;
    y2 = x2 * c + x1 * s;
}

template <typename T>
__device__ __forceinline__ void rope_impl(T* x, int rows, int rowStride, int heads, int headDim, int startPos,
                                          double theta) {
    const int half = headDim >> 1;
    const int64_t total = (int64_t)rows * heads * half;
    QVLM_GRID_STRIDE(idx, total) {
        const int i = (int)(idx % half);
        const int64_t rh = idx / half;
        const int h = (int)(rh % heads);
        const int r = (int)(rh / heads);
        const int64_t base = (int64_t)r * rowStride + (int64_t)h * headDim;
        float y1, y2;
        rope_pair(ld(x, base + i), ld(x, base + i + half), startPos + r, i, headDim, theta, y1, y2);
        st(x, base + i, y1);
        st(x, base + i + half, y2);
    }
}

// Backend.ropeQStoreKv (and Backend.storeKv: heads = 0, no q) in one pass: threads [0, rows*heads*half) rotate q in
// place (as rope_impl); the rest rotate k's rows in place (the same rope_pair), write the rotated keys to row
// startPos + r of keys and copy v's rows to row startPos + r of values. k, v: [rows x kvHeads*headDim] (row stride
// srcStride); keys, values: the caches, rows of dstStride. One thread per (row, head, i < headDim/2).
// startPosDev, when not null, holds the position instead of startPos: a decode step in a CUDA graph reads it from
// device memory, so the graph's node stays the same from step to step (OpStream.stepInts).
template <typename T>
__device__ __forceinline__ void rope_q_store_impl(T* keys, T* values, T* k, const T* v, T* q, int rows, int srcStride,
                                                  int dstStride, int qStride, int heads, int kvHeads, int headDim,
                                                  int startPos, const int* startPosDev, double theta) {
    if (startPosDev != nullptr) startPos = *startPosDev;
    const int half = headDim >> 1;
    const int64_t qPairs = (int64_t)rows * heads * half, total = qPairs + (int64_t)rows * kvHeads * half;
    QVLM_GRID_STRIDE(idx, total) {
        if (idx < qPairs) {
            const int i = (int)(idx % half);
            const int64_t rh = idx / half;
            const int h = (int)(rh % heads), r = (int)(rh / heads);
            const int64_t base = (int64_t)r * qStride + (int64_t)h * headDim;
            float y1, y2;
            rope_pair(ld(q, base + i), ld(q, base + i + half), startPos + r, i, headDim, theta, y1, y2);
            st(q, base + i, y1);
            st(q, base + i + half, y2);
        } else {
            const int64_t j = idx - qPairs;
            const int i = (int)(j % half);
            const int64_t rh = j / half;
            const int h = (int)(rh % kvHeads), r = (int)(rh / kvHeads);
            const int64_t src = (int64_t)r * srcStride + (int64_t)h * headDim,
                          dst = (int64_t)(startPos + r) * dstStride + (int64_t)h * headDim;
            float y1, y2;
            rope_pair(ld(k, src + i), ld(k, src + i + half), startPos + r, i, headDim, theta, y1, y2);
            st(k, src + i, y1);
            st(k, src + i + half, y2);
            keys[dst + i] = k[src + i];  // the stored (rounded) value, as a copy of k would give
            keys[dst + i + half] = k[src + i + half];
            values[dst + i] = v[src + i];
            values[dst + i + half] = v[src + i + half];
        }
    }
}
