package dev.qvlm.eval;

/** KL(P‖Q) between the softmax distributions of two logits rows (full vocabulary), in nats. */
public final class Kl {
    private Kl() {}

    public static double kl(float[] pLogits, float[] qLogits) {
        if (pLogits.length != qLogits.length) throw new IllegalArgumentException("vocabularies differ");
        double[] lp = logSoftmax(pLogits), lq = logSoftmax(qLogits);
        double s = 0;
        for (int i = 0; i < lp.length; i++) {
            double p = Math.exp(lp[i]);
            if (p > 0) s += p * (lp[i] - lq[i]);
        }
        return Math.max(0, s);
    }

    static double[] logSoftmax(float[] x) {
        double max = Double.NEGATIVE_INFINITY;
        for (float v : x) max = Math.max(max, v);
        double sum = 0;
        for (float v : x) sum += Math.exp(v - max);
        double lse = max + Math.log(sum);
        double[] out = new double[x.length];
        for (int i = 0; i < x.length; i++) out[i] = x[i] - lse;
        return out;
    }
}
