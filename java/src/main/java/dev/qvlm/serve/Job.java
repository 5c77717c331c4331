package dev.qvlm.serve;

import dev.qvlm.generate.SamplingOptions;

import java.util.List;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * One admitted generation: what the scheduler needs to run it, and the events it sends back to the HTTP thread
 * that waits on it. The HTTP thread cancels it when its client goes away; the scheduler then frees its slot
 * before the next step.
 *
 * @param promptIds  prompt with image tokens expanded
 * @param images     preprocessed pixel values, one per image, in prompt order
 * @param stream     the client reads the answer as it is generated (else the text comes in one piece at the end)
 * @param deadlineNs System.nanoTime() after which the job is aborted with a timeout
 */
public final class Job {
    public sealed interface Event permits Delta, Done, Failed {}

    /** New text (complete characters, stop sequences withheld). */
    public record Delta(String text) implements Event {}

    /** The end: finish reason "stop" (EOS or a stop sequence) or "length"; token counts for usage. */
    public record Done(String finishReason, int promptTokens, int completionTokens, int[] tokens) implements Event {}

    public record Failed(ApiException error) implements Event {}

    final int[] promptIds;
    final List<float[]> images;
    final SamplingOptions sampling;
    final List<String> stop;
    final boolean ignoreEos;
    final boolean stream;
    final long deadlineNs;
    private final LinkedBlockingQueue<Event> events = new LinkedBlockingQueue<>();
    private volatile boolean cancelled;

    public Job(int[] promptIds, List<float[]> images, SamplingOptions sampling, List<String> stop, boolean ignoreEos,
               boolean stream, long deadlineNs) {
        this.promptIds = promptIds;
        this.images = images;
        this.sampling = sampling;
        this.stop = stop;
        this.ignoreEos = ignoreEos;
        this.stream = stream;
        this.deadlineNs = deadlineNs;
    }

    /** The client is gone or no longer wants the answer: the scheduler drops the job at its next step. */
    public void cancel() {
        cancelled = true;
    }

    public boolean cancelled() {
        return cancelled;
    }

    void emit(Event e) {
        events.add(e);
    }

    /** The next event, waiting at most {@code millis}; null on timeout. */
    public Event next(long millis) throws InterruptedException {
        return events.poll(millis, TimeUnit.MILLISECONDS);
    }
}
