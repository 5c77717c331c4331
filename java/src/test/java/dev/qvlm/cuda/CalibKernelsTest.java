package dev.qvlm.cuda;

import dev.qvlm.calib.Entropy;
import dev.qvlm.quant.QuantArgs;
import dev.qvlm.quant.WeightQuantizer;
import dev.qvlm.tensor.F32Matrix;
import dev.qvlm.tensor.Matrix;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/** The Java references of the calibration kernels against the calibrator's own code (CPU; no GPU needed). */
class CalibKernelsTest {
    static float[] gauss(long seed, int n, double scale) {
        Random r = new Random(seed);
        float[] x = new float[n];
        for (int i = 0; i < n; i++) x[i] = (float) (r.nextGaussian() * scale);
        return x;
    }

    @Test
    void minMaxIgnoresNaNs() {
        assertArrayEquals(new float[]{-3f, 5f}, CalibKernels.minMaxReference(new float[]{1f, Float.NaN, -3f, 5f}));
        float[] empty = CalibKernels.minMaxReference(new float[0]);
        assertEquals(Float.POSITIVE_INFINITY, empty[0]);
        assertEquals(Float.NEGATIVE_INFINITY, empty[1]);
    }

    @Test
    void jointSumsReproduceEntropyDependency() {
        float[] a = gauss(1, 20000, 1.0), b = new float[a.length];
        float[] noise = gauss(2, a.length, 0.3);
        for (int i = 0; i < a.length; i++) b[i] = 0.8f * a[i] + noise[i];
        for (int bits : new int[]{2, 4, 6}) {
            int M = 1 << bits;
            Entropy.Levels la = new Entropy.Levels(-3, 3, M), lb = new Entropy.Levels(-2.5, 2.7, M);
            Entropy.Dependency want = Entropy.dependency(List.of(a), List.of(b), la, lb);
            Entropy.Dependency got = CalibKernels.dependency(CalibKernels.jointSums(a, b, la, lb), a.length, M, M);
            for (int i = 0; i < M * M; i++) assertEquals(want.joint()[i], got.joint()[i], 1e-5, "bin " + i);
            assertEquals(want.conditionalEntropy(), got.conditionalEntropy(), 1e-4, bits + " bits");
            assertEquals(want.entropyA(), got.entropyA(), 1e-4);
            assertEquals(want.entropyB(), got.entropyB(), 1e-4);
            assertTrue(CalibKernels.histogramSupported(M, M));
        }
        assertFalse(CalibKernels.histogramSupported(256, 256), "8-bit levels stay on the CPU");
    }

    @Test
    void scoresAreTheOutputErrorOfTheQuantizersOwnFakeQuant() {
        int T = 7, N = 9, K = 256;
        float[] x = gauss(3, T * K, 1), wv = gauss(4, N * K, 0.05);
        Matrix w = new F32Matrix(N, K, wv);
        float[] yref = new float[T * N];
        dev.qvlm.cpu.Matmul.matmulScalar(yref, 0, x, 0, T, w, null);
        double[] clips = {1.0, 0.99, 0.95, 0.9};
        for (QuantArgs a : new QuantArgs[]{QuantArgs.perGroup(4, false, 128), QuantArgs.perChannel(3, true)}) {
            CalibKernels.Candidates c = CalibKernels.candidates(w, a, clips);
            double[] got = CalibKernels.scoreReference(x, T, w, yref, c);
            double ref2 = 0;
            for (float v : yref) ref2 += (double) v * v;
            assertEquals(ref2, got[clips.length], 1e-9 * ref2);
            for (int i = 0; i < clips.length; i++) {
                Matrix q = WeightQuantizer.prepare(w, a).quantize(clips[i]).toMatrix();
                float[] y = new float[T * N];
                dev.qvlm.cpu.Matmul.matmulScalar(y, 0, x, 0, T, q, null);
                double sse = 0;
                for (int j = 0; j < y.length; j++) sse += ((double) y[j] - yref[j]) * ((double) y[j] - yref[j]);
                assertEquals(sse, got[i], 1e-4 * sse + 1e-9, a + " clip " + clips[i]);
            }
            assertTrue(got[0] > 0);
        }
        assertThrows(IllegalArgumentException.class, () -> CalibKernels.candidates(w, QuantArgs.perChannel(4, false), new double[17]));
    }
}
