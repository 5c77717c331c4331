package dev.qvlm.bench;

import dev.qvlm.QvlmException;
import dev.qvlm.backend.Backend;
import dev.qvlm.backend.Tensor;
import dev.qvlm.config.LlavaConfig;
import dev.qvlm.cpu.CpuBackend;
import dev.qvlm.cuda.CudaBackend;
import dev.qvlm.model.KvCache;
import dev.qvlm.model.Linear;
import dev.qvlm.model.LlavaModel;
import dev.qvlm.model.LlavaWeights;
import dev.qvlm.tensor.Matrix;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.management.ManagementFactory;
import java.lang.management.MemoryPoolMXBean;
import java.lang.management.MemoryType;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Supplier;

/**
 * End-to-end LLaVA inference benchmark: prefill of the image and text tokens (vision tower + projector + decoder,
 * up to the first token), then greedy decode at batch 1, with the decode's weight traffic set against the memory
 * bandwidth of the machine (decode is memory-bound: every weight of the decoder and lm_head is read once per
 * token). One {@link Run} per weight width; {@link #ratios} compares them.
 *
 * <p>Bandwidth limit: on the GPU, cuMemcpyDtoD of a large buffer (read + write bytes per second); on the CPU, a
 * parallel vectorised sum over a 256 MiB off-heap buffer (read bytes per second). Peak memory: on the GPU, the
 * largest total − free of cuMemGetInfo seen after loading, after prefill and after decode (the whole process,
 * context included) and the backend's own peak (weights + activations + scratch); on the CPU, the peak of the heap
 * pools plus the off-heap weights.
 */
public final class Bench {
    private Bench() {}

    /**
     * @param batches         decode batch sizes to time after batch 1 (continuous batching's step, {@link LlavaModel#forwardLast})
     * @param batchRepeats    times each batch size is timed, round-robin over the sizes (1, 2, 4, 8, 1, 2, ...)
     * @param int8Activations CPU: 4-bit linears with int8 activations ({@link dev.qvlm.cpu.Int8Matmul})
     * @param warmupTokens    untimed decode steps after the untimed prefill, before the timed run (the JIT's warm-up)
     * @param prefillRepeats  timed prefills (each into a fresh cache; the time to first token is their median, as
     *                        llama-bench reports the mean of its -r runs); the decode continues the last one
     */
    public record Options(String device, int promptTokens, int imageTokens, int newTokens, int seed, List<Integer> batches,
                          int batchRepeats, boolean int8Activations, int warmupTokens, int prefillRepeats, int profileOps) {}

    /**
     * {@code batch} sequences decoded together for {@code steps} steps: the median of the repeats' wall times
     * ({@code seconds}) and every repeat's (in run order), and the mean CPU time the whole process used meanwhile
     * ({@code cpuSeconds}: all threads; the OS counts it in 10 ms ticks, hence the mean over all repeats rather than a
     * median of coarse values. On a machine shared with other jobs the work per token shows there, while the wall
     * time also shows how much of the cores this process got).
     */
    public record BatchPoint(int batch, int steps, double seconds, List<Double> repeatSeconds, double cpuSeconds) {
        public double tokensPerSecond() {
            return batch * (double) steps / seconds;
        }

        public double tokensPerCpuSecond() {
            return batch * (double) steps / cpuSeconds;
        }
    }

    /** Bytes allocated on the heap so far by all threads (-1 where the JVM does not count them). */
    static long heapAllocated() {
        var mx = java.lang.management.ManagementFactory.getThreadMXBean();
        return mx instanceof com.sun.management.ThreadMXBean t && t.isThreadAllocatedMemoryEnabled() ? t.getTotalThreadAllocatedBytes() : -1;
    }

