// 4-bit weights (W4A16): GEMV for decode (1..8 tokens), dequantisation to FP16 for prefill (then cuBLAS GemmEx),
// and the fill kernels of synthetic benchmark weights. The layout is dev.qvlm.cuda.Int4Layout (made once at upload):
//   words  uint4 [tiles][chunks][R]   chunk u of row tile*R + r: columns 32u..32u+31, 4 words, nibbles of each
//                                     word interleaved (position p<4: column 2p, p>=4: column 2(p-4)+1)
//   params uint4 [tiles][groups]      R half2 (scale, 1024 + zero point), one per row of the tile
// Int4Layout.emulateGemv / emulateDequant replay these kernels' index math and float operations on the CPU; keep
// the two in step.
#pragma once
#include "common.cuh"

#define QVLM_Q4_R 4            // Int4Layout.TILE_ROWS
#define QVLM_Q4_MAX_WARPS 8    // Int4Layout.MAX_WARPS

// (a & b) | c in one instruction (lop3 truth table 0xEA): nibbles into the mantissa of FP16 1024.0
__device__ __forceinline__ uint32_t q4_lop3(uint32_t a, uint32_t b, uint32_t c) {
    uint32_t r;
    asm("lop3.b32 %0, %1, %2, %3, 0xEA;" : "=r"(r) : "r"(a), "r"(b), "r"(c));
    return r;
}

__device__ __forceinline__ __half2 u32_as_half2(uint32_t v) { return *reinterpret_cast<__half2*>(&v); }

// Streaming 16-byte load of weights: read once per pass, so keep it out of L1.
__device__ __forceinline__ uint4 q4_ld_stream(const uint4* p) {
    uint4 v;
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
    return v;
}

// Pair i (0..3) of an interleaved word as half2 (q[2i] - z, q[2i+1] - z), exact. Even pairs: mask 0x000f000f gives
// 1024 + q, minus (1024 + z). Odd pairs: mask 0x00f000f0 gives 1024 + 16q (no shift), times 1/16 minus (64 + z).
// One shift per word (the w >> 8 of pairs 2 and 3), the rest is lop3 and one half2 op (marlin's dequantisation).
__device__ __forceinline__ void q4_dequant_word(uint32_t w, __half2 zb, __half2 zodd, __half2 d[4]) {
    const uint32_t MAGIC = 0x64006400u, LO = 0x000f000fu, HI = 0x00f000f0u;
    const __half2 sixteenth = __float2half2_rn(0.0625f);
    const uint32_t w8 = w >> 8;
    d[0] = __hsub2(u32_as_half2(q4_lop3(w, LO, MAGIC)), zb);
    d[1] = __hfma2(u32_as_half2(q4_lop3(w, HI, MAGIC)), sixteenth, zodd);
    d[2] = __hsub2(u32_as_half2(q4_lop3(w8, LO, MAGIC)), zb);
    d[3] = __hfma2(u32_as_half2(q4_lop3(w8, HI, MAGIC)), sixteenth, zodd);
}

// One chunk (32 columns) of the R rows of a tile against NT tokens: an FP32 partial per (row, token) over the 32
// columns, then acc = fma(scale, partial, acc).
template <int R, int NT>
__device__ __forceinline__ void q4_gemv_chunk(float (&acc)[R][NT], const uint4 (&q)[R], const uint4 pr,
                                              const __half* __restrict__ x, int u, int cols, int n) {
    const uint32_t prw[R] = {pr.x, pr.y, pr.z, pr.w};
    __half2 zb[R], zodd[R];
#pragma unroll
    for (int r = 0; r < R; r++) {
        zb[r] = __high2half2(u32_as_half2(prw[r]));                        // (1024 + z, 1024 + z)
        zodd[r] = __hneg2(__hsub2(zb[r], __float2half2_rn(960.f)));        // -(64 + z), exact
    }
    float p[R][NT];
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int t = 0; t < NT; t++) p[r][t] = 0.f;
#pragma unroll
    for (int j = 0; j < 4; j++) {
        uint4 xr[NT];
#pragma unroll
        for (int t = 0; t < NT; t++)
            xr[t] = t < n ? __ldg(reinterpret_cast<const uint4*>(x + (int64_t)t * cols + (u << 5) + 8 * j))
                          : make_uint4(0, 0, 0, 0);
        __half2 d[R][4];
#pragma unroll
        for (int r = 0; r < R; r++) {
            const uint32_t word = j == 0 ? q[r].x : j == 1 ? q[r].y : j == 2 ? q[r].z : q[r].w;
            q4_dequant_word(word, zb[r], zodd[r], d[r]);
        }
#pragma unroll
        for (int i = 0; i < 4; i++) {
            float2 xf[NT];
#pragma unroll
            for (int t = 0; t < NT; t++) {
                const uint32_t xw = i == 0 ? xr[t].x : i == 1 ? xr[t].y : i == 2 ? xr[t].z : xr[t].w;
                xf[t] = __half22float2(u32_as_half2(xw));
            }
#pragma unroll
            for (int r = 0; r < R; r++) {
                const float2 f = __half22float2(d[r][i]);
#pragma unroll
                for (int t = 0; t < NT; t++) {
                    p[r][t] = fmaf(f.x, xf[t].x, p[r][t]);
                    p[r][t] = fmaf(f.y, xf[t].y, p[r][t]);
                }
            }
        }
    }
