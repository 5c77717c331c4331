package dev.qvlm.image;

import com.fasterxml.jackson.databind.JsonNode;
import dev.qvlm.QvlmException;
import dev.qvlm.util.Json;

import java.nio.file.Path;
import java.util.Arrays;

/**
 * Settings of Hugging Face's {@code CLIPImageProcessor} ({@code preprocessor_config.json}), with HF's defaults
 * applied for absent keys, plus LLaVA-1.5's {@code image_aspect_ratio: "pad"} option ({@link #padToSquare}).
 *
 * @param doResize      resize so that the shortest edge equals {@code shortestEdge}
 * @param shortestEdge  target length of the shorter edge ({@code size.shortest_edge}, or {@code size} as an int)
 * @param resample      PIL filter id: 0 nearest, 1 lanczos, 2 bilinear, 3 bicubic, 4 box, 5 hamming
 * @param doCenterCrop  center-crop (zero-padding if too small) to {@code cropHeight x cropWidth}
 * @param doRescale     multiply by {@code rescaleFactor}
 * @param doNormalize   {@code (x - mean[c]) / std[c]}
 * @param mean          per-channel mean (R, G, B), as written in the JSON
 * @param std           per-channel standard deviation (R, G, B)
 * @param doConvertRgb  convert to RGB (always effectively done here: the pipeline works on RGB)
 * @param padToSquare   LLaVA-1.5 {@code expand2square}: pad to a square with the mean colour before processing
 */
