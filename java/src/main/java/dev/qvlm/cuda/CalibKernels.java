package dev.qvlm.cuda;

import dev.qvlm.QvlmException;
import dev.qvlm.backend.Tensor;
import dev.qvlm.calib.Entropy;
import dev.qvlm.quant.QuantArgs;
import dev.qvlm.quant.QuantizedWeight;
import dev.qvlm.quant.WeightQuantizer;
import dev.qvlm.tensor.Matrix;

import java.util.List;

/**
 * The calibration kernels of cuda-kernels/calib.cuh: for each, its exact semantics as a Java reference (tested on
 * the CPU against the calibrator's own code) and the device launcher (compared with the reference by
 * CalibKernelsGpuTest on a GPU).
 *
 * <ul>
 *   <li>{@link #minMax}: per-tensor activation range, NaNs ignored, empty → (+∞, −∞).</li>
 *   <li>{@link #jointSums}: the soft-level joint histogram of Q-VLM's entropy proxy,
 *       the unnormalised sums of {@link Entropy#dependency}; {@link #dependency} turns them into D(k, k+1).</li>
 *   <li>{@link #scores}: fake-quant + output error of every clipping candidate of one weight quantizer in one
 *       pass over X and W (see {@link #scoreReference}).</li>
 * </ul>
 */
public final class CalibKernels {
    private CalibKernels() {}

    public static final int HIST_MAX_BINS = 4096, HIST_MAX_LEVELS = 64;
    public static final int SCORE_MAX_CANDIDATES = 16, SCORE_TILE = 16, SCORE_K_TILE = 32;

    // ------------------------------------------------------------------ min / max

    /** {min, max} of x, NaNs ignored (fminf/fmaxf); (+∞, −∞) when there is no number. */
    public static float[] minMaxReference(float[] x) {
        float lo = Float.POSITIVE_INFINITY, hi = Float.NEGATIVE_INFINITY;
        for (float v : x) {
            if (Float.isNaN(v)) continue;
            lo = Math.min(lo, v);
            hi = Math.max(hi, v);
        }
        return new float[]{lo, hi};
    }

    /** {min, max} of a device tensor: per-block partials on the device, the last reduction on the host. */
    public static float[] minMax(CudaBackend b, Tensor t) {
        synchronized (b) {
            CudaTensor x = (CudaTensor) t;
            long n = (long) x.rows() * x.cols();
            if (n == 0) return new float[]{Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY};
            LaunchGeometry.Launch g = LaunchGeometry.elementwise(n, b.smCount());
            long part = b.memory().take(8L * g.gridX());
            b.device().launch(Kernel.MINMAX.symbol(b.storage()), g, b.args(Kernel.MINMAX, x.address(), n, part));
            float[] p = new float[2 * g.gridX()];
            b.device().download(part, p);
            b.memory().give(part);
            float lo = Float.POSITIVE_INFINITY, hi = Float.NEGATIVE_INFINITY;
            for (int i = 0; i < g.gridX(); i++) {
                lo = Math.min(lo, p[2 * i]);
                hi = Math.max(hi, p[2 * i + 1]);
            }
            return new float[]{lo, hi};
        }
    }

    // ------------------------------------------------------------------ output error

    /** {@link dev.qvlm.backend.Backend#errorSums} on the device: qvlm_err_sums's FP64 partials per block, added in order. */
    static double[] errorSums(CudaBackend b, CudaTensor y, CudaTensor t) {
        if (y.size() != t.size()) throw new IllegalArgumentException("errorSums: " + y + " vs " + t);
        if (y.size() == 0) return new double[]{0, 0};
        synchronized (b) {
            LaunchGeometry.Launch g = LaunchGeometry.elementwise(y.size(), b.smCount());
            long part = b.memory().take(16L * g.gridX());
            b.device().launch(Kernel.ERR_SUMS.symbol(b.storage()), g, b.args(Kernel.ERR_SUMS, y.address(), t.address(), y.size(), part));
            double[] p = new double[2 * g.gridX()];
            b.device().download(part, p);
            b.memory().give(part);
            double n = 0, d = 0;
            for (int i = 0; i < g.gridX(); i++) {
                n += p[2 * i];
                d += p[2 * i + 1];
            }
            return new double[]{n, d};
        }
    }

    // ------------------------------------------------------------------ percentile histogram

    /** Most bins the device histogram takes (unsigned ints in 48 KiB of shared memory). */
    public static final int RANGE_HIST_MAX_BINS = 12288;