#pragma unroll
    for (int r = 0; r < R; r++) {
        const float s = __low2float(u32_as_half2(prw[r]));
#pragma unroll
        for (int t = 0; t < NT; t++) acc[r][t] = fmaf(s, p[r][t], acc[r][t]);
    }
}

// out[t, row] = sum_k x[t, k] * W[row, k], t < n <= NT. x: FP16 [n, cols] (row stride cols). One block per row
// tile (grid.x = tiles), 32 * W threads (W = Int4Layout.gemvWarps(chunks) <= 8). Thread i of the block takes chunks
// u = i, i + blockDim.x, ..., U at a time (the loads of U chunks, then their arithmetic): per chunk R uint4 of weights (contiguous 64 bytes), one uint4 of params and, per
// token, four uint4 of x (shared by the R rows). Per chunk and (row, token) an FP32 partial over the 32 columns,
// then acc = fma(scale, partial, acc); warp_sum, then the block sums its warps in order through shared memory.
// Needs cols % 32 == 0 and groupSize % 32 == 0 (a chunk lies in one group). No bias (qvlm_bias_add follows).
template <typename T, int NT, int U>
__device__ __forceinline__ void q4_gemv_tile(T* __restrict__ out, const __half* __restrict__ x,
                                             const uint4* __restrict__ w, const uint4* __restrict__ params, int n,
                                             int rows, int cols, int groupSize, int groups, int tile) {
    constexpr int R = QVLM_Q4_R;
    const int chunks = cols >> 5;
    const uint4* wt = w + (int64_t)tile * chunks * R;
    const uint4* pt = params + (int64_t)tile * groups;
    float acc[R][NT];
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int t = 0; t < NT; t++) acc[r][t] = 0.f;

    // U chunks per round: every load of the round is issued before any is used, so a thread keeps U * 64 bytes of
    // weights in flight instead of 64 (the loads are asm volatile: the compiler would not hoist the next chunk's),
    // at the price of registers (sm_90, one token: 58 registers at U = 1, 128 at U = 4). Chunks are still consumed
    // in the order u, u + blockDim.x, ..., so every U gives the same sums (and Int4Layout's emulation holds).
    for (int u0 = threadIdx.x; u0 < chunks; u0 += U * blockDim.x) {
        uint4 q[U][R], pr[U];
#pragma unroll
        for (int c = 0; c < U; c++) {
            const int u = u0 + c * blockDim.x;
            if (u < chunks) {
#pragma unroll
                for (int r = 0; r < R; r++) q[c][r] = q4_ld_stream(wt + (int64_t)u * R + r);
                pr[c] = __ldg(pt + (u << 5) / groupSize);
            }
        }
#pragma unroll
        for (int c = 0; c < U; c++) {
            const int u = u0 + c * blockDim.x;
            if (u < chunks) q4_gemv_chunk<R, NT>(acc, q[c], pr[c], x, u, cols, n);
        }
    }

    __shared__ float part[QVLM_Q4_MAX_WARPS][R][NT];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int t = 0; t < NT; t++) {
            const float v = warp_sum(acc[r][t]);
            if (lane == 0) part[warp][r][t] = v;
        }
    __syncthreads();
    if (threadIdx.x < R * NT) {
        const int r = threadIdx.x / NT, t = threadIdx.x % NT, row = tile * R + r;
        if (row < rows && t < n) {
            float s = 0.f;
            for (int k = 0; k < warps; k++) s += part[k][r][t];
            st(out, (int64_t)t * rows + row, s);
        }
    }
}

