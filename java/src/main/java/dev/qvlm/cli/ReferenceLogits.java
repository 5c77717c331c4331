package dev.qvlm.cli;

import com.fasterxml.jackson.databind.JsonNode;
import dev.qvlm.QvlmException;
import dev.qvlm.eval.Evaluator;
import dev.qvlm.eval.McQuestion;
import dev.qvlm.runtime.Llava;
import dev.qvlm.safetensors.SafeTensors;
import dev.qvlm.safetensors.SafeTensorsWriter;
import dev.qvlm.util.Json;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/** Answer-position logits of a reference model, for KL: computed from a model folder or read from a saved report. */
final class ReferenceLogits {
    private ReferenceLogits() {}

    static float[][] load(Path ref, List<McQuestion> rows, Common common, boolean quiet) {
        if (Files.isDirectory(ref)) {
            try (Llava llava = Llava.open(ref, common.exactBackend())) { // a reference runs exact (so --int8-activations vs exact is measurable)
                if (!quiet) System.err.println("evaluating the reference model " + ref);
                Evaluator.Report r = new Evaluator(llava, true).run(rows, !quiet, Runtime.getRuntime().availableProcessors());
                float[][] out = new float[rows.size()][];
                for (int i = 0; i < out.length; i++) out[i] = r.predictions().get(i).logits();
                return out;
            }
        }
        if (!Files.isRegularFile(ref)) throw new QvlmException("--reference " + ref + ": no such model folder or report file");
        JsonNode rep = Json.read(ref);
        JsonNode lf = rep.get("logits_file");
        if (lf == null) throw new QvlmException("--reference " + ref + ": report has no logits (write it with eval --out ... --save-logits)");
        JsonNode preds = rep.get("predictions");
        if (preds == null || preds.size() != rows.size())
            throw new QvlmException("--reference " + ref + ": report covers " + (preds == null ? 0 : preds.size())
                    + " questions, this run " + rows.size() + " (use the same --data and --limit)");
        for (int i = 0; i < rows.size(); i++)
            if (!preds.get(i).path("id").asText().equals(rows.get(i).id()))
                throw new QvlmException("--reference " + ref + ": question " + i + " is '" + preds.get(i).path("id").asText()
                        + "' there but '" + rows.get(i).id() + "' here (use the same --data)");
        Path file = ref.toAbsolutePath().getParent().resolve(lf.asText());
        try (SafeTensors st = SafeTensors.open(file)) {
            var info = st.info("logits");
            if (info.rank() != 2 || info.dim(0) != rows.size())
                throw new QvlmException(file + ": 'logits' has shape " + info.shapeString() + ", expected [" + rows.size() + ", vocab]");
            float[] all = st.toFloatArray("logits");
            int v = info.dim(1);
            float[][] out = new float[rows.size()][];
            for (int i = 0; i < out.length; i++) out[i] = java.util.Arrays.copyOfRange(all, i * v, (i + 1) * v);
            return out;
        }
    }

    /** Writes REPORT.logits.safetensors next to the report; returns its file name. */
    static String save(Path report, Evaluator.Report r) {
        int n = r.predictions().size(), v = r.predictions().get(0).logits().length;
        float[] all = new float[n * v];
        for (int i = 0; i < n; i++) System.arraycopy(r.predictions().get(i).logits(), 0, all, i * v, v);
        String name = report.getFileName().toString().replaceFirst("\\.json$", "") + ".logits.safetensors";
        new SafeTensorsWriter().addF32("logits", new long[]{n, v}, all).write(report.toAbsolutePath().resolveSibling(name));
        return name;
    }
}
