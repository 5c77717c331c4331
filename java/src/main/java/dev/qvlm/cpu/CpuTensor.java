package dev.qvlm.cpu;

import dev.qvlm.backend.Tensor;

/** A host FP32 tensor: rows x cols starting at {@code offset} of {@code data}. */
public record CpuTensor(float[] data, int offset, int rows, int cols) implements Tensor {
    public CpuTensor(int rows, int cols) {
        this(new float[rows * cols], 0, rows, cols);
    }

    public int size() {
        return rows * cols;
    }
}
