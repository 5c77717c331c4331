package dev.qvlm.eval;

import dev.qvlm.QvlmException;
import dev.qvlm.backend.Tensor;
import dev.qvlm.generate.Sampler;
import dev.qvlm.model.KvCache;
import dev.qvlm.model.LlavaModel;
import dev.qvlm.runtime.Llava;
import dev.qvlm.util.Progress;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * ScienceQA-format multiple-choice evaluation: greedy next token after the prompt; a prediction counts only if it
 * decodes to one of the offered letters and that letter is the answer.
 */
public final class Evaluator {
    public record Prediction(McQuestion question, int tokenId, String text, int predicted, boolean correct,
                             float[] logits) {}

    public record TaskScore(int n, int correct) {
        public double accuracy() {
            return n == 0 ? 0 : (double) correct / n;
        }
    }

    public record Report(List<Prediction> predictions, int correct, int unparseable, Map<String, TaskScore> perTask,
                         double seconds) {
        public double accuracy() {
            return predictions.isEmpty() ? 0 : (double) correct / predictions.size();
        }
    }

    private final Llava llava;
    private final boolean keepLogits;

    /** @param keepLogits keep each question's answer-position logits (for KL against a reference model) */
    public Evaluator(Llava llava, boolean keepLogits) {
        this.llava = llava;
        this.keepLogits = keepLogits;
    }

    /**
     * The questions a command evaluates: the file's rows, the first {@code limit} of them when given (at least 1),
     * with every image checked to exist before any compute.
     */
    public static List<McQuestion> load(Path file, Integer limit) {
        return load(file, limit, null);
    }

    /** @param imageRoot the folder image paths resolve in ({@code --image-root}); null = the data file's folder */
    public static List<McQuestion> load(Path file, Integer limit, Path imageRoot) {
        if (limit != null && limit < 1) throw new QvlmException("--limit must be at least 1, got " + limit);
        List<McQuestion> rows = McDataset.read(file, imageRoot);
        if (limit != null && limit < rows.size()) rows = rows.subList(0, limit);
        checkImages(rows, file.toString());
        return rows;
    }

    /** Fails fast, before any compute, on a row whose image file is missing. */
    public static void checkImages(List<McQuestion> rows, String dataFile) {
        for (McQuestion q : rows)
            if (q.image() != null && !Files.isRegularFile(q.image()))
                throw new QvlmException(dataFile + ":" + q.line() + ": image not found: " + q.image());
    }

    public Prediction predict(McQuestion q) {
        int[] ids = llava.promptIds(q.prompt());
        try {
            LlavaModel.checkContext(ids.length, 0, llava.model().contextLength());
        } catch (QvlmException e) {
            throw new QvlmException("question " + q.id() + " (line " + q.line() + "): " + e.getMessage());
        }
        Tensor embeds = q.image() == null ? null : llava.encodeImage(q.image());
        float[] logits;
        try (KvCache cache = llava.model().newCache(ids.length)) {
            logits = llava.model().forward(cache, ids, embeds, false);
        } finally {
            if (embeds != null) llava.model().backend().free(embeds);
        }
        int tok = Sampler.argmax(logits, 0, logits.length);
        String text = llava.tokenizer().decode(new int[]{tok}).trim();
        int pred = text.length() == 1 ? McQuestion.LETTERS.indexOf(text.charAt(0)) : -1;
        if (pred >= q.choices().size()) pred = -1;
        return new Prediction(q, tok, text, pred, pred == q.answer(), keepLogits ? logits : null);
    }

    /**
     * Evaluates all rows, {@code jobs} questions at a time (each question is independent; results keep row order).
     * Several at once pays off for small models, whose matmuls are too small to keep every core busy.
     */
    public Report run(List<McQuestion> rows, boolean progress, int jobs) {
        Progress bar = new Progress("eval", rows.size(), progress);
        Prediction[] out = new Prediction[rows.size()];
        AtomicInteger running = new AtomicInteger();
        Runnable tick = () -> bar.step(String.format("acc %.1f%%", 100.0 * running.get() / (bar.done() + 1)));
        if (jobs <= 1) {
            for (int i = 0; i < rows.size(); i++) {
                out[i] = predict(rows.get(i));
                if (out[i].correct()) running.incrementAndGet();
                tick.run();
            }
        } else {
            ExecutorService pool = Executors.newFixedThreadPool(jobs, r -> {
                Thread t = new Thread(r, "eval-worker");
                t.setDaemon(true);
                return t;
            });
            try {
                List<Future<?>> fs = new ArrayList<>();
                for (int i = 0; i < rows.size(); i++) {
                    final int idx = i;
                    fs.add(pool.submit(() -> {
                        out[idx] = predict(rows.get(idx));
                        if (out[idx].correct()) running.incrementAndGet();
                        tick.run();
                    }));
                }
                for (Future<?> f : fs) {
                    try {
                        f.get();
                    } catch (ExecutionException e) {
                        if (e.getCause() instanceof RuntimeException re) throw re;
                        throw new IllegalStateException(e.getCause());
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                        throw new QvlmException("interrupted");
                    }
                }
            } finally {
                pool.shutdownNow();
            }
        }
        List<Prediction> preds = List.of(out);
        int correct = 0, unparseable = 0;
        Map<String, int[]> tasks = new LinkedHashMap<>();
        for (Prediction p : preds) {
            if (p.correct()) correct++;
            if (p.predicted() < 0) unparseable++;
            int[] t = tasks.computeIfAbsent(p.question().task(), k -> new int[2]);
            t[0]++;
            if (p.correct()) t[1]++;
        }
        Map<String, TaskScore> per = new LinkedHashMap<>();
        tasks.entrySet().stream().sorted(Map.Entry.comparingByKey())
                .forEach(e -> per.put(e.getKey(), new TaskScore(e.getValue()[0], e.getValue()[1])));
        return new Report(preds, correct, unparseable, per, bar.elapsedSeconds());
    }
}
