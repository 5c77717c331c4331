package dev.qvlm.cpu;

import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;
import java.util.function.Supplier;

/**
 * Splits index ranges over a persistent pool of {@link #threads()} threads (the caller plus threads − 1 workers).
 *
 * <p>Why not the common fork-join pool: a 7B decode step runs 224 matvecs (4096- and 11008-wide rows), each about a
 * millisecond split over the cores, and a parallel stream pays task objects and, after any pause, the wake-up of
 * parked workers on every one. Here a job is one volatile write that workers spinning for the next job see at once;
 * they spin 0.2 ms ({@code -Dqvlm.spinNanos}) after a job, which covers the gap between the matvecs of a decode
 * step, then park, so an idle pool costs no CPU. Kernels pass a grain of about 64k weights per chunk, so the
 * bundled model's 256-wide layers (64k weights) stay on the caller and pay no hand-off at all.
 *
 * <p>Chunks are claimed from an atomic position, each 1/(2 × threads) of what is left and at least the grain
 * (guided self-scheduling): the first ones are large, the last ones short, so the threads finish close together
 * and a core taken by another process does not hold the others up; the caller works too. Fixed chunks (4 per
 * thread) left the caller waiting for a worker's last chunk 16 % of a TinyLlama decode step. Large chunks end on
 * multiples of 16 items, so two threads never write the same 64-byte line of a float output.
 * Every item is computed by exactly one thread with the same code, so results do not depend on the thread count.
 *
 * <p>One job at a time: a call made while the pool is busy (a nested call from inside a chunk, or a second thread
 * such as another evaluated question) runs on its caller instead: no deadlock, no oversubscription.
 */
public final class Parallel {
    private Parallel() {}

    /** Nanoseconds a worker spins for the next job (and the caller for the last chunks) before parking. */
    private static final long SPIN_NS = Long.getLong("qvlm.spinNanos", 200_000);
    private static final int ALIGN = 16;

    /** Set while the caller already runs one task per core (e.g. one calibration sample each): kernels stay serial. */
    private static final ThreadLocal<Boolean> SERIAL = ThreadLocal.withInitial(() -> false);

    private static volatile Pool pool;
    private static volatile int threads = Math.max(1, Runtime.getRuntime().availableProcessors());

    @FunctionalInterface
    public interface RangeBody {
        void run(int start, int end);
    }

    /** Threads the kernels use (default: the number of cores; {@code --threads N}). */
    public static int threads() {
        return threads;
    }

    /** Sets the thread count for later calls; the pool is rebuilt lazily at the next parallel call. */
    public static synchronized void setThreads(int n) {
        if (n < 1) throw new IllegalArgumentException("threads must be at least 1, got " + n);
        if (n == threads) return;
        threads = n;
        Pool old = pool;
        pool = null;
        if (old != null) old.shutdown();
    }

    /** Runs body over [0, n) in chunks of at least {@code grain} items, in parallel when worth it. */
    public static void forRange(int n, int grain, RangeBody body) {
        int t = threads;
        grain = Math.max(1, grain);
        if (n < 2 * grain || t <= 1 || SERIAL.get()) {
            if (n > 0) body.run(0, n);
            return;
        }
        Pool p = pool;
        if (p == null) p = pool();
        if (!p.tryRun(n, grain, 2 * t, body)) body.run(0, n);
    }

    private static synchronized Pool pool() {
        if (pool == null) pool = new Pool(threads);
        return pool;
    }

    /**
     * End of the chunk claimed at {@code s}: 1/share of what is left (share = 2 × threads), at least {@code grain}
     * items, rounded up to whole cache lines of floats ({@value #ALIGN} items) when large, so chunks shrink as the
     * range runs out and the last ones are short. Large chunks come first, so every boundary between them falls on
     * a multiple of {@value #ALIGN}.
     */
    static int chunkEnd(int n, int s, int grain, int share) {
        int size = Math.max(grain, (n - s) / share);
        if (size >= 4 * ALIGN) size = (size + ALIGN - 1) & -ALIGN;
        return (int) Math.min(n, (long) s + size);
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

    /** One parallel call: chunks are claimed by moving {@link #next} forward; finished items are counted in {@link #done}. */
    private static final class Job {
        final int n, grain, share;
        RangeBody body; // cleared once every chunk is done: a worker's last job must not keep its arrays alive
        final AtomicInteger next = new AtomicInteger(), done = new AtomicInteger();
        volatile Throwable failure;

        Job(int n, int grain, int share, RangeBody body) {
            this.n = n;
            this.grain = grain;
            this.share = share;
            this.body = body;
        }

        /** Claims and runs chunks until none is left. */
        void work() {
            for (int s; (s = next.get()) < n; ) {
                int e = chunkEnd(n, s, grain, share);
                if (!next.compareAndSet(s, e)) continue;
                try {
                    body.run(s, e);
                } catch (Throwable t) {
                    if (failure == null) failure = t;
                } finally {
                    done.addAndGet(e - s);
                }
            }
        }
    }

    private static final class Pool {
        private final Thread[] workers;
        private final AtomicBoolean busy = new AtomicBoolean();
        private volatile Job job; // the running job, or null; workers compare identity with the last one they ran
        private volatile boolean closed;

        Pool(int threads) {
            workers = new Thread[threads - 1];
            for (int i = 0; i < workers.length; i++) {
                Thread w = new Thread(this::loop, "qvlm-cpu-" + (i + 1));
                w.setDaemon(true);
                workers[i] = w;
                w.start();
            }
        }

        boolean tryRun(int n, int grain, int share, RangeBody body) {
            if (closed || !busy.compareAndSet(false, true)) return false;
            try {
                Job j = new Job(n, grain, share, body);
                job = j;
                for (Thread w : workers) LockSupport.unpark(w);
                j.work();
                // wait for chunks claimed by workers; spin briefly (they are usually mid-chunk), then back off
                long start = System.nanoTime();
                while (j.done.get() < n) {
                    if (System.nanoTime() - start < SPIN_NS) Thread.onSpinWait();
                    else LockSupport.parkNanos(20_000);
                }
                job = null;
                j.body = null; // every chunk has run (done == n), so no thread reads it again
                Throwable f = j.failure;
                if (f instanceof RuntimeException re) throw re;
                if (f instanceof Error er) throw er;
                if (f != null) throw new IllegalStateException(f);
                return true;
            } finally {
                busy.set(false);
            }
        }

        private void loop() {
            Job last = null;
            while (!closed) {
                Job j = job;
                if (j == null || j == last) {
                    long start = System.nanoTime();
                    while (((j = job) == null || j == last) && !closed && System.nanoTime() - start < SPIN_NS)
                        Thread.onSpinWait();
                    if (j == null || j == last) {
                        LockSupport.park(this); // unparked by the next job (or a stale permit: loop and look again)
                        continue;
                    }
                }
                last = j;
                j.work();
            }
        }

        void shutdown() {
            closed = true;
            for (Thread w : workers) LockSupport.unpark(w);
        }
    }
}
