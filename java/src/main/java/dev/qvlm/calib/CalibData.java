package dev.qvlm.calib;

import dev.qvlm.QvlmException;
import dev.qvlm.eval.Evaluator;
import dev.qvlm.eval.McDataset;
import dev.qvlm.eval.McQuestion;
import dev.qvlm.runtime.Llava;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;

/**
 * The calibration set: a seeded random choice of rows of a ScienceQA-format JSONL file, turned into the same
 * prompts evaluation uses (prefill only: the answer is not appended).
 */
public final class CalibData {
    private CalibData() {}

    public static List<CalibSample> load(Llava llava, Path jsonl, int n, long seed) {
        return load(llava, jsonl, n, seed, null);
    }

    /** @param imageRoot the folder image paths resolve in ({@code --image-root}); null = the data file's folder */
    public static List<CalibSample> load(Llava llava, Path jsonl, int n, long seed, Path imageRoot) {
        List<CalibSample> out = new ArrayList<>();
        for (McQuestion q : choose(jsonl, n, seed, imageRoot)) out.add(sample(llava, q));
        return out;
    }

    /** The prompt of one row, as evaluation builds it. */
    public static CalibSample sample(Llava llava, McQuestion q) {
        float[] px = q.image() == null ? null : llava.processor().preprocess(q.image());
        return new CalibSample(q.id(), llava.promptIds(q.prompt()), px);
    }

    /** {@link #choose(Path, int, long, Path)} with images in the data file's folder. */
    public static List<McQuestion> choose(Path jsonl, int n, long seed) {
        return choose(jsonl, n, seed, null);
    }

    /** The seeded random choice of n rows (in file order), images checked; the same rows {@link #load} uses. */
    public static List<McQuestion> choose(Path jsonl, int n, long seed, Path imageRoot) {
        if (n < 1) throw new QvlmException("--calib-samples must be at least 1, got " + n);
        List<McQuestion> rows = McDataset.read(jsonl, imageRoot);
        if (n > rows.size())
            throw new QvlmException(jsonl + ": asked for " + n + " calibration samples but the file has only " + rows.size() + " rows");
        List<Integer> idx = new ArrayList<>();
        for (int i = 0; i < rows.size(); i++) idx.add(i);
        Collections.shuffle(idx, new Random(seed));
        List<Integer> pick = new ArrayList<>(idx.subList(0, n));
        Collections.sort(pick);
        List<McQuestion> chosen = new ArrayList<>();
        for (int i : pick) chosen.add(rows.get(i));
        Evaluator.checkImages(chosen, jsonl.toString());
        return chosen;
    }
}
