package dev.qvlm.image;

/**
 * {@code PIL.Image.resize(size, resample)} for 8-bit RGB images (no box, no {@code reducing_gap}), written to give
 * the same bytes as Pillow's resampler:
 * <ul>
 *   <li>separable convolution, horizontal pass first, then vertical; a pass is skipped when its dimension is
 *       unchanged (an unchanged image is returned as is);</li>
 *   <li>per output pixel: {@code center = (i + 0.5) * scale}, support = filter support * max(scale, 1), taps
 *       {@code [int(center - support + 0.5), int(center + support + 0.5))} clamped to the image, weights
 *       {@code filter((x - center + 0.5) / filterscale)} normalised to sum 1;</li>
 *   <li>weights turned into fixed point with {@link #PRECISION_BITS} = 22 fractional bits (rounded half away
 *       from zero), accumulators start at 1/2, results clipped to 0..255 after each pass.</li>
 * </ul>
 * NEAREST (filter 0) follows Pillow's affine nearest-neighbour path instead.
 */
final class PillowResize {
    static final int NEAREST = 0, LANCZOS = 1, BILINEAR = 2, BICUBIC = 3, BOX = 4, HAMMING = 5;
    static final int PRECISION_BITS = 32 - 8 - 2;

    private PillowResize() {}

    private interface Kernel {
        double apply(double x);
    }

    private record Filter(Kernel kernel, double support) {}

    private static double bicubic(double x) {
        final double a = -0.5;
        if (x < 0.0) x = -x;
        if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
        if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
        return 0.0;
    }

    private static double box(double x) {
        return x > -0.5 && x <= 0.5 ? 1.0 : 0.0;
    }

    private static double bilinear(double x) {
        if (x < 0.0) x = -x;
        return x < 1.0 ? 1.0 - x : 0.0;
    }

    private static double hamming(double x) {
        if (x < 0.0) x = -x;
        if (x == 0.0) return 1.0;
        if (x >= 1.0) return 0.0;
        x = x * Math.PI;
        return Math.sin(x) / x * (0.54 + 0.46 * Math.cos(x));
    }

    private static double sinc(double x) {
        if (x == 0.0) return 1.0;
        x = x * Math.PI;
        return Math.sin(x) / x;
    }

    private static double lanczos(double x) {
        return -3.0 <= x && x < 3.0 ? sinc(x) * sinc(x / 3) : 0.0;
    }

    private static Filter filter(int id) {
        return switch (id) {
            case LANCZOS -> new Filter(PillowResize::lanczos, 3.0);
            case BILINEAR -> new Filter(PillowResize::bilinear, 1.0);
            case BICUBIC -> new Filter(PillowResize::bicubic, 2.0);
            case BOX -> new Filter(PillowResize::box, 0.5);
            case HAMMING -> new Filter(PillowResize::hamming, 1.0);
            default -> throw new IllegalArgumentException("unknown resampling filter " + id);
        };
    }

    /** Fixed-point coefficients for one axis: {@code bounds[2i]} = first tap, {@code bounds[2i+1]} = tap count. */
    record Coeffs(int ksize, int[] bounds, int[] kk) {}

    static Coeffs precompute(int inSize, float in0, float in1, int outSize, int filterId) {
        Filter f = filter(filterId);
        double scale = (double) (in1 - in0) / outSize;
        double filterscale = scale < 1.0 ? 1.0 : scale;
        double support = f.support() * filterscale;
        int ksize = (int) Math.ceil(support) * 2 + 1;
        double[] kk = new double[outSize * ksize];
        int[] bounds = new int[outSize * 2];
        for (int xx = 0; xx < outSize; xx++) {
            double center = in0 + (xx + 0.5) * scale;
            double ww = 0.0;
            double ss = 1.0 / filterscale;
            int xmin = (int) (center - support + 0.5);
            if (xmin < 0) xmin = 0;
            int xmax = (int) (center + support + 0.5);
            if (xmax > inSize) xmax = inSize;
            xmax -= xmin;
            int k = xx * ksize;
            for (int x = 0; x < xmax; x++) {
                double w = f.kernel().apply((x + xmin - center + 0.5) * ss);
                kk[k + x] = w;
                ww += w;
            }
            for (int x = 0; x < xmax; x++) {
                if (ww != 0.0) kk[k + x] /= ww;
            }
            bounds[xx * 2] = xmin;
            bounds[xx * 2 + 1] = xmax;
        }
        int[] fixed = new int[kk.length];
        double one = 1 << PRECISION_BITS;
        for (int i = 0; i < kk.length; i++) {
            fixed[i] = kk[i] < 0 ? (int) (-0.5 + kk[i] * one) : (int) (0.5 + kk[i] * one);
        }
        return new Coeffs(ksize, bounds, fixed);
    }

    private static int clip8(int in) {
        if (in >= (1 << PRECISION_BITS << 8)) return 255;
        if (in <= 0) return 0;
        return in >> PRECISION_BITS;
    }

