package dev.qvlm.cuda;

import jcuda.driver.CUresult;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.util.ArrayList;
import java.util.List;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * CUDA graphs through the driver API, bound with FFM: stream capture of one stream, instantiation, launch, and the
 * one update a decode step needs, new arguments (and grid) for a captured kernel node. Each of our kernel launches
 * during a capture is followed by {@link #lastNode}: right after a launch, the capturing stream's dependency set is
 * that launch's node, which is how a launch index maps to the node {@link #patch} updates. cuBLAS's own kernels are
 * captured too but never patched: their arguments must not change between replays (the backend checks).
 *
 * <p>The symbols are the ones CUDA 12 binaries call ({@code _v2} where CUDA 12 renamed), which drivers keep.
 */
final class DriverGraphs implements AutoCloseable {
    private static final int CAPTURE_MODE_RELAXED = 2; // CU_STREAM_CAPTURE_MODE_RELAXED: cuMemAlloc stays allowed
    private static final int CAPTURE_STATUS_ACTIVE = 1;

    /** An instantiated graph and, per captured launch of ours, its node. */
    static final class Graph implements Device.Graph {
        final MemorySegment graph, exec;
        final List<MemorySegment> nodes;
        final List<Long> functions;

        Graph(MemorySegment graph, MemorySegment exec, List<MemorySegment> nodes, List<Long> functions) {
            this.graph = graph;
            this.exec = exec;
            this.nodes = nodes;
            this.functions = functions;
        }

    }

    private final Arena arena = Arena.ofShared();
    private final MethodHandle begin, end, captureInfo, instantiate, launch, setParams, execDestroy, graphDestroy;
    private final MemorySegment out8, out8b, status, count, params, values, pointers;
    private final List<MemorySegment> capturedNodes = new ArrayList<>();
    private final List<Long> capturedFunctions = new ArrayList<>();

    DriverGraphs() {
        SymbolLookup lib = SymbolLookup.libraryLookup("libcuda.so.1", arena);
        Linker l = Linker.nativeLinker();
        begin = bind(l, lib, FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT), "cuStreamBeginCapture_v2");
        end = bind(l, lib, FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS), "cuStreamEndCapture");
        captureInfo = bind(l, lib, FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS),
                "cuStreamGetCaptureInfo_v2");
        instantiate = bind(l, lib, FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_LONG), "cuGraphInstantiateWithFlags");
        launch = bind(l, lib, FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS), "cuGraphLaunch");
        setParams = bind(l, lib, FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS),
                "cuGraphExecKernelNodeSetParams_v2", "cuGraphExecKernelNodeSetParams");
        execDestroy = bind(l, lib, FunctionDescriptor.of(JAVA_INT, ADDRESS), "cuGraphExecDestroy");
        graphDestroy = bind(l, lib, FunctionDescriptor.of(JAVA_INT, ADDRESS), "cuGraphDestroy");
        out8 = arena.allocate(8, 8);
        out8b = arena.allocate(8, 8);
        status = arena.allocate(4, 4);
        count = arena.allocate(8, 8);
        params = arena.allocate(KernelNodeParams.BYTES, 8);
        values = arena.allocate(8L * FfmLauncher.MAX_ARGS, 8);
        pointers = FfmLauncher.pointerTable(arena, values);
    }

    private static MethodHandle bind(Linker l, SymbolLookup lib, FunctionDescriptor fd, String... names) {
        for (String n : names) {
            var s = lib.find(n);
            if (s.isPresent()) return l.downcallHandle(s.get(), fd);
        }
        throw new IllegalStateException("libcuda.so.1 has none of " + String.join(", ", names));
    }

    private static void check(String what, int status) {
        if (status != 0) throw new IllegalStateException(what + " failed: " + CUresult.stringFor(status));
    }

    private static RuntimeException rethrow(Throwable t) {
        return t instanceof RuntimeException r ? r : new IllegalStateException(t);
    }

    void beginCapture(long stream) {
        capturedNodes.clear();
        capturedFunctions.clear();
        try {
            check("cuStreamBeginCapture", (int) begin.invokeExact(MemorySegment.ofAddress(stream), CAPTURE_MODE_RELAXED));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** After one of our launches during a capture: remembers the node it became. */
    void lastNode(long stream, long function) {
        try {
            check("cuStreamGetCaptureInfo", (int) captureInfo.invokeExact(MemorySegment.ofAddress(stream), status,
                    MemorySegment.NULL, MemorySegment.NULL, out8, count));
        } catch (Throwable t) {
            throw rethrow(t);
        }
        if (status.get(JAVA_INT, 0) != CAPTURE_STATUS_ACTIVE)
            throw new IllegalStateException("the stream capture was invalidated (status " + status.get(JAVA_INT, 0) + ")");
        if (count.get(JAVA_LONG, 0) != 1)
            throw new IllegalStateException("a captured launch left " + count.get(JAVA_LONG, 0) + " dependencies, not 1");
        MemorySegment deps = out8.get(ADDRESS, 0).reinterpret(8);
        capturedNodes.add(deps.get(ADDRESS, 0));
        capturedFunctions.add(function);
    }

    /** Ends the capture and instantiates the graph; the stream is no longer capturing even when this throws. */
    Graph endCapture(long stream) {
        MemorySegment g;
        try {
            check("cuStreamEndCapture", (int) end.invokeExact(MemorySegment.ofAddress(stream), out8));
            g = out8.get(ADDRESS, 0);
        } catch (Throwable t) {
            throw rethrow(t);
        }
        try {
            check("cuGraphInstantiateWithFlags", (int) instantiate.invokeExact(out8b, g, 0L));
        } catch (Throwable t) {
            try {
                int ignored = (int) graphDestroy.invokeExact(g);
            } catch (Throwable ignored) {
                // the first failure is the one to report
            }
            throw rethrow(t);
        }
        return new Graph(g, out8b.get(ADDRESS, 0), List.copyOf(capturedNodes), List.copyOf(capturedFunctions));
    }

    void launch(Graph g, long stream) {
        try {
            check("cuGraphLaunch", (int) launch.invokeExact(g.exec, MemorySegment.ofAddress(stream)));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** New geometry and arguments for captured launch {@code index} (same kernel), from the next launch of g on. */
    void patch(Graph g, int index, String symbol, LaunchGeometry.Launch geometry, Object[] args) {
        FfmLauncher.marshal(values, symbol, args);
        KernelNodeParams.write(params, g.functions.get(index), geometry, pointers);
        try {
            check("cuGraphExecKernelNodeSetParams " + symbol,
                    (int) setParams.invokeExact(g.exec, g.nodes.get(index), params));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    void destroy(Graph g) {
        try {
            check("cuGraphExecDestroy", (int) execDestroy.invokeExact(g.exec));
            check("cuGraphDestroy", (int) graphDestroy.invokeExact(g.graph));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    @Override
    public void close() {
        arena.close();
    }

    /**
     * CUDA_KERNEL_NODE_PARAMS_v2 (cuda.h, CUDA 12): func, grid x/y/z, block x/y/z, sharedMemBytes (uint32 each, then
     * 4 bytes of padding), kernelParams, extra, kern, ctx. The v1 struct is its first 56 bytes.
     */
    static final class KernelNodeParams {
        static final int BYTES = 72;

        static void write(MemorySegment p, long function, LaunchGeometry.Launch g, MemorySegment kernelParams) {
            p.fill((byte) 0);
            p.set(JAVA_LONG, 0, function);
            p.set(JAVA_INT, 8, g.gridX());
            p.set(JAVA_INT, 12, g.gridY());
            p.set(JAVA_INT, 16, 1);
            p.set(JAVA_INT, 20, g.block());
            p.set(JAVA_INT, 24, 1);
            p.set(JAVA_INT, 28, 1);
            p.set(JAVA_INT, 32, g.sharedBytes());
            p.set(ADDRESS, 40, kernelParams);
        }
    }
}