    /** One benchmarked configuration. Times in seconds, sizes in bytes, bandwidths in bytes per second. */
    public record Run(String label, int wbits, String backend, double loadSeconds, int prefillTokens, double ttftSeconds,
                      int decodeTokens, double decodeSeconds, long weightBytesPerToken, long weightBytesTotal,
                      double bandwidthLimit, String bandwidthMethod, long peakMemoryBytes, String peakMemoryKind,
                      long backendPeakBytes, int firstToken, List<BatchPoint> batched, long heapAllocPerToken,
                      CudaBackend.DeviceCalls decodeCalls, OpProfile opProfile, OpProfile prefillOpProfile, String cudaGraphs) {
        public double msPerToken() {
            return 1e3 * decodeSeconds / decodeTokens;
        }

        public double tokensPerSecond() {
            return decodeTokens / decodeSeconds;
        }

        public double weightBandwidth() {
            return weightBytesPerToken / (decodeSeconds / decodeTokens);
        }

        public double limitMsPerToken() {
            return 1e3 * weightBytesPerToken / bandwidthLimit;
        }

        public double fractionOfLimit() {
            return weightBandwidth() / bandwidthLimit;
        }

        /** Batch-1 decode rate of the batched curve when there is one (timed right before it), else the main run's. */
        public double batch1TokensPerSecond() {
            for (BatchPoint b : batched) if (b.batch() == 1) return b.tokensPerSecond();
            return tokensPerSecond();
        }

        public Map<String, Object> json() {
            Map<String, Object> o = new LinkedHashMap<>();
            o.put("label", label);
            o.put("wbits", wbits);
            o.put("backend", backend);
            o.put("load_s", loadSeconds);
            o.put("prefill_tokens", prefillTokens);
            o.put("ttft_ms", 1e3 * ttftSeconds);
            o.put("decode_tokens", decodeTokens);
            o.put("decode_tokens_per_s", tokensPerSecond());
            o.put("decode_ms_per_token", msPerToken());
            o.put("weight_bytes_per_token", weightBytesPerToken);
            o.put("weight_bytes_total", weightBytesTotal);
            o.put("weight_bandwidth_gb_s", weightBandwidth() / 1e9);
            o.put("bandwidth_limit_gb_s", bandwidthLimit / 1e9);
            o.put("bandwidth_method", bandwidthMethod);
            o.put("limit_ms_per_token", limitMsPerToken());
            o.put("fraction_of_limit", fractionOfLimit());
            o.put("peak_memory_bytes", peakMemoryBytes);
            o.put("peak_memory_kind", peakMemoryKind);
            o.put("backend_peak_bytes", backendPeakBytes);
            if (heapAllocPerToken >= 0) o.put("heap_alloc_bytes_per_token", heapAllocPerToken);
            if (decodeCalls != null) { // the GPU's decode steps: host time in device calls, per token (CountingDevice)
                double n = decodeTokens;
                o.put("device_calls_per_token", decodeCalls.enqueueCalls() / n);
                o.put("enqueue_ms_per_token", decodeCalls.enqueueNanos() / 1e6 / n);
                o.put("enqueue_us_per_call", decodeCalls.enqueueNanos() / 1e3 / Math.max(1, decodeCalls.enqueueCalls()));
                o.put("wait_ms_per_token", decodeCalls.waitNanos() / 1e6 / n);
            }
            if (opProfile != null) o.put("op_profile", opProfile.json());
            if (prefillOpProfile != null) o.put("prefill_op_profile", prefillOpProfile.json());
            if (cudaGraphs != null) o.put("cuda_graphs", cudaGraphs);
            o.put("first_token", firstToken);
            List<Map<String, Object>> bs = new ArrayList<>();
            for (BatchPoint b : batched) {
                Map<String, Object> m = new LinkedHashMap<>();
                m.put("batch", b.batch());
                m.put("steps", b.steps());
                m.put("seconds", b.seconds());
                m.put("decode_tokens_per_s", b.tokensPerSecond());
                m.put("repeats_tokens_per_s", b.repeatSeconds().stream().map(x -> b.batch() * (double) b.steps() / x).toList());
                m.put("cpu_seconds", b.cpuSeconds());
                m.put("tokens_per_cpu_s", b.tokensPerCpuSecond());
                m.put("per_cpu_s_vs_batch_1", b.tokensPerCpuSecond() / batched.get(0).tokensPerCpuSecond());
                m.put("vs_batch_1", b.tokensPerSecond() / batch1TokensPerSecond());
                bs.add(m);
            }
            o.put("batched_decode", bs);
            return o;
        }
    }

    /** Bytes of host memory the CPU run needs: off-heap weights and on-heap KV cache + activations (estimates). */
    public record CpuEstimate(long weightBytes, long heapBytes) {}

