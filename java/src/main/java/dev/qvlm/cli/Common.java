package dev.qvlm.cli;

import dev.qvlm.QvlmException;
import dev.qvlm.backend.Backend;
import dev.qvlm.cpu.CpuBackend;
import dev.qvlm.cuda.CudaBackend;
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

    public Backend backend() {
        return switch (device) {
            case "cpu" -> new CpuBackend(fp16Activations);
            case "cuda", "gpu" -> CudaBackend.open(); // one QvlmException saying why when the GPU is not usable
            default -> throw new QvlmException("--device: unknown device '" + device + "' (expected cpu or cuda)");
        };
    }
}
