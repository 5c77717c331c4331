package dev.qvlm.image;

/** An 8-bit RGB image, row-major, 3 interleaved bytes per pixel (R, G, B). */
record RgbImage(int width, int height, byte[] pixels) {
    RgbImage {
        if (width <= 0 || height <= 0) throw new IllegalArgumentException("empty image " + width + "x" + height);
        if (pixels.length != width * height * 3) throw new IllegalArgumentException("pixel buffer size");
    }

    int get(int x, int y, int c) {
        return pixels[(y * width + x) * 3 + c] & 0xFF;
    }
}