    public static CpuEstimate estimateCpu(LlavaConfig cfg, int wbits, int tokens) {
        var tc = cfg.text();
        long kv = 2L * tc.numLayers() * tokens * tc.kvDim() * 4;
        long act = 8L * tokens * Math.max(tc.intermediateSize(), tc.hiddenSize()) * 4 + 2L * tokens * tc.vocabSize() * 4 / tokens;
        int vt = cfg.vision().numPositions();
        long vis = 10L * vt * cfg.vision().intermediateSize() * 4;
        return new CpuEstimate(SyntheticModel.hostWeightBytes(cfg, wbits), kv + act + vis);
    }

    /** MemAvailable of /proc/meminfo, else the OS bean's free memory. */
    static long availableHostMemory() {
        try {
            for (String l : Files.readAllLines(Path.of("/proc/meminfo")))
                if (l.startsWith("MemAvailable:")) return Long.parseLong(l.replaceAll("\\D+", "")) * 1024;
        } catch (Exception ignored) {
            // not Linux: fall through
        }
        var os = ManagementFactory.getOperatingSystemMXBean();
        return os instanceof com.sun.management.OperatingSystemMXBean s ? s.getFreeMemorySize() : Long.MAX_VALUE;
    }

    /** Refuses a CPU run that would not fit, naming the sizes. */
    public static void checkCpuFits(String name, LlavaConfig cfg, int wbits, int tokens) {
        CpuEstimate e = estimateCpu(cfg, wbits, tokens);
        long avail = availableHostMemory(), heap = Runtime.getRuntime().maxMemory();
        if (e.weightBytes() + e.heapBytes() > avail || e.heapBytes() > heap)
            throw new QvlmException(String.format("--synthetic %s --wbits %d on the CPU needs about %.1f GB of weights (off-heap) "
                            + "+ %.1f GB of heap for %d tokens, but %.1f GB are available (heap limit %.1f GB); use a smaller "
                            + "model, fewer tokens, or --device cuda", name, wbits, e.weightBytes() / 1e9, e.heapBytes() / 1e9,
                    tokens, avail / 1e9, heap / 1e9));
    }

