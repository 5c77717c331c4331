package dev.qvlm.cuda;

/**
 * The kernels of cuda-kernels/ as {@link EmulatedDevice} runs them: each launch's effect on the emulated memory, the
 * GEMV and dequantisation through {@link Int4Layout}'s emulation of q4.cuh, the small kernels step by step, and the
 * rest of the forward pass's kernels through the CPU backend's own ops on the device buffers. A symbol not listed is
 * recorded by the device and otherwise ignored.
 */
final class EmulatedKernels {
    private final EmulatedDevice d;

    EmulatedKernels(EmulatedDevice d) {
        this.d = d;
    }

    private java.nio.ByteBuffer at(long address, long bytes) {
        return d.at(address, bytes);
    }

    private float read(long base, long index, int type) {
        return d.read(base, index, type);
    }

    private void write(long base, long index, int type, float v) {
        d.write(base, index, type, v);
    }

    private void download(long src, short[] dst) {
        d.download(src, dst);
    }

    private void download(long src, int[] dst) {
        d.download(src, dst);
    }

    private void upload(long dst, short[] src) {
        d.upload(dst, src);
    }

    private void upload(long dst, int[] src) {
        d.upload(dst, src);
    }

    /**
     * The arguments as the kernel uses them: where a kernel reads values from device memory instead of its scalar
     * arguments (a step in a CUDA graph: rope_q_store's position, attn_split's {qPos0, kvLen}), those values, read
     * now, in place of the scalars, and the pointer 0. An eager launch and its graph replay then compare equal.
     */
    Object[] resolved(String symbol, Object[] args) {
        int ptr, first, second; // the pointer's index, and where its one or two ints go
        if (symbol.startsWith("qvlm_rope_q_store_")) { ptr = 13; first = 12; second = -1; }
        else if (symbol.startsWith("qvlm_attn_split_")) { ptr = 18; first = 11; second = 7; }
        else return args;
        long a = (Long) args[ptr];
        if (a == 0) return args;
        Object[] r = args.clone();
        java.nio.IntBuffer ints = at(a, second < 0 ? 4 : 8).asIntBuffer();
        r[first] = ints.get(0);
        if (second >= 0) r[second] = ints.get(1);
        r[ptr] = 0L;
        return r;
    }

    /**
     * A launch's arguments as {@link EmulatedDevice#launches} records them: {@link #resolved}, and an embedding's
     * token ids (read now) in place of the pointer to them, which sits at another offset in a graph's step.
     */
    Object[] recorded(String symbol, Object[] used) {
        if (!symbol.startsWith("qvlm_embed_")) return used;
        Object[] r = used.clone();
        int[] ids = new int[(Integer) used[3]];
        at((Long) used[2], 4L * ids.length).asIntBuffer().get(ids);
        r[2] = "ids" + java.util.Arrays.toString(ids);
        return r;
    }

    /** n consecutive values from base (FP16 or FP32) as floats, in one read. */
    private float[] flat(long base, long n, int type) {
        return d.readAll(base, type, Math.toIntExact(n), Math.toIntExact(n), n == 0 ? 0 : 1);
    }

    /** v to consecutive values from base (rounded to FP16 for FP16 storage), in one write. */
    private void flat(long base, int type, float[] v) {
        if (type == Gemm.CUDA_R_16F) {
            short[] h = new short[v.length];
            for (int i = 0; i < v.length; i++) h[i] = Float.floatToFloat16(v[i]);
            at(base, 2L * v.length).asShortBuffer().put(h);
        } else at(base, 4L * v.length).asFloatBuffer().put(v);
    }