// W as FP16 [rows, cols] row-major (the A operand of GemmEx): element (q - z) * scale, rounded once. 1-D
// grid-stride over (row, chunk); each item writes 32 halves as four 16-byte stores.
__device__ __forceinline__ void q4_dequant_impl(__half* __restrict__ out, const uint4* __restrict__ w,
                                                const uint4* __restrict__ params, int rows, int cols, int groupSize,
                                                int groups) {
    const int chunks = cols >> 5;
    QVLM_GRID_STRIDE(i, (int64_t)rows * chunks) {
        const int row = (int)(i / chunks), u = (int)(i % chunks), tile = row / QVLM_Q4_R, r = row % QVLM_Q4_R;
        const uint32_t* pw = reinterpret_cast<const uint32_t*>(params + (int64_t)tile * groups + (u << 5) / groupSize);
        const __half2 prm = u32_as_half2(pw[r]);
        const __half2 s = __low2half2(prm), zb = __high2half2(prm);
        const __half2 zodd = __hneg2(__hsub2(zb, __float2half2_rn(960.f)));
        const uint4 q = w[((int64_t)tile * chunks + u) * QVLM_Q4_R + r];
        uint4* o = reinterpret_cast<uint4*>(out + (int64_t)row * cols + (u << 5));
#pragma unroll
        for (int j = 0; j < 4; j++) {
            __half2 d[4];
            q4_dequant_word(j == 0 ? q.x : j == 1 ? q.y : j == 2 ? q.z : q.w, zb, zodd, d);
            uint4 v;
            __half2 e0 = __hmul2(d[0], s), e1 = __hmul2(d[1], s), e2 = __hmul2(d[2], s), e3 = __hmul2(d[3], s);
            v.x = *reinterpret_cast<uint32_t*>(&e0);
            v.y = *reinterpret_cast<uint32_t*>(&e1);
            v.z = *reinterpret_cast<uint32_t*>(&e2);
            v.w = *reinterpret_cast<uint32_t*>(&e3);
            o[j] = v;
        }
    }
}

// ---------------------------------------------------------------- synthetic weights (dev.qvlm.tensor.GeneratedMatrix)

// splitmix64 finaliser of seed * C1 + (i + 1) * golden; the low 32 bits. GeneratedMatrix.hash is the same function.
__device__ __forceinline__ uint32_t qvlm_hash(uint32_t seed, unsigned long long i) {
    unsigned long long z = (unsigned long long)seed * 0xD1B54A32D192ED03ull + (i + 1ull) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (uint32_t)z;
}

// out[i] = FP16 of uniform(-amp, amp): ((hash >> 8) * 2^-23 - 1) * amp. 1-D grid-stride.
__device__ __forceinline__ void fill_f16_impl(__half* out, int64_t n, uint32_t seed, float amp) {
    QVLM_GRID_STRIDE(i, n) {
        const float u = __fmul_rn((float)(qvlm_hash(seed, (unsigned long long)i) >> 8), 1.1920928955078125e-7f);
        out[i] = __float2half_rn(__fmul_rn(__fadd_rn(u, -1.f), amp));
    }
}

__device__ __forceinline__ uint32_t q4_interleave(uint32_t w) {
    uint32_t o = 0;
#pragma unroll
    for (int p = 0; p < 8; p++) {
        const int col = p < 4 ? 2 * p : 2 * (p - 4) + 1;
        o |= ((w >> (4 * col)) & 0xfu) << (4 * p);
    }
    return o;
}

