package dev.qvlm.train;

import dev.qvlm.QvlmException;
import dev.qvlm.backend.Backend;
import dev.qvlm.backend.Tensor;
import dev.qvlm.calib.CalibData;
import dev.qvlm.calib.CalibSample;
import dev.qvlm.calib.Entropy;
import dev.qvlm.calib.Calibrator;
import dev.qvlm.calib.Method;
import dev.qvlm.calib.QuantSettings;
import dev.qvlm.cpu.Parallel;
import dev.qvlm.eval.McQuestion;
import dev.qvlm.model.ForwardHooks;
import dev.qvlm.model.Linear;
import dev.qvlm.model.LlavaModel;
import dev.qvlm.model.LlavaWeights;
import dev.qvlm.quant.WeightQuantizer;
import dev.qvlm.runtime.Llava;
import dev.qvlm.tensor.F32Matrix;
import dev.qvlm.tensor.Matrix;

import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.function.Consumer;
import java.util.stream.IntStream;

/**
 * Q-VLM's visual-encoder optimisation (paper §3.3, Eq. 8–10; our reading in docs/veo.md). The model is first
 * quantized with min–max bounds (RTN) in the given setting, so that the LLM and projector are frozen and
 * fake-quantized as the deployed model will be; the vision tower is then fine-tuned, its weights fake-quantized
 * with a straight-through estimator at every step, to minimise L = L_reg + λ1·L_ent + λ2·L_err:
 * <ul>
 * <li>L_reg: cross-entropy of the answer token at the answer position;</li>
 * <li>L_ent (Eq. 8): Σ_k w_k·D(k, k+1) over the decoder layers, D the soft conditional entropy pooled over the
 * batch, w_k = ‖∂E/∂X_k‖ (E the output error below) computed once per batch and held constant;</li>
 * <li>L_err (Eq. 9): ‖F_q − F‖/‖F‖ + η·‖Z_q − Z‖/‖Z‖, F the image features, Z the logits of the positions from the
 * first image token on, against the full-precision model's.</li>
 * </ul>
 * At the end every linear is back in full precision, the tuned vision weights in place (FP32), and the caller runs
 * the real calibration (partition and search, or RTN) on the tuned tower.
 */
public final class Veo {
    private final LlavaModel model;
    private final Backend backend;
    private final QuantSettings st;
    private final VeoSettings vs;
    private final Consumer<String> log;
    private final LlavaBackward bw;
    /** L_ent pools every 4th element of the layer outputs (a different quarter each step): see SoftDependency. */
    static final int ENTROPY_STRIDE = 4;

    private Veo(LlavaModel model, QuantSettings st, VeoSettings vs, Consumer<String> log) {
        this.model = model;
        this.backend = model.backend();
        this.st = st;
        this.vs = vs;
        this.log = log == null ? s -> {} : log;
        this.bw = new LlavaBackward(model);
    }

    /** One calibration pair: the prompt and the token of its answer letter. */
    record Pair(CalibSample prompt, int answerToken) {}

    /** The answer letter's token as the model would emit it after the prompt (the evaluation's single-letter format). */
    static Pair pair(Llava llava, McQuestion q) {
        CalibSample s = CalibData.sample(llava, q);
        String letter = String.valueOf(McQuestion.LETTERS.charAt(q.answer()));
        int[] full = llava.promptIds(q.prompt() + " " + letter);
        int n = s.ids().length;
        if (full.length <= n || !java.util.Arrays.equals(java.util.Arrays.copyOf(full, n), s.ids()))
            throw new QvlmException("calibration row " + q.id() + ": the answer '" + letter + "' does not tokenize as a continuation of the prompt");
        return new Pair(s, full[n]);
    }

    public static VeoReport run(Llava llava, List<McQuestion> rows, QuantSettings st, VeoSettings vs, Consumer<String> log) {
        List<Pair> pairs = new ArrayList<>();
        for (McQuestion q : rows) {
            if (q.image() == null) throw new QvlmException("--veo: calibration row " + q.id() + " has no image; VEO trains on image–text pairs");
            pairs.add(pair(llava, q));
        }
        Veo v = new Veo(llava.model(), st, vs, log);
        return v.train(pairs);
    }

