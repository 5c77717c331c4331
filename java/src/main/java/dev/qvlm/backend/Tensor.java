package dev.qvlm.backend;

/**
 * An activation matrix [rows x cols] owned by a {@link Backend} (host memory for the CPU, device memory for CUDA).
 * The forward pass only ever sees this handle; views of consecutive rows share storage with their parent.
 */
public interface Tensor {
    int rows();

    int cols();
}
