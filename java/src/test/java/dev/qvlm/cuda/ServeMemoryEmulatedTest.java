package dev.qvlm.cuda;

import dev.qvlm.TestPaths;
import dev.qvlm.generate.SamplingOptions;
import dev.qvlm.runtime.Llava;
import dev.qvlm.serve.Engine;
import dev.qvlm.serve.Job;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The server on the CUDA backend (emulated device) gives every request's device memory back when the request
 * leaves, whichever way it leaves: finished, cancelled mid-way or past its time limit, with an image or without
 * (KV caches closed, image embeddings freed, steps scoped). Afterwards the live activation bytes are what they were
 * before the first request, and nothing was left to the collector.
 */
class ServeMemoryEmulatedTest {
    @Test
    void requestsLeaveNoDeviceMemoryBehind() throws Exception {
        try (CudaBackend b = new CudaBackend(new EmulatedDevice(), Storage.F16, false);
             Llava llava = Llava.open(TestPaths.tinyModel(), b);
             Engine engine = new Engine(llava.model(), llava.tokenizer(), 4, 8)) {
            int[] text = llava.promptIds(Llava.chatPrompt("What shape is it?").replace("<image>\n", ""));
            int[] withImage = llava.promptIds(Llava.chatPrompt("What shape is it?"));
            float[] pixels = llava.processor().preprocess(TestPaths.data().resolve("images/eval_00000.png"));
            // warm: weights uploaded (permanent), pool filled
            run(engine, new Job(text, List.of(), new SamplingOptions(2, 0, 1, 0), List.of(), true, false, far()));
            idle(engine);
            long live = b.memoryCounts().live(), tracked = b.memoryCounts().trackedAllocations() - b.memoryCounts().explicitFrees();

            List<Job> jobs = new ArrayList<>();
            jobs.add(new Job(text, List.of(), new SamplingOptions(6, 0, 1, 0), List.of(), true, false, far()));
            jobs.add(new Job(withImage, List.of(pixels), new SamplingOptions(4, 0, 1, 0), List.of(), true, false, far()));
            Job cancelled = new Job(text, List.of(), new SamplingOptions(200, 0, 1, 0), List.of(), true, true, far());
            Job late = new Job(text, List.of(), new SamplingOptions(200, 0, 1, 0), List.of(), true, false,
                    System.nanoTime() + 50_000_000L);
            for (Job j : jobs) engine.submit(j);
            engine.submit(cancelled);
            engine.submit(late);
            for (Job j : jobs) assertInstanceOf(Job.Done.class, last(j), "a finished request");
            assertNotNull(cancelled.next(30_000), "the streamed request started");
            cancelled.cancel();
            assertInstanceOf(Job.Failed.class, last(late), "past its time limit");
            idle(engine);
            CudaBackend.MemoryCounts m = b.memoryCounts();
            assertEquals(live, m.live(), "live activation bytes after the requests left");
            assertEquals(tracked, m.trackedAllocations() - m.explicitFrees(), "tensors left to the collector");
        }
    }

    /** Until no slot is active, then a moment for the scheduler to close the last one's cache after removing it. */
    private static void idle(Engine engine) throws InterruptedException {
        long deadline = System.nanoTime() + 30_000_000_000L;
        while (engine.active() > 0 && System.nanoTime() < deadline) Thread.sleep(10);
        assertEquals(0, engine.active());
        Thread.sleep(100);
    }

    private static long far() {
        return System.nanoTime() + 60_000_000_000L;
    }

    private static void run(Engine e, Job j) throws InterruptedException {
        e.submit(j);
        assertTrue(last(j) instanceof Job.Done);
    }

    /** Waits for the job's terminal event (Done or Failed). */
    private static Job.Event last(Job j) throws InterruptedException {
        long deadline = System.nanoTime() + 60_000_000_000L;
        while (System.nanoTime() < deadline) {
            Job.Event e = j.next(100);
            if (e instanceof Job.Done || e instanceof Job.Failed) return e;
        }
        throw new AssertionError("no end event");
    }
}