    /**
     * {@link dev.qvlm.backend.Backend#histogram} on the device (qvlm_range_hist, {@link dev.qvlm.backend.Statistics#histogram}'s
     * bins); false, with nothing done, for more bins than the kernel takes or more values than its 32-bit counts.
     */
    public static boolean histogram(CudaBackend b, Tensor t, double lo, double width, long[] hist) {
        CudaTensor x = (CudaTensor) t;
        long n = (long) x.rows() * x.cols();
        if (hist.length < 1 || hist.length > RANGE_HIST_MAX_BINS || n > 0xFFFFFFFFL) return false;
        if (n == 0) return true;
        synchronized (b) {
            LaunchGeometry.Launch e = LaunchGeometry.elementwise(n, b.smCount());
            long counts = b.memory().take(4L * hist.length);
            b.device().memsetZero(counts, 4L * hist.length);
            b.device().launch(Kernel.RANGE_HIST.symbol(b.storage()), new LaunchGeometry.Launch(e.gridX(), 1, e.block(), 4 * hist.length),
                    b.args(Kernel.RANGE_HIST, x.address(), n, lo, width, hist.length, counts));
            int[] c = new int[hist.length];
            b.device().download(counts, c);
            b.memory().give(counts);
            for (int i = 0; i < c.length; i++) hist[i] += Integer.toUnsignedLong(c[i]);
            return true;
        }
    }

    // ------------------------------------------------------------------ soft joint histogram (Eq. 4-5)

    /** Whether the device kernel takes M x Mb levels (shared-memory histogram, soft weights in registers). */
    public static boolean histogramSupported(int m, int mb) {
        return m >= 1 && mb >= 1 && m <= HIST_MAX_LEVELS && mb <= HIST_MAX_LEVELS && m * mb <= HIST_MAX_BINS;
    }

    /**
     * The kernel's formula on the host: FP32 soft weights (levels lo + m·step with lo and step rounded to float),
     * p(m) &lt; 1e-12 skipped, sums of pa(m)·pb(n) over the element pairs, unnormalised. Not its bits: the kernel
     * contracts lo + m·step into one FMA, uses expf, and adds in FP32 (shared then global atomics, in no fixed
     * order) where this sums in double; the two agree to ~1e-5 relative, so a GPU's D(k, k+1) can break a near-tie
     * of the partition differently from the CPU (run.sh's calibration comparison is the check).
     */
    public static double[] jointSums(float[] a, float[] b, Entropy.Levels la, Entropy.Levels lb) {
        if (a.length != b.length) throw new IllegalArgumentException("layer outputs differ in size");
        int M = la.count(), Mb = lb.count();
        float loA = (float) la.lo(), stA = (float) la.step(), loB = (float) lb.lo(), stB = (float) lb.step();
        double[] joint = new double[M * Mb];
        float[] wa = new float[M], wb = new float[Mb];
        for (int i = 0; i < a.length; i++) {
            float sa = soft(a[i], loA, stA, M, wa), sb = soft(b[i], loB, stB, Mb, wb);
            for (int m = 0; m < M; m++) {
                float pm = wa[m] / sa;
                if (pm < 1e-12f) continue;
                for (int k = 0; k < Mb; k++) joint[m * Mb + k] += pm * (wb[k] / sb);
            }
        }
        return joint;
    }

    /** soft_levels of calib.cuh: unnormalised weights into w, their sum returned. */
    static float soft(float x, float lo, float step, int M, float[] w) {
        float mx = Float.NEGATIVE_INFINITY;
        for (int m = 0; m < M; m++) {
            float d = x - (lo + m * step);
            w[m] = -(d * d) / step;
            mx = Math.max(mx, w[m]);
        }
        float s = 0f;
        for (int m = 0; m < M; m++) {
            w[m] = (float) Math.exp(w[m] - mx);
            s += w[m];
        }
        return s;
    }

    /** D(k, k+1) = H(joint) − H(marginal of a) from unnormalised joint sums over {@code count} elements (Eq. 5). */
    public static Entropy.Dependency dependency(double[] sums, long count, int M, int Mb) {
        return Entropy.fromJointSums(sums, count, M, Mb);
    }

