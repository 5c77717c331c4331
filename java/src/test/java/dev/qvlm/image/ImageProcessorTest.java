package dev.qvlm.image;

import dev.qvlm.QvlmException;
import dev.qvlm.safetensors.SafeTensors;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import java.awt.image.WritableRaster;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ImageProcessorTest {
    static Path root;
    static Path golden;
    static ImageProcessorConfig tinyCfg;

    @BeforeAll
    static void setUp() {
        root = Path.of(System.getProperty("qvlm.root", "..")).toAbsolutePath().normalize();
        golden = root.resolve("java/src/test/resources/golden");
        tinyCfg = ImageProcessorConfig.load(root.resolve("models/tiny-llava-shapes/preprocessor_config.json"));
    }

    private static double[] diff(float[] got, float[] want) {
        assertEquals(want.length, got.length, "length");
        double max = 0, sum = 0;
        for (int i = 0; i < got.length; i++) {
            double d = Math.abs((double) got[i] - want[i]);
            max = Math.max(max, d);
            sum += d;
        }
        return new double[] {max, sum / got.length};
    }

    // ---------------------------------------------------------------- config

    @Test
    void loadsTinyConfig() {
        assertTrue(tinyCfg.doResize());
        assertEquals(64, tinyCfg.shortestEdge());
        assertEquals(3, tinyCfg.resample());
        assertTrue(tinyCfg.doCenterCrop());
        assertEquals(64, tinyCfg.cropHeight());
        assertEquals(64, tinyCfg.cropWidth());
        assertTrue(tinyCfg.doRescale());
        assertEquals(1.0 / 255, tinyCfg.rescaleFactor(), 1e-15);
        assertTrue(tinyCfg.doNormalize());
        assertArrayEquals(new double[] {0.48145466, 0.4578275, 0.40821073}, tinyCfg.mean());
        assertArrayEquals(new double[] {0.26862954, 0.26130258, 0.27577711}, tinyCfg.std());
        assertTrue(tinyCfg.doConvertRgb());
        assertFalse(tinyCfg.padToSquare());
        assertTrue(tinyCfg.withPadToSquare(true).padToSquare());
        assertArrayEquals(new int[] {122, 116, 104}, tinyCfg.padColor());
    }

    @Test
    void loadsProcessorConfigWrapper() {
        var cfg = ImageProcessorConfig.load(root.resolve("models/llava-1.5-tokenizer/processor_config.json"));
        assertEquals(336, cfg.shortestEdge());
        assertEquals(336, cfg.cropHeight());
        assertEquals(336, cfg.cropWidth());
        assertEquals(3, cfg.resample());
        var p = new ImageProcessor(cfg);
        assertEquals(336, p.outHeight());
        assertEquals(336, p.outWidth());
    }

    @Test
    void loadsLegacyIntSizes(@TempDir Path dir) throws Exception {
        // openai/clip-vit-large-patch14-336 style: ints, no do_rescale / rescale_factor / do_convert_rgb
        Path f = dir.resolve("preprocessor_config.json");
        Files.writeString(f, """
                {"crop_size": 336, "do_center_crop": true, "do_normalize": true, "do_resize": true,
                 "feature_extractor_type": "CLIPFeatureExtractor",
                 "image_mean": [0.48145466, 0.4578275, 0.40821073],
                 "image_std": [0.26862954, 0.26130258, 0.27577711], "resample": 3, "size": 336}
                """);
        var cfg = ImageProcessorConfig.load(f);
        assertEquals(336, cfg.shortestEdge());
        assertEquals(336, cfg.cropHeight());
        assertEquals(336, cfg.cropWidth());
        assertTrue(cfg.doRescale());
        assertEquals(1.0 / 255, cfg.rescaleFactor(), 1e-15);
        assertTrue(cfg.doConvertRgb());
    }

    @Test
    void badConfigsNameTheFile(@TempDir Path dir) throws Exception {
        Path missing = dir.resolve("nope.json");
        var e = assertThrows(QvlmException.class, () -> ImageProcessorConfig.load(missing));
        assertTrue(e.getMessage().contains(missing.toString()), e.getMessage());

        Path bad = dir.resolve("bad.json");
        Files.writeString(bad, "{\"size\": {\"shortest_edge\": 64,");
        e = assertThrows(QvlmException.class, () -> ImageProcessorConfig.load(bad));
        assertTrue(e.getMessage().contains(bad.toString()), e.getMessage());

        Path wrongType = dir.resolve("wrong.json");
        Files.writeString(wrongType, "{\"size\": \"big\"}");
        e = assertThrows(QvlmException.class, () -> ImageProcessorConfig.load(wrongType));
        assertTrue(e.getMessage().contains(wrongType.toString()), e.getMessage());

        Path wrongMean = dir.resolve("mean.json");
        Files.writeString(wrongMean, "{\"image_mean\": [0.5, 0.5]}");
        e = assertThrows(QvlmException.class, () -> ImageProcessorConfig.load(wrongMean));
        assertTrue(e.getMessage().contains(wrongMean.toString()), e.getMessage());
    }

    // ---------------------------------------------------------------- golden

    /**
     * odd0/odd1 golden tensors. Note: their float values satisfy {@code (x - mean*255) / (std*255)} in float32 for
     * every element, which is the fused rescale+normalise of HF's <em>fast</em> (torchvision) CLIPImageProcessor, and
     * about 0.4% of their uint8 values differ by exactly 1 from Pillow's bicubic (torchvision's antialiased uint8
     * resize is not bit-identical to Pillow). We reproduce the slow, PIL-based processor, so one uint8 step
     * (~0.015) is the expected worst case here; {@link #oddSizesMatchSlowHfBitExactly} pins the PIL path exactly.
     */
    @Test
    void oddSizesMatchHfGolden() {
        var p = new ImageProcessor(tinyCfg);
        double oneStep = 1.0 / 255 / 0.26130258; // largest effect of a +-1 uint8 difference (smallest std)
        try (var st = SafeTensors.open(golden.resolve("golden.safetensors"))) {
            for (String name : new String[] {"odd0", "odd1"}) {
                float[] want = st.toFloatArray(name + ".pixel_values");
                float[] got = p.preprocess(golden.resolve(name + ".png"));
                assertEquals(3 * 64 * 64, got.length);
                double[] d = diff(got, want);
                int offByOne = 0;
                for (int i = 0; i < got.length; i++) {
                    if (Math.abs(got[i] - want[i]) > 1e-5) offByOne++;
                }
                System.out.printf("[ImageProcessorTest] %s vs golden: max |d| = %.3g, mean |d| = %.3g, "
                        + "values off by one uint8 step: %d of %d%n", name, d[0], d[1], offByOne, got.length);
                assertTrue(d[0] <= 0.05, name + " max |d| " + d[0]);
                assertTrue(d[1] <= 0.005, name + " mean |d| " + d[1]);
                assertTrue(d[0] <= oneStep + 1e-5, name + " differs by more than one uint8 step: " + d[0]);
                assertTrue(offByOne <= got.length / 100, name + ": " + offByOne + " values differ");
            }
        }
    }

    /** CRC32 of the float32 (little-endian) pixel_values of HF's slow CLIPImageProcessor (Pillow 9.4, numpy). */
    @Test
    void oddSizesMatchSlowHfBitExactly() {
        Object[][] cases = {
            {"odd0", false, 0xf1b09047L}, {"odd1", false, 0x3c8f469cL},
            {"odd0", true, 0x8d7b6bfcL}, {"odd1", true, 0xa0faf871L},
        };
        for (Object[] c : cases) {
            var p = new ImageProcessor(tinyCfg.withPadToSquare((Boolean) c[1]));
            float[] got = p.preprocess(golden.resolve(c[0] + ".png"));
            var bb = java.nio.ByteBuffer.allocate(got.length * 4).order(java.nio.ByteOrder.LITTLE_ENDIAN);
            for (float f : got) bb.putFloat(f);
            var crc = new java.util.zip.CRC32();
            crc.update(bb.array());
            assertEquals((long) c[2], crc.getValue(), c[0] + " pad=" + c[1] + " differs from slow HF");
        }
    }

    /** Resize results against Pillow 9.4 {@code Image.resize((w, h), resample=f)}: CRC32 of the RGB bytes. */
    @Test
    void resizeMatchesPillowBitExactly() {
        Object[][] cases = {
            {"odd0", 85, 64, 3, 0x74c91f1eL, 149}, {"odd1", 64, 118, 3, 0xc3cf0603L, 120},
            {"odd0", 336, 251, 3, 0x91b91533L, 137}, {"odd1", 181, 336, 3, 0x6b03bbd2L, 119},
            {"odd0", 20, 13, 3, 0x67c473a4L, 119}, {"odd1", 40, 150, 3, 0x8daa10c3L, 145},
            {"odd0", 77, 51, 0, 0x0d3aa0daL, 138}, {"odd0", 77, 51, 1, 0x0d4f20b6L, 158},
            {"odd0", 77, 51, 2, 0xbe7153baL, 153}, {"odd0", 77, 51, 4, 0x149c8935L, 156},
            {"odd0", 77, 51, 5, 0x82fad8dbL, 155}, {"odd1", 200, 333, 1, 0xabfb7e83L, 106},
        };
        for (Object[] c : cases) {
            var in = ImageProcessor.toRgb(ImageProcessor.read(golden.resolve(c[0] + ".png")));
            int w = (int) c[1], h = (int) c[2];
            var out = PillowResize.resize(in, w, h, (int) c[3]);
            String what = c[0] + " -> " + w + "x" + h + " filter " + c[3];
            assertEquals((int) c[5], out.get(w / 3, h / 2, 1), what);
            var crc = new java.util.zip.CRC32();
            crc.update(out.pixels());
            assertEquals((long) c[4], crc.getValue(), what);
        }
    }

    /**
     * 64x64 eval images: resize and crop are identities. The golden values equal {@code (x * 1/255f - mean) / std}
     * in float32 bit for bit; the slow HF processor rounds {@code x * (1/255)} in double first, so up to an ulp or
     * two differs (~5e-7).
     */
    @Test
    void evalImagesMatchHfGolden() {
        var p = new ImageProcessor(tinyCfg);
        try (var st = SafeTensors.open(golden.resolve("golden.safetensors"))) {
            for (int i = 0; i < 4; i++) {
                float[] want = st.toFloatArray("s" + i + ".pixel_values");
                float[] got = p.preprocess(root.resolve(String.format("data/shapes-vqa/images/eval_%05d.png", i)));
                double[] d = diff(got, want);
                System.out.printf("[ImageProcessorTest] s%d vs HF: max |d| = %.3g, mean |d| = %.3g%n", i, d[0], d[1]);
                assertTrue(d[0] <= 1e-5, "s" + i + " max |d| " + d[0]);
            }
        }
    }

    // ---------------------------------------------------------------- resize numerics

    @Test
    void resizeOutputSizeFollowsHf() {
        assertArrayEquals(new int[] {64, 85}, ImageProcessor.resizeOutputSize(97, 130, 64)); // int(64*130/97)=85
        assertArrayEquals(new int[] {118, 64}, ImageProcessor.resizeOutputSize(150, 81, 64)); // int(64*150/81)=118
        assertArrayEquals(new int[] {64, 64}, ImageProcessor.resizeOutputSize(64, 64, 64));
        assertArrayEquals(new int[] {336, 448}, ImageProcessor.resizeOutputSize(480, 640, 336));
        assertArrayEquals(new int[] {100, 101}, ImageProcessor.resizeOutputSize(100, 101, 100));
    }

    @Test
    void constantImageStaysConstantThroughResize() {
        byte[] px = new byte[37 * 23 * 3];
        for (int i = 0; i < px.length; i += 3) {
            px[i] = (byte) 200;
            px[i + 1] = 7;
            px[i + 2] = (byte) 255;
        }
        var in = new RgbImage(37, 23, px);
        for (int f = 0; f <= 5; f++) {
            for (int[] sz : new int[][] {{64, 40}, {10, 7}, {37, 50}, {5, 23}}) {
                var out = PillowResize.resize(in, sz[0], sz[1], f);
                assertEquals(sz[0], out.width());
                assertEquals(sz[1], out.height());
                for (int y = 0; y < out.height(); y++) {
                    for (int x = 0; x < out.width(); x++) {
                        assertEquals(200, out.get(x, y, 0), "filter " + f);
                        assertEquals(7, out.get(x, y, 1), "filter " + f);
                        assertEquals(255, out.get(x, y, 2), "filter " + f);
                    }
                }
            }
        }
    }

    @Test
    void bicubicCoefficientsAreNormalisedFixedPoint() {
        // Downscale 130 -> 85: support 2 * 130/85, every row of weights sums to ~2^22.
        var c = PillowResize.precompute(130, 0f, 130f, 85, PillowResize.BICUBIC);
        for (int i = 0; i < 85; i++) {
            long s = 0;
            for (int k = 0; k < c.bounds()[2 * i + 1]; k++) s += c.kk()[i * c.ksize() + k];
            assertTrue(Math.abs(s - (1 << 22)) <= c.ksize(), "row " + i + " sums to " + s);
        }
    }

    // ---------------------------------------------------------------- formats

    @Test
    void jpegRoundTrip(@TempDir Path dir) throws Exception {
        BufferedImage img = new BufferedImage(120, 90, BufferedImage.TYPE_3BYTE_BGR);
        for (int y = 0; y < 90; y++) {
            for (int x = 0; x < 120; x++) img.setRGB(x, y, (x * 2 << 16) | (y * 2 << 8) | 128);
        }
        Path f = dir.resolve("photo.jpg");
        assertTrue(ImageIO.write(img, "jpeg", f.toFile()));
        var p = new ImageProcessor(tinyCfg);
        float[] px = p.preprocess(f);
        assertEquals(3 * p.outHeight() * p.outWidth(), px.length);
        assertEquals(3 * 64 * 64, px.length);
        for (float v : px) assertTrue(Float.isFinite(v) && v > -2f && v < 2.2f, "value " + v);
        // The blue channel is a flat 128 (up to JPEG error): (128/255 - mean_b) / std_b ~ 0.34
        float blue = px[2 * 64 * 64 + 32 * 64 + 32];
        assertEquals((128 / 255.0 - 0.40821073) / 0.27577711, blue, 0.1);
    }

    @Test
    void grayscalePngBecomesRgb(@TempDir Path dir) throws Exception {
        BufferedImage img = new BufferedImage(64, 64, BufferedImage.TYPE_BYTE_GRAY);
        WritableRaster r = img.getRaster();
        for (int y = 0; y < 64; y++) {
            for (int x = 0; x < 64; x++) r.setSample(x, y, 0, (x * 4 + y) & 0xFF);
        }
        Path f = dir.resolve("gray.png");
        assertTrue(ImageIO.write(img, "png", f.toFile()));
        var read = ImageProcessor.read(f);
        var rgb = ImageProcessor.toRgb(read);
        for (int y = 0; y < 64; y += 7) {
            for (int x = 0; x < 64; x += 5) {
                int g = (x * 4 + y) & 0xFF;
                for (int c = 0; c < 3; c++) assertEquals(g, rgb.get(x, y, c), "raw grey, not gamma-mapped");
            }
        }
        float[] px = new ImageProcessor(tinyCfg).preprocess(f);
        int g = (10 * 4 + 3) & 0xFF, o = 3 * 64 + 10;
        for (int c = 0; c < 3; c++) {
            float want = ((float) (g * (1.0 / 255)) - (float) tinyCfg.mean()[c]) / (float) tinyCfg.std()[c];
            assertEquals(want, px[c * 64 * 64 + o], 0f);
        }
    }

    @Test
    void rgbaPngDropsAlpha(@TempDir Path dir) throws Exception {
        BufferedImage img = new BufferedImage(64, 64, BufferedImage.TYPE_INT_ARGB);
        for (int y = 0; y < 64; y++) {
            for (int x = 0; x < 64; x++) {
                int a = (x * 4) & 0xFF; // includes fully transparent pixels
                img.setRGB(x, y, (a << 24) | (200 << 16) | (y * 3 << 8) | 17);
            }
        }
        Path f = dir.resolve("rgba.png");
        assertTrue(ImageIO.write(img, "png", f.toFile()));
        var read = ImageProcessor.read(f);
        assertTrue(read.getColorModel().hasAlpha());
        var rgb = ImageProcessor.toRgb(read);
        for (int y = 0; y < 64; y += 3) {
            for (int x = 0; x < 64; x += 3) {
                assertEquals(200, rgb.get(x, y, 0));
                assertEquals(y * 3, rgb.get(x, y, 1));
                assertEquals(17, rgb.get(x, y, 2));
            }
        }
        float[] px = new ImageProcessor(tinyCfg).preprocess(read);
        float want = ((float) (200 * (1.0 / 255)) - (float) tinyCfg.mean()[0]) / (float) tinyCfg.std()[0];
        assertEquals(want, px[0], 0f); // pixel (0,0) is fully transparent: alpha is discarded, not composited
    }

    @Test
    void palettePngUsesPaletteColours(@TempDir Path dir) throws Exception {
        byte[] r = {(byte) 255, 0, 10}, g = {0, (byte) 255, 20}, b = {0, 0, 30};
        var cm = new java.awt.image.IndexColorModel(2, 3, r, g, b);
        BufferedImage img = new BufferedImage(8, 4, BufferedImage.TYPE_BYTE_BINARY, cm);
        img.getRaster().setSample(3, 2, 0, 2);
        Path f = dir.resolve("pal.png");
        assertTrue(ImageIO.write(img, "png", f.toFile()));
        var rgb = ImageProcessor.toRgb(ImageProcessor.read(f));
        assertEquals(10, rgb.get(3, 2, 0));
        assertEquals(20, rgb.get(3, 2, 1));
        assertEquals(30, rgb.get(3, 2, 2));
        assertEquals(255, rgb.get(0, 0, 0));
        assertEquals(0, rgb.get(0, 0, 1));
    }

    @Test
    void inMemoryImageTypesAndSubimagesReadRawSamples() {
        int[] types = {BufferedImage.TYPE_3BYTE_BGR, BufferedImage.TYPE_4BYTE_ABGR, BufferedImage.TYPE_INT_RGB,
                BufferedImage.TYPE_INT_ARGB, BufferedImage.TYPE_INT_BGR};
        for (int type : types) {
            BufferedImage img = new BufferedImage(17, 11, type);
            for (int y = 0; y < 11; y++) {
                for (int x = 0; x < 17; x++) img.setRGB(x, y, 0xFF000000 | (x * 15 << 16) | (y * 23 << 8) | (x + y));
            }
            BufferedImage sub = img.getSubimage(3, 2, 10, 5);
            var rgb = ImageProcessor.toRgb(sub);
            for (int y = 0; y < 5; y++) {
                for (int x = 0; x < 10; x++) {
                    int argb = sub.getRGB(x, y);
                    assertEquals((argb >> 16) & 0xFF, rgb.get(x, y, 0), "type " + type);
                    assertEquals((argb >> 8) & 0xFF, rgb.get(x, y, 1), "type " + type);
                    assertEquals(argb & 0xFF, rgb.get(x, y, 2), "type " + type);
                    assertEquals((x + 3) * 15, rgb.get(x, y, 0), "type " + type);
                }
            }
        }
    }

    @Test
    void missingAndNonImageFilesNameTheFile(@TempDir Path dir) throws Exception {
        var p = new ImageProcessor(tinyCfg);
        Path missing = dir.resolve("missing.png");
        var e = assertThrows(QvlmException.class, () -> p.preprocess(missing));
        assertTrue(e.getMessage().contains(missing.toString()), e.getMessage());
        assertTrue(e.getMessage().contains("image not found"), e.getMessage());

        Path text = dir.resolve("notes.png");
        Files.writeString(text, "this is not an image\n");
        e = assertThrows(QvlmException.class, () -> p.preprocess(text));
        assertTrue(e.getMessage().contains(text.toString()), e.getMessage());
        assertTrue(e.getMessage().contains("not a readable PNG/JPEG image"), e.getMessage());

        Path truncated = dir.resolve("trunc.png");
        byte[] full = Files.readAllBytes(golden.resolve("odd0.png"));
        Files.write(truncated, java.util.Arrays.copyOf(full, 60));
        e = assertThrows(QvlmException.class, () -> p.preprocess(truncated));
        assertTrue(e.getMessage().contains(truncated.toString()), e.getMessage());
    }

    // ---------------------------------------------------------------- LLaVA pad-to-square

    @Test
    void padToSquareUsesMeanColourBorder() {
        // 128 wide x 64 high, solid red: expand2square -> 128x128 with rows 32..95 red, the rest (122,116,104);
        // resize 128 -> 64 halves it: rows 0..15 border, 16..47 red (away from the edges), 48..63 border.
        BufferedImage img = new BufferedImage(128, 64, BufferedImage.TYPE_3BYTE_BGR);
        for (int y = 0; y < 64; y++) {
            for (int x = 0; x < 128; x++) img.setRGB(x, y, 0xFF0000);
        }
        var padded = ImageProcessor.expandToSquare(ImageProcessor.toRgb(img), tinyCfg.padColor());
        assertEquals(128, padded.width());
        assertEquals(128, padded.height());
        assertEquals(122, padded.get(5, 10, 0));
        assertEquals(116, padded.get(5, 10, 1));
        assertEquals(104, padded.get(5, 10, 2));
        assertEquals(255, padded.get(5, 32, 0));
        assertEquals(0, padded.get(5, 32, 1));
        assertEquals(122, padded.get(5, 96, 0));

        var p = new ImageProcessor(tinyCfg.withPadToSquare(true));
        float[] px = p.preprocess(img);
        int plane = 64 * 64;
        int[] bg = {122, 116, 104};
        for (int c = 0; c < 3; c++) {
            float want = ((float) (bg[c] * (1.0 / 255)) - (float) tinyCfg.mean()[c]) / (float) tinyCfg.std()[c];
            assertEquals(want, px[c * plane + 2 * 64 + 40], 0f, "top border, channel " + c);
            assertEquals(want, px[c * plane + 61 * 64 + 3], 0f, "bottom border, channel " + c);
            assertTrue(Math.abs(want) < 0.02, "mean colour normalises to ~0");
        }
        float red = ((float) (255 * (1.0 / 255)) - (float) tinyCfg.mean()[0]) / (float) tinyCfg.std()[0];
        assertEquals(red, px[32 * 64 + 20], 0f);

        // Without padding the same image is resized to 128x64 -> 64 high and cropped: all red.
        float[] plain = new ImageProcessor(tinyCfg).preprocess(img);
        assertEquals(red, plain[2 * 64 + 40], 0f);
    }

    @Test
    void centerCropPadsWithZerosWhenTooSmall() {
        // no resize, crop 64 from a 20x10 image: zero (black) padding, image centred at top 27, left 22
        var cfg = new ImageProcessorConfig(false, 64, 3, true, 64, 64, true, 1.0 / 255, false,
                ImageProcessorConfig.OPENAI_CLIP_MEAN, ImageProcessorConfig.OPENAI_CLIP_STD, true, false);
        BufferedImage img = new BufferedImage(20, 10, BufferedImage.TYPE_3BYTE_BGR);
        for (int y = 0; y < 10; y++) {
            for (int x = 0; x < 20; x++) img.setRGB(x, y, 0xFFFFFF);
        }
        float[] px = new ImageProcessor(cfg).preprocess(img);
        assertEquals(0f, px[26 * 64 + 30]);
        assertEquals(1f, px[27 * 64 + 22]);
        assertEquals(1f, px[36 * 64 + 41]);
        assertEquals(0f, px[37 * 64 + 41]);
        assertEquals(0f, px[36 * 64 + 42]);
    }
}
