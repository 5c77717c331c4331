package dev.qvlm.cuda;

/**
 * The entry points of qvlm_kernels.cu and their parameter lists, one letter per parameter: p pointer, i int,
 * l long long, f float, d double. {@link CudaBackend} checks every launch against the signature (a wrong argument
 * list would otherwise be undefined behaviour on the device) and KernelNamesTest checks the signatures against the
 * .cu source, so both sides are verified without a GPU.
 */
public enum Kernel {
    EMBED("qvlm_embed", true, "pppiii"),
    RMSNORM("qvlm_rmsnorm", true, "pppiif"),
    ADD_RMSNORM("qvlm_add_rmsnorm", true, "ppppiif"),
    LAYERNORM("qvlm_layernorm", true, "ppppiif"),
    ADD("qvlm_add", true, "ppl"),
    BIAS_ADD("qvlm_bias_add", true, "ppii"),
    ACT("qvlm_act", true, "pli"),
    GATED_ACT("qvlm_gated_act", true, "ppli"),
    COPY("qvlm_copy", true, "ppl"),
    FAKE_QUANT("qvlm_fake_quant", true, "pplfff"),
    ROPE("qvlm_rope", true, "piiiiid"),
    ROPE_Q_STORE("qvlm_rope_q_store", true, "pppppiiiiiiiipd"),
    ATTN_PREFILL("qvlm_attn_prefill", true, "ppppiiiiiiifiiii"),
    ATTN_SPLIT("qvlm_attn_split", true, "ppppppiiiiiiifiiiip"),
    ATTN_COMBINE("qvlm_attn_combine", true, "pppiiiii"),
    SOFTMAX_ROWS("qvlm_softmax_rows", true, "ppiiiiif"),
    ARGMAX("qvlm_argmax", true, "piip"),
    F32_TO_F16("qvlm_f32_to_f16", false, "ppl"),
    F16_TO_F32("qvlm_f16_to_f32", false, "ppl"),
    // W4A16 (q4.cuh): GEMV per token bucket of Int4Layout.GEMV_BUCKETS, dequantise for GemmEx, synthetic fills
    Q4_GEMV1("qvlm_q4_gemv1", true, "ppppiiiii"),
    Q4_GEMV2("qvlm_q4_gemv2", true, "ppppiiiii"),
    Q4_GEMV4("qvlm_q4_gemv4", true, "ppppiiiii"),
    Q4_GEMV8("qvlm_q4_gemv8", true, "ppppiiiii"),
    Q4_GEMV1_U2("qvlm_q4_gemv1u2", true, "ppppiiiii"),
    Q4_GEMV1_U4("qvlm_q4_gemv1u4", true, "ppppiiiii"),
    // up to three GEMVs of one input in one launch (q, k, v; gate, up)
    Q4_GEMV_MULTI1("qvlm_q4_gemv_multi1", true, "ppppppppppiiiiiii"),
    Q4_GEMV_MULTI1_U2("qvlm_q4_gemv_multi1u2", true, "ppppppppppiiiiiii"),
    Q4_GEMV_MULTI1_U4("qvlm_q4_gemv_multi1u4", true, "ppppppppppiiiiiii"),
    Q4_GEMV_MULTI2("qvlm_q4_gemv_multi2", true, "ppppppppppiiiiiii"),
    Q4_GEMV_MULTI4("qvlm_q4_gemv_multi4", true, "ppppppppppiiiiiii"),
    Q4_GEMV_MULTI8("qvlm_q4_gemv_multi8", true, "ppppppppppiiiiiii"),
    Q4_DEQUANT("qvlm_q4_dequant", false, "pppiiii"),
    Q4_DECODE32("qvlm_q4_decode32", false, "ppppiii"),
    FILL_F16("qvlm_fill_f16", false, "plif"),
    FILL_Q4("qvlm_fill_q4", false, "ppiiiifi"),
    // calibration (calib.cuh)
    MINMAX("qvlm_minmax", true, "plp"),
    RANGE_HIST("qvlm_range_hist", true, "plddip"),
    ERR_SUMS("qvlm_err_sums", true, "pplp"),
    SOFT_JOINT_HIST("qvlm_soft_joint_hist", false, "ppplffiffi"),
    FQ_SCORE("qvlm_fq_score", false, "ppppppiiiiii"),
    // profiling: holds the stream (see CudaBackend.profileOps)
    SPIN("qvlm_spin", false, "l");

    /**
     * The GEMV entry point for a call with n tokens (1..8): the smallest bucket that holds them; for one token, the
     * variant with {@link Int4Layout#gemvUnroll} chunks of loads in flight per thread.
     */
    public static Kernel q4Gemv(int n) {
        return switch (Int4Layout.bucket(n)) {
            case 1 -> switch (Int4Layout.gemvUnroll()) {
                case 2 -> Q4_GEMV1_U2;
                case 4 -> Q4_GEMV1_U4;
                default -> Q4_GEMV1;
            };
            case 2 -> Q4_GEMV2;
            case 4 -> Q4_GEMV4;
            default -> Q4_GEMV8;
        };
    }

    private final String base;
    private final boolean perStorage;
    private final String signature;

    Kernel(String base, boolean perStorage, String signature) {
        this.base = base;
        this.perStorage = perStorage;
        this.signature = signature;
    }

    /** The symbol in the fatbin: per-storage kernels carry the activation type's suffix (_f16, _f32). */
    public String symbol(Storage s) {
        return perStorage ? base + "_" + s.suffix() : base;
    }

    public boolean perStorage() {
        return perStorage;
    }

    public String signature() {
        return signature;
    }

    /** The multi-matrix GEMV entry point for n tokens (1..8), as {@link #q4Gemv}. */
    public static Kernel q4GemvMulti(int n) {
        return switch (Int4Layout.bucket(n)) {
            case 1 -> switch (Int4Layout.gemvUnroll()) {
                case 2 -> Q4_GEMV_MULTI1_U2;
                case 4 -> Q4_GEMV_MULTI1_U4;
                default -> Q4_GEMV_MULTI1;
            };
            case 2 -> Q4_GEMV_MULTI2;
            case 4 -> Q4_GEMV_MULTI4;
            default -> Q4_GEMV_MULTI8;
        };
    }

    /** Every symbol the backend may load. */
    public static java.util.List<String> allSymbols() {
        java.util.List<String> out = new java.util.ArrayList<>();
        for (Kernel k : values())
            if (k.perStorage) for (Storage s : Storage.values()) out.add(k.symbol(s));
            else out.add(k.base);
        return out;
    }

    /**
     * Checks that launch arguments match the signature: Long for p and l, Integer for i, Float for f, Double for d.
     */
    public void check(Object[] args) {
        if (args.length != signature.length())
            throw new IllegalStateException(base + ": " + args.length + " arguments for signature " + signature);
        for (int i = 0; i < args.length; i++) {
            char c = signature.charAt(i);
            boolean ok = switch (c) {
                case 'p', 'l' -> args[i] instanceof Long;
                case 'i' -> args[i] instanceof Integer;
                case 'f' -> args[i] instanceof Float;
                case 'd' -> args[i] instanceof Double;
                default -> false;
            };
            if (!ok)
                throw new IllegalStateException(base + ": argument " + i + " is " + (args[i] == null ? "null" : args[i].getClass().getSimpleName())
                        + ", signature " + signature + " wants '" + c + "'");
        }
    }
}
