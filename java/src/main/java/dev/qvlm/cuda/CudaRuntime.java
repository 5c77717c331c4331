package dev.qvlm.cuda;

import jcuda.driver.CUdevice;
import jcuda.driver.JCudaDriver;

import java.lang.foreign.Arena;
import java.lang.foreign.SymbolLookup;
import java.util.List;

import static jcuda.driver.CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR;
import static jcuda.driver.CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR;

/**
 * Can this process use the GPU? {@link #probe} answers once, in order: the NVIDIA driver library, the kernels'
 * fatbin in this build, the JCuda bindings, a CUDA device of compute capability 8.0 or newer (the fatbin holds SASS
 * for sm_80 and sm_90 and PTX for compute_90), and cuBLAS. The driver library is checked through FFM first so that
 * a machine without a GPU never unpacks JCuda's native library.
 */
public final class CudaRuntime {
    private CudaRuntime() {}

    private static volatile String reason;
    private static volatile boolean probed;

    /** Null when the GPU is usable; otherwise one sentence saying why not. */
    public static String probe() {
        if (!probed) {
            synchronized (CudaRuntime.class) {
                if (!probed) {
                    reason = check();
                    probed = true;
                }
            }
        }
        return reason;
    }

    /** The device the backend uses: -Dqvlm.cuda.device (default 0, after CUDA_VISIBLE_DEVICES). */
    static int ordinal() {
        return Integer.getInteger("qvlm.cuda.device", 0);
    }

    private static String check() {
        try (Arena a = Arena.ofConfined()) {
            SymbolLookup.libraryLookup("libcuda.so.1", a);
        } catch (IllegalArgumentException e) {
            return "no NVIDIA driver on this machine (libcuda.so.1 not found)";
        }
        byte[] fatbin = Fatbin.load();
        if (fatbin == null)
            return "this build has no CUDA kernels (nvcc was not found when it was built; rebuild with the CUDA toolkit installed)";
        try {
            List<Fatbin.Entry> entries = Fatbin.entries(fatbin);
            if (entries.isEmpty()) return "the CUDA kernels in this build are empty (" + Fatbin.RESOURCE + ")";
        } catch (IllegalArgumentException e) {
            return "the CUDA kernels in this build are damaged: " + e.getMessage();
        }
        int count;
        try {
            JCudaDriver.setExceptionsEnabled(true);
            JCudaDriver.cuInit(0);
            int[] n = new int[1];
            JCudaDriver.cuDeviceGetCount(n);
            count = n[0];
        } catch (Throwable t) {
            return "the CUDA driver did not initialise (" + clean(t) + ")";
        }
        if (count == 0) return "no CUDA device is visible (cuDeviceGetCount = 0)";
        int ord = ordinal();
        if (ord < 0 || ord >= count) return "-Dqvlm.cuda.device=" + ord + " but " + count + " CUDA device(s) are visible";
        try {
            CUdevice d = new CUdevice();
            JCudaDriver.cuDeviceGet(d, ord);
            int[] major = new int[1], minor = new int[1];
            JCudaDriver.cuDeviceGetAttribute(major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, d);
            JCudaDriver.cuDeviceGetAttribute(minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, d);
            if (major[0] < 8)
                return "CUDA device " + ord + " has compute capability " + major[0] + "." + minor[0]
                        + "; the kernels need 8.0 or newer (Ampere, Hopper)";
        } catch (Throwable t) {
            return "CUDA device " + ord + " could not be queried (" + clean(t) + ")";
        }
        if (Cublas.locate() == null)
            return "cuBLAS was not found (libcublas.so.13 or libcublas.so.12 on the library path)";
        return null;
    }

    /** A throwable's message without class names (the CLI prints reasons as plain sentences). */
    static String clean(Throwable t) {
        String m = t.getMessage();
        if (m == null || m.isBlank()) m = t.getClass().getSimpleName().replace("Exception", "failure");
        return m.replace("Exception", "failure").strip();
    }
}
