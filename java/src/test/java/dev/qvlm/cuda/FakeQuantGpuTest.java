package dev.qvlm.cuda;

import dev.qvlm.quant.ActQuantizer;
import dev.qvlm.quant.QuantArgs;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

/**
 * The device's static activation fake quantisation (qvlm_fake_quant) against {@link ActQuantizer#apply}, bit for bit
 * with FP32 storage: the W4A4 forward pass on the GPU then quantizes exactly as the CPU's. Skips without a GPU.
 */
class FakeQuantGpuTest {
    @ParameterizedTest
    @CsvSource({"4, false, -1.7, 2.1", "4, true, -3.0, 3.0", "8, false, -0.25, 9.5", "6, false, 0.5, 1.5"})
    void matchesTheJavaQuantizer(int bits, boolean symmetric, float lo, float hi) {
        GpuTests.requireGpu();
        ActQuantizer q = ActQuantizer.staticPerTensor(new QuantArgs(bits, symmetric, QuantArgs.Granularity.TENSOR, 0), lo, hi);
        Random r = new Random(bits);
        float[] x = new float[100_003];
        for (int i = 0; i < x.length; i++) x[i] = (float) (r.nextGaussian() * 2);
        x[0] = 0f;
        x[1] = hi * 10;
        x[2] = lo * 10;
        x[3] = (q.scale() * 2.5f); // a tie
        float[] want = x.clone();
        q.apply(want, 0, 1, want.length);
        try (CudaBackend gpu = CudaBackend.open(Storage.F32)) {
            assertArrayEquals(want, gpu.fakeQuantOnDevice(x, q), q.toString());
        }
    }
}
