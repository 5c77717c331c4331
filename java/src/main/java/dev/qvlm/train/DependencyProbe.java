package dev.qvlm.train;

import dev.qvlm.backend.Backend;
import dev.qvlm.backend.Tensor;
import dev.qvlm.calib.CalibSample;
import dev.qvlm.calib.Entropy;
import dev.qvlm.cpu.Parallel;
import dev.qvlm.model.ForwardHooks;
import dev.qvlm.model.Linear;
import dev.qvlm.model.LlavaModel;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.IntStream;

/**
 * D(k, k+1) between consecutive layer outputs of the model as it stands (quantized or not), per stack, over a set
 * of prompts: the hard-pooled estimate of {@link Entropy#dependency} with M = 2^bits levels over each layer's
 * output range. Used for VEO's "D per layer before / after" and the mean-D column of the ablation.
 */
public final class DependencyProbe {
    private DependencyProbe() {}

    /** {"vision": D(0,1), D(1,2), ...; "llm": ...}. */
    public static Map<String, double[]> measure(LlavaModel model, List<CalibSample> samples, int levelsBits) {
        Backend be = model.backend();
        ThreadHooks th = new ThreadHooks();
        ForwardHooks was = model.hooks();
        model.setHooks(th);
        int Lv = model.config().visionFeatureLayer(), L = model.config().text().numLayers();
        float[][][] vis = new float[samples.size()][Lv][], llm = new float[samples.size()][L][];
        try {
            IntStream.range(0, samples.size()).parallel().forEach(s -> Parallel.serial(() -> th.with(new ForwardHooks() {
                @Override
                public void layerOutput(Linear.Part stack, int layer, Tensor hidden) {
                    if (stack == Linear.Part.VISION) vis[s][layer] = be.download(hidden);
                    else llm[s][layer] = be.download(hidden);
                }
            }, () -> {
                CalibSample c = samples.get(s);
                Tensor img = c.pixels() == null ? null : model.encodeImage(c.pixels());
                return model.forwardHidden(model.newCache(c.ids().length), c.ids(), img);
            })));
        } finally {
            model.setHooks(was);
        }
        Map<String, double[]> out = new LinkedHashMap<>();
        out.put("vision", pairs(vis, Lv, levelsBits));
        out.put("llm", pairs(llm, L, levelsBits));
        return out;
    }

    private static double[] pairs(float[][][] outs, int layers, int bits) {
        double[] d = new double[Math.max(0, layers - 1)];
        for (int k = 0; k + 1 < layers; k++) {
            List<float[]> a = new ArrayList<>(), b = new ArrayList<>();
            for (float[][] s : outs) {
                a.add(s[k]);
                b.add(s[k + 1]);
            }
            d[k] = Entropy.dependency(a, b, levels(a, bits), levels(b, bits)).conditionalEntropy();
        }
        return d;
    }

    static Entropy.Levels levels(List<float[]> xs, int bits) {
        double lo = Double.POSITIVE_INFINITY, hi = Double.NEGATIVE_INFINITY;
        for (float[] x : xs) for (float v : x) {
            lo = Math.min(lo, v);
            hi = Math.max(hi, v);
        }
        return new Entropy.Levels(lo, hi, 1 << bits);
    }

    /** Mean over every listed pair of every stack. */
    public static double mean(Map<String, double[]> d) {
        double s = 0;
        int n = 0;
        for (double[] v : d.values()) for (double x : v) {
            s += x;
            n++;
        }
        return n == 0 ? Double.NaN : s / n;
    }
}
