package dev.qvlm.cpu;

import dev.qvlm.backend.Backend;
import dev.qvlm.backend.BackwardOps;
import dev.qvlm.backend.Tensor;
import dev.qvlm.config.Activation;
import dev.qvlm.model.Linear;
import dev.qvlm.quant.Q4Matrix;
import dev.qvlm.tensor.Matrix;

/** FP32 compute on the host: vectorised matmuls spread over the cores, simple loops for the cheap ops. */
public final class CpuBackend implements Backend {
    private final boolean fp16Storage;
    private final boolean int8Activations;
    private final int int8MaxRows;
    private final CpuBackward backward = new CpuBackward(this);

    public CpuBackend() {
        this(false, false);
    }

    public CpuBackend(boolean fp16Storage) {
        this(fp16Storage, false);
    }

    /**
     * @param fp16Storage     round every op's output to FP16, as an FP16 model stores its activations on a GPU
     *                        (compute stays FP32): for comparisons with FP16 reference runs
     * @param int8Activations linears with packed 4-bit weights quantize their input rows to int8 (blocks of 32) and
     *                        run the integer kernel {@link Int8Matmul} in decode-sized calls (up to
     *                        {@link Int8Matmul#MAX_TOKENS} rows): faster decode, an approximation of the exact
     *                        FP32-activation path (the default, and always used for calibration). Prefill stays
     *                        on the exact path, where it is also faster here
     */
    public CpuBackend(boolean fp16Storage, boolean int8Activations) {
        this.fp16Storage = fp16Storage;
        this.int8Activations = int8Activations;
        // -Dqvlm.int8.allRows=true also runs prefill through the int8 kernel: to measure its accuracy effect where eval
        // looks (the answer comes from the prefill's last position), a superset of where the switch applies it
        this.int8MaxRows = Boolean.getBoolean("qvlm.int8.allRows") ? Integer.MAX_VALUE : Int8Matmul.MAX_TOKENS;
    }

    /** Whether 4-bit linears run with int8 activations ({@link Int8Matmul}). */
    public boolean int8Activations() {
        return int8Activations;
    }

    private void store(Tensor t) {
        if (!fp16Storage) return;
        CpuTensor x = c(t);
        float[] d = x.data();
        for (int i = x.offset(), e = x.offset() + x.size(); i < e; i++) d[i] = Float.float16ToFloat(Float.floatToFloat16(d[i]));
    }
    @Override
    public String name() {
        return "cpu";
    }

    @Override
    public BackwardOps backward() {
        return backward;
    }

    private static CpuTensor c(Tensor t) {
        return (CpuTensor) t;
    }

    @Override
    public Tensor allocate(int rows, int cols) {
        return new CpuTensor(scopes.get().take(rows * cols, true), 0, rows, cols);
    }

    /** Inside a scope, possibly a reused array with old contents (the caller's op overwrites it). */
    @Override
    public Tensor uninitialized(int rows, int cols) {
        return new CpuTensor(scopes.get().take(rows * cols, false), 0, rows, cols);
    }

    private final ThreadLocal<CpuScopes> scopes = ThreadLocal.withInitial(CpuScopes::new);

    /** This thread's arrays allocated inside are reused after the close ({@link CpuScopes}). */
    @Override
    public Scope scope() {
        return scopes.get().open();
    }

    @Override
    public Tensor upload(float[] data, int rows, int cols) {
        if (data.length < rows * cols) throw new IllegalArgumentException("upload: " + data.length + " < " + rows + "x" + cols);
        CpuTensor t = new CpuTensor(data.clone(), 0, rows, cols);
        store(t);
        return t;
    }

    @Override
    public float[] download(Tensor t) {
        CpuTensor x = c(t);
        float[] out = new float[x.size()];
        System.arraycopy(x.data(), x.offset(), out, 0, out.length);
        return out;
    }

    @Override
    public float[] minMax(Tensor t) {
        CpuTensor x = c(t);
        return dev.qvlm.backend.Statistics.minMax(x.data(), x.offset(), x.size());
    }

    @Override
    public void histogram(Tensor t, double lo, double width, long[] hist) {
        CpuTensor x = c(t);
        dev.qvlm.backend.Statistics.histogram(x.data(), x.offset(), x.size(), lo, width, hist);
    }

