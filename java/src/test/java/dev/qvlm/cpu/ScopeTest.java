package dev.qvlm.cpu;

import dev.qvlm.TestPaths;
import dev.qvlm.backend.Backend;
import dev.qvlm.model.Checkpoint;
import dev.qvlm.model.KvCache;
import dev.qvlm.model.LlavaModel;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@link Backend#scope} on the CPU: arrays reused after the close, zeroed or poisoned, scopes nested in order. */
class ScopeTest {
    @Test
    void arraysOfAClosedScopeAreReusedByTheNextOne() {
        CpuBackend b = new CpuBackend();
        float[] first;
        try (Backend.Scope s = b.scope()) {
            CpuTensor t = (CpuTensor) b.allocate(3, 5);
            t.data()[7] = 42f;
            first = t.data();
        }
        // with assertions on (the tests), a released array is poisoned: a tensor used after its scope shows NaN
        assertTrue(Float.isNaN(first[7]), "released arrays are poisoned under -ea");
        try (Backend.Scope s = b.scope()) {
            CpuTensor u = (CpuTensor) b.uninitialized(5, 3); // same length: the same array, contents undefined
            assertSame(first, u.data());
            CpuTensor z = (CpuTensor) b.allocate(15, 1); // another of that length: a new one, zeroed
            assertNotSame(first, z.data());
            assertArrayEquals(new float[15], z.data());
        }
        try (Backend.Scope s = b.scope()) {
            CpuTensor z = (CpuTensor) b.allocate(1, 15); // reused and zeroed for allocate
            assertArrayEquals(new float[15], z.data());
        }
        CpuTensor outside = (CpuTensor) b.allocate(3, 5); // no scope: never a pooled array
        assertTrue(outside.data() != first);
    }

    @Test
    void scopesNestAndCloseInOrder() {
        CpuBackend b = new CpuBackend();
        Backend.Scope outer = b.scope();
        Backend.Scope inner = b.scope();
        assertThrows(IllegalStateException.class, outer::close);
        inner.close();
        outer.close();
    }

    /** A forward pass with scoped layers and steps gives the same logits as one whose tensors are all fresh. */
    @Test
    void scopedForwardPassKeepsItsBits() {
        try (Checkpoint ck = Checkpoint.open(TestPaths.tinyModel())) {
            CpuBackend scoped = new CpuBackend();
            CpuBackend inner = new CpuBackend();
            Backend fresh = (Backend) java.lang.reflect.Proxy.newProxyInstance(Backend.class.getClassLoader(),
                    new Class<?>[]{Backend.class}, (p, m, args) -> { // the same ops, no scopes
                        if (m.getName().equals("scope")) return Backend.Scope.NONE;
                        try {
                            return m.invoke(inner, args);
                        } catch (java.lang.reflect.InvocationTargetException e) {
                            throw e.getCause();
                        }
                    });
            LlavaModel a = new LlavaModel(ck.config(), ck.weights(), scoped), c = new LlavaModel(ck.config(), ck.weights(), fresh);
            KvCache ka = a.newCache(64), kc = c.newCache(64);
            int[] prompt = {1, 319, 140, 299, 353, 296, 28};
            assertArrayEquals(c.forward(kc, prompt, null, false), a.forward(ka, prompt, null, false));
            for (int step = 0; step < 6; step++) {
                int[] tok = {100 + 7 * step};
                assertArrayEquals(c.forward(kc, tok, null, false), a.forward(ka, tok, null, false), "step " + step);
            }
            assertArrayEquals(c.forward(kc, new int[]{5, 6, 7}, null, true), a.forward(ka, new int[]{5, 6, 7}, null, true));
            assertEquals(kc.length(), ka.length());
        }
    }
}