    // ------------------------------------------------------------------ parameters

    private final List<Linear> tuned = new ArrayList<>();
    private final Map<Linear, float[]> master = new IdentityHashMap<>();
    private final List<float[]> inPlace = new ArrayList<>(); // biases and LayerNorm vectors (trained in the model's arrays)
    private final Set<Object> trainable = Collections.newSetFromMap(new IdentityHashMap<>());

    private void collectParameters() {
        LlavaWeights.ClipLayer[] layers = model.weights().vision.layers();
        for (int i = 0; i < model.config().visionFeatureLayer(); i++) {
            LlavaWeights.ClipLayer l = layers[i];
            for (Linear lin : List.of(l.q(), l.k(), l.v(), l.out(), l.fc1(), l.fc2())) {
                tuned.add(lin);
                trainable.add(lin);
                if (vs.params() == VeoSettings.Params.ALL && lin.bias() != null) inPlace.add(lin.bias());
            }
            if (vs.params() == VeoSettings.Params.ALL) inPlace.addAll(List.of(l.ln1Weight(), l.ln1Bias(), l.ln2Weight(), l.ln2Bias()));
        }
        trainable.addAll(inPlace);
    }

    private boolean visionWeightsQuantized() {
        return st.weights() != null && st.scope().contains(Linear.Part.VISION);
    }

    /** Puts fake-quant(master) (or the FP32 master when vision weights stay FP) into each tuned linear. */
    private void applyWeights(boolean quantize) {
        tuned.parallelStream().forEach(l -> {
            Matrix m = new F32Matrix(l.out(), l.in(), master.get(l).clone());
            l.setWeight(quantize && visionWeightsQuantized() ? WeightQuantizer.quantize(m, st.weights(), 1.0).toMatrix() : m);
        });
    }

    // ------------------------------------------------------------------ driver