    /** Runs the benchmark on weights from {@code weights} (built after the backend is open). */
    public static Run run(String label, int wbits, LlavaConfig cfg, Supplier<LlavaWeights> weights, Options o,
                          java.io.PrintStream log) {
        boolean cuda = o.device().equals("cuda");
        resetHeapPeaks();
        long t0 = System.nanoTime();
        try (Backend backend = cuda ? CudaBackend.open() : new CpuBackend(false, o.int8Activations())) {
            CudaBackend gpu = cuda ? (CudaBackend) backend : null;
            long[] peakUsed = {0};
            Runnable sample = () -> {
                if (gpu != null) {
                    long[] mi = gpu.memInfo();
                    peakUsed[0] = Math.max(peakUsed[0], mi[1] - mi[0]);
                }
            };
            LlavaWeights w = weights.get();
            LlavaModel model = new LlavaModel(cfg, w, backend);
            long perToken = 0, total = 0;
            List<Linear> decodeLinears = new ArrayList<>();
            for (LlavaWeights.LlamaLayer l : w.text.layers())
                decodeLinears.addAll(List.of(l.q(), l.k(), l.v(), l.o(), l.gate(), l.up(), l.down()));
            decodeLinears.add(w.text.lmHead());
            for (Linear l : w.linears()) {
                long b = gpu != null ? gpu.weightBytes(l.weight()) : l.weight().storageBytes();
                total += b;
                if (decodeLinears.contains(l)) perToken += b;
            }
            Matrix emb = w.text.embedTokens();
            if (gpu != null) {
                gpu.prepare(emb, "embed_tokens");
                gpu.prepare(w.vision.patchEmbedding(), "patch_embedding");
                total += gpu.weightBytes(emb) + gpu.weightBytes(w.vision.patchEmbedding());
            } else total += emb.storageBytes() + w.vision.patchEmbedding().storageBytes();
            perToken += 2L * emb.cols(); // one FP16 embedding row
            if (gpu != null) gpu.synchronize();
            sample.run();
            double load = (System.nanoTime() - t0) / 1e9;
            log.printf("[bench] %s: weights ready in %.2f s (%.2f GB)%n", label, load, total / 1e9);

            double limit;
            String method;
            if (gpu != null) {
                long free = gpu.memInfo()[0];
                long bytes = Math.max(1L << 20, Math.min(1L << 30, free / 8));
                limit = gpu.copyBandwidth(bytes, 20);
                method = String.format("cuMemcpyDtoD %d MiB x20, (read+write)/s", bytes >> 20);
            } else {
                limit = cpuReadBandwidth(256L << 20);
                method = "parallel vector read of 256 MiB, best of 5";
            }

            int imageTokens = o.imageTokens();
            int nPrompt = 1 + imageTokens + o.promptTokens();
            int[] prompt = new int[nPrompt];
            prompt[0] = cfg.text().bosTokenId();
            for (int i = 0; i < imageTokens; i++) prompt[1 + i] = cfg.imageTokenIndex();
            int vocab = cfg.text().vocabSize();
            for (int i = 0; i < o.promptTokens(); i++) {
                int id = Math.floorMod(dev.qvlm.tensor.GeneratedMatrix.hash(o.seed(), i), vocab);
                prompt[1 + imageTokens + i] = id == cfg.imageTokenIndex() ? 0 : id;
            }
            var vc = cfg.vision();
            float[] pixels = new float[vc.numChannels() * vc.imageSize() * vc.imageSize()];
            for (int i = 0; i < pixels.length; i++)
                pixels[i] = (dev.qvlm.tensor.GeneratedMatrix.hash(o.seed() + 1, i) >>> 8) * 0x1p-23f - 1f;

            // warm-up, untimed: JIT of the CPU kernels, lazy kernel loading and cuBLAS heuristics on the GPU. The
            // prefill is warmed at the timed prompt's own length (as llama-bench's warm-up run does): a shorter one
            // leaves the kernels of long calls cold (4-bit weights: up to 32 tokens take the fused kernel, longer
            // prompts the GEMM), and the timed prefill would then include their compilation
            if (imageTokens > 0) model.encodeImage(pixels);
            int[] text = java.util.Arrays.copyOfRange(prompt, 1 + imageTokens, prompt.length);
            int[] warmPrompt = text.length > 0 ? text : new int[]{prompt[0]};
            // then decode steps, so that the timed decode runs compiled code: with 2 steps, a TinyLlama W4 decode of
            // 64 tokens still ran partly in not-yet-optimised code (35 ms/token over its first 64 steps, 20 later)
            KvCache warm = model.newCache(warmPrompt.length + 2 + o.warmupTokens());
            argmax(model.forward(warm, warmPrompt, null, false));
            for (int i = 0; i < 2 + o.warmupTokens(); i++) argmax(model.forward(warm, new int[]{first(prompt)}, null, false));
            warm.close();

            KvCache cache = null;
            Tensor image = null;
            float[] logits = null;
            double[] prefills = new double[Math.max(1, o.prefillRepeats())];
            for (int rep = 0; rep < prefills.length; rep++) {
                if (cache != null) cache.close(); // the previous repeat's (a 13B prompt's cache is ~0.6 GB on a GPU)
                if (image != null) model.backend().free(image);
                cache = model.newCache(nPrompt + o.newTokens() + o.profileOps());
                long p0 = System.nanoTime();
                image = imageTokens > 0 ? model.encodeImage(pixels) : null;
                logits = model.forward(cache, prompt, image, false);
                argmax(logits);
                prefills[rep] = (System.nanoTime() - p0) / 1e9;
                sample.run();
                log.printf("[bench] %s: prefill of %d tokens, first token after %.1f ms%s%n", label, nPrompt, 1e3 * prefills[rep],
                        prefills.length > 1 ? " (repeat " + (rep + 1) + " of " + prefills.length + ")" : "");
            }
            int tok = argmax(logits);
            double[] sortedPrefills = prefills.clone();
            java.util.Arrays.sort(sortedPrefills);
            double ttft = sortedPrefills[(sortedPrefills.length - 1) / 2]; // the median (the lower one of an even count)
            int first = tok;

            CudaBackend.DeviceCalls calls0 = gpu != null ? gpu.deviceCalls() : null;
            long a0 = heapAllocated(), d0 = System.nanoTime();
            for (int i = 0; i < o.newTokens(); i++) {
                logits = model.forward(cache, new int[]{tok}, null, false);
                tok = argmax(logits);
            }
            double dec = (System.nanoTime() - d0) / 1e9;
            CudaBackend.DeviceCalls calls = gpu != null ? gpu.deviceCalls().minus(calls0) : null;
            if (calls != null) {
                double n = o.newTokens(), ms = 1e3 * dec / n, enq = calls.enqueueNanos() / 1e6 / n;
                log.printf("[bench] %s: decode %.3f ms/token; host time enqueueing %.3f ms/token in %.0f device calls "
                                + "(%.1f µs each), waiting %.3f ms/token%s%n", label, ms, enq, calls.enqueueCalls() / n,
                        calls.enqueueNanos() / 1e3 / Math.max(1, calls.enqueueCalls()), calls.waitNanos() / 1e6 / n,
                        enq > 0.6 * ms ? ": bound by the host's launches" : "");
            }
            if (gpu != null) log.printf("[bench] %s: CUDA graphs: %s%n", label, gpu.graphSummary().isEmpty() ? "off" : gpu.graphSummary());
            long allocPerToken = a0 < 0 ? -1 : (heapAllocated() - a0) / Math.max(1, o.newTokens());
            // a decode step allocates its activations (kilobytes to a few MB); when C2 leaves a Vector API call in
            // a kernel un-inlined, every vector crossing it is boxed, and the heap traffic grows with the weights
            if (gpu == null && allocPerToken > perToken / 16)
                log.printf("[bench] WARNING: %s: the decode allocated %.0f MB of heap per token (it reads %.0f MB of weights): "
                        + "the JIT left vectors boxed in a kernel, so this speed is not the kernels'; rerun, and report it%n",
                        label, allocPerToken / 1e6, perToken / 1e6);
            OpProfile profile = null, prefillProfile = null;
            if (gpu != null && o.profileOps() > 0) {
                List<List<CudaBackend.TimedOp>> steps = new ArrayList<>();
                KvCache c = cache;
                for (int i = 0; i < o.profileOps(); i++) {
                    int t = tok;
                    float[][] lg = new float[1][];
                    steps.add(gpu.profileOps(() -> lg[0] = model.forward(c, new int[]{t}, null, false), OpProfile.HOLD_NANOS));
                    tok = argmax(lg[0]);
                }
                profile = OpProfile.of(steps, 1e3 * dec / o.newTokens());
                log.print(profile.table(label));
                // and one prefill of the timed prompt (vision tower included): where the time to first token goes
                KvCache pc = model.newCache(nPrompt);
                Tensor[] img = {null};
                prefillProfile = OpProfile.of(List.of(gpu.profileOps(() -> {
                    img[0] = imageTokens > 0 ? model.encodeImage(pixels) : null;
                    model.forward(pc, prompt, img[0], false);
                }, OpProfile.HOLD_NANOS)), 1e3 * ttft);
                pc.close();
                if (img[0] != null) model.backend().free(img[0]);
                log.print(prefillProfile.table(label, "a prefill of " + nPrompt + " tokens", "prefill", "timed TTFT"));
            }
            sample.run();
            List<BatchPoint> batched = new ArrayList<>();
            // round-robin over the batch sizes, so that a burst of load from elsewhere on the machine hits every
            // size alike; each point is the median of its repeats
            List<List<Double>> times = new ArrayList<>(), cpu = new ArrayList<>();
            for (int k = 0; k < o.batches().size(); k++) {
                times.add(new ArrayList<>());
                cpu.add(new ArrayList<>());
            }
            for (int r = 0; r < o.batchRepeats(); r++)
                for (int k = 0; k < o.batches().size(); k++) {
                    int B = o.batches().get(k);
                    double[] sec = timeBatch(model, B, prompt, image, nPrompt, o.newTokens());
                    times.get(k).add(sec[0]);
                    cpu.get(k).add(sec[1]);
                    sample.run();
                    log.printf("[bench] %s: batch %d decode %.1f tokens/s (repeat %d of %d)%n", label, B,
                            B * (double) o.newTokens() / sec[0], r + 1, o.batchRepeats());
                }
            for (int k = 0; k < o.batches().size(); k++) {
                List<Double> sorted = new ArrayList<>(times.get(k));
                java.util.Collections.sort(sorted);
                double cpuMean = cpu.get(k).stream().mapToDouble(Double::doubleValue).average().orElse(Double.NaN);
                batched.add(new BatchPoint(o.batches().get(k), o.newTokens(), sorted.get(sorted.size() / 2), List.copyOf(times.get(k)), cpuMean));
            }
            long peak, backendPeak;
            String kind;
            if (gpu != null) {
                peak = peakUsed[0];
                backendPeak = gpu.peakBytes();
                kind = "cuMemGetInfo total-free (process)";
            } else {
                long nativeWeights = total;
                peak = heapPeak() + nativeWeights;
                backendPeak = heapPeak();
                kind = "heap pools peak + off-heap weights";
            }
            return new Run(label, wbits, backend.name(), load, nPrompt, ttft, o.newTokens(), dec, perToken, total, limit,
                    method, peak, kind, backendPeak, first, batched, allocPerToken, calls, profile,
                    prefillProfile, gpu != null ? gpu.graphSummary() : null);
        }
    }

