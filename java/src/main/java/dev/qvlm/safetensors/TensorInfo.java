package dev.qvlm.safetensors;

import java.nio.file.Path;
import java.util.Arrays;

/** One tensor's header entry: where it lives (file and byte span inside the data section), its dtype and shape. */
public record TensorInfo(String name, Path file, DType dtype, long[] shape, long begin, long end) {
    public long numel() {
        long n = 1;
        for (long d : shape) n *= d;
        return n;
    }

    public String shapeString() {
        return Arrays.toString(shape);
    }

    public int dim(int i) {
        return Math.toIntExact(shape[i]);
    }

    public int rank() {
        return shape.length;
    }
}