    private VeoReport train(List<Pair> pairs) {
        long t0 = System.nanoTime();
        VeoReport rep = new VeoReport();
        rep.settings = vs;
        rep.pairs = pairs.size();
        List<Linear> all = model.weights().linears();
        Map<Linear, Matrix> origW = new IdentityHashMap<>();
        for (Linear l : all) {
            if (l.inputQuantizer() != null) throw new IllegalStateException(l.name() + " is already quantized");
            origW.put(l, l.weight());
        }
        collectParameters();
        for (Linear l : tuned) master.put(l, l.weight().toFloatArray());
        rep.trainableParameters = tuned.stream().mapToLong(l -> (long) l.in() * l.out()).sum() + inPlace.stream().mapToLong(a -> a.length).sum();
        rep.trains = vs.params() == VeoSettings.Params.ALL ? "vision linear weights, biases and LayerNorms" : "vision linear weights";
        List<CalibSample> prompts = pairs.stream().map(Pair::prompt).toList();
        ForwardHooks was = model.hooks();
        try {
            // 1. full-precision targets
            model.setHooks(bw.hooks());
            int S = pairs.size();
            float[][] fpFeat = new float[S][], fpOut = new float[S][];
            int[] correct = new int[1];
            parallel(S, s -> {
                LlavaBackward.Tape t = bw.forward(pairs.get(s).prompt().ids(), pairs.get(s).prompt().pixels());
                fpFeat[s] = backend.download(t.features);
                fpOut[s] = outputRows(t);
                float[] last = backend.download(backend.view(t.logits, t.ids.length - 1, 1));
                if (dev.qvlm.generate.Sampler.argmax(last, 0, last.length) == pairs.get(s).answerToken()) synchronized (correct) {
                    correct[0]++;
                }
            });
            rep.fpAnswerAccuracy = (double) correct[0] / S;
            log.accept(String.format("  VEO: full-precision targets of %d pairs (FP answers %.1f %% of them), %.1f s", S, 100.0 * correct[0] / S, secs(t0)));

            // 2. the quantized model VEO trains through: min-max bounds in the given setting
            QuantSettings rtn = new QuantSettings(Method.RTN, st.weights(), st.activations(), st.actDynamic(), st.scope(),
                    new double[]{1.0}, Double.NaN, st.maxBlock(), st.maxSweeps(), st.exhaustiveLimit(), st.entropyLevelsBits(), false, 2);
            new Calibrator(model, rtn, prompts, false, null).run();
            applyWeights(true);
            Runnable recalibrate = () -> {
                for (Linear l : all) {
                    l.setInputQuantizer(null);
                    l.setWeight(origW.get(l));
                }
                applyWeights(false);
                new Calibrator(model, rtn, prompts, false, null).run();
                applyWeights(true);
                model.setHooks(bw.hooks());
            };
            rep.dependencyBefore = DependencyProbe.measure(model, prompts, st.entropyLevelsBits());
            model.setHooks(bw.hooks());
            log.accept(String.format("  VEO: min-max quantized model ready, %.1f s", secs(t0)));

            // 3. Adam over the pairs
            Adam adam = new Adam(vs.lr());
            Random rnd = new Random(vs.seed());
            List<Integer> order = new ArrayList<>();
            for (int i = 0; i < S; i++) order.add(i);
            int step = 0;
            for (int ep = 0; ep < vs.epochs(); ep++) {
                if (vs.recalibrate() > 0 && ep > 0 && ep % vs.recalibrate() == 0) {
                    long tr = System.nanoTime();
                    recalibrate.run();
                    phase(rep, "recalibration", tr);
                }
                Collections.shuffle(order, rnd);
                double[] sum = new double[5];
                int batches = 0;
                for (int b0 = 0; b0 < S; b0 += vs.batch()) {
                    List<Integer> batch = order.subList(b0, Math.min(S, b0 + vs.batch()));
                    VeoReport.Step r = step(ep, step++, batch, pairs, fpFeat, fpOut, adam, rep);
                    rep.steps.add(r);
                    sum[0] += r.reg();
                    sum[1] += r.ent();
                    sum[2] += r.errVision();
                    sum[3] += r.errOutput();
                    sum[4] += r.total();
                    batches++;
                }
                VeoReport.Step e = new VeoReport.Step(ep, step, sum[0] / batches, sum[1] / batches, sum[2] / batches, sum[3] / batches, sum[4] / batches);
                rep.epochs.add(e);
                log.accept(String.format("  VEO epoch %d/%d: L_reg %.4f  L_ent %.4f  err_vis %.4f  err_out %.4f  total %.4f  (%.0f s)",
                        ep + 1, vs.epochs(), e.reg(), e.ent(), e.errVision(), e.errOutput(), e.total(), secs(t0)));
                trackMemory(rep);
            }
            applyWeights(true);
            rep.dependencyAfter = DependencyProbe.measure(model, prompts, st.entropyLevelsBits());
        } finally {
            // back to full precision everywhere, the tuned tower in place
            for (Linear l : all) {
                l.setInputQuantizer(null);
                l.setWeight(origW.get(l));
            }
            if (!master.isEmpty()) applyWeights(false);
            model.setHooks(was);
        }
        rep.seconds = secs(t0);
        trackMemory(rep);
        return rep;
    }

    private static double secs(long t0) {
        return (System.nanoTime() - t0) / 1e9;
    }

    private static void trackMemory(VeoReport rep) {
        Runtime rt = Runtime.getRuntime();
        rep.peakHeapMB = Math.max(rep.peakHeapMB, (rt.totalMemory() - rt.freeMemory()) >> 20);
    }

    /** One sample per task, kernels serial inside (as calibration does). */
    private static void parallel(int n, java.util.function.IntConsumer f) {
        IntStream.range(0, n).parallel().forEach(i -> Parallel.serial(() -> {
            f.accept(i);
            return null;
        }));
    }

