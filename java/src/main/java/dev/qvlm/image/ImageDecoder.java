package dev.qvlm.image;

import dev.qvlm.QvlmException;

import javax.imageio.ImageIO;
import javax.imageio.ImageReader;
import javax.imageio.event.IIOReadWarningListener;
import javax.imageio.stream.MemoryCacheImageInputStream;
import java.awt.image.BufferedImage;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.zip.CRC32;

/**
 * Turns untrusted PNG/JPEG bytes into a {@link BufferedImage} with bounded memory: the size is read from the header
 * (PNG IHDR, JPEG SOF) and checked against {@link #MAX_PIXELS} before anything is decoded; PNG chunks must carry
 * correct CRCs and end with IEND; a JPEG the decoder reports as truncated (missing EOI) is refused. Nothing else
 * (GIF, BMP, TIFF) is accepted. Shared by the CLI and anything else that takes images from users.
 */
public final class ImageDecoder {
    /**
     * Most pixels an image (and any intermediate of preprocessing: pad-to-square, resize) may have: 40 M, e.g.
     * 8000×5000. Pillow warns at 89 M; we stay lower so one image at 3–4 bytes per pixel, plus its RGB copy and
     * resize buffers, fits well within 1 GB.
     */
    public static final long MAX_PIXELS = 40_000_000L;
    /** Largest image file read: 64 MiB (a 40 M-pixel PNG of noise is ~120 MB raw, far more than typical). */
    public static final long MAX_FILE_BYTES = 64L << 20;

