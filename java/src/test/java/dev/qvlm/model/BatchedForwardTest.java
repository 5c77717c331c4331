package dev.qvlm.model;

import dev.qvlm.TestPaths;
import dev.qvlm.backend.Tensor;
import dev.qvlm.cpu.CpuBackend;
import dev.qvlm.cpu.Matmul;
import dev.qvlm.image.ImageProcessor;
import dev.qvlm.quant.ActQuantizer;
import dev.qvlm.quant.QuantArgs;
import dev.qvlm.quant.WeightQuantizer;
import dev.qvlm.runtime.Llava;
import dev.qvlm.tensor.F32Matrix;
import dev.qvlm.tensor.HalfMatrix;
import dev.qvlm.tensor.Matrix;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Continuous batching's contract: a sequence's logits from a batched step are bit-identical to the logits of the
 * same step run alone, whatever else is in the batch (so greedy serving equals {@code qvlm generate}).
 */
class BatchedForwardTest {
    private static float[] random(int n, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        float[] x = new float[n];
        for (int i = 0; i < n; i++) x[i] = (float) r.nextGaussian();
        return x;
    }

    /** Each row of an n-row matmul equals the one-row matmul of that row, bit for bit, for every storage. */
    @Test
    void matmulRowsDoNotDependOnTheOtherRows() {
        int rows = 260, cols = 256; // rows not a multiple of 4: the tail path too
        float[] w = random(rows * cols, 1);
        F32Matrix f32 = new F32Matrix(rows, cols, w);
        short[] half = new short[rows * cols];
        for (int i = 0; i < half.length; i++) half[i] = Float.floatToFloat16(w[i]);
        MemorySegment seg = Arena.ofAuto().allocate(2L * half.length);
        MemorySegment.copy(half, 0, seg, ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 0, half.length);
        List<Matrix> storages = List.of(f32, new HalfMatrix(rows, cols, seg, HalfMatrix.Kind.F16),
                WeightQuantizer.quantize(f32, QuantArgs.perGroup(4, false, 128), 1.0).toPackedMatrix(),
                WeightQuantizer.quantize(f32, QuantArgs.perChannel(4, true), 1.0).toPackedMatrix());
        float[] bias = random(rows, 2);
        for (Matrix m : storages)
            for (int n : new int[]{2, 3, 8, 17, 32}) {
                float[] x = random(n * cols, 3 + n);
                float[] batched = new float[n * rows];
                Matmul.matmul(batched, 0, x, 0, n, m, bias);
                for (int t = 0; t < n; t++) {
                    float[] one = new float[rows];
                    Matmul.matmul(one, 0, x, t * cols, 1, m, bias);
                    assertArrayEquals(one, Arrays.copyOfRange(batched, t * rows, (t + 1) * rows),
                            m.storageName() + " n=" + n + " row " + t);
                }
            }
    }

    @Test
    void batchedDecodeStepsEqualSingleSequenceSteps() {
        try (Llava llava = Llava.open(TestPaths.tinyModel(), new CpuBackend())) {
            BatchChecks.assertBatchMatchesAlone(llava);
        }
    }

    /**
     * A prefill that wants only the last logits runs the last layer's queries, attention, output projection and MLP
     * for the last row alone (FP weights: every kernel keeps one order per row); its logits are the bits of the full
     * computation's last row, and the caches it leaves are the same.
     */
    @Test
    void lastRowsOnlyInTheLastLayerGiveTheFullComputationsBits() {
        try (Llava llava = Llava.open(TestPaths.tinyModel(), new CpuBackend())) {
            LlavaModel m = llava.model();
            int[] prompt = new int[37];
            for (int i = 0; i < prompt.length; i++) prompt[i] = 1 + (i * 131) % 300;
            KvCache full = m.newCache(64), last = m.newCache(64);
            float[] all = m.forward(full, prompt, null, true);
            float[] one = m.forward(last, prompt, null, false);
            int vocab = one.length;
            assertArrayEquals(Arrays.copyOfRange(all, all.length - vocab, all.length), one, "last-token logits");
            // the next step reads the caches of every layer, the last one included
            assertArrayEquals(m.forward(full, new int[]{5}, null, false), m.forward(last, new int[]{5}, null, false), "next step");
            // a batch of two prompts: each sequence's last row, as alone
            KvCache a = m.newCache(64), b = m.newCache(64);
            float[] both = m.forwardLast(List.of(new LlavaModel.Sequence(a, prompt, null),
                    new LlavaModel.Sequence(b, Arrays.copyOf(prompt, 20), null)));
            assertArrayEquals(one, Arrays.copyOfRange(both, 0, vocab), "first sequence of the batch");
            float[] alone = m.forward(m.newCache(64), Arrays.copyOf(prompt, 20), null, false);
            assertArrayEquals(alone, Arrays.copyOfRange(both, vocab, 2 * vocab), "second sequence of the batch");
        }
    }