    /** First row of the model output the error term looks at: the first image token (earlier rows do not see the image). */
    private int firstImageRow(int[] ids) {
        for (int i = 0; i < ids.length; i++) if (ids[i] == model.config().imageTokenIndex()) return i;
        return 0;
    }

    private float[] outputRows(LlavaBackward.Tape t) {
        int f = firstImageRow(t.ids);
        return backend.download(backend.view(t.logits, f, t.ids.length - f));
    }

    /** ‖q − t‖ / ‖t‖ and its gradient with respect to q, scaled by {@code w}. */
    private static double relErr(float[] q, float[] t, double w, float[] grad) {
        double d2 = 0, t2 = 0;
        for (int i = 0; i < q.length; i++) {
            double d = q[i] - t[i];
            d2 += d * d;
            t2 += (double) t[i] * t[i];
        }
        double dn = Math.sqrt(d2), tn = Math.sqrt(Math.max(t2, 1e-30));
        if (grad != null && dn > 0) for (int i = 0; i < q.length; i++) grad[i] = (float) (w * (q[i] - t[i]) / (dn * tn));
        return dn / tn;
    }

    private VeoReport.Step step(int ep, int stepNo, List<Integer> batch, List<Pair> pairs, float[][] fpFeat, float[][] fpOut,
                                Adam adam, VeoReport rep) {
        long tp = System.nanoTime();
        applyWeights(true);
        int B = batch.size(), L = model.config().text().numLayers(), V = model.config().text().vocabSize();
        LlavaBackward.Tape[] tapes = new LlavaBackward.Tape[B];
        parallel(B, j -> tapes[j] = bw.forward(pairs.get(batch.get(j)).prompt().ids(), pairs.get(batch.get(j)).prompt().pixels()));
        tp = phase(rep, "forward", tp);
        double reg = 0, errV = 0, errO = 0;
        Tensor[] dLogits = new Tensor[B], dFeat = new Tensor[B], dOutOnly = new Tensor[B];
        for (int j = 0; j < B; j++) {
            LlavaBackward.Tape t = tapes[j];
            int s = batch.get(j), n = t.ids.length, f = firstImageRow(t.ids);
            float[] dl = new float[n * V];
            // L_reg: cross-entropy of the answer token at the last prompt position
            float[] last = backend.download(backend.view(t.logits, n - 1, 1));
            double max = Double.NEGATIVE_INFINITY, z = 0;
            for (float x : last) max = Math.max(max, x);
            for (float x : last) z += Math.exp(x - max);
            int ans = pairs.get(s).answerToken();
            reg += (Math.log(z) + max - last[ans]) / B;
            for (int v = 0; v < V; v++) dl[(n - 1) * V + v] = (float) (Math.exp(last[v] - max) / z / B);
            dl[(n - 1) * V + ans] -= (float) (1.0 / B);
            // L_err at the model output (η) and at the vision output
            float[] out = outputRows(t), gOut = new float[out.length];
            errO += relErr(out, fpOut[s], 1.0, gOut) / B;
            float[] onlyOut = new float[n * V];
            for (int i = 0; i < gOut.length; i++) {
                dl[f * V + i] += (float) (vs.lambda2() * vs.eta() / B * gOut[i]);
                onlyOut[f * V + i] = gOut[i];
            }
            dOutOnly[j] = backend.upload(onlyOut, n, V);
            dLogits[j] = backend.upload(dl, n, V);
            float[] feat = backend.download(t.features), gF = new float[feat.length];
            errV += relErr(feat, fpFeat[s], vs.lambda2() / B, gF) / B;
            dFeat[j] = backend.upload(gF, t.features.rows(), t.features.cols());
        }
        // L_ent: w_k = ‖∂E/∂X_k‖ over the batch (constant), D(k, k+1) soft and pooled over the batch
        double ent = 0;
        Tensor[][] dText = new Tensor[B][];
        if (vs.lambda1() > 0 && L > 1) {
            double[][] nsq = new double[B][L];
            parallel(B, j -> bw.backward(tapes[j], dOutOnly[j], null, null, new Grads(Set.of()), nsq[j]));
            tp = phase(rep, "entropy weights (output-error backward)", tp);
            double[] w = new double[L - 1];
            double wm = 0;
            for (int k = 0; k < L - 1; k++) {
                for (int j = 0; j < B; j++) w[k] += nsq[j][k];
                w[k] = Math.sqrt(w[k]);
                wm += w[k] / (L - 1);
            }
            for (int k = 0; k < L - 1; k++) w[k] = wm > 0 ? w[k] / wm : 1;
            rep.entropyWeights = w;
            float[][][] outs = new float[B][L][];
            for (int j = 0; j < B; j++) for (int k = 0; k < L; k++) outs[j][k] = backend.download(tapes[j].textOut(k));
            Entropy.Levels[] lv = new Entropy.Levels[L];
            for (int k = 0; k < L; k++) {
                List<float[]> xs = new ArrayList<>();
                for (float[][] o : outs) xs.add(o[k]);
                lv[k] = DependencyProbe.levels(xs, st.entropyLevelsBits());
            }
            double[] c = new double[L - 1];
            for (int k = 0; k < L - 1; k++) c[k] = vs.lambda1() * w[k];
            SoftDependency.Result r = SoftDependency.compute(outs, lv, c, ENTROPY_STRIDE, stepNo % ENTROPY_STRIDE);
            for (int k = 0; k < L - 1; k++) ent += w[k] * r.d()[k];
            int D = model.config().text().hiddenSize();
            for (int j = 0; j < B; j++) {
                dText[j] = new Tensor[L];
                for (int k = 0; k < L; k++) dText[j][k] = backend.upload(r.grad()[j][k], tapes[j].ids.length, D);
            }
        }
        if (vs.lambda1() > 0) tp = phase(rep, "soft D and its gradient", tp);
        // the full backward, one sample per task, then one Adam step on the summed gradients
        Grads[] gs = new Grads[B];
        parallel(B, j -> {
            gs[j] = new Grads(trainable);
            bw.backward(tapes[j], dLogits[j], dText[j], dFeat[j], gs[j], null);
        });
        Grads total = gs[0];
        for (int j = 1; j < B; j++) total.add(gs[j]);
        for (Linear l : tuned) adam.update(l, master.get(l), total.get(l));
        for (float[] a : inPlace) adam.update(a, a, total.get(a));
        adam.tick();
        phase(rep, "backward + Adam", tp);
        double tot = reg + vs.lambda1() * ent + vs.lambda2() * (errV + vs.eta() * errO);
        return new VeoReport.Step(ep, stepNo, reg, ent, errV, errO, tot);
    }