    private static final byte[] PNG_SIGNATURE = {(byte) 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

    static {
        ImageIO.setUseCache(false); // decode in memory; never spill to temporary files
    }

    private ImageDecoder() {}

    /** Reads and decodes an image file; errors name the file. */
    public static BufferedImage read(Path file) {
        byte[] bytes;
        try {
            if (!Files.isRegularFile(file)) throw new NoSuchFileException(file.toString());
            long size = Files.size(file);
            if (size > MAX_FILE_BYTES)
                throw new QvlmException(file + ": image file of " + size + " bytes exceeds the limit of "
                        + (MAX_FILE_BYTES >> 20) + " MiB");
            bytes = Files.readAllBytes(file);
        } catch (NoSuchFileException e) {
            throw new QvlmException(file + ": image not found");
        } catch (IOException e) {
            throw new QvlmException(file + ": cannot read (" + e.getMessage() + ")");
        }
        return decode(bytes, file.toString());
    }

    /** Refuses a width × height beyond {@link #MAX_PIXELS} (or non-positive): {@code what} names the image. */
    public static void checkPixels(long width, long height, String what) {
        checkPixels(width, height, what, MAX_PIXELS);
    }

    /** Refuses a width × height beyond {@code maxPixels} (at most {@link #MAX_PIXELS}), or non-positive. */
    public static void checkPixels(long width, long height, String what, long maxPixels) {
        long limit = Math.min(maxPixels, MAX_PIXELS);
        if (width <= 0 || height <= 0) throw new QvlmException(what + ": image has no pixels (" + width + "x" + height + ")");
        if (width > limit || height > limit || width * height > limit)
            throw new QvlmException(what + ": " + width + "x" + height + " = " + width * height + " pixels exceeds the limit of "
                    + (limit % 1_000_000 == 0 ? limit / 1_000_000 + " M" : Long.toString(limit)) + " pixels");
    }

    /** Decodes PNG or JPEG bytes; {@code where} names their source in errors. */
    public static BufferedImage decode(byte[] bytes, String where) {
        return decode(bytes, where, MAX_PIXELS);
    }

    /**
     * Decodes PNG or JPEG bytes of at most {@code maxPixels} (checked from the header, before any pixel is decoded;
     * never above {@link #MAX_PIXELS}); {@code where} names their source in errors.
     */
    public static BufferedImage decode(byte[] bytes, String where, long maxPixels) {
        if (bytes.length > MAX_FILE_BYTES)
            throw new QvlmException(where + ": image of " + bytes.length + " bytes exceeds the limit of " + (MAX_FILE_BYTES >> 20) + " MiB");
        String format;
        long[] wh;
        if (startsWith(bytes, PNG_SIGNATURE)) {
            format = "png";
            wh = pngSize(bytes, where);
        } else if (bytes.length >= 3 && (bytes[0] & 0xff) == 0xff && (bytes[1] & 0xff) == 0xd8 && (bytes[2] & 0xff) == 0xff) {
            format = "jpeg";
            wh = jpegSize(bytes, where);
        } else {
            throw new QvlmException(where + ": not a readable PNG/JPEG image (unknown format)");
        }
        checkPixels(wh[0], wh[1], where, maxPixels);
        Iterator<ImageReader> it = ImageIO.getImageReadersByFormatName(format);
        if (!it.hasNext()) throw new IllegalStateException("no ImageIO reader for " + format);
        ImageReader reader = it.next();
        List<String> warnings = new ArrayList<>();
        reader.addIIOReadWarningListener(new IIOReadWarningListener() {
            @Override
            public void warningOccurred(ImageReader source, String warning) {
                warnings.add(warning);
            }
        });
        BufferedImage img;
        try (InputStream in = new ByteArrayInputStream(bytes);
             MemoryCacheImageInputStream iis = new MemoryCacheImageInputStream(in)) {
            reader.setInput(iis, true, true);
            if (reader.getWidth(0) != wh[0] || reader.getHeight(0) != wh[1])
                throw new QvlmException(where + ": not a readable PNG/JPEG image (inconsistent size in its header)");
            img = reader.read(0);
        } catch (QvlmException e) {
            throw e;
        } catch (IOException | RuntimeException e) {
            for (Throwable c = e.getCause(); c != null && c != c.getCause(); c = c.getCause())
                if (c instanceof OutOfMemoryError oom) throw oom; // ImageIO wraps it; it is not a corrupt file
            throw new QvlmException(where + ": not a readable PNG/JPEG image (" + format.toUpperCase() + " decoder: "
                    + e.getClass().getSimpleName() + ")");
        } finally {
            reader.dispose();
        }
        for (String w : warnings)
            if (!w.contains("ICC") && !w.contains("JFIF"))
                throw new QvlmException(where + ": not a readable PNG/JPEG image (" + w.trim() + ")");
        if (img == null || img.getWidth() <= 0 || img.getHeight() <= 0) throw new QvlmException(where + ": image has no pixels");
        return img;
    }

    /** Walks the PNG chunks: every CRC must match, IHDR first, IEND present; returns {width, height} from IHDR. */
    static long[] pngSize(byte[] b, String where) {
        int p = PNG_SIGNATURE.length;
        long[] wh = null;
        CRC32 crc = new CRC32();
        while (true) {
            if (p + 8 > b.length) throw new QvlmException(where + ": truncated PNG (no IEND chunk)");
            long len = be32(b, p);
            if (len > b.length - p - 12L) throw new QvlmException(where + ": truncated PNG (chunk runs past the end of the file)");
            int n = (int) len;
            String type = new String(b, p + 4, 4, java.nio.charset.StandardCharsets.ISO_8859_1);
            crc.reset();
            crc.update(b, p + 4, 4 + n);
            if (crc.getValue() != be32(b, p + 8 + n))
                throw new QvlmException(where + ": corrupt PNG (bad CRC in chunk " + (wh == null ? 1 : "at byte " + p) + ")");
            if (wh == null) {
                if (!type.equals("IHDR") || n != 13) throw new QvlmException(where + ": corrupt PNG (first chunk is not IHDR)");
                wh = new long[]{be32(b, p + 8), be32(b, p + 12)};
            }
            if (type.equals("IEND")) return wh;
            p += 12 + n;
        }
    }

    /** Reads JPEG markers up to the first SOFn frame header; returns {width, height}. */
    static long[] jpegSize(byte[] b, String where) {
        int p = 2;
        while (p + 4 <= b.length) {
            if ((b[p] & 0xff) != 0xff) throw new QvlmException(where + ": corrupt JPEG (bad marker at byte " + p + ")");
            int m = b[p + 1] & 0xff;
            if (m == 0xff) { // fill byte
                p++;
                continue;
            }
            if (m == 0x01 || (m >= 0xd0 && m <= 0xd7)) {
                p += 2;
                continue;
            }
            if (m == 0xd9 || m == 0xda) break; // EOI or start of scan before any frame header
            int len = ((b[p + 2] & 0xff) << 8) | (b[p + 3] & 0xff);
            if (len < 2 || p + 2 + len > b.length) break;
            boolean sof = m >= 0xc0 && m <= 0xcf && m != 0xc4 && m != 0xc8 && m != 0xcc;
            if (sof) {
                if (len < 7) break;
                long h = ((b[p + 5] & 0xff) << 8) | (b[p + 6] & 0xff);
                long w = ((b[p + 7] & 0xff) << 8) | (b[p + 8] & 0xff);
                return new long[]{w, h};
            }
            p += 2 + len;
        }
        throw new QvlmException(where + ": corrupt or truncated JPEG (no frame header)");
    }

    private static long be32(byte[] b, int p) {
        return ((long) (b[p] & 0xff) << 24) | ((b[p + 1] & 0xff) << 16) | ((b[p + 2] & 0xff) << 8) | (b[p + 3] & 0xff);
    }

    private static boolean startsWith(byte[] b, byte[] prefix) {
        if (b.length < prefix.length) return false;
        for (int i = 0; i < prefix.length; i++) if (b[i] != prefix[i]) return false;
        return true;
    }
}
