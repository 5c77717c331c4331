package dev.qvlm.quant;

import dev.qvlm.QvlmException;
import dev.qvlm.cpu.Parallel;
import dev.qvlm.tensor.F32Matrix;
import dev.qvlm.tensor.Matrix;

import java.util.Arrays;

/**
 * Uniform weight quantization with percentile clipping (Q-VLM §3: each quantizer's bounds are the p-quantile and
 * (1−p)-quantile of its full-precision values, p from a small grid; p = 1 is plain min–max RTN).
 *
 * <p>Bounds are per group of values sharing a scale (a row for CHANNEL, groupSize columns of a row for GROUP, the
 * whole matrix for TENSOR). Quantiles interpolate linearly between order statistics, as numpy's default
 * ({@code np.quantile(x, p)}): position h = (n−1)·p. Asymmetric ranges are then widened to include 0, symmetric ones
 * use max(|lo|, |hi|); see {@link Uniform} for the exact arithmetic (it reproduces the PyTorch reference bit for bit
 * at p = 1).
 *
 * <p>The search tries several p per layer, so {@link #prepare} sorts each group once and keeps only the order
 * statistics that percentiles ≥ minClip can reach (the two tails, 2·⌈(n−1)(1−minClip)⌉ + 4 values per group), after
 * which {@link Prepared#quantize} and {@link Prepared#mse} cost one pass over the weights each.
 */
public final class WeightQuantizer {
    /** Lowest percentile a {@link Prepared} supports by default (the paper's grid goes down to 0.98). */
    public static final double DEFAULT_MIN_CLIP = 0.9;

    private WeightQuantizer() {}

    /** Quantizes {@code w} with clipping percentile {@code clip} ∈ (0, 1]; clip = 1 is min–max RTN (no sorting). */
    public static QuantizedWeight quantize(Matrix w, QuantArgs a, double clip) {
        Uniform.checkClip(clip);
        if (clip == 1.0) {
            a.validateFor(w.cols(), "weight " + w.rows() + "x" + w.cols());
            float[] v = values(w);
            int n = a.effectiveGroupSize(w.rows(), w.cols());
            int groups = v.length / n;
            float[] lo = new float[groups], hi = new float[groups];
            Parallel.forRange(groups, Math.max(1, 16384 / n), (g0, g1) -> {
                for (int g = g0; g < g1; g++) {
                    float mn = Float.POSITIVE_INFINITY, mx = Float.NEGATIVE_INFINITY;
                    for (int i = g * n, e = i + n; i < e; i++) {
                        mn = Math.min(mn, v[i]);
                        mx = Math.max(mx, v[i]);
                    }
                    lo[g] = mn;
                    hi[g] = mx;
                }
            });
            return build(a, w.rows(), w.cols(), v, lo, hi);
        }
        return prepare(w, a, Math.min(clip, DEFAULT_MIN_CLIP)).quantize(clip);
    }

    public static Prepared prepare(Matrix w, QuantArgs a) {
        return prepare(w, a, DEFAULT_MIN_CLIP);
    }

    public static Prepared prepare(Matrix w, QuantArgs a, String layerName) {
        a.validateFor(w.cols(), layerName);
        return prepare(w, a, DEFAULT_MIN_CLIP);
    }

    /** Sorts every group once; the result quantizes for any clip in [minClip, 1]. */
    public static Prepared prepare(Matrix w, QuantArgs a, double minClip) {
        Uniform.checkClip(minClip);
        a.validateFor(w.cols(), "weight " + w.rows() + "x" + w.cols());
        return new Prepared(w, a, minClip);
    }

    /** The weights as a row-major float[]: the backing array of a heap F32Matrix (not copied), else decoded. */
    private static float[] values(Matrix w) {
        if (w instanceof F32Matrix f && f.array() != null) return f.array();
        long n = (long) w.rows() * w.cols();
        if (n > Integer.MAX_VALUE - 8) throw new QvlmException("weight " + w.rows() + "x" + w.cols() + " is too large to quantize in one piece");
        return w.toFloatArray();
    }

    /** Codes, scales and zero points for the given per-group bounds (before widening to include 0). */
    static QuantizedWeight build(QuantArgs a, int rows, int cols, float[] v, float[] lo, float[] hi) {
        return Grid.of(a, rows, cols, lo, hi).round(v);
    }

    private interface SliceBody {
        void run(int group, int from, int to);
    }