    /**
     * {@link dev.qvlm.backend.Backend#jointLevelSums} on the device: FP32 tensors (the kernel reads floats; the
     * calibration's exact path), levels within {@link #histogramSupported}; false, with nothing done, otherwise.
     * The sums are accumulated in FP32 on the device and added to {@code sums}.
     */
    public static boolean jointLevelSums(CudaBackend b, Tensor a, Tensor bb, double loA, double stepA, int M, double loB,
                                         double stepB, int Mb, double[] sums) {
        CudaTensor x = (CudaTensor) a, y = (CudaTensor) bb;
        long n = (long) x.rows() * x.cols();
        if (b.storage() != Storage.F32 || !histogramSupported(M, Mb) || n != (long) y.rows() * y.cols()) return false;
        if (n == 0) return true;
        synchronized (b) {
            long joint = b.memory().take(4L * M * Mb);
            b.device().memsetZero(joint, 4L * M * Mb);
            LaunchGeometry.Launch e = LaunchGeometry.elementwise(n, b.smCount());
            b.device().launch(Kernel.SOFT_JOINT_HIST.symbol(b.storage()), new LaunchGeometry.Launch(e.gridX(), 1, e.block(), 4 * M * Mb),
                    b.args(Kernel.SOFT_JOINT_HIST, joint, x.address(), y.address(), n, (float) loA, (float) stepA, M,
                            (float) loB, (float) stepB, Mb));
            float[] f = new float[M * Mb];
            b.device().download(joint, f);
            b.memory().give(joint);
            for (int i = 0; i < f.length; i++) sums[i] += f[i];
            return true;
        }
    }

    /** {@link Entropy#dependency} on the GPU: one kernel launch per sample, sums accumulated on the device. */
    public static Entropy.Dependency dependency(CudaBackend b, List<float[]> a, List<float[]> bb, Entropy.Levels la,
                                                Entropy.Levels lb) {
        int M = la.count(), Mb = lb.count();
        if (!histogramSupported(M, Mb))
            throw new QvlmException("soft joint histogram: " + M + "x" + Mb + " levels exceed the kernel's "
                    + HIST_MAX_BINS + " bins (" + HIST_MAX_LEVELS + " levels a side); use the CPU (Entropy.dependency)");
        synchronized (b) {
            DeviceMemory mem = b.memory();
            long joint = mem.take(4L * M * Mb);
            b.device().memsetZero(joint, 4L * M * Mb);
            long total = 0;
            for (int s = 0; s < a.size(); s++) {
                float[] xa = a.get(s), xb = bb.get(s);
                if (xa.length != xb.length) throw new IllegalArgumentException("layer outputs differ in size");
                if (xa.length == 0) continue;
                long da = mem.take(4L * xa.length), db = mem.take(4L * xb.length);
                b.device().upload(da, xa);
                b.device().upload(db, xb);
                LaunchGeometry.Launch e = LaunchGeometry.elementwise(xa.length, b.smCount());
                b.device().launch(Kernel.SOFT_JOINT_HIST.symbol(b.storage()),
                        new LaunchGeometry.Launch(e.gridX(), 1, e.block(), 4 * M * Mb),
                        b.args(Kernel.SOFT_JOINT_HIST, joint, da, db, (long) xa.length, (float) la.lo(),
                                (float) la.step(), M, (float) lb.lo(), (float) lb.step(), Mb));
                mem.give(da);
                mem.give(db);
                total += xa.length;
            }
            float[] sums = new float[M * Mb];
            b.device().download(joint, sums);
            mem.give(joint);
            double[] d = new double[sums.length];
            for (int i = 0; i < d.length; i++) d[i] = sums[i];
            return dependency(d, Math.max(1, total), M, Mb);
        }
    }

    // ------------------------------------------------------------------ fused fake-quant + output error

    /**
     * Quantizer parameters of C clipping candidates of one weight quantizer, as the kernel reads them: scales and
     * zero points (as floats) [C][rows][groups], groups = cols / groupSize (per channel: groupSize = cols).
     */
    public record Candidates(double[] clips, int rows, int cols, int groupSize, int maxCode, float[] scales, float[] zeros) {
        public int count() {
            return clips.length;
        }

        public int groups() {
            return cols / groupSize;
        }
    }

