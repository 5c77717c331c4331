package dev.qvlm.cpu;

import java.util.function.Supplier;
import java.util.stream.IntStream;

/** Splits index ranges over the cores (the common fork-join pool). */
public final class Parallel {
    private Parallel() {}

    /** Set while the caller already runs one task per core (e.g. one calibration sample each): kernels stay serial. */
    private static final ThreadLocal<Boolean> SERIAL = ThreadLocal.withInitial(() -> false);

    @FunctionalInterface
    public interface RangeBody {
        void run(int start, int end);
    }

    /** Runs body over [0, n) in chunks of at least {@code grain} items, in parallel when worth it. */
    public static void forRange(int n, int grain, RangeBody body) {
        // the caller joins the common pool's workers, so all cores take part even where the pool has cores - 1
        int threads = Runtime.getRuntime().availableProcessors();
        int chunks = Math.max(1, Math.min(threads * 4, n / Math.max(1, grain)));
        if (chunks == 1 || threads <= 1 || SERIAL.get()) {
            body.run(0, n);
            return;
        }
        IntStream.range(0, chunks).parallel().forEach(ch -> {
            int s = (int) ((long) n * ch / chunks);
            int e = (int) ((long) n * (ch + 1) / chunks);
            if (s < e) body.run(s, e);
        });
    }

    /** Runs {@code body} with the kernels it calls kept on the current thread (outer-level parallelism). */
    public static <T> T serial(Supplier<T> body) {
        boolean was = SERIAL.get();
        SERIAL.set(true);
        try {
            return body.get();
        } finally {
            SERIAL.set(was);
        }
    }
}