    private static int first(int[] prompt) {
        return prompt[0];
    }

    /**
     * B sequences with the same prompt, prefilled one by one (untimed), then decoded together: {wall seconds, CPU
     * seconds of the whole process}.
     */
    private static double[] timeBatch(LlavaModel model, int B, int[] prompt, Tensor image, int nPrompt, int newTokens) {
        List<KvCache> caches = new ArrayList<>();
        int[] next = new int[B];
        for (int b = 0; b < B; b++) {
            KvCache c = model.newCache(nPrompt + newTokens);
            next[b] = argmax(model.forward(c, prompt, image, false));
            caches.add(c);
        }
        int vocabSize = model.config().text().vocabSize();
        var os = (com.sun.management.OperatingSystemMXBean) java.lang.management.ManagementFactory.getOperatingSystemMXBean();
        long c0 = os.getProcessCpuTime(), b0 = System.nanoTime();
        for (int i = 0; i < newTokens; i++) {
            List<LlavaModel.Sequence> seqs = new ArrayList<>(B);
            for (int b = 0; b < B; b++) seqs.add(new LlavaModel.Sequence(caches.get(b), new int[]{next[b]}, null));
            float[] all = model.forwardLast(seqs);
            for (int b = 0; b < B; b++) next[b] = dev.qvlm.generate.Sampler.argmax(all, b * vocabSize, vocabSize);
        }
        double[] times = {(System.nanoTime() - b0) / 1e9, (os.getProcessCpuTime() - c0) / 1e9};
        for (KvCache c : caches) c.close();
        return times;
    }