    /** {@link Backend#jointLevelSums} over chunks of 8192 pairs on the pool's threads, each chunk's sums added under a lock. */
    @Override
    public void jointLevelSums(Tensor a, Tensor b, double loA, double stepA, int M, double loB, double stepB, int Mb,
                               double[] sums) {
        CpuTensor x = c(a), y = c(b);
        if (x.size() != y.size()) throw new IllegalArgumentException("jointLevelSums: " + x + " vs " + y);
        Parallel.forRange(x.size(), 8192, (lo, hi) -> {
            double[] local = new double[M * Mb];
            dev.qvlm.backend.Statistics.jointLevelSums(x.data(), x.offset(), y.data(), y.offset(), lo, hi, loA, stepA, M,
                    loB, stepB, Mb, local);
            synchronized (sums) {
                for (int i = 0; i < local.length; i++) sums[i] += local[i];
            }
        });
    }

    @Override
    public Tensor view(Tensor t, int start, int count) {
        CpuTensor x = c(t);
        if (start < 0 || count < 0 || start + count > x.rows())
            throw new IndexOutOfBoundsException("view " + start + "+" + count + " of " + x.rows());
        return new CpuTensor(x.data(), x.offset() + start * x.cols(), count, x.cols());
    }

    @Override
    public void copy(Tensor src, Tensor dst) {
        CpuTensor s = c(src), d = c(dst);
        if (s.size() != d.size()) throw new IllegalArgumentException("copy size mismatch");
        System.arraycopy(s.data(), s.offset(), d.data(), d.offset(), s.size());
    }

    @Override
    public void embed(Tensor out, Matrix table, int[] ids) {
        CpuTensor o = c(out);
        for (int t = 0; t < ids.length; t++) table.rowToFloat(ids[t], o.data(), o.offset() + t * o.cols());
        store(out);
    }

    @Override
    public void linear(Tensor out, Tensor in, Linear w) {
        CpuTensor o = c(out), x = c(in);
        if (x.cols() != w.in() || o.cols() != w.out() || o.rows() != x.rows())
            throw new IllegalArgumentException(w.name() + ": [" + x.rows() + "x" + x.cols() + "] -> ["
                    + o.rows() + "x" + o.cols() + "] does not fit " + w);
        Linear.InputQuantizer q = w.inputQuantizer();
        float[] xd = x.data();
        int xo = x.offset();
        if (q != null) {
            xd = new float[x.size()];
            System.arraycopy(x.data(), x.offset(), xd, 0, xd.length);
            xo = 0;
            q.apply(xd, 0, x.rows(), x.cols());
        }
        if (int8Activations && x.rows() <= int8MaxRows && w.weight() instanceof Q4Matrix q4 && Int8Matmul.supports(q4))
            Int8Matmul.matmul(o.data(), o.offset(), xd, xo, x.rows(), q4, w.bias());
        else Matmul.matmul(o.data(), o.offset(), xd, xo, x.rows(), w.weight(), w.bias());
        store(out);
    }

    /**
     * FP32, F16 and BF16 weights: yes, every path (one-token matvec, GEMM) keeps {@link VectorMath#dot4}'s order per
     * row. Packed 4-bit weights: no (up to 32 rows take the fused kernel, more the GEMM on decoded rows; with int8
     * activations, the int8 kernel), nor any linear with an input quantizer that couples rows.
     */
    @Override
    public boolean rowExact(Linear w) {
        Linear.InputQuantizer q = w.inputQuantizer();
        return !(w.weight() instanceof Q4Matrix) && (q == null || q.rowIndependent());
    }

    /**
     * With int8 activations, 4-bit linears of one input without input quantizers run as one call of the int8 kernel:
     * the input is quantized once and all their rows share one parallel range (TinyLlama's k and v, 256 rows each,
     * paid a hand-off and a quantization each for a few microseconds of work). Everything else: one linear each.
     */
    @Override
    public void linears(Tensor[] outs, Tensor in, Linear[] ws) {
        CpuTensor x = c(in);
        Q4Matrix[] q4 = new Q4Matrix[ws.length];
        boolean fused = int8Activations && x.rows() <= int8MaxRows && ws.length > 1;
        for (int i = 0; fused && i < ws.length; i++) {
            fused = ws[i].inputQuantizer() == null && ws[i].weight() instanceof Q4Matrix m && Int8Matmul.supports(m)
                    && m.cols() == x.cols() && c(outs[i]).cols() == m.rows() && c(outs[i]).rows() == x.rows();
            if (fused) q4[i] = (Q4Matrix) ws[i].weight();
        }
        if (!fused) {
            Backend.super.linears(outs, in, ws);
            return;
        }
        float[][] od = new float[ws.length][], bias = new float[ws.length][];
        int[] oo = new int[ws.length];
        for (int i = 0; i < ws.length; i++) {
            od[i] = c(outs[i]).data();
            oo[i] = c(outs[i]).offset();
            bias[i] = ws[i].bias();
        }
        Int8Matmul.matmul(od, oo, Int8Rows.quantize(x.data(), x.offset(), x.rows(), x.cols()), q4, bias);
        for (Tensor o : outs) store(o);
    }

