package dev.qvlm.cli;

import dev.qvlm.QvlmException;
import picocli.CommandLine;
import picocli.CommandLine.Command;

import java.io.PrintWriter;

/** Entry point: {@code qvlm <command> [options]}. User errors print one line and exit 2, never a stack trace. */
@Command(name = "qvlm", mixinStandardHelpOptions = true, version = "qvlm 0.1.0",
        description = {"Quantize LLaVA vision-language models with Q-VLM and run them on the CPU or GPU.", ""},
        subcommands = {GenerateCommand.class, EvalCommand.class, QuantizeCommand.class, CompareCommand.class, MemoryCommand.class, BenchCommand.class, ServeCommand.class, SynthCommand.class, CommandLine.HelpCommand.class},
        footer = {"", "Exit codes: 0 ok, 2 bad input (file, flag, shape), 1 internal error.",
                "Set QVLM_DEBUG=1 to see stack traces of internal errors."})
public final class Main implements Runnable {
    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(System.err);
        throw new CommandLine.ParameterException(spec.commandLine(), "missing command");
    }

    public static int execute(String... args) {
        CommandLine cl = new CommandLine(new Main());
        cl.setExecutionExceptionHandler((ex, cmd, parseResult) -> {
            if (ex instanceof QvlmException) {
                cmd.getErr().println("qvlm: error: " + ex.getMessage());
                cmd.getErr().flush();
                return 2;
            }
            cmd.getErr().println("qvlm: internal error: " + ex);
            if (System.getenv("QVLM_DEBUG") != null) ex.printStackTrace(cmd.getErr());
            cmd.getErr().flush();
            return 1;
        });
        cl.setParameterExceptionHandler((ex, a) -> {
            PrintWriter err = ex.getCommandLine().getErr();
            err.println("qvlm: error: " + ex.getMessage());
            err.println("Run '" + ex.getCommandLine().getCommandSpec().qualifiedName() + " --help' for usage.");
            err.flush();
            return 2;
        });
        return cl.execute(args);
    }

    public static void main(String[] args) {
        System.exit(execute(args));
    }
}
