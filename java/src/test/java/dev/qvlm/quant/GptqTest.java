package dev.qvlm.quant;

import dev.qvlm.tensor.F32Matrix;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * GPTQ against a direct implementation of its update rule (paper Eq. 2–3, the OBS step: quantize column q, spread
 * the error over the remaining columns F with H_F⁻¹, then remove q from H_F⁻¹ by one Gaussian elimination step),
 * written here without Cholesky factors, lazy batches or tiling; and its output error against round-to-nearest.
 */
class GptqTest {
    /** Direct GPTQ: explicit inverse of the dampened H, updated after every column. */
    static byte[] direct(float[] w, Grid grid, double[] h, double percDamp, boolean actOrder) {
        int R = grid.rows(), C = grid.cols();
        double[] hd = h.clone();
        double mean = 0;
        for (int i = 0; i < C; i++) mean += hd[i * C + i] / C;
        for (int i = 0; i < C; i++) hd[i * C + i] += percDamp * mean;
        int[] order = Gptq.order(h, C, actOrder);
        byte[] codes = new byte[R * C];
        for (int r = 0; r < R; r++) {
            double[] hinv = invert(hd, C);
            double[] x = new double[C];
            for (int j = 0; j < C; j++) x[j] = w[r * C + j];
            boolean[] done = new boolean[C];
            for (int q : order) {
                int code = grid.code(r, q, x[q]);
                codes[r * C + q] = (byte) code;
                double e = (x[q] - grid.value(r, q, code)) / hinv[q * C + q];
                done[q] = true;
                for (int j = 0; j < C; j++) if (!done[j]) x[j] -= e * hinv[j * C + q];
                // H_F⁻¹ ← H_F⁻¹ − H⁻¹[:, q] H⁻¹[q, :] / H⁻¹[q, q]
                double[] next = hinv.clone();
                double d = hinv[q * C + q];
                for (int i = 0; i < C; i++)
                    for (int j = 0; j < C; j++) next[i * C + j] -= hinv[i * C + q] * hinv[q * C + j] / d;
                hinv = next;
            }
        }
        return codes;
    }

    /** Gauss–Jordan inverse with partial pivoting. */
    static double[] invert(double[] a, int n) {
        double[] m = a.clone(), inv = new double[n * n];
        for (int i = 0; i < n; i++) inv[i * n + i] = 1;
        for (int c = 0; c < n; c++) {
            int p = c;
            for (int i = c + 1; i < n; i++) if (Math.abs(m[i * n + c]) > Math.abs(m[p * n + c])) p = i;
            for (int j = 0; j < n; j++) {
                double t = m[c * n + j]; m[c * n + j] = m[p * n + j]; m[p * n + j] = t;
                t = inv[c * n + j]; inv[c * n + j] = inv[p * n + j]; inv[p * n + j] = t;
            }
            double d = m[c * n + c];
            for (int j = 0; j < n; j++) {
                m[c * n + j] /= d;
                inv[c * n + j] /= d;
            }
            for (int i = 0; i < n; i++) {
                if (i == c) continue;
                double f = m[i * n + c];
                if (f == 0) continue;
                for (int j = 0; j < n; j++) {
                    m[i * n + j] -= f * m[c * n + j];
                    inv[i * n + j] -= f * inv[c * n + j];
                }
            }
        }
        return inv;
    }

    /** Inputs with a few outlier channels (×20), as LLM activations have; [tokens × cols]. */
    static float[] inputs(Random rnd, int tokens, int cols) {
        float[] x = new float[tokens * cols];
        for (int t = 0; t < tokens; t++)
            for (int c = 0; c < cols; c++) x[t * cols + c] = (float) (rnd.nextGaussian() * (c % 13 == 5 ? 20 : 1) + (c % 7 == 0 ? 0.5 : 0));
        return x;
    }

    static float[] weights(Random rnd, int rows, int cols) {
        float[] w = new float[rows * cols];
        for (int i = 0; i < w.length; i++) w[i] = (float) (rnd.nextGaussian() * 0.05 + (rnd.nextInt(200) == 0 ? 0.4 : 0));
        return w;
    }

    @Test
    void sameCodesAsTheDirectUpdateRule() {
        Random rnd = new Random(7);
        int rows = 12, cols = 48, tokens = 96;
        float[] w = weights(rnd, rows, cols);
        double[] h = InputStats.gram(List.of(inputs(rnd, tokens, cols)), cols);
        for (int i = 0; i < h.length; i++) h[i] *= 2; // H = 2XXᵀ
        for (QuantArgs a : List.of(QuantArgs.perChannel(4, false), QuantArgs.perGroup(3, false, 16), QuantArgs.perChannel(3, true)))
            for (boolean actOrder : new boolean[]{false, true})
                for (int block : new int[]{128, 5}) {
                    Grid grid = WeightQuantizer.prepare(new F32Matrix(rows, cols, w), a).grid(1.0, null);
                    byte[] got = Gptq.quantize(w, grid, h, new Gptq.Options(block, 0.01, actOrder)).codes();
                    byte[] want = direct(w, grid, h, 0.01, actOrder);
                    assertArrayEquals(want, got, a + " act-order " + actOrder + " block " + block);
                }
    }

    @Test
    void outputErrorNeverAboveRoundToNearest() {
        for (int seed = 0; seed < 6; seed++) {
            Random rnd = new Random(100 + seed);
            int rows = 32, cols = 64 + 32 * (seed % 3), tokens = 256;
            float[] w = weights(rnd, rows, cols);
            List<float[]> xs = new ArrayList<>(List.of(inputs(rnd, tokens, cols)));
            double[] g = InputStats.gram(xs, cols);
            QuantArgs a = seed % 2 == 0 ? QuantArgs.perGroup(4, false, 32) : QuantArgs.perChannel(3, false);
            Grid grid = WeightQuantizer.prepare(new F32Matrix(rows, cols, w), a).grid(1.0, null);
            double rtn = error(w, grid.round(w), g, rows, cols);
            for (boolean actOrder : new boolean[]{false, true}) {
                double gptq = error(w, Gptq.quantize(w, grid, g, new Gptq.Options(128, 0.01, actOrder)), g, rows, cols);
                assertTrue(gptq <= rtn, "seed " + seed + " act-order " + actOrder + ": GPTQ " + gptq + " > RTN " + rtn);
            }
        }
    }

    static double error(float[] w, QuantizedWeight q, double[] g, int rows, int cols) {
        float[] d = q.dequantize();
        double[] dw = new double[w.length];
        for (int i = 0; i < w.length; i++) dw[i] = d[i] - w[i];
        return InputStats.outputError(dw, rows, cols, g);
    }
}