    /** The effect of launching {@code symbol} with these (resolved) arguments. */
    void run(String symbol, LaunchGeometry.Launch g, Object[] args) {
        int type = symbol.endsWith("f16") ? Gemm.CUDA_R_16F : Gemm.CUDA_R_32F; // the activations' storage
        if (symbol.startsWith("qvlm_copy_")) {
            int bytes = symbol.endsWith("f16") ? 2 : 4;
            long dst = (Long) args[0], src = (Long) args[1], n = (Long) args[2];
            byte[] tmp = new byte[Math.toIntExact(n * bytes)];
            at(src, tmp.length).get(tmp);
            at(dst, tmp.length).put(tmp);
        } else if (symbol.startsWith("qvlm_add_rmsnorm_")) { // norm.cuh's add_rmsnorm_impl
            long acc = (Long) args[0], x = (Long) args[1], out = (Long) args[2], gamma = (Long) args[3];
            int rows = (Integer) args[4], cols = (Integer) args[5];
            float eps = (Float) args[6];
            for (int r = 0; r < rows; r++) {
                float ss = 0;
                for (int c = 0; c < cols; c++) {
                    long i = (long) r * cols + c;
                    write(acc, i, type, read(acc, i, type) + read(x, i, type));
                    float v = read(acc, i, type);
                    ss += v * v;
                }
                float inv = (float) (1 / Math.sqrt(ss / cols + eps));
                for (int c = 0; c < cols; c++) {
                    long i = (long) r * cols + c;
                    write(out, i, type, read(gamma, c, Gemm.CUDA_R_32F) * (read(acc, i, type) * inv));
                }
            }
        } else if (symbol.startsWith("qvlm_rope_q_store_")) { // rope.cuh's rope_q_store_impl (rope_pair's formula)
            long keys = (Long) args[0], values = (Long) args[1], k = (Long) args[2], v = (Long) args[3], q = (Long) args[4];
            int rows = (Integer) args[5], src = (Integer) args[6], dst = (Integer) args[7], qStride = (Integer) args[8],
                    heads = (Integer) args[9], kvHeads = (Integer) args[10], hd = (Integer) args[11], pos = (Integer) args[12];
            double theta = (Double) args[14]; // args[13], the device position, resolved into pos (see resolved)
            for (int r = 0; r < rows; r++)
                for (int h = 0; h < heads; h++)
                    for (int i = 0; i < hd / 2; i++) ropePair(q, (long) r * qStride + (long) h * hd, i, hd, pos + r, theta, type);
            for (int r = 0; r < rows; r++)
                for (int h = 0; h < kvHeads; h++)
                    for (int i = 0; i < hd / 2; i++) {
                        long s0 = (long) r * src + (long) h * hd, d0 = (long) (pos + r) * dst + (long) h * hd;
                        ropePair(k, s0, i, hd, pos + r, theta, type);
                        for (int e : new int[]{i, i + hd / 2}) {
                            write(keys, d0 + e, type, read(k, s0 + e, type));
                            write(values, d0 + e, type, read(v, s0 + e, type));
                        }
                    }
        } else if (symbol.startsWith("qvlm_err_sums_")) { // calib.cuh's err_sums_impl: block b's grid-stride share
            long y = (Long) args[0], t = (Long) args[1], n = (Long) args[2], part = (Long) args[3];
            long threads = (long) g.gridX() * g.block();
            java.nio.DoubleBuffer out = at(part, 16L * g.gridX()).asDoubleBuffer();
            for (int b = 0; b < g.gridX(); b++) {
                double e = 0, d = 0;
                for (long i0 = (long) b * g.block(); i0 < n; i0 += threads)
                    for (long i = i0; i < Math.min(n, i0 + g.block()); i++) {
                        float tv = read(t, i, type);
                        double diff = read(y, i, type) - tv;
                        e += diff * diff;
                        d += (double) tv * tv;
                    }
                out.put(2 * b, e).put(2 * b + 1, d);
            }
        } else if (symbol.startsWith("qvlm_minmax_")) { // calib.cuh's minmax_impl: block b's grid-stride share
            long x = (Long) args[0], n = (Long) args[1], part = (Long) args[2];
            long threads = (long) g.gridX() * g.block();
            java.nio.FloatBuffer out = at(part, 8L * g.gridX()).asFloatBuffer();
            for (int b = 0; b < g.gridX(); b++) {
                float lo = Float.POSITIVE_INFINITY, hi = Float.NEGATIVE_INFINITY;
                for (long i0 = (long) b * g.block(); i0 < n; i0 += threads)
                    for (long i = i0; i < Math.min(n, i0 + g.block()); i++) {
                        float v = read(x, i, type);
                        if (v < lo) lo = v; // fminf / fmaxf: NaN ignored
                        if (v > hi) hi = v;
                    }
                out.put(2 * b, lo).put(2 * b + 1, hi);
            }
        } else if (symbol.startsWith("qvlm_range_hist_")) { // calib.cuh's range_hist_impl: clamp, then truncate
            long x = (Long) args[0], n = (Long) args[1], hist = (Long) args[5];
            double lo = (Double) args[2], width = (Double) args[3];
            int bins = (Integer) args[4];
            java.nio.IntBuffer h = at(hist, 4L * bins).asIntBuffer();
            for (long i = 0; i < n; i++) {
                double t = (read(x, i, type) - lo) / width;
                int b = (int) Math.min(Math.max(t, 0.0), bins - 1.0);
                h.put(b, h.get(b) + 1);
            }
        } else if (symbol.equals("qvlm_q4_decode32")) { // q4.cuh's q4_decode32_impl: (code - zero) * scale in FP32
            long out = (Long) args[0], packed = (Long) args[1], scales = (Long) args[2], zeros = (Long) args[3];
            int rows = (Integer) args[4], cols = (Integer) args[5], gs = (Integer) args[6];
            int wpr = (cols + 7) >>> 3, groups = cols / gs;
            java.nio.IntBuffer w = at(packed, 4L * rows * wpr).asIntBuffer();
            java.nio.FloatBuffer s = at(scales, 4L * rows * groups).asFloatBuffer();
            java.nio.ByteBuffer z = zeros == 0 ? null : at(zeros, (long) rows * groups);
            float[] o = new float[rows * cols];
            for (int r = 0; r < rows; r++)
                for (int c = 0; c < cols; c++) {
                    int code = (w.get(r * wpr + (c >> 3)) >>> (4 * (c & 7))) & 15, gi = r * groups + c / gs;
                    int zp = z == null ? 8 : z.get(z.position() + gi) & 0xff;
                    o[r * cols + c] = (float) (code - zp) * s.get(gi);
                }
            at(out, 4L * o.length).asFloatBuffer().put(o);
        } else if (symbol.equals("qvlm_fq_score")) { // calib.cuh's fq_score_impl: FP32 FMA chains over k, errors in FP64
            long out = (Long) args[0], xp = (Long) args[1], wp = (Long) args[2], yp = (Long) args[3], sp = (Long) args[4],
                    zp = (Long) args[5];
            int T = (Integer) args[6], N = (Integer) args[7], K = (Integer) args[8], gs = (Integer) args[9],
                    C = (Integer) args[10], maxCode = (Integer) args[11], groups = K / gs;
            if (g.block() != CalibKernels.SCORE_TILE * CalibKernels.SCORE_TILE || g.gridX() * CalibKernels.SCORE_TILE < N
                    || g.gridY() * CalibKernels.SCORE_TILE < T || C > CalibKernels.SCORE_MAX_CANDIDATES)
                throw new IllegalStateException("fq_score launch " + g + " for T=" + T + " N=" + N + " C=" + C);
            float[] x = flat(xp, (long) T * K, Gemm.CUDA_R_32F), w = flat(wp, (long) N * K, Gemm.CUDA_R_32F),
                    y = flat(yp, (long) T * N, Gemm.CUDA_R_32F), sc = flat(sp, (long) C * N * groups, Gemm.CUDA_R_32F),
                    zs = flat(zp, (long) C * N * groups, Gemm.CUDA_R_32F);
            java.nio.DoubleBuffer o = at(out, 8L * (C + 1)).asDoubleBuffer();
            for (int c = 0; c < C; c++) {
                double err = 0;
                for (int n = 0; n < N; n++) {
                    float[] wq = new float[K];
                    for (int k = 0; k < K; k++) {
                        int gi = (c * N + n) * groups + k / gs;
                        wq[k] = CalibKernels.fakeQuant(w[n * K + k], sc[gi], zs[gi], maxCode);
                    }
                    for (int t = 0; t < T; t++) {
                        float acc = 0;
                        for (int k = 0; k < K; k++) acc = Math.fma(x[t * K + k], wq[k], acc);
                        double e = acc - y[t * N + n];
                        err += e * e;
                    }
                }
                o.put(c, o.get(c) + err);
            }
            double ref = 0;
            for (float v : y) ref += (double) v * v;
            o.put(C, o.get(C) + ref);
        } else if (symbol.equals("qvlm_soft_joint_hist")) { // calib.cuh's soft_joint_hist_impl, as CalibKernels.jointSums
            long joint = (Long) args[0], a = (Long) args[1], b = (Long) args[2];
            int n = Math.toIntExact((Long) args[3]), M = (Integer) args[6], Mb = (Integer) args[9];
            float[] xa = new float[n], xb = new float[n];
            at(a, 4L * n).asFloatBuffer().get(xa);
            at(b, 4L * n).asFloatBuffer().get(xb);
            double[] sums = CalibKernels.jointSums(xa, xb,
                    new dev.qvlm.calib.Entropy.Levels((Float) args[4], (Float) args[4] + (M - 1) * (double) (Float) args[5], M),
                    new dev.qvlm.calib.Entropy.Levels((Float) args[7], (Float) args[7] + (Mb - 1) * (double) (Float) args[8], Mb));
            java.nio.FloatBuffer j = at(joint, 4L * M * Mb).asFloatBuffer();
            for (int i = 0; i < sums.length; i++) j.put(i, j.get(i) + (float) sums[i]);
        } else if (emulateThroughCpu(symbol, g, args)) {
            // the ops of the forward pass emulated by the CPU backend (see emulateThroughCpu)
        } else if (symbol.startsWith("qvlm_softmax_rows_")) { // attention.cuh's softmax_rows_impl
            long p = (Long) args[0], sc = (Long) args[1];
            int rows = (Integer) args[2], n = (Integer) args[3], kvLen = (Integer) args[4], qPos0 = (Integer) args[5];
            boolean causal = (Integer) args[6] != 0;
            float scale = (Float) args[7];
            float[] S = flat(sc, (long) rows * kvLen, Gemm.CUDA_R_32F), P = new float[S.length];
            for (int r = 0; r < rows; r++) {
                int t = r % n, limit = causal ? Math.min(kvLen, qPos0 + t + 1) : kvLen, o = r * kvLen;
                float m = Float.NEGATIVE_INFINITY, sum = 0;
                for (int j = 0; j < limit; j++) m = Math.max(m, S[o + j] * scale);
                for (int j = 0; j < limit; j++) sum += (float) Math.exp(S[o + j] * scale - m);
                float inv = sum > 0 ? 1f / sum : 0f;
                for (int j = 0; j < limit; j++) P[o + j] = (float) Math.exp(S[o + j] * scale - m) * inv;
            }
            flat(p, type, P);
        } else if (symbol.startsWith("qvlm_fake_quant_")) { // elementwise.cuh's fake_quant_impl, step by step in FP32
            long out = (Long) args[0], in = (Long) args[1], n = (Long) args[2];
            float scale = (Float) args[3], zero = (Float) args[4], maxCode = (Float) args[5];
            float[] x = flat(in, n, type);
            for (int i = 0; i < x.length; i++) {
                float q = (float) Math.rint(x[i] / scale) + zero;
                float c = Math.min(Math.max(q, 0f), maxCode);
                x[i] = (c - zero) * scale;
            }
            flat(out, type, x);
        } else if (symbol.startsWith("qvlm_bias_add_")) {
            long out = (Long) args[0], bias = (Long) args[1];
            int rows = (Integer) args[2], cols = (Integer) args[3];
            for (long i = 0; i < (long) rows * cols; i++)
                write(out, i, type, read(out, i, type) + read(bias, i % cols, Gemm.CUDA_R_32F));
        } else if (symbol.equals("qvlm_f32_to_f16")) {
            long out = (Long) args[0], in = (Long) args[1], n = (Long) args[2];
            for (long i = 0; i < n; i++) write(out, i, Gemm.CUDA_R_16F, read(in, i, Gemm.CUDA_R_32F));
        } else if (symbol.startsWith("qvlm_q4_gemv_multi")) { // each matrix's tiles as its own GEMV
            int n = (Integer) args[10], cols = (Integer) args[14], gs = (Integer) args[15], groups = (Integer) args[16];
            int tiles = 0;
            short[] x = new short[n * cols];
            download((Long) args[3], x);
            for (int m = 0; m < 3; m++) {
                int rows = (Integer) args[11 + m];
                if (rows == 0) continue;
                tiles += Int4Layout.tiles(rows);
                Int4Layout.Relaid w = relaid((Long) args[4 + 2 * m], (Long) args[5 + 2 * m], rows, cols, gs, groups);
                float[] y = Int4Layout.emulateGemv(w, x, n);
                for (int i = 0; i < y.length; i++) write((Long) args[m], i, type, y[i]);
            }
            if (g.gridX() != tiles) throw new IllegalStateException(symbol + ": grid " + g + " for " + tiles + " tiles");
        } else if (symbol.startsWith("qvlm_q4_gemv")) {
            int n = (Integer) args[4], rows = (Integer) args[5], cols = (Integer) args[6], gs = (Integer) args[7];
            String tag = symbol.substring("qvlm_q4_gemv".length(), symbol.indexOf('_', 12)); // "1", "8", "1u4"
            int bucket = Integer.parseInt(tag.contains("u") ? tag.substring(0, tag.indexOf('u')) : tag);
            if (n > bucket || Int4Layout.bucket(n) != bucket) throw new IllegalStateException(symbol + " launched for " + n + " tokens");
            if (g.gridX() != Int4Layout.tiles(rows)) throw new IllegalStateException(symbol + ": grid " + g);
            Int4Layout.Relaid m = relaid((Long) args[2], (Long) args[3], rows, cols, gs, (Integer) args[8]);
            short[] x = new short[n * cols];
            download((Long) args[1], x);
            float[] y = Int4Layout.emulateGemv(m, x, n);
            for (int i = 0; i < y.length; i++) write((Long) args[0], i, type, y[i]);
        } else if (symbol.equals("qvlm_q4_dequant")) {
            Int4Layout.Relaid m = relaid((Long) args[1], (Long) args[2], (Integer) args[3], (Integer) args[4],
                    (Integer) args[5], (Integer) args[6]);
            upload((Long) args[0], Int4Layout.emulateDequant(m));
        } else if (symbol.equals("qvlm_fill_f16")) {
            long out = (Long) args[0], n = (Long) args[1];
            int seed = (Integer) args[2];
            float amp = (Float) args[3];
            for (long i = 0; i < n; i++) at(out + 2 * i, 2).putShort(dev.qvlm.tensor.GeneratedMatrix.f16Bits(seed, i, amp));
        } else if (symbol.equals("qvlm_fill_q4")) {
            int rows = (Integer) args[2], cols = (Integer) args[3], gs = (Integer) args[4];
            var gm = dev.qvlm.tensor.GeneratedMatrix.q4(rows, cols, (Integer) args[5], (Float) args[6], gs, (Integer) args[7] != 0);
            Int4Layout.Relaid r = Int4Layout.relayout((dev.qvlm.quant.Q4Matrix) gm.materialize(), "generated");
            upload((Long) args[0], r.words());
            upload((Long) args[1], r.params());
        }
        }

