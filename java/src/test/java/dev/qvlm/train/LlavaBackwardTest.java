package dev.qvlm.train;

import dev.qvlm.TestPaths;
import dev.qvlm.backend.Backend;
import dev.qvlm.backend.Tensor;
import dev.qvlm.calib.CalibData;
import dev.qvlm.calib.CalibSample;
import dev.qvlm.cpu.CpuBackend;
import dev.qvlm.model.Linear;
import dev.qvlm.model.LlavaModel;
import dev.qvlm.model.LlavaWeights;
import dev.qvlm.runtime.Llava;
import dev.qvlm.tensor.F32Matrix;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Random;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The whole-model backward on the bundled model against a directional derivative: for a random direction u over
 * every vision-tower and projector parameter (linear weights and biases, LayerNorm γ and β), the gradient's
 * projection ⟨∇L, u⟩ must match (L(θ + hu) − L(θ − hu)) / 2h, with L = ⟨R, logits⟩ + ⟨S, features⟩ for random
 * R (a few answer-side positions) and S. The forward is FP32, so the difference quotient is taken at two steps
 * and extrapolated (Richardson); tolerance 1 % of |⟨∇L, u⟩|. The gradient flows through the frozen LLM, the
 * splice and the projector into the vision layers, as VEO uses it.
 */
class LlavaBackwardTest {
    /** One trainable array and the way to write it back into the model. */
    private record Param(Object key, float[] value, Runnable commit) {}

    @Test
    void directionalDerivativeOfTheWholeModel() {
        try (Llava llava = Llava.open(TestPaths.tinyModel(), new CpuBackend())) {
            LlavaModel model = llava.model();
            Backend be = model.backend();
            CalibSample s = CalibData.load(llava, TestPaths.data().resolve("calib.jsonl"), 1, 3).get(0);
            LlavaBackward bw = new LlavaBackward(model);
            model.setHooks(bw.hooks());

            List<Param> params = new ArrayList<>();
            List<Linear> linears = new ArrayList<>();
            for (int i = 0; i < model.config().visionFeatureLayer(); i++) {
                LlavaWeights.ClipLayer l = model.weights().vision.layers()[i];
                linears.addAll(List.of(l.q(), l.k(), l.v(), l.out(), l.fc1(), l.fc2()));
                for (float[] a : List.of(l.ln1Weight(), l.ln1Bias(), l.ln2Weight(), l.ln2Bias())) params.add(new Param(a, a, () -> {}));
            }
            linears.add(model.weights().projector.linear1());
            linears.add(model.weights().projector.linear2());
            for (Linear l : linears) {
                float[] w = l.weight().toFloatArray();
                params.add(new Param(l, w, () -> l.setWeight(new F32Matrix(l.out(), l.in(), w.clone()))));
                params.get(params.size() - 1).commit().run();
                if (l.bias() != null) params.add(new Param(l.bias(), l.bias(), () -> {}));
            }
            Set<Object> keys = Collections.newSetFromMap(new IdentityHashMap<>());
            for (Param p : params) keys.add(p.key());

            Random rnd = new Random(11);
            int n = s.ids().length, V = model.config().text().vocabSize();
            float[] R = new float[n * V];
            for (int t = n - 4; t < n; t++) for (int v = 0; v < V; v++) R[t * V + v] = (float) rnd.nextGaussian();
            LlavaBackward.Tape tape = bw.forward(s.ids(), s.pixels());
            float[] S = new float[tape.features.rows() * tape.features.cols()];
            for (int i = 0; i < S.length; i++) S[i] = (float) (0.1 * rnd.nextGaussian());

            Grads g = new Grads(keys);
            bw.backward(tape, be.upload(R, n, V), null, be.upload(S, tape.features.rows(), tape.features.cols()), g, null);
            List<float[]> dir = new ArrayList<>();
            double analytic = 0, norm = 0;
            for (Param p : params) {
                float[] u = new float[p.value().length], gr = g.get(p.key());
                for (int i = 0; i < u.length; i++) {
                    u[i] = (float) rnd.nextGaussian();
                    norm += (double) u[i] * u[i];
                    if (gr != null) analytic += (double) gr[i] * u[i];
                }
                dir.add(u);
            }
            double scale = 1 / Math.sqrt(norm);
            analytic *= scale;
            assertTrue(Math.abs(analytic) > 1e-3, "a gradient reaches the vision tower: " + analytic);

            java.util.function.DoubleUnaryOperator loss = h -> {
                float[][] saved = new float[params.size()][];
                for (int k = 0; k < params.size(); k++) {
                    Param p = params.get(k);
                    saved[k] = p.value().clone();
                    for (int i = 0; i < p.value().length; i++) p.value()[i] += (float) (h * scale * dir.get(k)[i]);
                    p.commit().run();
                }
                LlavaBackward.Tape tp = bw.forward(s.ids(), s.pixels());
                double l = dot(be.download(tp.logits), R) + dot(be.download(tp.features), S);
                for (int k = 0; k < params.size(); k++) {
                    System.arraycopy(saved[k], 0, params.get(k).value(), 0, saved[k].length);
                    params.get(k).commit().run();
                }
                return l;
            };
            double h = 2e-2;
            double d1 = (loss.applyAsDouble(h) - loss.applyAsDouble(-h)) / (2 * h);
            double d2 = (loss.applyAsDouble(h / 2) - loss.applyAsDouble(-h / 2)) / h;
            double fd = (4 * d2 - d1) / 3; // Richardson: cancels the O(h²) term
            assertEquals(fd, analytic, 0.01 * Math.abs(analytic), "directional derivative: FD " + fd + " (h: " + d1 + ", h/2: " + d2 + ") vs backward " + analytic);
            model.setHooks(null);
        }
    }

    private static double dot(float[] a, float[] b) {
        double s = 0;
        for (int i = 0; i < a.length; i++) s += (double) a[i] * b[i];
        return s;
    }
}
