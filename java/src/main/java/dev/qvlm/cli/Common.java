package dev.qvlm.cli;

import dev.qvlm.QvlmException;
import dev.qvlm.backend.Backend;
import dev.qvlm.cpu.CpuBackend;
import dev.qvlm.cuda.CudaBackend;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** Options shared by the commands that run a model. */
public final class Common {
    @Option(names = "--device", defaultValue = "cpu", paramLabel = "DEV",
            description = "Where to run: cpu (default) or cuda.")
    String device;

    @Option(names = "--quiet", description = "No progress output on stderr.")
    boolean quiet;

    @Option(names = "--fp16-activations", description = "CPU: round every activation to FP16 between operations, as an FP16 model on a GPU stores them (to compare with FP16 reference runs).")
    boolean fp16Activations;

    @Option(names = "--no-graphs", description = "cuda: launch every op of a decode step from the host instead of replaying the step as a CUDA graph (slower; for comparison and debugging).")
    boolean noGraphs;

    @Mixin
    CpuOptions cpu = new CpuOptions();

    /** The backend of the run; on the CPU with --int8-activations if given. */
    public Backend backend() {
        return backend(cpu.int8Activations);
    }

    /**
     * The backend on the exact FP32-activation path whatever --int8-activations says: for calibration, the
     * quantization search, and reference models; on the GPU, FP32 activations, weights and GEMMs.
     */
    public Backend exactBackend() {
        if (!device.equals("cuda") && !device.equals("gpu")) return backend(false);
        cpu.apply();
        if (noGraphs) System.setProperty("qvlm.cuda.graphs", "false");
        return CudaBackend.openExact(); // FP32 weights and GEMMs: the search's choices then follow the CPU's
    }

    /** Refuses --int8-activations in a command that only runs the exact path (quantize, compare). */
    void requireExact(String command) {
        if (cpu.int8Activations)
            throw new QvlmException("--int8-activations: " + command + " calibrates and searches on the exact FP32-activation path; "
                    + "evaluate the result with eval --int8-activations instead");
    }

    private Backend backend(boolean int8) {
        cpu.apply();
        if (int8 && !device.equals("cpu")) throw new QvlmException("--int8-activations is a CPU option (got --device " + device + ")");
        return switch (device) {
            case "cpu" -> new CpuBackend(fp16Activations, int8);
            case "cuda", "gpu" -> {
                if (noGraphs) System.setProperty("qvlm.cuda.graphs", "false");
                yield CudaBackend.open(); // one QvlmException saying why when the GPU is not usable
            }
            default -> throw new QvlmException("--device: unknown device '" + device + "' (expected cpu or cuda)");
        };
    }
}
