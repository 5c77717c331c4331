import dev.qvlm.tensor.F32Matrix;

/**
 * MACs per second on one core: our FP32 GEMM (a TinyLlama prefill shape) against the one integer dot product the JVM
 * can reach, C2's auto-vectorised int16 pair-MAC idiom (it compiles {@code pairMac} to vpdpwssd, checked with
 * {@code -XX:CompileCommand=print,DotIdiom::pairMac} and hexdis.py), in its best case: all three arrays in L1, no
 * broadcast operand to build. A single-file program over the CLI jar:
 * <pre>
 * $JAVA_HOME/bin/java --add-modules jdk.incubator.vector -cp java/target/qvlm.jar benchmarks/asm/DotIdiom.java
 * </pre>
 */
public class DotIdiom {
    // out[i] += a[2i]*b[2i] + a[2i+1]*b[2i+1]: the MulAddS2I idiom C2 turns into vpmaddwd / vpdpwssd
    static void pairMac(int[] out, short[] a, short[] b, int n) {
        for (int i = 0; i < n; i++) out[i] += a[2 * i] * b[2 * i] + a[2 * i + 1] * b[2 * i + 1];
    }

    public static void main(String[] args) {
        dev.qvlm.cpu.Parallel.setThreads(1); // one core each
        int T = 128, K = 2048, N = 2048;
        float[] x = new float[T * K], w = new float[N * K], out = new float[T * N];
        java.util.Random r = new java.util.Random(1);
        for (int i = 0; i < x.length; i++) x[i] = r.nextFloat();
        for (int i = 0; i < w.length; i++) w[i] = r.nextFloat();
        F32Matrix m = new F32Matrix(N, K, w);
        double best = 0;
        for (int rep = 0; rep < 12; rep++) {
            long t0 = System.nanoTime();
            dev.qvlm.cpu.Gemm.matmul(out, 0, x, 0, T, m, null);
            double s = (System.nanoTime() - t0) / 1e9;
            best = Math.max(best, (double) T * K * N / s);
        }
        System.out.printf("FP32 GEMM (Gemm.matmul %dx%dx%d): %.1f GMAC/s%n", T, K, N, best / 1e9);

        int n = 512; // out 2 KB, a and b 2 KB each: L1-resident, the idiom's best case
        int[] o = new int[n];
        short[] a = new short[2 * n], b = new short[2 * n];
        for (int i = 0; i < 2 * n; i++) { a[i] = (short) (r.nextInt(16) - 8); b[i] = (short) (r.nextInt(255) - 127); }
        double bestI = 0;
        for (int rep = 0; rep < 40; rep++) {
            long t0 = System.nanoTime();
            int reps = 200_000;
            for (int k = 0; k < reps; k++) pairMac(o, a, b, n);
            double s = (System.nanoTime() - t0) / 1e9;
            bestI = Math.max(bestI, 2.0 * n * reps / s);
        }
        System.out.printf("int16 pair-MAC idiom (n=%d, L1): %.1f GMAC/s (checksum %d)%n", n, bestI / 1e9, o[7]);
        System.out.printf("ratio int16 idiom / FP32 GEMM: %.2f%n", bestI / best);
    }
}