    static int argmax(float[] v) {
        int best = 0;
        for (int i = 1; i < v.length; i++) if (v[i] > v[best]) best = i;
        return best;
    }

    private static void resetHeapPeaks() {
        for (MemoryPoolMXBean p : ManagementFactory.getMemoryPoolMXBeans())
            if (p.getType() == MemoryType.HEAP) p.resetPeakUsage();
    }

    private static long heapPeak() {
        long s = 0;
        for (MemoryPoolMXBean p : ManagementFactory.getMemoryPoolMXBeans())
            if (p.getType() == MemoryType.HEAP && p.getPeakUsage() != null) s += p.getPeakUsage().getUsed();
        return s;
    }

    /** Read bandwidth of host memory: the pool's threads read disjoint 4 KB pages of an off-heap buffer; best of 5 passes. */
    public static double cpuReadBandwidth(long bytes) {
        try (Arena arena = Arena.ofShared()) {
            return readBandwidth(arena.allocate(bytes, 64));
        }
    }

    private static double readBandwidth(MemorySegment seg) {
        seg.fill((byte) 1);
        double best = 0;
        for (int pass = 0; pass < 5; pass++) {
            long t = System.nanoTime();
            DecodeKernels.read(seg); // the same read the matrix-level decode bench sets its kernels against
            best = Math.max(best, seg.byteSize() / ((System.nanoTime() - t) / 1e9));
        }
        return best;
    }

