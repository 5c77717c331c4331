package dev.qvlm.cuda;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;

/**
 * cuBLAS through the FFM API (JCublas 12.6 needs libcublas.so.12, absent from CUDA 13 hosts). The library is looked
 * up by soname, newest first ({@code libcublas.so.13}, then {@code .so.12}), on the loader path and then in the usual
 * toolkit folders. Only what the backend needs is bound: create, set stream and workspace, GemmEx and its strided-batched form
 * (attention's score and output products), destroy.
 */
final class Cublas implements AutoCloseable {
    private static final String[] SONAMES = {"libcublas.so.13", "libcublas.so.12"};
    private static final Linker LINKER = Linker.nativeLinker();

    private final Arena arena = Arena.ofShared();
    private final MethodHandle gemmEx, gemmBatched, destroy;
    private final MemorySegment handle, one, zero;
    private final String library;

    /** Where cuBLAS was found, or null; never throws. */
    static String locate() {
        for (Path p : candidates()) {
            try (Arena a = Arena.ofConfined()) {
                SymbolLookup l = p.getNameCount() == 1 ? SymbolLookup.libraryLookup(p.toString(), a) : SymbolLookup.libraryLookup(p, a);
                if (l.find("cublasGemmEx").isPresent()) return p.toString();
            } catch (IllegalArgumentException | IllegalCallerException e) {
                // not here: try the next one
            }
        }
        return null;
    }

    private static List<Path> candidates() {
        List<Path> out = new ArrayList<>();
        for (String s : SONAMES) out.add(Path.of(s));
        List<String> dirs = new ArrayList<>();
        String home = System.getenv("CUDA_HOME");
        if (home != null) {
            dirs.add(home + "/lib64");
            dirs.add(home + "/targets/x86_64-linux/lib");
        }
        dirs.add("/usr/local/cuda/lib64");
        dirs.add("/usr/local/cuda-13.0/targets/x86_64-linux/lib");
        dirs.add("/usr/local/cuda-12/lib64");
        for (String d : dirs)
            for (String s : SONAMES) {
                Path p = Path.of(d, s);
                if (Files.exists(p)) out.add(p);
            }
        return out;
    }

    /** Bytes of the workspace given to cuBLAS (cublasSetWorkspace): what it recommends for Hopper. */
    static final long WORKSPACE_BYTES = 32L << 20;

