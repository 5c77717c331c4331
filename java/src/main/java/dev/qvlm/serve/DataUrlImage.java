package dev.qvlm.serve;

import javax.imageio.ImageIO;
import javax.imageio.ImageReader;
import javax.imageio.stream.ImageInputStream;
import java.awt.image.BufferedImage;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.util.Base64;
import java.util.Iterator;
import java.util.Locale;

/**
 * An {@code image_url} content part: only inline {@code data:image/png|jpeg;base64,...} URLs are accepted. Remote
 * {@code http(s)://} URLs and file paths are refused (the server never fetches or reads anything on a client's
 * behalf). The image's size is read from its header and checked against the pixel limit before any pixel is
 * decoded, so a small file that claims a huge canvas (a decompression bomb) costs nothing.
 */
final class DataUrlImage {
    private DataUrlImage() {}

    static BufferedImage decode(String url, long maxPixels, String param) {
        if (url == null || url.isEmpty()) throw ApiException.invalid(param, "image_url.url is empty");
        String lower = url.substring(0, Math.min(url.length(), 64)).toLowerCase(Locale.ROOT);
        if (lower.startsWith("http://") || lower.startsWith("https://"))
            throw ApiException.invalid(param, "remote image URLs are not fetched: send the image inline as "
                    + "data:image/png;base64,... or data:image/jpeg;base64,...");
        if (!lower.startsWith("data:"))
            throw ApiException.invalid(param, "only data:image/png;base64,... and data:image/jpeg;base64,... image URLs "
                    + "are accepted (no file paths or other schemes)");
        int comma = url.indexOf(',');
        if (comma < 0) throw ApiException.invalid(param, "data URL has no ',' before its payload");
        String meta = url.substring(5, comma).toLowerCase(Locale.ROOT);
        if (!meta.equals("image/png;base64") && !meta.equals("image/jpeg;base64") && !meta.equals("image/jpg;base64"))
            throw ApiException.invalid(param, "unsupported data URL type '" + meta + "' (expected image/png;base64 or image/jpeg;base64)");
        byte[] bytes;
        try {
            bytes = Base64.getMimeDecoder().decode(url.substring(comma + 1));
        } catch (IllegalArgumentException e) {
            throw ApiException.invalid(param, "image data is not valid base64 (" + e.getMessage() + ")");
        }
        if (bytes.length == 0) throw ApiException.invalid(param, "image data is empty");
        return readChecked(bytes, maxPixels, param);
    }

    /** Decodes PNG/JPEG bytes after checking width × height from the header against {@code maxPixels}. */
    static BufferedImage readChecked(byte[] bytes, long maxPixels, String param) {
        try (ImageInputStream in = ImageIO.createImageInputStream(new ByteArrayInputStream(bytes))) {
            Iterator<ImageReader> readers = in == null ? null : ImageIO.getImageReaders(in);
            if (readers == null || !readers.hasNext())
                throw ApiException.invalid(param, "image data is not a PNG or JPEG image");
            ImageReader reader = readers.next();
            try {
                String format = reader.getFormatName().toLowerCase(Locale.ROOT);
                if (!format.equals("png") && !format.equals("jpeg") && !format.equals("jpg"))
                    throw ApiException.invalid(param, "image data is " + format + ", expected PNG or JPEG");
                reader.setInput(in, true, true);
                long w = reader.getWidth(0), h = reader.getHeight(0);
                if (w <= 0 || h <= 0) throw ApiException.invalid(param, "image has no pixels");
                if (w * h > maxPixels)
                    throw ApiException.invalid(param, "image is " + w + "x" + h + " = " + (w * h)
                            + " pixels, more than the limit of " + maxPixels);
                BufferedImage img = reader.read(0);
                if (img == null) throw ApiException.invalid(param, "image data could not be decoded");
                return img;
            } finally {
                reader.dispose();
            }
        } catch (IOException | RuntimeException e) {
            if (e instanceof ApiException a) throw a;
            throw ApiException.invalid(param, "image data could not be decoded as PNG/JPEG (" + e.getMessage() + ")");
        }
    }
}