    /** Ratios of every run to the first (e.g. W4 against W16). */
    public static Map<String, Object> ratios(Run base, Run r) {
        Map<String, Object> o = new LinkedHashMap<>();
        o.put("of", r.label());
        o.put("to", base.label());
        o.put("decode_speedup", r.tokensPerSecond() / base.tokensPerSecond());
        o.put("ms_per_token_ratio", r.msPerToken() / base.msPerToken());
        o.put("ttft_ratio", r.ttftSeconds() / base.ttftSeconds());
        o.put("weight_bytes_per_token_ratio", (double) r.weightBytesPerToken() / base.weightBytesPerToken());
        o.put("peak_memory_ratio", (double) r.peakMemoryBytes() / base.peakMemoryBytes());
        return o;
    }

    /** The human-readable table: one column per run. */
    public static String table(String title, List<Run> runs) {
        StringBuilder sb = new StringBuilder(title).append('\n');
        String[][] rows = {
                {"weights", null}, {"prefill tokens", null}, {"time to first token", null}, {"decode tokens", null},
                {"decode tokens/s", null}, {"decode ms/token", null}, {"weight bytes/token", null},
                {"weight bandwidth", null}, {"bandwidth limit", null}, {"limit ms/token", null}, {"of limit", null},
                {"peak memory", null}, {"weights on device", null}};
        sb.append(String.format("%-22s", ""));
        for (Run r : runs) sb.append(String.format("%18s", r.label()));
        sb.append('\n');
        for (String[] row : rows) {
            sb.append(String.format("%-22s", row[0]));
            for (Run r : runs) {
                String v = switch (row[0]) {
                    case "weights" -> r.wbits() == 4 ? "W4A16 g128" : "FP16";
                    case "prefill tokens" -> String.valueOf(r.prefillTokens());
                    case "time to first token" -> String.format("%.1f ms", 1e3 * r.ttftSeconds());
                    case "decode tokens" -> String.valueOf(r.decodeTokens());
                    case "decode tokens/s" -> String.format("%.2f", r.tokensPerSecond());
                    case "decode ms/token" -> String.format("%.3f", r.msPerToken());
                    case "weight bytes/token" -> String.format("%.2f MB", r.weightBytesPerToken() / 1e6);
                    case "weight bandwidth" -> String.format("%.1f GB/s", r.weightBandwidth() / 1e9);
                    case "bandwidth limit" -> String.format("%.1f GB/s", r.bandwidthLimit() / 1e9);
                    case "limit ms/token" -> String.format("%.3f", r.limitMsPerToken());
                    case "of limit" -> String.format("%.0f %%", 100 * r.fractionOfLimit());
                    case "peak memory" -> String.format("%.2f GB", r.peakMemoryBytes() / 1e9);
                    default -> String.format("%.2f GB", r.weightBytesTotal() / 1e9);
                };
                sb.append(String.format("%18s", v));
            }
            sb.append('\n');
        }
        for (Run r : runs)
            for (BatchPoint b : r.batched())
                sb.append(String.format("%s batch %d: %.2f decode tokens/s aggregate, %.2fx batch 1%s; %.0f tokens per CPU-second, %.2fx%n",
                        r.label(), b.batch(), b.tokensPerSecond(), b.tokensPerSecond() / r.batch1TokensPerSecond(),
                        b.repeatSeconds().size() > 1 ? " (median of " + b.repeatSeconds().size() + ")" : "",
                        b.tokensPerCpuSecond(), b.tokensPerCpuSecond() / r.batched().get(0).tokensPerCpuSecond()));
        for (int i = 1; i < runs.size(); i++) {
            Run b = runs.get(0), r = runs.get(i);
            sb.append(String.format("%s vs %s: decode %.2fx faster, ms/token x%.2f, TTFT x%.2f, weight bytes/token x%.2f, peak memory x%.2f%n",
                    r.label(), b.label(), r.tokensPerSecond() / b.tokensPerSecond(), r.msPerToken() / b.msPerToken(),
                    r.ttftSeconds() / b.ttftSeconds(), (double) r.weightBytesPerToken() / b.weightBytesPerToken(),
                    (double) r.peakMemoryBytes() / b.peakMemoryBytes()));
        }
        return sb.toString();
    }
}