    /**
     * @param workspace {@link #WORKSPACE_BYTES} of device memory for cuBLAS's own use: set explicitly, so that a
     *                  GEMM captured into a CUDA graph never allocates (the graph replays its addresses)
     */
    Cublas(long stream, long workspace) {
        library = locate();
        if (library == null) throw new IllegalStateException("cuBLAS (libcublas.so.13 or .so.12) not found");
        Path p = Path.of(library);
        SymbolLookup lib = p.getNameCount() == 1 ? SymbolLookup.libraryLookup(library, arena) : SymbolLookup.libraryLookup(p, arena);
        MethodHandle create = bind(lib, "cublasCreate_v2", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        MethodHandle setStream = bind(lib, "cublasSetStream_v2", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
        MethodHandle setWorkspace = lib.find("cublasSetWorkspace_v2").map(f -> LINKER.downcallHandle(f,
                FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ValueLayout.JAVA_LONG))).orElse(null);
        gemmEx = bind(lib, "cublasGemmEx", FunctionDescriptor.of(JAVA_INT,
                ADDRESS, JAVA_INT, JAVA_INT,           // handle, transa, transb
                JAVA_INT, JAVA_INT, JAVA_INT,          // m, n, k
                ADDRESS,                               // alpha (host, FP32 for CUBLAS_COMPUTE_32F)
                ADDRESS, JAVA_INT, JAVA_INT,           // A, Atype, lda
                ADDRESS, JAVA_INT, JAVA_INT,           // B, Btype, ldb
                ADDRESS,                               // beta
                ADDRESS, JAVA_INT, JAVA_INT,           // C, Ctype, ldc
                JAVA_INT, JAVA_INT));                  // computeType, algo
        gemmBatched = bind(lib, "cublasGemmStridedBatchedEx", FunctionDescriptor.of(JAVA_INT,
                ADDRESS, JAVA_INT, JAVA_INT,                       // handle, transa, transb
                JAVA_INT, JAVA_INT, JAVA_INT,                      // m, n, k
                ADDRESS,                                           // alpha
                ADDRESS, JAVA_INT, JAVA_INT, ValueLayout.JAVA_LONG, // A, Atype, lda, strideA
                ADDRESS, JAVA_INT, JAVA_INT, ValueLayout.JAVA_LONG, // B, Btype, ldb, strideB
                ADDRESS,                                           // beta
                ADDRESS, JAVA_INT, JAVA_INT, ValueLayout.JAVA_LONG, // C, Ctype, ldc, strideC
                JAVA_INT, JAVA_INT, JAVA_INT));                    // batchCount, computeType, algo
        destroy = bind(lib, "cublasDestroy_v2", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        one = arena.allocateFrom(ValueLayout.JAVA_FLOAT, 1f);
        zero = arena.allocateFrom(ValueLayout.JAVA_FLOAT, 0f);
        MemorySegment hp = arena.allocate(ADDRESS);
        try {
            check("cublasCreate_v2", (int) create.invokeExact(hp));
            handle = hp.get(ADDRESS, 0);
            check("cublasSetStream_v2", (int) setStream.invokeExact(handle, MemorySegment.ofAddress(stream)));
            if (setWorkspace != null) // cuBLAS's own default otherwise (graphs may then fail to capture, and fall back)
                check("cublasSetWorkspace_v2", (int) setWorkspace.invokeExact(handle, MemorySegment.ofAddress(workspace),
                        WORKSPACE_BYTES));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    String library() {
        return library;
    }

    private static MethodHandle bind(SymbolLookup lib, String name, FunctionDescriptor fd) {
        return LINKER.downcallHandle(lib.find(name).orElseThrow(() -> new IllegalStateException("cuBLAS has no " + name)), fd);
    }

    void gemm(Gemm g) {
        try {
            int st = (int) gemmEx.invokeExact(handle, g.transA(), g.transB(), g.m(), g.n(), g.k(), one,
                    MemorySegment.ofAddress(g.a()), g.aType(), g.lda(),
                    MemorySegment.ofAddress(g.b()), g.bType(), g.ldb(), zero,
                    MemorySegment.ofAddress(g.c()), g.cType(), g.ldc(), Gemm.COMPUTE_32F, Gemm.GEMM_DEFAULT);
            check("cublasGemmEx " + g, st);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    void gemm(Gemm.Batched b) {
        Gemm g = b.g();
        try {
            int st = (int) gemmBatched.invokeExact(handle, g.transA(), g.transB(), g.m(), g.n(), g.k(), one,
                    MemorySegment.ofAddress(g.a()), g.aType(), g.lda(), b.strideA(),
                    MemorySegment.ofAddress(g.b()), g.bType(), g.ldb(), b.strideB(), zero,
                    MemorySegment.ofAddress(g.c()), g.cType(), g.ldc(), b.strideC(), b.batch(), Gemm.COMPUTE_32F,
                    Gemm.GEMM_DEFAULT);
            check("cublasGemmStridedBatchedEx " + b, st);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    private static void check(String what, int status) {
        if (status != 0) throw new IllegalStateException(what + " failed: cublasStatus " + status + " (" + statusName(status) + ")");
    }

    static String statusName(int s) {
        return switch (s) {
            case 0 -> "SUCCESS";
            case 1 -> "NOT_INITIALIZED";
            case 3 -> "ALLOC_FAILED";
            case 7 -> "INVALID_VALUE";
            case 8 -> "ARCH_MISMATCH";
            case 11 -> "MAPPING_ERROR";
            case 13 -> "EXECUTION_FAILED";
            case 14 -> "INTERNAL_ERROR";
            case 15 -> "NOT_SUPPORTED";
            case 16 -> "LICENSE_ERROR";
            default -> "unknown";
        };
    }

    private static RuntimeException rethrow(Throwable t) {
        if (t instanceof RuntimeException r) return r;
        if (t instanceof Error e) throw e;
        return new IllegalStateException(t);
    }

    @Override
    public void close() {
        try {
            int st = (int) destroy.invokeExact(handle);
            check("cublasDestroy_v2", st);
        } catch (Throwable t) {
            throw rethrow(t);
        } finally {
            arena.close();
        }
    }
}
