package dev.qvlm.cuda;

import dev.qvlm.backend.Tensor;
import dev.qvlm.config.Activation;
import dev.qvlm.cpu.CpuBackend;
import dev.qvlm.model.Linear;
import dev.qvlm.tensor.F32Matrix;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.util.EnumMap;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Every kernel against {@link CpuBackend} on random inputs (GPU only; skipped with the reason elsewhere). Inputs are
 * rounded to FP16 first, so both sides start from the same values. Tolerances, max |Δ| ≤ tol · max(1, max |ref|):
 * FP16 activations 5e-3 (a few FP16 roundings of 4.9e-4 each), FP32 activations 1e-4 (FP32 reassociation only; GEMM
 * inputs are FP16-exact by construction).
 */
class CudaKernelsGpuTest {
    static final Map<Storage, CudaBackend> gpus = new EnumMap<>(Storage.class);
    static final CpuBackend cpu = new CpuBackend();

    @BeforeAll
    static void open() {
        if (CudaRuntime.probe() != null) return; // each test then skips with the reason
        for (Storage s : Storage.values()) gpus.put(s, CudaBackend.open(s));
        System.out.println("device: " + gpus.get(Storage.F16).name());
    }

    @BeforeEach
    void gpu() {
        GpuTests.requireGpu();
    }

    @AfterAll
    static void close() {
        gpus.values().forEach(CudaBackend::close);
    }

    static double tol(Storage s) {
        return s == Storage.F16 ? 5e-3 : 1e-4;
    }

    static float[] rand(long seed, int n, double scale) {
        Random r = new Random(seed);
        float[] x = new float[n];
        for (int i = 0; i < n; i++) x[i] = Half.toFloat(Half.fromFloat((float) (r.nextGaussian() * scale)));
        return x;
    }

    interface Op {
        void run(dev.qvlm.backend.Backend b, Tensor[] t);
    }

    /** Runs op on CPU and on each GPU storage with the same inputs; compares tensor {@code result}. */
    static void compare(String what, float[][] inputs, int[][] shapes, int result, Op op) {
        Tensor[] ct = new Tensor[inputs.length];
        for (int i = 0; i < inputs.length; i++) ct[i] = cpu.upload(inputs[i], shapes[i][0], shapes[i][1]);
        op.run(cpu, ct);
        float[] ref = cpu.download(ct[result]);
        for (var e : gpus.entrySet()) {
            CudaBackend g = e.getValue();
            Tensor[] gt = new Tensor[inputs.length];
            for (int i = 0; i < inputs.length; i++) gt[i] = g.upload(inputs[i], shapes[i][0], shapes[i][1]);
            op.run(g, gt);
            g.synchronize();
            GpuTests.assertClose(what + " [" + e.getKey().suffix() + "]", ref, g.download(gt[result]), tol(e.getKey()));
        }
    }

    @ParameterizedTest
    @CsvSource({"1, 4096", "7, 300", "600, 1024", "3, 33"})
    void norms(int rows, int cols) {
        float[] x = rand(1, rows * cols, 3), gamma = rand(2, cols, 1), beta = rand(3, cols, 1);
        int[][] sh = {{rows, cols}, {rows, cols}};
        compare("rmsNorm " + rows + "x" + cols, new float[][]{x, new float[rows * cols]}, sh, 1,
                (b, t) -> b.rmsNorm(t[1], t[0], gamma, 1e-6f));
        compare("layerNorm " + rows + "x" + cols, new float[][]{x, new float[rows * cols]}, sh, 1,
                (b, t) -> b.layerNorm(t[1], t[0], gamma, beta, 1e-5f));
        compare("rmsNorm in place " + rows + "x" + cols, new float[][]{x}, new int[][]{{rows, cols}}, 0,
                (b, t) -> b.rmsNorm(t[0], t[0], gamma, 1e-6f));
    }

    @Test
    void elementwise() {
        int n = 1000, m = 333; // 333 000 elements, not a multiple of any block
        float[] a = rand(4, n * m, 2), c = rand(5, n * m, 2);
        int[][] sh = {{n, m}, {n, m}};
        compare("add", new float[][]{a, c}, sh, 0, (b, t) -> b.add(t[0], t[1]));
        for (Activation act : Activation.values()) {
            compare("activate " + act, new float[][]{a}, new int[][]{{n, m}}, 0, (b, t) -> b.activate(t[0], act));
            compare("gatedActivate " + act, new float[][]{a, c}, sh, 0, (b, t) -> b.gatedActivate(t[0], t[1], act));
        }
        compare("copy into a view", new float[][]{a, new float[(n + 3) * m]}, new int[][]{{n, m}, {n + 3, m}}, 1,
                (b, t) -> b.copy(t[0], b.view(t[1], 3, n)));
    }

