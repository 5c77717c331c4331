package dev.qvlm.train;

import dev.qvlm.backend.Tensor;
import dev.qvlm.model.ForwardHooks;
import dev.qvlm.model.Linear;

/**
 * The model has one hook slot; training runs one sample per thread, so this hook forwards each call to the hooks
 * the calling thread installed (none by default).
 */
final class ThreadHooks implements ForwardHooks {
    private final ThreadLocal<ForwardHooks> current = ThreadLocal.withInitial(() -> ForwardHooks.NONE);

    <T> T with(ForwardHooks h, java.util.function.Supplier<T> body) {
        ForwardHooks was = current.get();
        current.set(h);
        try {
            return body.get();
        } finally {
            current.set(was);
        }
    }

    @Override
    public void linearInput(Linear linear, Tensor x) {
        current.get().linearInput(linear, x);
    }

    @Override
    public void layerOutput(Linear.Part stack, int layer, Tensor hidden) {
        current.get().layerOutput(stack, layer, hidden);
    }
}
