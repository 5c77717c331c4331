package dev.qvlm.bench;

import dev.qvlm.backend.Backend;
import dev.qvlm.config.KnownModels;
import dev.qvlm.config.LlavaConfig;
import dev.qvlm.cpu.CpuBackend;
import dev.qvlm.cuda.CudaBackend;
import dev.qvlm.cuda.CudaRuntime;
import dev.qvlm.model.KvCache;
import dev.qvlm.model.LlavaModel;
import dev.qvlm.tensor.GeneratedMatrix;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

import java.lang.foreign.Arena;
import java.util.concurrent.TimeUnit;

/**
 * One greedy decode step of LLaVA at batch 1 (embed, every decoder layer against a KV cache of {@code context}
 * tokens, final norm, lm_head, argmax) on synthetic weights of a known shape: FP16 or W4A16 g128, on the CPU
 * backend or the CUDA backend (where {@link dev.qvlm.bench.SyntheticModel} fills the weights on the device). The
 * cache is prefilled once per trial with {@code context} text tokens (the LLaVA-1.5 prompt: 576 image + 64 text
 * = 640) and rewound to that length every {@code REWIND} steps, so every measured step attends over
 * {@code context} to {@code context + REWIND} keys.
 *
 * <p>A {@code device=cuda} trial without a usable GPU fails in setup with the reason (JMH reports it and goes on
 * with the other parameters). The CPU cannot hold FP16 13B (26.7 GB); {@code Bench.checkCpuFits} refuses it.
 * The default grid is what fits a CPU run here; the GPU script passes {@code -p device=cuda -p shape=...}.
 */
@BenchmarkMode(Mode.SampleTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 1, time = 2)
@Measurement(iterations = 3, time = 2)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED", "-Xss4m"})
@State(Scope.Benchmark)
public class DecodeStepBench {
    private static final int REWIND = 64;

    /** tiny (the bundled model's shapes), llava-1.5-7b, llava-1.5-13b. */
    @Param({"tiny"})
    public String shape;

    /** 16: FP16 weights; 4: W4A16, groups of 128 (asymmetric). */
    @Param({"16", "4"})
    public int wbits;

    @Param({"cpu"})
    public String device;

    /** Tokens in the KV cache before the measured steps. */
    @Param({"640"})
    public int context;

    private Backend backend;
    private Arena host;
    private LlavaModel model;
    private KvCache cache;
    private int token;

    @Setup(Level.Trial)
    public void setup() {
        LlavaConfig cfg = KnownModels.config(shape);
        boolean cuda = device.equals("cuda");
        if (cuda) {
            String why = CudaRuntime.probe();
            if (why != null) throw new IllegalStateException("device=cuda: no usable GPU: " + why);
        } else if (!device.equals("cpu")) throw new IllegalArgumentException("device must be cpu|cuda: " + device);
        else Bench.checkCpuFits(shape, cfg, wbits, context + REWIND + 1);
        backend = cuda ? CudaBackend.open() : new CpuBackend();
        host = cuda ? null : Arena.ofShared(); // CPU weights live here until tearDown; on cuda the device fills them
        model = new LlavaModel(cfg, SyntheticModel.build(cfg, wbits, 1, host), backend);
        cache = model.newCache(context + REWIND + 1);
        int vocab = cfg.text().vocabSize();
        int[] prompt = new int[context];
        for (int i = 0; i < context; i++) {
            int id = Math.floorMod(GeneratedMatrix.hash(7, i), vocab);
            prompt[i] = id == cfg.imageTokenIndex() ? 0 : id; // text only: the vision tower is not what is measured
        }
        prompt[0] = cfg.text().bosTokenId();
        token = Bench.argmax(model.forward(cache, prompt, null, false));
    }

    @Benchmark
    public int step() {
        if (cache.length() >= context + REWIND) cache.truncate(context);
        token = Bench.argmax(model.forward(cache, new int[] {token}, null, false));
        return token;
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        if (backend != null) backend.close();
        if (host != null) host.close();
        backend = null;
        host = null;
        model = null;
        cache = null;
    }
}