    /** errorSums (qvlm_err_sums): the search's error sums on the device, against the CPU's on the same values. */
    @ParameterizedTest
    @CsvSource({"1, 4096", "640, 5120", "3, 33"})
    void errorSums(int rows, int cols) {
        float[] y = rand(41, rows * cols, 2), t = rand(42, rows * cols, 2);
        for (var e : gpus.entrySet()) {
            CudaBackend g = e.getValue();
            Tensor gy = g.upload(y, rows, cols), gt = g.upload(t, rows, cols);
            // the reference on the values as stored (FP16 storage rounds them)
            double[] want = cpu.errorSums(cpu.upload(g.download(gy), rows, cols), cpu.upload(g.download(gt), rows, cols));
            double[] got = g.errorSums(gy, gt);
            GpuTests.assertClose("errorSums " + rows + "x" + cols + " [" + e.getKey().suffix() + "]",
                    new float[]{(float) want[0], (float) want[1]}, new float[]{(float) got[0], (float) got[1]}, 1e-6);
        }
    }

    /** ropeQStoreKv (qvlm_rope_q_store on the GPU): the rotated queries and the keys written to the cache. */
    @ParameterizedTest
    @CsvSource({"1, 40, 40, 128, 700", "5, 32, 8, 128, 3"})
    void ropeQStoreKv(int rows, int heads, int kvHeads, int headDim, int pos) {
        int width = kvHeads * headDim, cap = pos + rows + 2;
        float[][] in = {rand(31, rows * heads * headDim, 1), rand(32, rows * width, 1), rand(33, rows * width, 1),
                rand(34, cap * width, 1), rand(35, cap * width, 1)};
        int[][] shapes = {{rows, heads * headDim}, {rows, width}, {rows, width}, {cap, width}, {cap, width}};
        Op op = (b, t) -> b.ropeQStoreKv(t[0], heads, t[1], t[2], t[3], t[4], kvHeads, headDim, pos, 10000.0);
        String what = "ropeQStoreKv " + rows + "x" + heads + "/" + kvHeads + "x" + headDim + " @" + pos;
        compare(what + " q", in, shapes, 0, op);
        compare(what + " keys", in, shapes, 3, op);
        compare(what + " values", in, shapes, 4, op);
    }

    /** addRmsNorm (qvlm_add_rmsnorm on the GPU): the sum left in acc and the norm of it. */
    @ParameterizedTest
    @CsvSource({"1, 5120", "7, 300", "64, 4096"})
    void addRmsNorm(int rows, int cols) {
        float[] gamma = rand(21, cols, 1);
        float[][] in = {rand(22, rows * cols, 4), rand(23, rows * cols, 4), new float[rows * cols]};
        int[][] shapes = {{rows, cols}, {rows, cols}, {rows, cols}};
        Op op = (b, t) -> b.addRmsNorm(t[0], t[1], t[2], gamma, 1e-5f);
        compare("addRmsNorm " + rows + "x" + cols + " sum", in, shapes, 0, op);
        compare("addRmsNorm " + rows + "x" + cols + " norm", in, shapes, 2, op);
    }

    /** storeKv (qvlm_rope_q_store without queries on the GPU): the rotated keys, the keys and values it writes into the caches. */
    @ParameterizedTest
    @CsvSource({"1, 8, 128, 700, 10000", "5, 40, 128, 0, 10000", "17, 4, 64, 33, 500000"})
    void storeKv(int rows, int kvHeads, int headDim, int pos, double theta) {
        int width = kvHeads * headDim, cap = pos + rows + 2;
        float[][] in = {rand(11, rows * width, 1), rand(12, rows * width, 1), rand(13, cap * width, 1), rand(14, cap * width, 1)};
        int[][] shapes = {{rows, width}, {rows, width}, {cap, width}, {cap, width}};
        Op op = (b, t) -> b.storeKv(t[0], t[1], t[2], t[3], kvHeads, headDim, pos, theta);
        String what = "storeKv " + rows + "x" + kvHeads + "x" + headDim + " @" + pos;
        compare(what + " k", in, shapes, 0, op);
        compare(what + " keys", in, shapes, 2, op);
        compare(what + " values", in, shapes, 3, op);
    }

    @ParameterizedTest
    @CsvSource({"5, 32, 128, 0, 10000", "1, 32, 128, 4095, 10000", "17, 8, 64, 100, 500000", "3, 4, 80, 7, 10000"})
    void rope(int rows, int heads, int headDim, int startPos, double theta) {
        float[] x = rand(6, rows * heads * headDim, 1);
        compare("rope " + rows + "x" + heads + "x" + headDim + " @" + startPos, new float[][]{x},
                new int[][]{{rows, heads * headDim}}, 0, (b, t) -> b.rope(t[0], heads, headDim, startPos, theta));
    }

