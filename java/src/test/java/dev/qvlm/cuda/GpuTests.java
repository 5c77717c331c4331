package dev.qvlm.cuda;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/** Shared by the GPU tests: skip without a usable GPU (or fail, with -Dqvlm.cuda.required=true on the GPU host). */
final class GpuTests {
    private GpuTests() {}

    static void requireGpu() {
        String why = CudaRuntime.probe();
        if (Boolean.getBoolean("qvlm.cuda.required")) assertTrue(why == null, "GPU required but not usable: " + why);
        assumeTrue(why == null, () -> "no usable GPU: " + why);
    }

    /** Asserts max |Δ| ≤ tol · max(1, max |ref|) and prints the figures (the GPU run's log is the evidence). */
    static void assertClose(String what, float[] ref, float[] got, double tol) {
        assertTrue(ref.length == got.length, what + ": length " + got.length + " != " + ref.length);
        double maxAbs = 0, maxDiff = 0;
        int at = -1;
        for (int i = 0; i < ref.length; i++) {
            maxAbs = Math.max(maxAbs, Math.abs(ref[i]));
            double d = Math.abs((double) ref[i] - got[i]);
            if (!(d <= maxDiff)) { // NaN counts as the worst
                maxDiff = Double.isNaN(d) ? Double.POSITIVE_INFINITY : d;
                at = i;
            }
        }
        double limit = tol * Math.max(1, maxAbs);
        System.out.printf("%-44s max|ref| %9.3f  max|Δ| %.2e  (limit %.1e)%n", what, maxAbs, maxDiff, limit);
        if (!(maxDiff <= limit))
            throw new AssertionError(what + ": max |Δ| " + maxDiff + " > " + limit + " at " + at
                    + " (ref " + ref[at] + ", got " + got[at] + ")");
    }
}