    private static final dev.qvlm.cpu.CpuBackend CPU = new dev.qvlm.cpu.CpuBackend();

    private float[] readRows(long base, int rows, int stride, int type) {
        return flat(base, (long) rows * stride, type);
    }

    /**
     * The forward pass's remaining kernels (embedding, norms, residual adds, activations, RoPE, attention, argmax),
     * emulated through the CPU backend's own ops on the device buffers (strides honoured, results stored in the
     * storage type), so that a whole model runs on this device and its logits can be compared with the CPU's: what
     * that checks is the CUDA backend's host side (addresses, views, strides, graph patches), not kernel arithmetic.
     * The split attention kernel writes the finished output and its combine does nothing.
     */
    /**
     * attention.cuh's attn_split_impl, split by split as the grid runs it (gridX = rows·heads, gridY = splits): each
     * split's online softmax over its chunk of keys in FP32 (one chain instead of the kernel's warps, so the same
     * values up to summation order), written as the normalised output with one split, else as (acc, max, sum) into
     * the partials that attnCombine merges. So the scratch layout, its size and the chunk the kernel derives from
     * the key count are exercised off the GPU.
     */
    private void attnSplit(LaunchGeometry.Launch g, Object[] a, int type) {
        long out = (Long) a[0], partAcc = (Long) a[1], partMl = (Long) a[2], q = (Long) a[3], k = (Long) a[4], v = (Long) a[5];
        int n = (Integer) a[6], kvLen = (Integer) a[7], heads = (Integer) a[8], kvHeads = (Integer) a[9], hd = (Integer) a[10],
                qPos0 = (Integer) a[11];
        boolean causal = (Integer) a[12] != 0;
        float scale = (Float) a[13];
        int qs = (Integer) a[14], kvs = (Integer) a[15], os = (Integer) a[16], splits = (Integer) a[17];
        if (g.gridY() != splits || g.gridX() < n * heads) throw new IllegalStateException("attn_split grid " + g + " for " + splits + " splits");
        int chunk = (Math.max(1, causal ? Math.min(kvLen, qPos0 + n) : kvLen) + splits - 1) / splits;
        float[] K = readRows(k, kvLen, kvs, type), V = readRows(v, kvLen, kvs, type), Q = readRows(q, n, qs, type);
        java.nio.FloatBuffer acc = splits > 1 ? at(partAcc, 4L * n * heads * splits * hd).asFloatBuffer() : null,
                ml = splits > 1 ? at(partMl, 8L * n * heads * splits).asFloatBuffer() : null;
        for (int row = 0; row < n * heads; row++) {
            int t = row / heads, h = row % heads, kh = h / (heads / kvHeads);
            int limit = causal ? Math.min(kvLen, qPos0 + t + 1) : kvLen;
            for (int s = 0; s < splits; s++) {
                int start = s * chunk, end = Math.min(limit, start + chunk);
                float m = Float.NEGATIVE_INFINITY, l = 0;
                float[] o = new float[hd];
                for (int j = start; j < end; j++) {
                    float dot = 0;
                    for (int d = 0; d < hd; d++) dot += Q[t * qs + h * hd + d] * scale * K[j * kvs + kh * hd + d];
                    float mNew = Math.max(m, dot), corr = (float) Math.exp(m - mNew), p = (float) Math.exp(dot - mNew);
                    l = l * corr + p;
                    for (int d = 0; d < hd; d++) o[d] = o[d] * corr + p * V[j * kvs + kh * hd + d];
                    m = mNew;
                }
                if (splits == 1) {
                    for (int d = 0; d < hd; d++) write(out, (long) t * os + (long) h * hd + d, type, l > 0 ? o[d] / l : 0f);
                } else {
                    for (int d = 0; d < hd; d++) acc.put((row * splits + s) * hd + d, o[d]);
                    ml.put((row * splits + s) * 2, m).put((row * splits + s) * 2 + 1, l);
                }
            }
        }
    }