    @Override
    public void rmsNorm(Tensor out, Tensor in, float[] gamma, float eps) {
        CpuTensor o = c(out), x = c(in);
        int n = x.cols();
        for (int r = 0; r < x.rows(); r++) {
            int xo = x.offset() + r * n, oo = o.offset() + r * n;
            double ss = 0;
            for (int i = 0; i < n; i++) ss += (double) x.data()[xo + i] * x.data()[xo + i];
            float inv = (float) (1.0 / Math.sqrt(ss / n + eps));
            for (int i = 0; i < n; i++) o.data()[oo + i] = gamma[i] * (x.data()[xo + i] * inv);
        }
        store(out);
    }

    @Override
    public void layerNorm(Tensor out, Tensor in, float[] gamma, float[] beta, float eps) {
        CpuTensor o = c(out), x = c(in);
        int n = x.cols();
        for (int r = 0; r < x.rows(); r++) {
            int xo = x.offset() + r * n, oo = o.offset() + r * n;
            double mean = 0;
            for (int i = 0; i < n; i++) mean += x.data()[xo + i];
            mean /= n;
            double var = 0;
            for (int i = 0; i < n; i++) {
                double d = x.data()[xo + i] - mean;
                var += d * d;
            }
            var /= n;
            double inv = 1.0 / Math.sqrt(var + eps);
            for (int i = 0; i < n; i++)
                o.data()[oo + i] = (float) ((x.data()[xo + i] - mean) * inv) * gamma[i] + beta[i];
        }
        store(out);
    }

    @Override
    public void add(Tensor acc, Tensor x) {
        CpuTensor a = c(acc), b = c(x);
        if (a.size() != b.size()) throw new IllegalArgumentException("add size mismatch");
        for (int i = 0; i < a.size(); i++) a.data()[a.offset() + i] += b.data()[b.offset() + i];
        store(acc);
    }

    @Override
    public void activate(Tensor x, Activation act) {
        CpuTensor a = c(x);
        float[] d = a.data();
        int off = a.offset(), n = a.size();
        Parallel.forRange(n, 16384, (s, e) -> {
            if (act == Activation.SILU || act == Activation.QUICK_GELU)
                VectorMath.sigmoidGate(d, off + s, e - s, act == Activation.SILU ? 1f : 1.702f, null, 0);
            else
                for (int i = s; i < e; i++) d[off + i] = Activations.apply(act, d[off + i]);
        });
        store(x);
    }

    @Override
    public void gatedActivate(Tensor gate, Tensor up, Activation act) {
        CpuTensor g = c(gate), u = c(up);
        if (g.size() != u.size()) throw new IllegalArgumentException("gatedActivate size mismatch");
        float[] gd = g.data(), ud = u.data();
        int go = g.offset(), uo = u.offset();
        Parallel.forRange(g.size(), 16384, (s, e) -> {
            if (act == Activation.SILU || act == Activation.QUICK_GELU)
                VectorMath.sigmoidGate(gd, go + s, e - s, act == Activation.SILU ? 1f : 1.702f, ud, uo + s);
            else
                for (int i = s; i < e; i++) gd[go + i] = Activations.apply(act, gd[go + i]) * ud[uo + i];
        });
        store(gate);
    }

    @Override
    public void rope(Tensor x, int heads, int headDim, int startPos, double theta) {
        CpuTensor a = c(x);
        int half = headDim / 2;
        RopeTable t = ropeTable(theta, headDim, startPos + a.rows());
        for (int r = 0; r < a.rows(); r++) {
            int pos = startPos + r;
            float[] cos = t.cos, sin = t.sin;
            int tb = pos * half;
            for (int h = 0; h < heads; h++) {
                int base = a.offset() + r * a.cols() + h * headDim;
                float[] d = a.data();
                for (int i = 0; i < half; i++) {
                    float x1 = d[base + i], x2 = d[base + i + half];
                    float cs = cos[tb + i], sn = sin[tb + i];
                    d[base + i] = x1 * cs - x2 * sn;
                    d[base + i + half] = x2 * cs + x1 * sn;
                }
            }
        }
        store(x);
    }