    /**
     * Runs body over [from, to) slices of the row-major values, each inside one group, split over the cores by rows
     * (a TENSOR group spans all rows, so it is split too).
     */
    private static void forEachGroupSlice(int rows, int cols, int n, SliceBody body) {
        Parallel.forRange(rows, Math.max(1, 16384 / Math.max(1, cols)), (r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                int base = r * cols;
                if (n >= cols) {
                    body.run(base / n, base, base + cols);
                } else {
                    for (int c = 0; c < cols; c += n) body.run((base + c) / n, base + c, base + c + n);
                }
            }
        });
    }

    /** One weight matrix with every group's order statistics ready, for quantizing at many clipping percentiles. */
    public static final class Prepared {
        private final QuantArgs args;
        private final int rows, cols, n, groups, k;
        private final double minClip;
        private final float[] values;       // row-major weights
        private final float[] low, high;    // per group: the k smallest / k largest values, ascending
        private final boolean full;          // k == n: low holds each whole sorted group and high is unused

        private Prepared(Matrix w, QuantArgs a, double minClip) {
            this.args = a;
            this.rows = w.rows();
            this.cols = w.cols();
            this.minClip = minClip;
            this.values = WeightQuantizer.values(w);
            this.n = a.effectiveGroupSize(rows, cols);
            this.groups = values.length / n;
            // order statistics reachable by p >= minClip: indices <= floor((n-1)(1-minClip)) + 1 from either end
            long tail = (long) Math.ceil((n - 1) * (1 - minClip)) + 2;
            this.full = 2 * tail >= n;
            this.k = full ? n : (int) tail;
            this.low = new float[Math.multiplyExact(groups, k)];
            this.high = full ? null : new float[groups * k];
            if (groups == 1 && n > 1 << 16) {
                float[] s = values.clone();
                Arrays.parallelSort(s);
                keep(0, s, 0);
            } else {
                Parallel.forRange(groups, Math.max(1, 8192 / n), (g0, g1) -> {
                    float[] s = new float[n];
                    for (int g = g0; g < g1; g++) {
                        System.arraycopy(values, g * n, s, 0, n);
                        Arrays.sort(s);
                        keep(g, s, 0);
                    }
                });
            }
        }

        private void keep(int g, float[] sorted, int from) {
            if (full) {
                System.arraycopy(sorted, from, low, g * n, n);
            } else {
                System.arraycopy(sorted, from, low, g * k, k);
                System.arraycopy(sorted, from + n - k, high, g * k, k);
            }
        }

        public QuantArgs args() {
            return args;
        }

        public int rows() {
            return rows;
        }

        public int cols() {
            return cols;
        }

        /** Number of groups (scales) and values per group. */
        public int groups() {
            return groups;
        }

        public int groupSize() {
            return n;
        }

        /** The lowest clipping percentile this preparation can serve. */
        public double minClip() {
            return minClip;
        }

        /** The i-th smallest value (0-based) of group g. */
        private double sorted(int g, int i) {
            if (full) return low[g * n + i];
            if (i < k) return low[g * k + i];
            if (i >= n - k) return high[g * k + i - (n - k)];
            throw new IllegalStateException("order statistic " + i + " of " + n + " not kept (minClip " + minClip + ")");
        }

        /** The q-quantile of group g, numpy 'linear' method. */
        public double quantile(int g, double q) {
            double h = (n - 1) * q;
            int j = (int) Math.floor(h);
            if (j >= n - 1) return sorted(g, n - 1);
            if (j < 0) return sorted(g, 0);
            double t = h - j;
            double a = sorted(g, j);
            return t == 0 ? a : Uniform.lerp(a, sorted(g, j + 1), t);
        }

        /** {lo, hi} = the (1−clip) and clip quantiles of group g (before the range is widened to include 0). */
        public double[] bounds(int g, double clip) {
            checkClip(clip);
            return new double[] {quantile(g, 1 - clip), quantile(g, clip)};
        }

        private void checkClip(double clip) {
            Uniform.checkClip(clip);
            if (clip < minClip)
                throw new IllegalArgumentException("clip " + clip + " is below the minClip " + minClip + " this weight was prepared for");
        }

        private void boundsInto(double clip, float[] lo, float[] hi) {
            for (int g = 0; g < groups; g++) {
                double a = quantile(g, 1 - clip), b = quantile(g, clip);
                lo[g] = (float) Math.min(a, b);
                hi[g] = (float) Math.max(a, b);
            }
        }

        /** The weight quantized with bounds at percentile {@code clip}. */
        public QuantizedWeight quantize(double clip) {
            return grid(clip, null).round(values);
        }

        /** The row-major full-precision values this preparation quantizes (shared: read only). */
        public float[] values() {
            return values;
        }

        /**
         * The grid with bounds at percentile {@code clip}, each group's range further limited to [−limit[g], limit[g]]
         * when {@code limit} is given (AWQ's clipping search: clamp(w, −m, m) before min–max).
         */
        public Grid grid(double clip, float[] limit) {
            checkClip(clip);
            float[] lo = new float[groups], hi = new float[groups];
            boundsInto(clip, lo, hi);
            if (limit != null)
                for (int g = 0; g < groups; g++) {
                    lo[g] = Math.min(Math.max(lo[g], -limit[g]), limit[g]);
                    hi[g] = Math.max(Math.min(hi[g], limit[g]), -limit[g]);
                }
            return Grid.of(args, rows, cols, lo, hi);
        }

        /** ‖W_q − W‖² (sum over all elements) at percentile {@code clip}, without materialising W_q. */
        public double mse(double clip) {
            checkClip(clip);
            float[] lo = new float[groups], hi = new float[groups];
            boundsInto(clip, lo, hi);
            float[] scales = new float[groups];
            int[] zeros = new int[groups];
            for (int g = 0; g < groups; g++) {
                scales[g] = Uniform.scale(lo[g], hi[g], args);
                zeros[g] = Uniform.zero(lo[g], scales[g], args);
            }
            int maxCode = args.maxCode();
            double[] perRow = new double[rows]; // summed in row order afterwards: deterministic
            forEachGroupSlice(rows, cols, n, (g, from, to) -> {
                float s = scales[g];
                int z = zeros[g];
                double acc = 0;
                for (int i = from; i < to; i++) {
                    double d = Uniform.value(Uniform.code(values[i], s, z, maxCode), z, s) - values[i];
                    acc += d * d;
                }
                perRow[from / cols] += acc;
            });
            double sum = 0;
            for (double v : perRow) sum += v;
            return sum;
        }
    }
}