    /** attention.cuh's attn_combine_impl: the splits' (acc, max, sum) merged into the normalised output. */
    private void attnCombine(Object[] a, int type) {
        long out = (Long) a[0], partAcc = (Long) a[1], partMl = (Long) a[2];
        int n = (Integer) a[3], heads = (Integer) a[4], hd = (Integer) a[5], splits = (Integer) a[6], os = (Integer) a[7];
        java.nio.FloatBuffer acc = at(partAcc, 4L * n * heads * splits * hd).asFloatBuffer(),
                ml = at(partMl, 8L * n * heads * splits).asFloatBuffer();
        for (int row = 0; row < n * heads; row++) {
            int t = row / heads, h = row % heads;
            float M = Float.NEGATIVE_INFINITY, L = 0;
            for (int s = 0; s < splits; s++) M = Math.max(M, ml.get((row * splits + s) * 2));
            for (int s = 0; s < splits; s++) {
                float ms = ml.get((row * splits + s) * 2);
                if (ms != Float.NEGATIVE_INFINITY) L += ml.get((row * splits + s) * 2 + 1) * (float) Math.exp(ms - M);
            }
            float inv = L > 0 ? 1f / L : 0f;
            for (int d = 0; d < hd; d++) {
                float sum = 0;
                for (int s = 0; s < splits; s++) {
                    float ms = ml.get((row * splits + s) * 2);
                    if (ms != Float.NEGATIVE_INFINITY) sum += acc.get((row * splits + s) * hd + d) * (float) Math.exp(ms - M);
                }
                write(out, (long) t * os + (long) h * hd + d, type, sum * inv);
            }
        }
    }

