package dev.qvlm.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import dev.qvlm.backend.Tensor;
import dev.qvlm.cuda.CudaBackend;
import dev.qvlm.cuda.CudaRuntime;
import dev.qvlm.cuda.Int4Layout;
import dev.qvlm.cuda.Storage;
import dev.qvlm.model.Linear;
import dev.qvlm.tensor.GeneratedMatrix;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The GEMV kernels' own GPU time, from CUDA events ({@link CudaBackend#profileOps}: a spinning kernel holds the
 * stream while {@value #CALLS} calls are enqueued, then each is timed by a pair of events), so the host's launch
 * cost, which JMH's wall time of back-to-back calls includes (a 5120×5120 int4 GEMV reads its 14 MB in ~3.5 µs at
 * 4 TB/s, about what one launch costs the host), is not in it. Per shape: the median µs per call and weight GB/s of
 * the int4 GEMV (default geometry and the {@code wN-uM} variants), cuBLAS FP16, against the copy bandwidth measured
 * in the same process. Acceptance 4 of issue 8 is about this figure.
 *
 * <pre>java -cp ... dev.qvlm.bench.GpuGemvTimes OUT.json [SHAPE ...]</pre>
 */
public final class GpuGemvTimes {
    static final int CALLS = 100;
    static final String[] VARIANTS = {"int4", "int4-w1", "int4-w2", "int4-u2", "int4-u4", "int4-w1-u4", "f16"};

    private GpuGemvTimes() {}

    public static void main(String[] args) throws Exception {
        if (args.length < 1) {
            System.err.println("usage: GpuGemvTimes OUT.json [ROWSxCOLS ...]");
            System.exit(2);
        }
        String why = CudaRuntime.probe();
        if (why != null) {
            System.err.println("GpuGemvTimes: no usable GPU: " + why);
            System.exit(2);
        }
        List<String> shapes = args.length > 1 ? Arrays.asList(args).subList(1, args.length)
                : List.of("5120x5120", "13824x5120", "5120x13824");
        List<Map<String, Object>> rows = new ArrayList<>();
        double copy;
        try (CudaBackend gpu = CudaBackend.open(Storage.F16)) {
            copy = gpu.copyBandwidth(1L << 30, 20);
            System.out.printf("cuMemcpyDtoD: %.0f GB/s (read + write)%n", copy / 1e9);
            System.out.printf("%-12s %-12s %10s %10s %8s%n", "shape", "kernel", "µs/call", "GB/s", "% copy");
            for (String shape : shapes) {
                int[] rc = KernelFixture.parseShape(shape);
                float[] xv = new float[rc[1]];
                for (int i = 0; i < xv.length; i++) xv[i] = (GeneratedMatrix.hash(3, i) >>> 8) * 0x1p-23f - 1f;
                Tensor x = gpu.upload(xv, 1, rc[1]), y = gpu.allocate(1, rc[0]);
                Linear q4 = new Linear("q4", Linear.Part.LLM, GeneratedMatrix.q4(rc[0], rc[1], 9, 0.001f, 128, false), null);
                Linear f16 = new Linear("f16", Linear.Part.LLM, GeneratedMatrix.f16(rc[0], rc[1], 9, 0.01f), null);
                for (String v : VARIANTS) {
                    Linear lin = v.equals("f16") ? f16 : q4;
                    apply(v);
                    try {
                        gpu.linear(y, x, lin); // weights on the device, kernels loaded
                        gpu.synchronize();
                        List<CudaBackend.TimedOp> ops = gpu.profileOps(() -> {
                            for (int i = 0; i < CALLS; i++) gpu.linear(y, x, lin);
                        }, OpProfile.HOLD_NANOS);
                        double[] us = ops.stream().mapToDouble(o -> 1e3 * (o.endMs() - o.startMs())).sorted().toArray();
                        double median = us.length == 0 ? Double.NaN : us[us.length / 2];
                        long bytes = gpu.weightBytes(lin.weight());
                        double gbs = bytes / (median * 1e-6) / 1e9;
                        System.out.printf("%-12s %-12s %10.2f %10.0f %7.0f%%%n", shape, v, median, gbs, 100 * gbs * 1e9 / copy);
                        Map<String, Object> m = new LinkedHashMap<>();
                        m.put("shape", shape);
                        m.put("kernel", v);
                        m.put("median_us", median);
                        m.put("weight_bytes", bytes);
                        m.put("weight_gb_s", gbs);
                        m.put("fraction_of_copy", gbs * 1e9 / copy);
                        m.put("calls_timed", us.length);
                        rows.add(m);
                    } finally {
                        Int4Layout.overrideGemvWarps(0);
                        Int4Layout.overrideGemvUnroll(1);
                    }
                }
            }
        }
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("copy_bandwidth_gb_s", copy / 1e9);
        out.put("method", "median GPU time per call of " + CALLS + " calls, CUDA events, stream held while enqueued");
        out.put("results", rows);
        new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT).writeValue(Path.of(args[0]).toFile(), out);
    }

    /**
     * int4-wN-uM (either part optional): sets the GEMV's warps per block and loads in flight for every launch until
     * reset; any other name sets nothing. Shared with GpuGemvBench's kernel names.
     */
    static void apply(String variant) {
        if (!variant.startsWith("int4-")) return;
        for (String part : variant.substring("int4-".length()).split("-")) {
            int v = Integer.parseInt(part.substring(1));
            switch (part.charAt(0)) {
                case 'w' -> Int4Layout.overrideGemvWarps(v);
                case 'u' -> Int4Layout.overrideGemvUnroll(v);
                default -> throw new IllegalArgumentException("kernel " + variant + ": int4-wN-uM");
            }
        }
    }
}
