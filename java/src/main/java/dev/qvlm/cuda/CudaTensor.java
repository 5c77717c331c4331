package dev.qvlm.cuda;

import dev.qvlm.backend.Tensor;

/**
 * A device tensor [rows x cols], row-major, in the backend's activation {@link Storage}: {@code byteOffset} bytes
 * into its allocation. Views share the allocation (which stays alive while any view is reachable).
 */
public final class CudaTensor implements Tensor {
    final DeviceMemory.Allocation allocation;
    final long byteOffset;
    final int rows, cols;
    final Storage storage;
    final CudaBackend owner;

    CudaTensor(CudaBackend owner, DeviceMemory.Allocation allocation, long byteOffset, int rows, int cols, Storage storage) {
        this.owner = owner;
        this.allocation = allocation;
        this.byteOffset = byteOffset;
        this.rows = rows;
        this.cols = cols;
        this.storage = storage;
    }

    @Override
    public int rows() {
        return rows;
    }

    @Override
    public int cols() {
        return cols;
    }

    long size() {
        return (long) rows * cols;
    }

    long bytes() {
        return size() * storage.bytes();
    }

    long address() {
        return allocation.address + byteOffset;
    }

    @Override
    public String toString() {
        return "cuda[" + rows + "x" + cols + " " + storage.suffix() + "]";
    }
}
