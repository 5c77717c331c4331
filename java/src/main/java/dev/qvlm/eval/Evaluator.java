package dev.qvlm.eval;

import dev.qvlm.QvlmException;
import dev.qvlm.backend.Tensor;
import dev.qvlm.generate.Sampler;
import dev.qvlm.model.KvCache;
import dev.qvlm.runtime.Llava;
import dev.qvlm.util.Progress;

import java.nio.file.Files;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

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

    /** Fails fast, before any compute, on a row whose image file is missing. */
    public static void checkImages(List<McQuestion> rows, String dataFile) {
        for (McQuestion q : rows)
            if (q.image() != null && !Files.isRegularFile(q.image()))
                throw new QvlmException(dataFile + ":" + q.line() + ": image not found: " + q.image());
    }

    public Prediction predict(McQuestion q) {
        Tensor embeds = q.image() == null ? null : llava.encodeImage(q.image());
        int[] ids = llava.promptIds(q.prompt());
        KvCache cache = llava.model().newCache(ids.length);
        float[] logits = llava.model().forward(cache, ids, embeds, false);
        int tok = Sampler.argmax(logits, 0, logits.length);
        String text = llava.tokenizer().decode(new int[]{tok}).trim();
        int pred = text.length() == 1 ? McQuestion.LETTERS.indexOf(text.charAt(0)) : -1;
        if (pred >= q.choices().size()) pred = -1;
        return new Prediction(q, tok, text, pred, pred == q.answer(), keepLogits ? logits : null);
    }

    public Report run(List<McQuestion> rows, boolean progress) {
        Progress bar = new Progress("eval", rows.size(), progress);
        List<Prediction> preds = new ArrayList<>();
        int correct = 0, unparseable = 0;
        Map<String, int[]> tasks = new LinkedHashMap<>();
        for (McQuestion q : rows) {
            Prediction p = predict(q);
            preds.add(p);
            if (p.correct()) correct++;
            if (p.predicted() < 0) unparseable++;
            int[] t = tasks.computeIfAbsent(q.task(), k -> new int[2]);
            t[0]++;
            if (p.correct()) t[1]++;
            bar.step(String.format("acc %.1f%%", 100.0 * correct / preds.size()));
        }
        Map<String, TaskScore> per = new LinkedHashMap<>();
        tasks.entrySet().stream().sorted(Map.Entry.comparingByKey())
                .forEach(e -> per.put(e.getKey(), new TaskScore(e.getValue()[0], e.getValue()[1])));
        return new Report(preds, correct, unparseable, per, bar.elapsedSeconds());
    }
}