// Random 4-bit weights straight into the device layout: the standard word (row, k) is hash(seed, row * cols/8 + k)
// (all nibbles random), scale FP16(scaleAmp * (1 + (h & 255) / 256)) and zero point (h >> 8) & 15 (8 when
// symmetric) with h = hash(seed ^ 0x5bd1e995, row * groups + g). Padding rows: zero words, scale 0. 1-D grid-stride
// over the words, then over the params.
__device__ __forceinline__ void fill_q4_impl(uint32_t* words, uint32_t* params, int rows, int cols, int groupSize,
                                             uint32_t seed, float scaleAmp, int symmetric) {
    const int chunks = cols >> 5, groups = cols / groupSize, tiles = (rows + QVLM_Q4_R - 1) / QVLM_Q4_R;
    const int64_t nw = (int64_t)tiles * chunks * QVLM_Q4_R * 4, np = (int64_t)tiles * groups * QVLM_Q4_R;
    QVLM_GRID_STRIDE(i, nw) {
        const int j = (int)(i & 3), r = (int)((i >> 2) % QVLM_Q4_R);
        const int64_t tu = i / (4 * QVLM_Q4_R);
        const int tile = (int)(tu / chunks), u = (int)(tu % chunks), row = tile * QVLM_Q4_R + r;
        words[i] = row < rows ? q4_interleave(qvlm_hash(seed, (unsigned long long)row * (cols >> 3) + 4 * u + j)) : 0u;
    }
    QVLM_GRID_STRIDE(i, np) {
        const int r = (int)(i % QVLM_Q4_R);
        const int64_t tg = i / QVLM_Q4_R;
        const int tile = (int)(tg / groups), g = (int)(tg % groups), row = tile * QVLM_Q4_R + r;
        float s = 0.f;
        int z = 8;
        if (row < rows) {
            const uint32_t h = qvlm_hash(seed ^ 0x5bd1e995u, (unsigned long long)row * groups + g);
            s = __fmul_rn(scaleAmp, __fadd_rn(1.f, __fmul_rn((float)(h & 255u), 0.00390625f)));
            z = symmetric ? 8 : (int)((h >> 8) & 15u);
        }
        const __half hs = __float2half_rn(s), hz = __float2half_rn(1024.f + z);
        params[i] = (uint32_t)__half_as_ushort(hs) | ((uint32_t)__half_as_ushort(hz) << 16);
    }
}

template <typename T, int NT, int U>
__device__ __forceinline__ void q4_gemv_impl(T* __restrict__ out, const __half* __restrict__ x,
                                             const uint4* __restrict__ w, const uint4* __restrict__ params, int n,
                                             int rows, int cols, int groupSize, int groups) {
    q4_gemv_tile<T, NT, U>(out, x, w, params, n, rows, cols, groupSize, groups, blockIdx.x);
}

// Up to three GEMVs of one input in one launch (a layer's q, k, v or gate, up: same cols and group size): blocks
// [0, t0) are matrix 0's row tiles, [t0, t0 + t1) matrix 1's, the rest matrix 2's; each tile exactly as alone.
template <typename T, int NT, int U>
__device__ __forceinline__ void q4_gemv_multi_impl(T* o0, T* o1, T* o2, const __half* __restrict__ x,
                                                   const uint4* w0, const uint4* p0, const uint4* w1, const uint4* p1,
                                                   const uint4* w2, const uint4* p2, int n, int r0, int r1, int r2,
                                                   int cols, int groupSize, int groups) {
    const int t0 = (r0 + QVLM_Q4_R - 1) / QVLM_Q4_R, t1 = (r1 + QVLM_Q4_R - 1) / QVLM_Q4_R;
    int tile = blockIdx.x;
    if (tile < t0) {
        q4_gemv_tile<T, NT, U>(o0, x, w0, p0, n, r0, cols, groupSize, groups, tile);
    } else if ((tile -= t0) < t1) {
        q4_gemv_tile<T, NT, U>(o1, x, w1, p1, n, r1, cols, groupSize, groups, tile);
    } else {
        q4_gemv_tile<T, NT, U>(o2, x, w2, p2, n, r2, cols, groupSize, groups, tile - t1);
    }
}

// A Q4Matrix (compressed-tensors pack-quantized: int32 words, 8 nibbles per word, column c of a row at bits
// 4*(c%8) of word c/8; FP32 scales and byte zero points per group, null zeros = symmetric, zero point 8) decoded to
// its exact FP32 values, out[r, c] = (float)(code - zero) * scale as Q4Matrix.get computes it (one rounding, no
// FMA): the calibration's exact path uploads the packed codes (0.5 byte per weight) instead of FP32 decoded on the
// host (4 bytes). 1-D grid-stride over rows * cols.
__device__ __forceinline__ void q4_decode32_impl(float* out, const uint32_t* packed, const float* scales,
                                                 const unsigned char* zeros, int rows, int cols, int groupSize) {
    const int wordsPerRow = (cols + 7) >> 3, groups = cols / groupSize;
    QVLM_GRID_STRIDE(i, (int64_t)rows * cols) {
        const int r = (int)(i / cols), c = (int)(i - (int64_t)r * cols);
        const int code = (int)((packed[(int64_t)r * wordsPerRow + (c >> 3)] >> (4 * (c & 7))) & 15u);
        const int64_t g = (int64_t)r * groups + c / groupSize;
        const int z = zeros == nullptr ? 8 : (int)zeros[g];
        out[i] = __fmul_rn((float)(code - z), scales[g]);
    }
}
