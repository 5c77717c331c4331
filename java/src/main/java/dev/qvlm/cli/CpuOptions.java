package dev.qvlm.cli;

import dev.qvlm.QvlmException;
import dev.qvlm.cpu.Parallel;
import picocli.CommandLine.Option;

/** CPU kernel options of every command that runs a model (mixed into {@link Common} and the bench command). */
public final class CpuOptions {
    @Option(names = "--threads", paramLabel = "N", description = "CPU threads of the matrix kernels (default: the number of cores).")
    Integer threads;

    @Option(names = "--int8-activations", description = {
            "CPU, 4-bit weights, decode steps (up to 32 rows): quantize each linear's input to int8 per block of 32",
            "(llama.cpp's Q8_0) and use integer dot products. An approximation of the exact FP32-activation default",
            "(README \"Decode kernels\"); prefill stays exact; quantize and compare refuse it; eval --reference runs exact."})
    boolean int8Activations;

    /** Applies --threads (process-wide: the kernels share one thread pool). */
    void apply() {
        if (threads == null) return;
        if (threads < 1 || threads > 1024) throw new QvlmException("--threads must be in 1..1024, got " + threads);
        Parallel.setThreads(threads);
    }
}
