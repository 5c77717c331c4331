package dev.qvlm.cpu;

import dev.qvlm.backend.Tensor;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;

class CpuBackendFp16Test {
    @Test
    void fp16StorageRoundsEveryOutputToHalfPrecision() {
        float a = 1000.1f, b = 0.3f; // 1000.4 is not a half: the nearest ones are 1000.0 and 1000.5
        CpuBackend half = new CpuBackend(true), full = new CpuBackend(false);
        Tensor x = half.upload(new float[]{a}, 1, 1), y = half.upload(new float[]{b}, 1, 1);
        half.add(x, y);
        float expected = Float.float16ToFloat(Float.floatToFloat16(Float.float16ToFloat(Float.floatToFloat16(a))
                + Float.float16ToFloat(Float.floatToFloat16(b))));
        assertEquals(expected, half.download(x)[0]);
        assertEquals(1000.5f, half.download(x)[0]);
        Tensor u = full.upload(new float[]{a}, 1, 1), v = full.upload(new float[]{b}, 1, 1);
        full.add(u, v);
        assertEquals(a + b, full.download(u)[0]);
    }
}