    /** Resizes to {@code xsize x ysize} with the given PIL filter id (0..5). */
    static RgbImage resize(RgbImage in, int xsize, int ysize, int filterId) {
        if (xsize <= 0 || ysize <= 0) throw new IllegalArgumentException("resize to " + xsize + "x" + ysize);
        if (in.width() == xsize && in.height() == ysize) return in; // Image.resize returns a copy
        if (filterId == NEAREST) return nearest(in, xsize, ysize);
        boolean needHorizontal = xsize != in.width();
        boolean needVertical = ysize != in.height();
        Coeffs horiz = precompute(in.width(), 0f, in.width(), xsize, filterId);
        Coeffs vert = precompute(in.height(), 0f, in.height(), ysize, filterId);
        int[] vb = vert.bounds().clone();
        // First and last source rows the vertical pass reads: the horizontal pass only needs those.
        int yboxFirst = vb[0];
        int yboxLast = vb[ysize * 2 - 2] + vb[ysize * 2 - 1];
        RgbImage cur = in;
        if (needHorizontal) {
            for (int i = 0; i < ysize; i++) vb[i * 2] -= yboxFirst;
            cur = horizontal(in, xsize, yboxFirst, yboxLast - yboxFirst, horiz);
        }
        if (needVertical) {
            cur = vertical(cur, ysize, vb, vert);
        }
        return cur;
    }

    /** Runs {@code body} for rows 0..n-1, in parallel when the work is large; each row is independent. */
    private static void rowsMaybeParallel(int n, long work, java.util.function.IntConsumer body) {
        if (work < (1 << 20)) {
            for (int i = 0; i < n; i++) body.accept(i);
        } else {
            java.util.stream.IntStream.range(0, n).parallel().forEach(body);
        }
    }

    private static RgbImage horizontal(RgbImage in, int xsize, int yOffset, int rows, Coeffs c) {
        byte[] src = in.pixels();
        int inW = in.width();
        byte[] out = new byte[xsize * rows * 3];
        int[] kk = c.kk(), bounds = c.bounds();
        int ksize = c.ksize();
        int half = 1 << (PRECISION_BITS - 1);
        rowsMaybeParallel(rows, (long) rows * xsize * ksize, yy -> {
            int rowBase = (yy + yOffset) * inW * 3;
            for (int xx = 0; xx < xsize; xx++) {
                int xmin = bounds[xx * 2], xmax = bounds[xx * 2 + 1];
                int k = xx * ksize;
                int ss0 = half, ss1 = half, ss2 = half;
                int p = rowBase + xmin * 3;
                for (int x = 0; x < xmax; x++, p += 3) {
                    int w = kk[k + x];
                    ss0 += (src[p] & 0xFF) * w;
                    ss1 += (src[p + 1] & 0xFF) * w;
                    ss2 += (src[p + 2] & 0xFF) * w;
                }
                int o = (yy * xsize + xx) * 3;
                out[o] = (byte) clip8(ss0);
                out[o + 1] = (byte) clip8(ss1);
                out[o + 2] = (byte) clip8(ss2);
            }
        });
        return new RgbImage(xsize, rows, out);
    }

    private static RgbImage vertical(RgbImage in, int ysize, int[] bounds, Coeffs c) {
        byte[] src = in.pixels();
        int w = in.width();
        int stride = w * 3;
        byte[] out = new byte[w * ysize * 3];
        int[] kk = c.kk();
        int ksize = c.ksize();
        int half = 1 << (PRECISION_BITS - 1);
        rowsMaybeParallel(ysize, (long) ysize * w * ksize, yy -> {
            int ymin = bounds[yy * 2], ymax = bounds[yy * 2 + 1];
            int k = yy * ksize;
            for (int xx = 0; xx < w; xx++) {
                int ss0 = half, ss1 = half, ss2 = half;
                int p = ymin * stride + xx * 3;
                for (int y = 0; y < ymax; y++, p += stride) {
                    int wt = kk[k + y];
                    ss0 += (src[p] & 0xFF) * wt;
                    ss1 += (src[p + 1] & 0xFF) * wt;
                    ss2 += (src[p + 2] & 0xFF) * wt;
                }
                int o = (yy * w + xx) * 3;
                out[o] = (byte) clip8(ss0);
                out[o + 1] = (byte) clip8(ss1);
                out[o + 2] = (byte) clip8(ss2);
            }
        });
        return new RgbImage(w, ysize, out);
    }

    /** Pillow's NEAREST resize: an affine scale with pixel centres mapped by accumulated steps. */
    private static RgbImage nearest(RgbImage in, int xsize, int ysize) {
        double ax = (double) in.width() / xsize, ay = (double) in.height() / ysize;
        int[] xin = new int[xsize];
        double xo = ax * 0.5;
        for (int x = 0; x < xsize; x++) {
            int v = xo < 0.0 ? -1 : (int) xo;
            xin[x] = Math.min(Math.max(v, 0), in.width() - 1);
            xo += ax;
        }
        byte[] src = in.pixels(), out = new byte[xsize * ysize * 3];
        double yo = ay * 0.5;
        for (int y = 0; y < ysize; y++) {
            int yi = yo < 0.0 ? -1 : (int) yo;
            yi = Math.min(Math.max(yi, 0), in.height() - 1);
            for (int x = 0; x < xsize; x++) {
                int s = (yi * in.width() + xin[x]) * 3, o = (y * xsize + x) * 3;
                out[o] = src[s];
                out[o + 1] = src[s + 1];
                out[o + 2] = src[s + 2];
            }
            yo += ay;
        }
        return new RgbImage(xsize, ysize, out);
    }
}
