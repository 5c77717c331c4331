package dev.qvlm.calib;

import dev.qvlm.backend.Tensor;
import dev.qvlm.model.Linear;

import java.util.List;

/**
 * One step of the model as calibration sees it: a vision encoder layer, the projector, or a decoder layer. A
 * "layer" of the entropy proxy and of the block partition is one unit. {@link #run} must not modify its input.
 */
interface Unit {
    String name();

    List<Linear> linears();

    Tensor run(Tensor x);

    /**
     * Groups of linears that read the same input and the operation before them that a per-input-channel scale can be
     * folded into exactly (AWQ, SmoothQuant), in forward order. Empty where no such operation exists.
     */
    default List<ScaleGroup> scaleGroups() {
        return List.of();
    }
}