    /** The same on a 4-bit model whose activation quantizers are per tensor (dynamic: a batch runs them per sequence). */
    @Test
    void batchedDecodeStepsEqualSingleSequenceStepsOnW4A8DynamicPerTensor() {
        try (Llava llava = Llava.open(TestPaths.tinyModel(), new CpuBackend())) {
            for (LlavaWeights.LlamaLayer l : llava.model().weights().text.layers())
                for (Linear lin : List.of(l.q(), l.k(), l.v(), l.o(), l.gate(), l.up(), l.down())) {
                    lin.setWeight(WeightQuantizer.quantize(lin.weight(), QuantArgs.perChannel(4, false), 1.0).toPackedMatrix());
                    lin.setInputQuantizer(ActQuantizer.dynamicPerTensor(QuantArgs.perTensor(8, false)));
                }
            BatchChecks.assertBatchMatchesAlone(llava);
        }
    }

    /** The int8-activation path (--int8-activations): a batched step's rows equal single steps on it too. */
    @Test
    void batchedDecodeStepsEqualSingleSequenceStepsWithInt8Activations() {
        try (Llava llava = Llava.open(TestPaths.tinyModel(), new CpuBackend(false, true))) {
            int packed = 0;
            for (LlavaWeights.LlamaLayer l : llava.model().weights().text.layers())
                for (Linear lin : List.of(l.q(), l.k(), l.v(), l.o(), l.gate(), l.up(), l.down())) {
                    lin.setWeight(WeightQuantizer.quantize(lin.weight(), QuantArgs.perGroup(4, false, 128), 1.0).toPackedMatrix());
                    if (lin.weight() instanceof dev.qvlm.quant.Q4Matrix q && dev.qvlm.cpu.Int8Matmul.supports(q)) packed++;
                }
            assertTrue(packed > 0, "the int8 kernel takes the model's linears");
            BatchChecks.assertBatchMatchesAlone(llava);
        }
    }

    /** The same at matrix level, n = 2..32, for per-group and per-channel packed weights. */
    @Test
    void int8MatmulRowsDoNotDependOnTheOtherRows() {
        int rows = 260, cols = 256;
        F32Matrix f32 = new F32Matrix(rows, cols, random(rows * cols, 11));
        for (QuantArgs qa : List.of(QuantArgs.perGroup(4, false, 128), QuantArgs.perChannel(4, true))) {
            dev.qvlm.quant.Q4Matrix m = (dev.qvlm.quant.Q4Matrix) WeightQuantizer.quantize(f32, qa, 1.0).toPackedMatrix();
            for (int n : new int[]{2, 3, 17, 32}) {
                float[] x = random(n * cols, 20 + n);
                float[] batched = new float[n * rows];
                dev.qvlm.cpu.Int8Matmul.matmul(batched, 0, x, 0, n, m, null);
                for (int t = 0; t < n; t++) {
                    float[] one = new float[rows];
                    dev.qvlm.cpu.Int8Matmul.matmul(one, 0, x, t * cols, 1, m, null);
                    assertArrayEquals(one, Arrays.copyOfRange(batched, t * rows, (t + 1) * rows), m.storageName() + " n=" + n + " row " + t);
                }
            }
        }
    }
}
