package dev.qvlm.calib;

import dev.qvlm.QvlmException;
import dev.qvlm.model.Linear;
import dev.qvlm.quant.Gptq;
import dev.qvlm.quant.QuantArgs;
import picocli.CommandLine.Option;

import java.util.Arrays;

/** CLI options that define a quantization setting; shared by {@code quantize} and {@code compare}. */
public final class QuantOptions {
    @Option(names = "--method", defaultValue = "qvlm", paramLabel = "M",
            description = "rtn | layerwise | qvlm (default ${DEFAULT-VALUE}).")
    public String method;

    @Option(names = "--wbits", defaultValue = "4", paramLabel = "B", description = "Weight bits 2–8, or 16 for none (default ${DEFAULT-VALUE}).")
    public int wbits;

    @Option(names = "--abits", defaultValue = "16", paramLabel = "B", description = "Activation bits 2–8, or 16 for none (default ${DEFAULT-VALUE}).")
    public int abits;

    @Option(names = "--group", defaultValue = "0", paramLabel = "G", description = "Weight group size in input columns; 0 = per output channel (default).")
    public int group;

    @Option(names = "--wsym", negatable = true, paramLabel = "",
            description = "Symmetric weights; --no-wsym for asymmetric ones (zero points). Default: asymmetric, but quantize --target vllm|transformers (vllm is the default with --out) picks symmetric.")
    public Boolean wsym;

    /** Weight symmetry when neither --wsym nor --no-wsym is given (quantize sets it from --target). */
    public boolean defaultWsym;

    @Option(names = "--asym-act", negatable = true, defaultValue = "true", fallbackValue = "true",
            description = "Asymmetric activation quantization (default); --no-asym-act for symmetric.")
    public boolean asymAct;

    @Option(names = "--act-dynamic", description = "Per-token activation ranges at run time instead of static per-tensor ranges from calibration.")
    public boolean actDynamic;

    @Option(names = "--scope", defaultValue = "all", paramLabel = "S", description = "llm | vision | projector | all (default ${DEFAULT-VALUE}); lm_head and embeddings stay full precision.")
    public String scope;

    @Option(names = "--grid", split = ",", paramLabel = "P,...", description = {"Clipping percentiles to search (default 1.0,0.995,0.99,0.985,0.98, the paper's grid).",
                    "With --method rtn and one value P: static activation ranges clipped at the P quantile of each prompt, widest over prompts, as the PyTorch reference does (weights stay min-max)."})
    public double[] grid;

    @Option(names = "--h0", paramLabel = "X", description = "Block threshold h0 (default: mean of D over consecutive layers).")
    public Double h0;

    @Option(names = "--max-block", defaultValue = "3", paramLabel = "N", description = "Most layers per block (default ${DEFAULT-VALUE}).")
    public int maxBlock;

    @Option(names = "--max-sweeps", defaultValue = "2", paramLabel = "N", description = "Coordinate-descent sweeps at most (default ${DEFAULT-VALUE}).")
    public int maxSweeps;

    @Option(names = "--exhaustive-limit", defaultValue = "125", paramLabel = "N", description = "Search a block exhaustively when its joint grid has at most N points (default ${DEFAULT-VALUE}).")
    public int exhaustiveLimit;

    @Option(names = "--act-bounds", defaultValue = "joint", paramLabel = "MODE",
            description = "joint (default, the paper: one percentile clips both tails) or separate (lower and upper tail searched independently).")
    public String actBounds;

    @Option(names = "--lp", defaultValue = "2", paramLabel = "P",
            description = "Search criterion: relative L^P error of block outputs (default ${DEFAULT-VALUE} = MSE, as in the paper).")
    public double lp;

    @Option(names = "--weights", defaultValue = "rtn", paramLabel = "R",
            description = {"How weights are rounded onto the grid the method chose (default ${DEFAULT-VALUE}):",
                    "rtn: round to nearest; gptq: GPTQ error feedback (H = 2XX^T of each linear's quantized-path inputs);",
                    "awq: AWQ per-input-channel scales folded into the preceding norm/linear, then per-group weight clipping;",
                    "awq+gptq: AWQ scales and clipping, then GPTQ rounding."})
    public String weightRounding;

    @Option(names = "--smooth", paramLabel = "ALPHA",
            description = "SmoothQuant: migrate activation outliers into the weights with strength ALPHA in [0, 1] (0.5 in the paper), folded into the preceding norms. Default: off.")
    public Double smooth;

