package dev.qvlm.serve;

/**
 * What one request may ask of the server. The numbers come from {@code qvlm serve}'s flags.
 *
 * @param maxBodyBytes     request body size; larger bodies get 413 before they are read in full
 * @param maxImagePixels   width × height of one image, checked from the image header before decoding (bombs)
 * @param maxImages        images in one conversation
 * @param defaultMaxTokens completion tokens when the request names none (clipped to what the context leaves)
 * @param queueCapacity    requests waiting for a slot; one more gets 429 with Retry-After
 * @param timeoutSeconds   wall time of one request from admission to its last token
 */
public record ServeLimits(long maxBodyBytes, long maxImagePixels, int maxImages, int defaultMaxTokens,
                          int queueCapacity, double timeoutSeconds) {
    public static final ServeLimits DEFAULT = new ServeLimits(8L << 20, 4096L * 4096, 4, 256, 64, 300);

    public ServeLimits {
        if (maxBodyBytes < 1024) throw new IllegalArgumentException("max body bytes must be at least 1024, got " + maxBodyBytes);
        if (maxImagePixels < 1) throw new IllegalArgumentException("max image pixels must be at least 1");
        if (maxImages < 0) throw new IllegalArgumentException("max images must be >= 0");
        if (defaultMaxTokens < 1) throw new IllegalArgumentException("default max tokens must be at least 1");
        if (queueCapacity < 0) throw new IllegalArgumentException("queue capacity must be >= 0");
        if (!(timeoutSeconds > 0)) throw new IllegalArgumentException("timeout must be > 0 seconds");
    }

    public ServeLimits withQueueCapacity(int q) {
        return new ServeLimits(maxBodyBytes, maxImagePixels, maxImages, defaultMaxTokens, q, timeoutSeconds);
    }

    public ServeLimits withTimeoutSeconds(double t) {
        return new ServeLimits(maxBodyBytes, maxImagePixels, maxImages, defaultMaxTokens, queueCapacity, t);
    }

    public ServeLimits withMaxBodyBytes(long b) {
        return new ServeLimits(b, maxImagePixels, maxImages, defaultMaxTokens, queueCapacity, timeoutSeconds);
    }

    public ServeLimits withMaxImagePixels(long p) {
        return new ServeLimits(maxBodyBytes, p, maxImages, defaultMaxTokens, queueCapacity, timeoutSeconds);
    }
}
