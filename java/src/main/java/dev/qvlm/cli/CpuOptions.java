package dev.qvlm.cli;

import dev.qvlm.QvlmException;
import dev.qvlm.cpu.Parallel;
import picocli.CommandLine.Option;

/** CPU kernel options of every command that runs a model (mixed into {@link Common} and the bench command). */
public final class CpuOptions {
    @Option(names = "--threads", paramLabel = "N", description = "CPU threads of the matrix kernels (default: the number of cores).")
    Integer threads;

    @Option(names = "--int8-activations", description = {"CPU, 4-bit weights: quantize each linear's input to int8 (blocks of 32, as llama.cpp's Q8_0)",
            "and use integer dot products: faster decode, an approximation of the default exact FP32-activation path",
            "(see README \"Decode kernels\"); calibration and references always run exact."})
    boolean int8Activations;

    /** Applies --threads (process-wide: the kernels share one thread pool). */
    void apply() {
        if (threads == null) return;
        if (threads < 1 || threads > 1024) throw new QvlmException("--threads must be in 1..1024, got " + threads);
        Parallel.setThreads(threads);
    }
}