    @Option(names = "--act-order", description = "GPTQ: round columns in order of decreasing H[i,i].")
    public boolean actOrder;

    @Option(names = "--gptq-block", defaultValue = "128", paramLabel = "N", description = "GPTQ lazy-batch block width (default ${DEFAULT-VALUE}).")
    public int gptqBlock;

    @Option(names = "--gptq-damp", defaultValue = "0.01", paramLabel = "F", description = "GPTQ dampening, a fraction of mean(diag H) (default ${DEFAULT-VALUE}).")
    public double gptqDamp;

    public QuantSettings settings() {
        return settings(Method.parse(method), wbits, abits, group);
    }

    public QuantSettings settings(Method m, int wb, int ab, int g) {
        QuantArgs w = null, a = null;
        if (wb != 16) {
            checkBits("--wbits", wb);
            if (g < 0) throw new QvlmException("--group must be 0 (per channel) or a positive group size, got " + g);
            boolean sym = wsym != null ? wsym : defaultWsym;
            w = g > 0 ? QuantArgs.perGroup(wb, sym, g) : QuantArgs.perChannel(wb, sym);
        }
        if (ab != 16) {
            checkBits("--abits", ab);
            a = actDynamic ? QuantArgs.perToken(ab, !asymAct) : QuantArgs.perTensor(ab, !asymAct);
        }
        if (w == null && a == null) throw new QvlmException("--wbits 16 --abits 16 quantizes nothing");
        double[] gr = grid == null ? QuantSettings.PAPER_GRID : grid.clone();
        if (gr.length == 0) throw new QvlmException("--grid is empty");
        for (double p : gr)
            if (!(p > 0.5 && p <= 1.0)) throw new QvlmException("--grid: percentile " + p + " is outside (0.5, 1]");
        if (m != Method.RTN && Arrays.stream(gr).noneMatch(p -> p == 1.0)) {
            gr = Arrays.copyOf(gr, gr.length + 1);
            gr[gr.length - 1] = 1.0; // min–max is always a candidate, so a search never does worse than RTN
        }
        if (!(lp >= 1 && lp <= 8)) throw new QvlmException("--lp must be in [1, 8], got " + lp);
        if (maxBlock < 1) throw new QvlmException("--max-block must be at least 1");
        if (maxSweeps < 1) throw new QvlmException("--max-sweeps must be at least 1");
        int levelBits = a != null ? a.bits() : w.bits();
        boolean separate = switch (actBounds) {
            case "joint" -> false;
            case "separate" -> true;
            default -> throw new QvlmException("--act-bounds: expected joint or separate, got '" + actBounds + "'");
        };
        WeightRounding r = WeightRounding.parse(weightRounding == null ? "rtn" : weightRounding);
        double sm = checkSmooth(smooth);
        if (r != WeightRounding.RTN && w == null)
            throw new QvlmException("--weights " + r.id() + " needs quantized weights (--wbits 2..8)");
        if (gptqBlock < 1) throw new QvlmException("--gptq-block must be at least 1, got " + gptqBlock);
        if (!(gptqDamp > 0 && gptqDamp <= 1)) throw new QvlmException("--gptq-damp must be in (0, 1], got " + gptqDamp);
        return new QuantSettings(m, w, a, actDynamic, QuantSettings.parseScope(scope), gr, h0 == null ? Double.NaN : h0,
                maxBlock, maxSweeps, exhaustiveLimit, levelBits, separate, lp, r, sm,
                new Gptq.Options(gptqBlock, gptqDamp, actOrder));
    }

    static double checkSmooth(Double a) {
        if (a == null || Double.isNaN(a)) return Double.NaN;
        if (!(a >= 0 && a <= 1)) throw new QvlmException("--smooth must be in [0, 1], got " + a);
        return a;
    }

    static void checkBits(String flag, int b) {
        if (b < QuantArgs.MIN_BITS || b > QuantArgs.MAX_BITS)
            throw new QvlmException(flag + " " + b + " is out of range: use " + QuantArgs.MIN_BITS + "–" + QuantArgs.MAX_BITS + " (or 16 for no quantization)");
    }

    /** Fails before any compute when a group size does not divide an in-scope layer's width. */
    public static void validate(QuantSettings s, Iterable<Linear> linears) {
        if (s.weights() == null) return;
        for (Linear l : linears)
            if (s.scope().contains(l.part())) s.weights().validateFor(l.in(), l.name());
    }
}
