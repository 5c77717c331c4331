package dev.qvlm.serve;

import dev.qvlm.QvlmException;
import dev.qvlm.backend.Backend;
import dev.qvlm.backend.Tensor;
import dev.qvlm.generate.Sampler;
import dev.qvlm.model.KvCache;
import dev.qvlm.model.LlavaModel;
import dev.qvlm.tokenizer.Tokenizer;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicLongArray;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * Continuous batching. One scheduler thread owns the model: between decode steps it removes finished, cancelled
 * and timed-out sequences, admits waiting jobs into free slots (image encoding + prefill, one job at a time, as
 * {@code qvlm generate} does it), then runs one batched decode step over every active slot
 * ({@link LlavaModel#forwardLast}: one matmul over the slots' rows, attention per slot against its own KV cache).
 * Each slot samples from its own logits row with its own sampler, so greedy output is the same tokens as
 * {@code qvlm generate --temperature 0} whatever else is in the batch.
 */
public final class Engine implements AutoCloseable {
    private final LlavaModel model;
    private final Tokenizer tokenizer;
    private final int slots;
    private final int queueCapacity;
    private final ReentrantLock lock = new ReentrantLock();
    private final Condition wake = lock.newCondition();
    private final ArrayDeque<Job> queue = new ArrayDeque<>();
    private final List<Slot> active = new ArrayList<>();
    private final Thread thread;
    private volatile boolean accepting = true;
    private volatile boolean stopped;
    private volatile long drainDeadlineNs = Long.MAX_VALUE;
    private volatile int activeCount;
    private final AtomicLong steps = new AtomicLong(), stepRows = new AtomicLong(), cancelled = new AtomicLong();
    private volatile long lastCancelledTokens;
    /** Per batch size b (index b): decode steps run, their wall time (forward + sampling + detokenizing + events),
     *  and the forward pass alone, in ns. */
    private final AtomicLongArray stepsOfSize = new AtomicLongArray(33), nanosOfSize = new AtomicLongArray(33),
            forwardNanosOfSize = new AtomicLongArray(33);

    public Engine(LlavaModel model, Tokenizer tokenizer, int slots, int queueCapacity) {
        this(model, tokenizer, slots, queueCapacity, true);
    }

    /** With {@code start} false the scheduler waits for {@link #start()} (tests fill the queue deterministically). */
    Engine(LlavaModel model, Tokenizer tokenizer, int slots, int queueCapacity, boolean start) {
        if (slots < 1 || slots > 32) throw new QvlmException("--slots must be in 1..32, got " + slots);
        this.model = model;
        this.tokenizer = tokenizer;
        this.slots = slots;
        this.queueCapacity = queueCapacity;
        this.thread = Thread.ofPlatform().name("qvlm-scheduler").daemon(true).unstarted(this::loop);
        if (start) thread.start();
    }

    void start() {
        thread.start();
    }

    public int slots() {
        return slots;
    }

    /** Sequences in the current batch. */
    public int active() {
        return activeCount;
    }

    public int queued() {
        lock.lock();
        try {
            return queue.size();
        } finally {
            lock.unlock();
        }
    }

    /**
     * Decode steps run, rows over all of them (mean batch = rows / steps), running sequences dropped because their
     * client went away, and how many tokens the last of those had generated.
     */
    public long[] stats() {
        return new long[]{steps.get(), stepRows.get(), cancelled.get(), lastCancelledTokens};
    }

    /** Decode steps of batch size {@code b} so far: {steps, wall ns of the whole step, ns of the forward pass}. */
    public long[] stepsOfSize(int b) {
        return new long[]{stepsOfSize.get(b), nanosOfSize.get(b), forwardNanosOfSize.get(b)};
    }

    /**
     * Queues a job. 503 once draining; 429 with Retry-After when every slot is busy and the queue is full.
     */
    public void submit(Job job) {
        lock.lock();
        try {
            if (!accepting) throw new ApiException(503, "server_error", null, "shutting_down", "the server is shutting down", 1);
            if (queue.size() >= queueCapacity + Math.max(0, slots - activeCount))
                throw new ApiException(429, "rate_limit_error", null, "queue_full", "all " + slots + " slots are busy and "
                        + queueCapacity + " requests are waiting; retry later", 1);
            queue.add(job);
            wake.signalAll();
        } finally {
            lock.unlock();
        }
    }

    /**
     * Stops accepting, fails queued jobs (503), lets active ones finish for up to {@code graceSeconds}, aborts the
     * rest, and waits for the scheduler thread to end.
     */
    public void drain(double graceSeconds) {
        lock.lock();
        try {
            accepting = false;
            for (Job j : queue) j.emit(new Job.Failed(new ApiException(503, "server_error", null, "shutting_down",
                    "the server is shutting down", 1)));
            queue.clear();
            drainDeadlineNs = System.nanoTime() + (long) (graceSeconds * 1e9);
            wake.signalAll();
        } finally {
            lock.unlock();
        }
        try {
            thread.join((long) (graceSeconds * 1000) + 5000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    @Override
    public void close() {
        stopped = true;
        drain(0);
    }

    /**
     * A streamed answer's new text goes out at most this often, in pieces of whole tokens: detokenizing decodes all
     * of a request's tokens so far (the decoder chain is not incremental), which at one call per token and slot was
     * about a sixth of a batched step on the bundled model. A model slower than this still streams every token.
     */
    private static final long EMIT_INTERVAL_NS = 20_000_000L;

    /** A running sequence: its cache, sampler and output so far. */
    private final class Slot {
        final Job job;
        final KvCache cache;
        final Sampler sampler;
        int[] out = new int[16];
        int count;
        final int holdBack;
        int printed; // characters of the decoded text already sent
        long emittedNs; // when text was last sent
        int next = -1; // sampled token to feed at the next step
        boolean finished;

        Slot(Job job) {
            this.job = job;
            this.cache = model.newCache(job.promptIds.length + job.sampling.maxTokens());
            this.sampler = new Sampler(job.sampling);
            int h = 0;
            for (String s : job.stop) h = Math.max(h, s.length() - 1);
            this.holdBack = h;
        }

        /**
         * Takes the token sampled from {@code logits[off..]}: EOS, stop sequence and max_tokens end the slot. The text
         * is decoded only where it is needed: every token when there are stop sequences (so the answer ends at the
         * same token as {@code generate}'s), for a stream its first token and then every {@link #EMIT_INTERVAL_NS},
         * and at the end; a non-streamed answer without stop sequences is decoded once.
         */
        void accept(float[] logits, int off, int vocab) {
            int tok = sampler.next(logits, off, vocab);
            if (!job.ignoreEos) for (int e : model.config().text().eosTokenIds()) if (e == tok) {
                finish("stop", null);
                return;
            }
            if (count == out.length) out = java.util.Arrays.copyOf(out, 2 * count);
            out[count++] = tok;
            boolean last = count >= job.sampling.maxTokens();
            long now = job.stream ? System.nanoTime() : 0;
            boolean emit = job.stream && (count == 1 || now - emittedNs >= EMIT_INTERVAL_NS);
            if (!last && !emit && job.stop.isEmpty()) {
                next = tok;
                return;
            }
            String text = tokenizer.decode(tokens());
            for (String s : job.stop) {
                int at = text.indexOf(s);
                if (at >= 0) {
                    finish("stop", text.substring(0, at));
                    return;
                }
            }
            if (last) {
                finish("length", text);
                return;
            }
            // hold back a partial UTF-8 character and any tail that may be the start of a stop sequence
            int end = text.length() - holdBack;
            if (emit && end > printed && !text.substring(0, end).endsWith("\uFFFD")) {
                job.emit(new Job.Delta(text.substring(printed, end)));
                printed = end;
                emittedNs = now;
            }
            next = tok;
        }

        void finish(String reason, String text) {
            if (text == null) text = tokenizer.decode(tokens());
            if (text.length() > printed) job.emit(new Job.Delta(text.substring(printed)));
            job.emit(new Job.Done(reason, job.promptIds.length, count, tokens()));
            finished = true;
        }

        int[] tokens() {
            return java.util.Arrays.copyOf(out, count);
        }
    }

    private void loop() {
        int vocab = model.config().text().vocabSize();
        while (true) {
            Job admit = null;
            lock.lock();
            try {
                long now = System.nanoTime();
                for (Iterator<Job> it = queue.iterator(); it.hasNext(); ) {
                    Job j = it.next();
                    if (j.cancelled()) it.remove();
                    else if (now > j.deadlineNs) {
                        it.remove();
                        j.emit(new Job.Failed(timeout()));
                    }
                }
                if (active.isEmpty() && queue.isEmpty()) {
                    if (!accepting || stopped) break;
                    wake.awaitNanos(1_000_000_000L);
                    continue;
                }
                if (active.size() < slots && accepting) admit = queue.poll();
            } catch (InterruptedException e) {
                break;
            } finally {
                lock.unlock();
            }
            if (admit != null) {
                prefill(admit, vocab);
                activeCount = active.size();
                continue; // admit every waiting job before the next step: they join the batch at once
            }
            long now = System.nanoTime();
            boolean drainOver = now > drainDeadlineNs;
            for (Iterator<Slot> it = active.iterator(); it.hasNext(); ) {
                Slot s = it.next();
                boolean leaves = s.finished;
                if (!leaves && s.job.cancelled()) {
                    lastCancelledTokens = s.count;
                    cancelled.incrementAndGet();
                    leaves = true;
                } else if (!leaves && (now > s.job.deadlineNs || drainOver)) {
                    s.job.emit(new Job.Failed(drainOver
                            ? new ApiException(503, "server_error", null, "shutting_down", "the server shut down before the answer was complete", 0)
                            : timeout()));
                    leaves = true;
                }
                if (leaves) {
                    it.remove();
                    s.cache.close(); // the slot's KV cache back to the device now
                }
            }
            activeCount = active.size();
            if (active.isEmpty()) continue;
            step(vocab);
        }
        // scheduler ends (shutdown): nobody may be left waiting
        for (Slot s : active) {
            s.job.emit(new Job.Failed(new ApiException(503, "server_error", null, "shutting_down", "the server shut down", 0)));
            s.cache.close();
        }
        active.clear();
        activeCount = 0;
    }

    private static ApiException timeout() {
        return new ApiException(504, "timeout_error", null, "timeout", "the request did not finish within the server's time limit", 0);
    }

    private void prefill(Job job, int vocab) {
        Backend b = model.backend();
        Tensor embeds = null;
        Slot s = null;
        try {
            if (!job.images.isEmpty()) {
                int feats = model.config().imageFeatures(), dt = model.config().text().hiddenSize();
                embeds = b.allocate(job.images.size() * feats, dt);
                for (int i = 0; i < job.images.size(); i++) {
                    Tensor e = model.encodeImage(job.images.get(i));
                    b.copy(e, b.view(embeds, i * feats, feats));
                    b.free(e);
                }
            }
            s = new Slot(job);
            float[] logits = model.forward(s.cache, job.promptIds, embeds, false);
            s.accept(logits, 0, vocab);
            if (!s.finished) {
                active.add(s);
                s = null; // the loop closes its cache when it leaves
            }
        } catch (ApiException e) {
            job.emit(new Job.Failed(e));
        } catch (QvlmException e) {
            job.emit(new Job.Failed(ApiException.invalid("messages", e.getMessage())));
        } catch (RuntimeException e) {
            job.emit(new Job.Failed(new ApiException(500, "server_error", null, null, "generation failed: " + e, 0)));
        } finally {
            if (s != null) s.cache.close();
            if (embeds != null) b.free(embeds);
        }
    }

    private void step(int vocab) {
        List<LlavaModel.Sequence> batch = new ArrayList<>(active.size());
        for (Slot s : active) batch.add(new LlavaModel.Sequence(s.cache, new int[]{s.next}, null));
        try {
            long t0 = System.nanoTime();
            float[] logits = model.forwardLast(batch);
            long t1 = System.nanoTime();
            for (int i = 0; i < active.size(); i++) active.get(i).accept(logits, i * vocab, vocab);
            long t2 = System.nanoTime();
            int b = batch.size();
            steps.incrementAndGet();
            stepRows.addAndGet(b);
            stepsOfSize.incrementAndGet(b);
            nanosOfSize.addAndGet(b, t2 - t0);
            forwardNanosOfSize.addAndGet(b, t1 - t0);
        } catch (RuntimeException e) {
            for (Slot s : active) {
                s.job.emit(new Job.Failed(new ApiException(500, "server_error", null, null, "generation failed: " + e, 0)));
                s.finished = true;
            }
        }
    }
}
