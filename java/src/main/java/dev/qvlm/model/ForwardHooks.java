package dev.qvlm.model;

import dev.qvlm.backend.Tensor;

/**
 * Observation points in the forward pass, used by calibration (activation ranges, the per-layer outputs the
 * entropy proxy is computed from) and by tests that compare intermediate tensors with HF's.
 */
public interface ForwardHooks {
    /** The input of a linear layer, before any input quantizer. */
    default void linearInput(Linear linear, Tensor x) {}

    /** The hidden state after encoder layer {@code layer} (vision) or decoder layer {@code layer} (text). */
    default void layerOutput(Linear.Part stack, int layer, Tensor hidden) {}

    /**
     * Whether these hooks only read what they are shown, during the call (no reference kept, nothing allocated on
     * the model's backend): then the forward pass still releases its layers' temporaries at each layer's end
     * ({@link dev.qvlm.backend.Backend#scope}). Default: false (they may keep or copy tensors).
     */
    default boolean readOnly() {
        return false;
    }

    ForwardHooks NONE = new ForwardHooks() {
        @Override
        public boolean readOnly() {
            return true;
        }
    };
}