    /** The parameters {@link WeightQuantizer} chooses for each clip (its own code, so the semantics are its). */
    public static Candidates candidates(Matrix w, QuantArgs a, double[] clips) {
        if (clips.length < 1 || clips.length > SCORE_MAX_CANDIDATES)
            throw new IllegalArgumentException(clips.length + " candidates; the kernel scores 1.." + SCORE_MAX_CANDIDATES);
        int rows = w.rows(), cols = w.cols();
        int gs = a.granularity() == QuantArgs.Granularity.GROUP ? a.groupSize() : cols;
        int groups = cols / gs;
        float[] s = new float[clips.length * rows * groups], z = new float[s.length];
        WeightQuantizer.Prepared p = WeightQuantizer.prepare(w, a, Math.min(WeightQuantizer.DEFAULT_MIN_CLIP,
                java.util.Arrays.stream(clips).min().orElse(1)));
        for (int c = 0; c < clips.length; c++) {
            QuantizedWeight q = p.quantize(clips[c]);
            for (int r = 0; r < rows; r++)
                for (int g = 0; g < groups; g++) {
                    int src = q.groupIndex(r, g * gs), dst = (c * rows + r) * groups + g;
                    s[dst] = q.scales()[src];
                    z[dst] = q.zeros()[src];
                }
        }
        return new Candidates(clips.clone(), rows, cols, gs, a.maxCode(), s, z);
    }

    /** fq_c(w) of the kernel: (clamp(rint(w / s) + z, 0, maxCode) − z) · s in FP32 (WeightQuantizer's numerics). */
    public static float fakeQuant(float w, float s, float z, int maxCode) {
        float code = (float) Math.min(Math.max(Math.rint(w / s) + z, 0), maxCode);
        return (code - z) * s;
    }

    /**
     * The semantics of qvlm_fq_score: for every candidate c,
     * {@code out[c] = Σ_{t<T, o<N} (Σ_k x[t,k] · fq_c(W[o,k]) − yref[t,o])²}, and {@code out[C] = Σ yref²} (so
     * out[c] / out[C] is the relative output MSE the calibrator minimises). x [T, K], W [N, K] (as {@code w.get}),
     * yref [T, N], all row-major FP32; dot products here in FP64 (the kernel: FP32, errors then summed in FP64).
     */
    public static double[] scoreReference(float[] x, int T, Matrix w, float[] yref, Candidates c) {
        int N = w.rows(), K = w.cols(), C = c.count(), G = c.groups();
        double[] out = new double[C + 1];
        float[] wq = new float[K];
        for (int cc = 0; cc < C; cc++)
            for (int o = 0; o < N; o++) {
                for (int k = 0; k < K; k++) {
                    int gi = (cc * N + o) * G + k / c.groupSize();
                    wq[k] = fakeQuant(w.get(o, k), c.scales()[gi], c.zeros()[gi], c.maxCode());
                }
                for (int t = 0; t < T; t++) {
                    double y = 0;
                    for (int k = 0; k < K; k++) y += (double) x[t * K + k] * wq[k];
                    double e = y - yref[t * N + o];
                    out[cc] += e * e;
                }
            }
        for (int i = 0; i < T * N; i++) out[C] += (double) yref[i] * yref[i];
        return out;
    }

    /** The same on the GPU (one launch): W given as FP32 values [N, K] on the host. */
    public static double[] scores(CudaBackend b, float[] x, int T, float[] w, int N, int K, float[] yref, Candidates c) {
        if (w.length != N * K || x.length != T * K || yref.length != T * N || c.rows() != N || c.cols() != K)
            throw new IllegalArgumentException("fq_score: shapes do not agree");
        int C = c.count();
        if (C < 1 || C > SCORE_MAX_CANDIDATES)
            throw new IllegalArgumentException(C + " candidates; the kernel scores 1.." + SCORE_MAX_CANDIDATES);
        synchronized (b) {
            DeviceMemory mem = b.memory();
            Device d = b.device();
            long out = mem.take(8L * (C + 1)), dx = mem.take(4L * x.length), dw = mem.take(4L * w.length),
                    dy = mem.take(4L * yref.length), ds = mem.take(4L * c.scales().length), dz = mem.take(4L * c.zeros().length);
            d.memsetZero(out, 8L * (C + 1));
            d.upload(dx, x);
            d.upload(dw, w);
            d.upload(dy, yref);
            d.upload(ds, c.scales());
            d.upload(dz, c.zeros());
            LaunchGeometry.Launch g = new LaunchGeometry.Launch(LaunchGeometry.ceilDiv(N, SCORE_TILE),
                    LaunchGeometry.ceilDiv(T, SCORE_TILE), SCORE_TILE * SCORE_TILE, 0);
            d.launch(Kernel.FQ_SCORE.symbol(b.storage()), g, b.args(Kernel.FQ_SCORE, out, dx, dw, dy, ds, dz, T, N, K,
                    c.groupSize(), C, c.maxCode()));
            double[] res = new double[C + 1];
            d.download(out, res);
            for (long a : new long[]{out, dx, dw, dy, ds, dz}) mem.give(a);
            return res;
        }
    }
}
