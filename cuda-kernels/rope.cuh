// Rotary position embedding, HF "rotate_half" convention: within each head, element i pairs with i + headDim/2.
// Row r of x is the token at position startPos + r. One thread per (row, head, i < headDim/2): 1-D grid-stride
// (LaunchGeometry.elementwise over rows*heads*headDim/2).
//
// Angles follow HF and CpuBackend.ropeTable exactly: inv_freq = 1/theta^(2i/d) rounded to FP32, angle = pos *
// inv_freq in FP32, and cos/sin of that FP32 angle evaluated in double (positions reach 10^4 radians, where
// single-precision sincosf would cost a few ulps more than the CPU reference).
#pragma once
#include "common.cuh"

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
        const float invFreq = (float)(1.0 / pow(theta, (2.0 * i) / headDim));
        const float ang = (float)(startPos + r) * invFreq;
        double sn, cs;
        sincos((double)ang, &sn, &cs);
        const float c = (float)cs, s = (float)sn;
        const int64_t base = (int64_t)r * rowStride + (int64_t)h * headDim;
        const float x1 = ld(x, base + i), x2 = ld(x, base + i + half);
        st(x, base + i, x1 * c - x2 * s);
        st(x, base + i + half, x2 * c + x1 * s);
    }
}
