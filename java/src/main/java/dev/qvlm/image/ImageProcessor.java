package dev.qvlm.image;

import dev.qvlm.QvlmException;

import java.awt.color.ColorSpace;
import java.awt.image.BufferedImage;
import java.awt.image.ColorModel;
import java.awt.image.ComponentSampleModel;
import java.awt.image.DataBufferByte;
import java.awt.image.IndexColorModel;
import java.awt.image.Raster;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Hugging Face's (slow, PIL-based) {@code CLIPImageProcessor} as used by LLaVA-1.5, reproduced to the bit:
 * <ol>
 *   <li>convert to 8-bit RGB the way PIL's {@code convert("RGB")} does (alpha discarded, grey replicated,
 *       palette looked up);</li>
 *   <li>optionally (LLaVA-1.5 {@code image_aspect_ratio == "pad"}) {@code expand2square}: paste the image centred
 *       on a square of colour {@code int(mean * 255)};</li>
 *   <li>resize so the shortest edge equals {@code shortest_edge} (the other edge
 *       {@code int(shortest_edge * long / short)}), with Pillow's separable convolution resampler in its 8-bit
 *       fixed-point form ({@link PillowResize});</li>
 *   <li>center crop ({@code top = (h - crop_h) // 2}), zero padding where the image is smaller;</li>
 *   <li>rescale ({@code float32(x * rescale_factor)}, computed in double as numpy does) and normalise
 *       ({@code (x - mean) / std} in float32), channels first.</li>
 * </ol>
 * Thread-safe: instances hold only the immutable config.
 */
public final class ImageProcessor {
    private final ImageProcessorConfig cfg;

    /** Pixel values in CHW order ({@code data.length == 3 * height * width}). */
    public record PixelValues(float[] data, int height, int width) {}

    public ImageProcessor(ImageProcessorConfig cfg) {
        if (cfg == null) throw new IllegalArgumentException("cfg");
        this.cfg = cfg;
    }

    public ImageProcessorConfig config() {
        return cfg;
    }

    /** Output height: {@code cropHeight} when center-cropping; -1 (depends on the image) otherwise. */
    public int outHeight() {
        return cfg.doCenterCrop() ? cfg.cropHeight() : -1;
    }

    /** Output width: {@code cropWidth} when center-cropping; -1 (depends on the image) otherwise. */
    public int outWidth() {
        return cfg.doCenterCrop() ? cfg.cropWidth() : -1;
    }

    /**
     * Reads a PNG or JPEG through {@link ImageDecoder} (pixel limit from the header, CRCs, truncation). Throws
     * {@link QvlmException} {@code "<file>: image not found"} or {@code "<file>: not a readable PNG/JPEG image"}.
     */
    public static BufferedImage read(Path file) {
        return ImageDecoder.read(file);
    }

    /** {@code pixel_values} for one image file, CHW float[3 * outHeight() * outWidth()]. */
    public float[] preprocess(Path file) {
        return preprocess(read(file));
    }

    /** {@code pixel_values} for one image, CHW float[3 * outHeight() * outWidth()]. */
    public float[] preprocess(BufferedImage img) {
        return process(img).data();
    }

    /** Like {@link #preprocess(BufferedImage)} but also reports the output size (needed without center crop). */
    public PixelValues process(BufferedImage img) {
        ImageDecoder.checkPixels(img.getWidth(), img.getHeight(), "image");
        if (cfg.padToSquare()) {
            long side = Math.max(img.getWidth(), img.getHeight());
            ImageDecoder.checkPixels(side, side, "image padded to a square");
        }
        RgbImage rgb = toRgb(img);
        if (cfg.padToSquare()) rgb = expandToSquare(rgb, cfg.padColor());
        if (cfg.doResize()) {
            int[] hw = resizeOutputSize(rgb.height(), rgb.width(), cfg.shortestEdge());
            // a very elongated image resized to shortest_edge can be far larger than the original
            ImageDecoder.checkPixels(hw[1], hw[0], "image resized to shortest edge " + cfg.shortestEdge());
            rgb = PillowResize.resize(rgb, hw[1], hw[0], cfg.resample());
        }
        int outH = rgb.height(), outW = rgb.width(), top = 0, left = 0;
        if (cfg.doCenterCrop()) {
            outH = cfg.cropHeight();
            outW = cfg.cropWidth();
            ImageDecoder.checkPixels(outW, outH, "crop_size");
            top = Math.floorDiv(rgb.height() - outH, 2);
            left = Math.floorDiv(rgb.width() - outW, 2);
        }
        return new PixelValues(toChw(rgb, top, left, outH, outW), outH, outW);
    }

    /**
     * HF {@code get_resize_output_image_size(image, shortest_edge, default_to_square=False)}: returns
     * {@code {height, width}}.
     */
    static int[] resizeOutputSize(int height, int width, int shortestEdge) {
        int shortSide = Math.min(height, width), longSide = Math.max(height, width);
        if (shortestEdge == shortSide) return new int[] {height, width};
        // Python: int(requested_new_short * long / short) -- exact int product, correctly rounded true division
        int newLong = (int) ((double) ((long) shortestEdge * longSide) / shortSide);
        return width <= height ? new int[] {newLong, shortestEdge} : new int[] {shortestEdge, newLong};
    }

    /** Crop window {@code [top, top+outH) x [left, left+outW)} (zeros outside the image), rescaled/normalised. */
    private float[] toChw(RgbImage rgb, int top, int left, int outH, int outW) {
        int w = rgb.width(), h = rgb.height();
        byte[] px = rgb.pixels();
        float[] out = new float[3 * outH * outW];
        double[] mean = cfg.mean(), std = cfg.std();
        boolean rescale = cfg.doRescale(), normalize = cfg.doNormalize();
        double factor = cfg.rescaleFactor();
        // Precompute the 256 possible values per channel (the arithmetic below matches numpy's float32 path).
        float[][] lut = new float[3][256];
        for (int c = 0; c < 3; c++) {
            float m = (float) mean[c], s = (float) std[c];
            for (int v = 0; v < 256; v++) {
                float x = rescale ? (float) (v * factor) : (float) v;
                if (normalize) x = (x - m) / s;
                lut[c][v] = x;
            }
        }
        int plane = outH * outW;
        for (int i = 0; i < outH; i++) {
            int y = top + i;
            for (int j = 0; j < outW; j++) {
                int x = left + j;
                int o = i * outW + j;
                if (y >= 0 && y < h && x >= 0 && x < w) {
                    int p = (y * w + x) * 3;
                    out[o] = lut[0][px[p] & 0xFF];
                    out[plane + o] = lut[1][px[p + 1] & 0xFF];
                    out[2 * plane + o] = lut[2][px[p + 2] & 0xFF];
                } else {
                    out[o] = lut[0][0];
                    out[plane + o] = lut[1][0];
                    out[2 * plane + o] = lut[2][0];
                }
            }
        }
        return out;
    }

    /** LLaVA's {@code expand2square}: square canvas of {@code bg}, image pasted at {@code ((W-w)//2, (H-h)//2)}. */
    static RgbImage expandToSquare(RgbImage img, int[] bg) {
        int w = img.width(), h = img.height();
        if (w == h) return img;
        int side = Math.max(w, h);
        int offX = (side - w) / 2, offY = (side - h) / 2;
        byte[] out = new byte[side * side * 3];
        for (int p = 0; p < side * side; p++) {
            out[3 * p] = (byte) bg[0];
            out[3 * p + 1] = (byte) bg[1];
            out[3 * p + 2] = (byte) bg[2];
        }
        byte[] in = img.pixels();
        for (int y = 0; y < h; y++) {
            System.arraycopy(in, y * w * 3, out, ((y + offY) * side + offX) * 3, w * 3);
        }
        return new RgbImage(side, side, out);
    }

    /**
     * 8-bit RGB as PIL's {@code convert("RGB")} gives it: alpha dropped (not composited), grey replicated,
     * palette indices looked up. 16-bit RGB keeps the high byte (Pillow's {@code RGB;16B} raw mode); 16-bit grey
     * without alpha is clipped to 255 (Pillow's {@code I;16 -> RGB}); 16-bit grey with alpha keeps the high byte
     * (Pillow's {@code LA;16B}). Other colour models fall back to Java's sRGB conversion.
     */
    static RgbImage toRgb(BufferedImage img) {
        int w = img.getWidth(), h = img.getHeight();
        byte[] out = new byte[w * h * 3];
        ColorModel cm = img.getColorModel();
        Raster r = img.getRaster();
        int csType = cm.getColorSpace().getType();
        if (!cm.isAlphaPremultiplied() && r.getDataBuffer() instanceof DataBufferByte db
                && r.getSampleModel() instanceof ComponentSampleModel sm
                && (csType == ColorSpace.TYPE_RGB && r.getNumBands() >= 3
                    || csType == ColorSpace.TYPE_GRAY && r.getNumBands() >= 1)
                && !(cm instanceof IndexColorModel) && db.getNumBanks() == 1) {
            // Fast path for the usual 8-bit interleaved rasters (TYPE_3BYTE_BGR, TYPE_4BYTE_ABGR, TYPE_BYTE_GRAY...).
            byte[] data = db.getData();
            int ps = sm.getPixelStride(), ls = sm.getScanlineStride();
            int tx = r.getSampleModelTranslateX(), ty = r.getSampleModelTranslateY();
            int[] bo = sm.getBandOffsets();
            boolean gray = csType == ColorSpace.TYPE_GRAY;
            int o0 = bo[0], o1 = gray ? bo[0] : bo[1], o2 = gray ? bo[0] : bo[2];
            for (int y = 0; y < h; y++) {
                int base = db.getOffset() + (y - ty) * ls - tx * ps;
                int p = y * w * 3;
                for (int x = 0; x < w; x++, base += ps, p += 3) {
                    out[p] = data[base + o0];
                    out[p + 1] = data[base + o1];
                    out[p + 2] = data[base + o2];
                }
            }
            return new RgbImage(w, h, out);
        }
        if (cm instanceof IndexColorModel icm) {
            int[] row = new int[w];
            for (int y = 0; y < h; y++) {
                r.getSamples(0, y, w, 1, 0, row);
                for (int x = 0; x < w; x++) {
                    int p = (y * w + x) * 3, idx = row[x];
                    out[p] = (byte) icm.getRed(idx);
                    out[p + 1] = (byte) icm.getGreen(idx);
                    out[p + 2] = (byte) icm.getBlue(idx);
                }
            }
        } else if (!cm.isAlphaPremultiplied() && csType == ColorSpace.TYPE_GRAY && r.getNumBands() >= 1) {
            int bits = r.getSampleModel().getSampleSize(0);
            int[] row = new int[w];
            for (int y = 0; y < h; y++) {
                r.getSamples(0, y, w, 1, 0, row);
                for (int x = 0; x < w; x++) {
                    int v = row[x];
                    int g = bits == 16 && !cm.hasAlpha() ? Math.min(v, 255) : to8(v, bits);
                    int p = (y * w + x) * 3;
                    out[p] = out[p + 1] = out[p + 2] = (byte) g;
                }
            }
        } else if (!cm.isAlphaPremultiplied() && csType == ColorSpace.TYPE_RGB && r.getNumBands() >= 3) {
            int[] row = new int[w];
            for (int b = 0; b < 3; b++) {
                int bits = r.getSampleModel().getSampleSize(b);
                for (int y = 0; y < h; y++) {
                    r.getSamples(0, y, w, 1, b, row);
                    for (int x = 0; x < w; x++) out[(y * w + x) * 3 + b] = (byte) to8(row[x], bits);
                }
            }
        } else {
            for (int y = 0; y < h; y++) {
                for (int x = 0; x < w; x++) {
                    int argb = img.getRGB(x, y), p = (y * w + x) * 3;
                    out[p] = (byte) (argb >> 16);
                    out[p + 1] = (byte) (argb >> 8);
                    out[p + 2] = (byte) argb;
                }
            }
        }
        return new RgbImage(w, h, out);
    }

    private static int to8(int v, int bits) {
        if (bits == 8) return v & 0xFF;
        if (bits > 8) return (v >>> (bits - 8)) & 0xFF;
        int max = (1 << bits) - 1;
        return (v * 255 + max / 2) / max;
    }
}