    private boolean emulateThroughCpu(String symbol, LaunchGeometry.Launch g, Object[] a) {
        int type = symbol.endsWith("_f16") ? Gemm.CUDA_R_16F : Gemm.CUDA_R_32F;
        String base = symbol.endsWith("_f16") || symbol.endsWith("_f32") ? symbol.substring(0, symbol.length() - 4) : symbol;
        switch (base) {
            case "qvlm_embed" -> {
                long out = (Long) a[0], table = (Long) a[1], ids = (Long) a[2];
                int n = (Integer) a[3], cols = (Integer) a[4], vocab = (Integer) a[5];
                int[] id = new int[n];
                at(ids, 4L * n).asIntBuffer().get(id);
                for (int t = 0; t < n; t++)
                    for (int c = 0; c < cols; c++)
                        write(out, (long) t * cols + c, type, id[t] >= 0 && id[t] < vocab ? read(table, (long) id[t] * cols + c, Gemm.CUDA_R_16F) : 0f);
            }
            case "qvlm_rmsnorm", "qvlm_layernorm" -> {
                boolean ln = base.equals("qvlm_layernorm");
                long out = (Long) a[0], in = (Long) a[1], gamma = (Long) a[2];
                int rows = (Integer) a[ln ? 4 : 3], cols = (Integer) a[ln ? 5 : 4];
                float eps = (Float) a[ln ? 6 : 5];
                float[] gm = readRows(gamma, 1, cols, Gemm.CUDA_R_32F);
                dev.qvlm.backend.Tensor x = CPU.upload(readRows(in, rows, cols, type), rows, cols), y = CPU.allocate(rows, cols);
                if (ln) CPU.layerNorm(y, x, gm, readRows((Long) a[3], 1, cols, Gemm.CUDA_R_32F), eps);
                else CPU.rmsNorm(y, x, gm, eps);
                float[] r = CPU.download(y);
                for (int i = 0; i < r.length; i++) write(out, i, type, r[i]);
            }
            case "qvlm_add" -> {
                long acc = (Long) a[0], x = (Long) a[1], n = (Long) a[2];
                for (long i = 0; i < n; i++) write(acc, i, type, read(acc, i, type) + read(x, i, type));
            }
            case "qvlm_act" -> {
                long x = (Long) a[0], n = (Long) a[1];
                dev.qvlm.config.Activation act = dev.qvlm.config.Activation.values()[(Integer) a[2]];
                for (long i = 0; i < n; i++) write(x, i, type, dev.qvlm.cpu.Activations.apply(act, read(x, i, type)));
            }
            case "qvlm_gated_act" -> {
                long gate = (Long) a[0], up = (Long) a[1], n = (Long) a[2];
                dev.qvlm.config.Activation act = dev.qvlm.config.Activation.values()[(Integer) a[3]];
                for (long i = 0; i < n; i++)
                    write(gate, i, type, dev.qvlm.cpu.Activations.apply(act, read(gate, i, type)) * read(up, i, type));
            }
            case "qvlm_rope" -> {
                long x = (Long) a[0];
                int rows = (Integer) a[1], stride = (Integer) a[2], heads = (Integer) a[3], hd = (Integer) a[4], pos = (Integer) a[5];
                for (int r = 0; r < rows; r++)
                    for (int h = 0; h < heads; h++)
                        for (int i = 0; i < hd / 2; i++) ropePair(x, (long) r * stride + (long) h * hd, i, hd, pos + r, (Double) a[6], type);
            }
            case "qvlm_attn_split" -> attnSplit(g, a, type);
            case "qvlm_attn_combine" -> attnCombine(a, type);
            case "qvlm_attn_prefill" -> {
                int o = 0;
                long out = (Long) a[0], q = (Long) a[1 + o], k = (Long) a[2 + o], v = (Long) a[3 + o];
                int n = (Integer) a[4 + o], kvLen = (Integer) a[5 + o], heads = (Integer) a[6 + o], kvHeads = (Integer) a[7 + o],
                        hd = (Integer) a[8 + o], qPos0 = (Integer) a[9 + o];
                boolean causal = (Integer) a[10 + o] != 0;
                float scale = (Float) a[11 + o];
                int qs = (Integer) a[12 + o], kvs = (Integer) a[13 + o], os = (Integer) a[14 + o];
                dev.qvlm.backend.Tensor ct = CPU.allocate(n, heads * hd);
                CPU.attention(ct, CPU.upload(readRows(q, n, qs, type), n, qs), CPU.upload(readRows(k, kvLen, kvs, type), kvLen, kvs),
                        CPU.upload(readRows(v, kvLen, kvs, type), kvLen, kvs), kvLen, heads, kvHeads, hd, qPos0, causal, scale);
                float[] r = CPU.download(ct);
                for (int t = 0; t < n; t++)
                    for (int c = 0; c < heads * hd; c++) write(out, (long) t * os + c, type, r[t * heads * hd + c]);
            }
            case "qvlm_argmax" -> {
                long x = (Long) a[0], out = (Long) a[3];
                int rows = (Integer) a[1], cols = (Integer) a[2];
                int[] best = new int[rows];
                for (int r = 0; r < rows; r++) {
                    float bv = Float.NEGATIVE_INFINITY;
                    int bi = 0;
                    for (int c = 0; c < cols; c++) {
                        float val = read(x, (long) r * cols + c, type);
                        if (val > bv) { bv = val; bi = c; }
                    }
                    best[r] = bi;
                }
                at(out, 4L * rows).asIntBuffer().put(best);
            }
            default -> {
                return false;
            }
        }
        return true;
    }

    /** rope_pair in place on the pair (i, i + hd/2) of the head starting at {@code base}. */
    private void ropePair(long x, long base, int i, int hd, int pos, double theta, int type) {
        float invFreq = (float) (1.0 / Math.pow(theta, (2.0 * i) / hd));
        float ang = (float) pos * invFreq;
        float c = (float) Math.cos(ang), sn = (float) Math.sin(ang);
        float x1 = read(x, base + i, type), x2 = read(x, base + i + hd / 2, type);
        write(x, base + i, type, x1 * c - x2 * sn);
        write(x, base + i + hd / 2, type, x2 * c + x1 * sn);
    }

    /** A device int4 weight read back into the host layout record. */
    Int4Layout.Relaid relaid(long words, long params, int rows, int cols, int groupSize, int groups) {
        int[] w = new int[Math.toIntExact(Int4Layout.wordCount(rows, cols))];
        int[] p = new int[Math.toIntExact(Int4Layout.paramCount(rows, cols, groupSize))];
        download(words, w);
        download(params, p);
        return new Int4Layout.Relaid(rows, cols, groupSize, groups, Int4Layout.tiles(rows), cols / Int4Layout.CHUNK_COLS, w, p);
    }

}