public record ImageProcessorConfig(
        boolean doResize,
        int shortestEdge,
        int resample,
        boolean doCenterCrop,
        int cropHeight,
        int cropWidth,
        boolean doRescale,
        double rescaleFactor,
        boolean doNormalize,
        double[] mean,
        double[] std,
        boolean doConvertRgb,
        boolean padToSquare) {

    /** OpenAI CLIP normalisation constants (HF's {@code OPENAI_CLIP_MEAN} / {@code OPENAI_CLIP_STD}). */
    public static final double[] OPENAI_CLIP_MEAN = {0.48145466, 0.4578275, 0.40821073};
    public static final double[] OPENAI_CLIP_STD = {0.26862954, 0.26130258, 0.27577711};

    public ImageProcessorConfig {
        if (mean == null || mean.length != 3) throw new IllegalArgumentException("mean must have 3 values");
        if (std == null || std.length != 3) throw new IllegalArgumentException("std must have 3 values");
        mean = mean.clone();
        std = std.clone();
        if (doResize && shortestEdge <= 0) throw new IllegalArgumentException("shortestEdge must be > 0");
        if (doCenterCrop && (cropHeight <= 0 || cropWidth <= 0)) {
            throw new IllegalArgumentException("crop size must be > 0");
        }
        if (resample < 0 || resample > 5) throw new IllegalArgumentException("resample must be 0..5");
    }

    /** HF {@code CLIPImageProcessor()} defaults: 224px, bicubic, CLIP mean/std. */
    public static ImageProcessorConfig defaults() {
        return new ImageProcessorConfig(true, 224, 3, true, 224, 224, true, 1.0 / 255, true,
                OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, true, false);
    }

    @Override
    public double[] mean() {
        return mean.clone();
    }

    @Override
    public double[] std() {
        return std.clone();
    }

    /** A copy with LLaVA's pad-to-square ({@code image_aspect_ratio == "pad"}) switched on or off. */
    public ImageProcessorConfig withPadToSquare(boolean pad) {
        return new ImageProcessorConfig(doResize, shortestEdge, resample, doCenterCrop, cropHeight, cropWidth,
                doRescale, rescaleFactor, doNormalize, mean, std, doConvertRgb, pad);
    }

    /** LLaVA's expand2square background: {@code tuple(int(x * 255) for x in image_mean)}. */
    public int[] padColor() {
        int[] c = new int[3];
        for (int i = 0; i < 3; i++) c[i] = (int) (mean[i] * 255);
        return c;
    }

    /**
     * Reads a {@code preprocessor_config.json}, or a {@code processor_config.json} that wraps one under
     * {@code "image_processor"}. {@code size} may be {@code {"shortest_edge": N}} or an int; {@code crop_size}
     * may be {@code {"height": H, "width": W}} or an int. Absent keys take HF's {@code CLIPImageProcessor}
     * defaults. Missing or malformed files raise a {@link QvlmException} naming the file.
     */
    public static ImageProcessorConfig load(Path preprocessorConfigJson) {
        String where = preprocessorConfigJson.toString();
        JsonNode root = Json.read(preprocessorConfigJson);
        if (!root.isObject()) throw new QvlmException(where + ": expected a JSON object");
        if (root.has("image_processor") && root.get("image_processor").isObject()) {
            root = root.get("image_processor");
        }
        ImageProcessorConfig d = defaults();
        try {
            boolean doResize = bool(root, "do_resize", d.doResize, where);
            int shortestEdge = d.shortestEdge;
            JsonNode size = root.get("size");
            if (size != null && !size.isNull()) {
                if (size.isIntegralNumber()) {
                    shortestEdge = size.intValue();
                } else if (size.isObject() && size.has("shortest_edge")) {
                    shortestEdge = integer(size, "shortest_edge", null, where + ": size");
                } else if (size.isObject() && size.has("height") && size.has("width")) {
                    int h = integer(size, "height", null, where + ": size");
                    int w = integer(size, "width", null, where + ": size");
                    throw new QvlmException(where + ": size {\"height\": " + h + ", \"width\": " + w
                            + "} (fixed-size resize) is not supported; expected {\"shortest_edge\": N} or an int");
                } else {
                    throw new QvlmException(where + ": size must be an int or {\"shortest_edge\": N}, got " + size);
                }
            }
            int resample = integer(root, "resample", d.resample, where);
            boolean doCenterCrop = bool(root, "do_center_crop", d.doCenterCrop, where);
            int cropH = d.cropHeight, cropW = d.cropWidth;
            JsonNode crop = root.get("crop_size");
            if (crop != null && !crop.isNull()) {
                if (crop.isIntegralNumber()) {
                    cropH = cropW = crop.intValue();
                } else if (crop.isObject() && crop.has("height") && crop.has("width")) {
                    cropH = integer(crop, "height", null, where + ": crop_size");
                    cropW = integer(crop, "width", null, where + ": crop_size");
                } else if (crop.isObject() && crop.has("shortest_edge")) {
                    cropH = cropW = integer(crop, "shortest_edge", null, where + ": crop_size");
                } else {
                    throw new QvlmException(where + ": crop_size must be an int or {\"height\", \"width\"}, got "
                            + crop);
                }
            }
            boolean doRescale = bool(root, "do_rescale", d.doRescale, where);
            double rescaleFactor = number(root, "rescale_factor", d.rescaleFactor, where);
            boolean doNormalize = bool(root, "do_normalize", d.doNormalize, where);
            double[] mean = triple(root, "image_mean", d.mean, where);
            double[] std = triple(root, "image_std", d.std, where);
            boolean doConvertRgb = bool(root, "do_convert_rgb", d.doConvertRgb, where);
            boolean pad = false;
            JsonNode ar = root.get("image_aspect_ratio");
            if (ar != null && ar.isTextual()) pad = ar.asText().equals("pad");
            if (doResize && shortestEdge <= 0) throw new QvlmException(where + ": size must be > 0");
            if (doCenterCrop && (cropH <= 0 || cropW <= 0)) throw new QvlmException(where + ": crop_size must be > 0");
            if (resample < 0 || resample > 5) {
                throw new QvlmException(where + ": resample must be a PIL filter id 0..5, got " + resample);
            }
            for (double s : std) {
                if (s == 0) throw new QvlmException(where + ": image_std must not contain 0");
            }
            return new ImageProcessorConfig(doResize, shortestEdge, resample, doCenterCrop, cropH, cropW,
                    doRescale, rescaleFactor, doNormalize, mean, std, doConvertRgb, pad);
        } catch (IllegalArgumentException e) {
            throw new QvlmException(where + ": " + e.getMessage());
        }
    }

    private static boolean bool(JsonNode o, String key, boolean dflt, String where) {
        JsonNode n = o.get(key);
        if (n == null || n.isNull()) return dflt;
        if (!n.isBoolean()) throw new QvlmException(where + ": " + key + " must be true/false, got " + n);
        return n.booleanValue();
    }

    /** An integer value; {@code dflt == null} makes the key required. */
    private static int integer(JsonNode o, String key, Integer dflt, String where) {
        JsonNode n = o.get(key);
        if (n == null || n.isNull()) {
            if (dflt != null) return dflt;
            throw new QvlmException(where + ": missing " + key);
        }
        if (!n.isIntegralNumber() || !n.canConvertToInt()) {
            throw new QvlmException(where + ": " + key + " must be an integer, got " + n);
        }
        return n.intValue();
    }

    private static double number(JsonNode o, String key, double dflt, String where) {
        JsonNode n = o.get(key);
        if (n == null || n.isNull()) return dflt;
        if (!n.isNumber()) throw new QvlmException(where + ": " + key + " must be a number, got " + n);
        return n.doubleValue();
    }

    private static double[] triple(JsonNode o, String key, double[] dflt, String where) {
        JsonNode n = o.get(key);
        if (n == null || n.isNull()) return dflt.clone();
        if (n.isNumber()) return new double[] {n.doubleValue(), n.doubleValue(), n.doubleValue()};
        if (!n.isArray() || n.size() != 3) {
            throw new QvlmException(where + ": " + key + " must be a list of 3 numbers, got " + n);
        }
        double[] r = new double[3];
        for (int i = 0; i < 3; i++) {
            if (!n.get(i).isNumber()) throw new QvlmException(where + ": " + key + " must be numbers, got " + n);
            r[i] = n.get(i).doubleValue();
        }
        return r;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof ImageProcessorConfig c && doResize == c.doResize && shortestEdge == c.shortestEdge
                && resample == c.resample && doCenterCrop == c.doCenterCrop && cropHeight == c.cropHeight
                && cropWidth == c.cropWidth && doRescale == c.doRescale
                && Double.compare(rescaleFactor, c.rescaleFactor) == 0 && doNormalize == c.doNormalize
                && Arrays.equals(mean, c.mean) && Arrays.equals(std, c.std) && doConvertRgb == c.doConvertRgb
                && padToSquare == c.padToSquare;
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(new Object[] {doResize, shortestEdge, resample, doCenterCrop, cropHeight, cropWidth,
                doRescale, rescaleFactor, doNormalize, Arrays.hashCode(mean), Arrays.hashCode(std), doConvertRgb,
                padToSquare});
    }

    @Override
    public String toString() {
        return "ImageProcessorConfig[doResize=" + doResize + ", shortestEdge=" + shortestEdge + ", resample="
                + resample + ", doCenterCrop=" + doCenterCrop + ", crop=" + cropHeight + "x" + cropWidth
                + ", doRescale=" + doRescale + ", rescaleFactor=" + rescaleFactor + ", doNormalize=" + doNormalize
                + ", mean=" + Arrays.toString(mean) + ", std=" + Arrays.toString(std) + ", doConvertRgb="
                + doConvertRgb + ", padToSquare=" + padToSquare + "]";
    }
}
