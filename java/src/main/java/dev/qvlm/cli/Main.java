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
            Throwable root = ex;
            while (root.getCause() != null && root.getCause() != root) root = root.getCause();
            if (root instanceof Error err) return reportError(err, cmd.getErr());
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
        try {
            return cl.execute(args);
        } catch (Error e) {
            // picocli hands only Exceptions to the handler above; an Error (OutOfMemoryError, StackOverflowError)
            // from a command ends here and is reported as one line too, never as a stack trace
            return reportError(e, cl.getErr());
        }
    }

    /** One line for an {@link Error}; exit code 2 for running out of memory (the input was too large), else 1. */
    static int reportError(Error e, PrintWriter err) {
        Throwable t = e;
        while (!(t instanceof OutOfMemoryError) && t.getCause() != null && t.getCause() != t) t = t.getCause();
        if (t instanceof OutOfMemoryError) {
            err.println("qvlm: error: out of memory (" + t.getMessage() + "; the JVM heap is "
                    + Runtime.getRuntime().maxMemory() / (1 << 20) + " MB: the input is too large for it, or give more with JAVA_OPTS=-Xmx...)");
            err.flush();
            return 2;
        }
        err.println("qvlm: internal error: " + e);
        if (System.getenv("QVLM_DEBUG") != null) e.printStackTrace(err);
        err.flush();
        return 1;
    }

    public static void main(String[] args) {
        // a thread that dies of an uncaught throwable prints one line, not a stack trace
        Thread.setDefaultUncaughtExceptionHandler((t, e) -> {
            System.err.println("qvlm: " + (e instanceof QvlmException ? "error: " + e.getMessage() : "internal error in thread "
                    + t.getName() + ": " + e));
            if (System.getenv("QVLM_DEBUG") != null) e.printStackTrace();
        });
        System.exit(execute(args));
    }
}
