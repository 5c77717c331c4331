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

    ForwardHooks NONE = new ForwardHooks() {};
}