    private static long phase(VeoReport rep, String name, long t0) {
        long now = System.nanoTime();
        rep.phaseSeconds.merge(name, (now - t0) / 1e9, Double::sum);
        return now;
    }

    /** Adam (β1 0.9, β2 0.999, ε 1e-8), moments per parameter, keyed by identity. */
    static final class Adam {
        private final double lr;
        private final Map<Object, float[][]> moments = new IdentityHashMap<>();
        private int t = 1;

        Adam(double lr) {
            this.lr = lr;
        }

        void update(Object key, float[] p, float[] g) {
            if (g == null) return;
            float[][] mv = moments.computeIfAbsent(key, k -> new float[][]{new float[p.length], new float[p.length]});
            double b1 = 0.9, b2 = 0.999, c1 = 1 - Math.pow(b1, t), c2 = 1 - Math.pow(b2, t);
            for (int i = 0; i < p.length; i++) {
                mv[0][i] = (float) (b1 * mv[0][i] + (1 - b1) * g[i]);
                mv[1][i] = (float) (b2 * mv[1][i] + (1 - b2) * g[i] * g[i]);
                p[i] -= (float) (lr * (mv[0][i] / c1) / (Math.sqrt(mv[1][i] / c2) + 1e-8));
            }
        }

        void tick() {
            t++;
        }
    }
}