    @Test
    void embed() {
        int vocab = 1000, cols = 320;
        F32Matrix table = new F32Matrix(vocab, cols, rand(7, vocab * cols, 1));
        int[] ids = {0, 999, 5, 5, 123, 42, 7};
        compare("embed", new float[][]{new float[ids.length * cols]}, new int[][]{{ids.length, cols}}, 0,
                (b, t) -> b.embed(t[0], table, ids));
    }

    @ParameterizedTest
    @CsvSource({"7, 300, 513, true", "1, 4096, 4096, false", "600, 1024, 4096, true", "577, 1024, 1024, true", "2, 64, 32000, false"})
    void linear(int rows, int in, int out, boolean bias) {
        Linear lin = new Linear("test", Linear.Part.LLM, new F32Matrix(out, in, rand(8, out * in, 1 / Math.sqrt(in))),
                bias ? rand(9, out, 0.5) : null);
        compare("linear " + rows + "x" + in + " -> " + out + (bias ? " +b" : ""),
                new float[][]{rand(10, rows * in, 1), new float[rows * out]}, new int[][]{{rows, in}, {rows, out}}, 1,
                (b, t) -> b.linear(t[1], t[0], lin));
    }

    @ParameterizedTest
    @CsvSource({
            // n, kvLen, heads, kvHeads, headDim, qPos0, causal   (kvLen = qPos0 + n for causal self-attention)
            "577, 577, 16, 16, 64, 0, false",   // CLIP ViT-L/14-336 vision layer
            "40, 40, 32, 32, 128, 0, true",     // LLaMA prefill
            "40, 40, 32, 8, 128, 0, true",      // GQA prefill
            "9, 109, 8, 2, 128, 100, true",     // chunked prefill after a cached prefix
            "1, 3000, 32, 8, 128, 2999, true",  // decode, long context: split + combine
            "1, 20, 32, 32, 128, 19, true",     // decode, short context: one split
            "3, 700, 4, 4, 80, 697, true",      // few rows, head dim not a multiple of 32
            "50, 50, 4, 4, 256, 0, true",       // largest head dim: smaller K/V tile
            "2, 130, 2, 1, 64, 0, false"})      // non-causal decode-sized
    void attention(int n, int kvLen, int heads, int kvHeads, int hd, int qPos0, boolean causal) {
        float scale = (float) (1 / Math.sqrt(hd));
        int cap = kvLen + 5; // the cache has spare rows that must not be read
        compare("attention n=" + n + " kv=" + kvLen + " h=" + heads + "/" + kvHeads + " d=" + hd + (causal ? " causal" : ""),
                new float[][]{rand(11, n * heads * hd, 1), rand(12, cap * kvHeads * hd, 1), rand(13, cap * kvHeads * hd, 1),
                        new float[n * heads * hd]},
                new int[][]{{n, heads * hd}, {cap, kvHeads * hd}, {cap, kvHeads * hd}, {n, heads * hd}}, 3,
                (b, t) -> b.attention(t[3], t[0], t[1], t[2], kvLen, heads, kvHeads, hd, qPos0, causal, scale));
    }

    @Test
    void argmaxMatchesTheHostScan() {
        int rows = 5, cols = 32000;
        float[] x = rand(14, rows * cols, 3);
        x[3 * cols + 17] = 100f;
        x[3 * cols + 18] = 100f; // tie: the first wins
        for (var g : gpus.values()) {
            int[] got = g.argmax(g.upload(x, rows, cols));
            for (int r = 0; r < rows; r++) {
                int best = 0;
                for (int c = 1; c < cols; c++) if (x[r * cols + c] > x[r * cols + best]) best = c;
                assertEquals(best, got[r], "row " + r + " [" + g.storage() + "]");
            }
        }
    }

    @Test
    void conversionKernelsMatchTheHost() {
        CudaBackend g = gpus.get(Storage.F32);
        Random r = new Random(15);
        float[] f = new float[100_000];
        for (int i = 0; i < f.length; i++) f[i] = (float) (r.nextGaussian() * Math.pow(10, r.nextInt(12) - 8));
        f[0] = 65520f;
        f[1] = 0x1p-25f;
        short[] dev = g.convertOnDevice(f);
        for (int i = 0; i < f.length; i++) assertEquals(Half.fromFloat(f[i]), dev[i], "f32->f16 of " + f[i]);
        short[] all = new short[0x10000];
        for (int i = 0; i < all.length; i++) all[i] = (short) i;
        float[] back = g.convertOnDevice(all);
        for (int i = 0; i < all.length; i++)
            assertEquals(Float.floatToIntBits(Half.toFloat(all[i])), Float.floatToIntBits(back[i]), "f16->f32 of " + i);
    }
}
