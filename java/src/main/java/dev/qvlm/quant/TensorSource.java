package dev.qvlm.quant;

import dev.qvlm.safetensors.SafeTensors;
import dev.qvlm.safetensors.TensorInfo;
import dev.qvlm.safetensors.WeightStore;

import java.lang.foreign.MemorySegment;

/**
 * Tensor lookup by name: what the checkpoint readers of {@link CompressedTensors} need from a
 * {@link WeightStore} (a model directory, possibly sharded) or a single {@link SafeTensors} file.
 */
public interface TensorSource {
    boolean contains(String name);

    /** Header entry (dtype, shape, file); throws a QvlmException naming the tensor when it is missing. */
    TensorInfo info(String name);

    /** Raw little-endian bytes (a slice of the mapping, no copy). */
    MemorySegment segment(String name);

    float[] toFloatArray(String name);

    long[] toLongArray(String name);

    static TensorSource of(WeightStore ws) {
        return new TensorSource() {
            public boolean contains(String n) { return ws.contains(n); }
            public TensorInfo info(String n) { return ws.info(n); }
            public MemorySegment segment(String n) { return ws.segment(n); }
            public float[] toFloatArray(String n) { return ws.toFloatArray(n); }
            public long[] toLongArray(String n) { return ws.toLongArray(n); }
        };
    }

    static TensorSource of(SafeTensors st) {
        return new TensorSource() {
            public boolean contains(String n) { return st.contains(n); }
            public TensorInfo info(String n) { return st.info(n); }
            public MemorySegment segment(String n) { return st.segment(n); }
            public float[] toFloatArray(String n) { return st.toFloatArray(n); }
            public long[] toLongArray(String n) { return st.toLongArray(n); }
        };
    }
}
