package dev.qvlm.serve;

import dev.qvlm.QvlmException;
import dev.qvlm.image.ImageDecoder;

import java.awt.image.BufferedImage;
import java.util.Base64;
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

    /**
     * Decodes PNG/JPEG bytes through the CLI's decoder ({@link ImageDecoder}: size from the header checked against
     * {@code maxPixels} before decoding, PNG CRCs and truncation checked), its refusal as a 400 naming {@code param}.
     */
    static BufferedImage readChecked(byte[] bytes, long maxPixels, String param) {
        try {
            return ImageDecoder.decode(bytes, "image", maxPixels);
        } catch (QvlmException e) {
            throw ApiException.invalid(param, e.getMessage());
        }
    }
}
