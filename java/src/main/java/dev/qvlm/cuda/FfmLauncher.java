package dev.qvlm.cuda;

import jcuda.driver.CUresult;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_DOUBLE;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * cuLaunchKernel through the FFM API, with the argument block written into one native buffer that every launch
 * reuses. JCuda's launch builds a Pointer object per argument and walks them in JNI on every call; a decode step of
 * 13B makes ~600 launches, and the first run on a card (H200) decoded FP16 and W4A16 at nearly the same ms/token,
 * the sign of a step bound by the host's launches rather than by the GPU's reads. The driver copies the arguments
 * when the launch is enqueued, so the buffer can be rewritten right after. Callers serialise launches (the backend
 * is synchronized). {@code -Dqvlm.cuda.launch=jcuda} keeps JCuda's path, for comparison.
 */
final class FfmLauncher implements AutoCloseable {
    /** The most kernel arguments any kernel of the fatbin takes (the attention kernels: 20). */
    static final int MAX_ARGS = 32;

    private final Arena arena = Arena.ofShared();
    private final MethodHandle cuLaunchKernel;
    private final MemorySegment values, pointers;

    FfmLauncher() {
        SymbolLookup lib = SymbolLookup.libraryLookup("libcuda.so.1", arena);
        cuLaunchKernel = Linker.nativeLinker().downcallHandle(lib.find("cuLaunchKernel").orElseThrow(
                        () -> new IllegalStateException("libcuda.so.1 has no cuLaunchKernel")),
                FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT,
                        JAVA_INT, ADDRESS, ADDRESS, ADDRESS));
        values = arena.allocate(8L * MAX_ARGS, 8);
        pointers = pointerTable(arena, values);
    }

    /** kernelParams: entry i points at 8-byte slot i of {@code values}. */
    static MemorySegment pointerTable(Arena arena, MemorySegment values) {
        MemorySegment p = arena.allocate(ADDRESS.byteSize() * MAX_ARGS, 8);
        for (int i = 0; i < MAX_ARGS; i++) p.setAtIndex(ADDRESS, i, values.asSlice(8L * i, 8));
        return p;
    }

    /**
     * Writes each argument into its 8-byte slot in the kernel's C type: Long → long long / pointer, Integer → int,
     * Float → float, Double → double (the types {@link Kernel} checks the argument list against).
     */
    static void marshal(MemorySegment values, String symbol, Object[] args) {
        if (args.length > MAX_ARGS) throw new IllegalArgumentException(symbol + ": " + args.length + " arguments > " + MAX_ARGS);
        for (int i = 0; i < args.length; i++) {
            long off = 8L * i;
            switch (args[i]) {
                case Long l -> values.set(JAVA_LONG, off, l);
                case Integer n -> values.set(JAVA_INT, off, n);
                case Float x -> values.set(JAVA_FLOAT, off, x);
                case Double d -> values.set(JAVA_DOUBLE, off, d);
                default -> throw new IllegalArgumentException(symbol + ": argument " + i + " of type " + args[i].getClass());
            }
        }
    }

    void launch(long function, String symbol, LaunchGeometry.Launch g, long stream, Object[] args) {
        marshal(values, symbol, args);
        int status;
        try {
            status = (int) cuLaunchKernel.invokeExact(MemorySegment.ofAddress(function), g.gridX(), g.gridY(), 1,
                    g.block(), 1, 1, g.sharedBytes(), MemorySegment.ofAddress(stream), pointers, MemorySegment.NULL);
        } catch (Throwable t) {
            throw t instanceof RuntimeException r ? r : new IllegalStateException(t);
        }
        if (status != 0)
            throw new IllegalStateException("cuLaunchKernel " + symbol + " " + g + " failed: " + CUresult.stringFor(status));
    }

    @Override
    public void close() {
        arena.close();
    }
}
