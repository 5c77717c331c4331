package dev.qvlm.tensor;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/** FP32 weights, on the heap or memory-mapped. */
public final class F32Matrix extends Matrix {
    private static final ValueLayout.OfFloat LE = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private final MemorySegment seg;
    private final float[] heap; // non-null when backed by a Java array: the fastest row copy

    public F32Matrix(int rows, int cols, MemorySegment seg) {
        super(rows, cols);
        if (seg.byteSize() != (long) rows * cols * 4) throw new IllegalArgumentException("size mismatch");
        this.seg = seg;
        this.heap = null;
    }

    public F32Matrix(int rows, int cols, float[] data) {
        super(rows, cols);
        if (data.length != rows * cols) throw new IllegalArgumentException("size mismatch");
        this.seg = MemorySegment.ofArray(data);
        this.heap = data;
    }

    @Override
    public float get(int r, int c) {
        return heap != null ? heap[r * cols + c] : seg.getAtIndex(LE, (long) r * cols + c);
    }

    @Override
    public void rowToFloat(int r, float[] dst, int off) {
        if (heap != null) System.arraycopy(heap, r * cols, dst, off, cols);
        else MemorySegment.copy(seg, LE, (long) r * cols * 4, dst, off, cols);
    }

    /** The backing array when heap-backed, else null. */
    public float[] array() {
        return heap;
    }

    @Override
    public long storageBytes() {
        return (long) rows * cols * 4;
    }

    @Override
    public String storageName() {
        return "f32";
    }
}