    /** cos/sin of pos · inv_freq for positions [0, len), row-major [pos][i]; grown on demand, shared by threads. */
    record RopeTable(double theta, int headDim, int len, float[] cos, float[] sin) {}

    private volatile RopeTable rope;

    RopeTable ropeTable(double theta, int headDim, int len) {
        RopeTable t = rope;
        if (t != null && t.theta == theta && t.headDim == headDim && t.len >= len) return t;
        synchronized (this) {
            t = rope;
            if (t != null && t.theta == theta && t.headDim == headDim && t.len >= len) return t;
            int half = headDim / 2, n = Math.max(len, t != null && t.theta == theta && t.headDim == headDim ? 2 * t.len : 256);
            float[] invFreq = new float[half];
            // as HF: inv_freq = 1 / theta^(2i/d) in FP32, angle = pos * inv_freq in FP32
            for (int i = 0; i < half; i++) invFreq[i] = (float) (1.0 / Math.pow(theta, (2.0 * i) / headDim));
            float[] cos = new float[n * half], sin = new float[n * half];
            for (int p = 0; p < n; p++)
                for (int i = 0; i < half; i++) {
                    float ang = p * invFreq[i];
                    cos[p * half + i] = (float) Math.cos(ang);
                    sin[p * half + i] = (float) Math.sin(ang);
                }
            rope = t = new RopeTable(theta, headDim, n, cos, sin);
            return t;
        }
    }

    @Override
    public void attention(Tensor out, Tensor q, Tensor k, Tensor v, int kvLen, int heads, int kvHeads, int headDim,
                          int qPos0, boolean causal, float scale) {
        attention(out, q, java.util.List.of(new AttentionSegment(0, c(q).rows(), k, v, kvLen, qPos0)), heads, kvHeads,
                headDim, causal, scale);
    }

    /**
     * One parallel loop over every (sequence, row, key/value head): a batched decode step forks once, not once per
     * sequence; the query heads that share a key/value head run one after the other, so its keys and values are
     * fetched from the cache once and then read from L1.
     */
    @Override
    public void attention(Tensor out, Tensor q, java.util.List<AttentionSegment> segments, int heads, int kvHeads,
                          int headDim, boolean causal, float scale) {
        CpuTensor o = c(out), qq = c(q);
        int group = heads / kvHeads, nseg = segments.size();
        // jobs are numbered segment by segment: first[s] = first job of segment s
        int[] first = new int[nseg + 1];
        long work = 0;
        for (int s = 0; s < nseg; s++) {
            AttentionSegment g = segments.get(s);
            first[s + 1] = first[s] + g.rows() * kvHeads;
            work += (long) g.rows() * heads * g.kvLen();
        }
        int jobs = first[nseg];
        // about 256k multiply-adds per task (tens of microseconds): one sequence's decode step (8 heads x 256 keys x
        // 64 in the bundled model is 131k) stays on this thread, where a fork-join hand-off would cost about as much
        // as the work on a busy machine; a batch of sequences or a prefill is split over the cores
        int grain = (int) Math.max(1, 262144L * jobs / Math.max(1, 2L * work * headDim));
        Parallel.forRange(jobs, grain, (s0, e0) -> {
            int s = 0;
            while (first[s + 1] <= s0) s++;
            for (int job = s0; job < e0; job++) {
                while (first[s + 1] <= job) s++;
                AttentionSegment g = segments.get(s);
                CpuTensor kk = c(g.keys()), vv = c(g.values());
                int rel = job - first[s], t = rel / kvHeads, kh = rel % kvHeads, row = g.row() + t;
                int len = causal ? Math.min(g.kvLen(), g.qPos0() + t + 1) : g.kvLen();
                Attention.group(qq.data(), qq.offset() + row * qq.cols() + kh * group * headDim, group, kk.data(), kk.offset(),
                        kk.cols(), vv.data(), vv.offset(), vv.cols(), kh * headDim, len, headDim, scale,
                        o.data(), o.offset() + row * o.cols() + kh * group * headDim);
            }
        });
        store(out);
    }
}
