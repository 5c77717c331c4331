package dev.qvlm.cuda;

/**
 * One cublasGemmEx call (column-major BLAS semantics: C[m x n] = op(A) · op(B), alpha 1, beta 0, FP32 compute).
 * {@link #linear} maps the row-major linear layer onto it.
 */
public record Gemm(int transA, int transB, int m, int n, int k, long a, int aType, int lda, long b, int bType, int ldb,
                   long c, int cType, int ldc) {
    public static final int OP_N = 0, OP_T = 1;
    /** cudaDataType_t values (library_types.h). */
    public static final int CUDA_R_32F = 0, CUDA_R_16F = 2;
    /** cublasComputeType_t CUBLAS_COMPUTE_32F and cublasGemmAlgo_t CUBLAS_GEMM_DEFAULT. */
    public static final int COMPUTE_32F = 68, GEMM_DEFAULT = -1;

    /**
     * Y[rows x out] = X[rows x in] · Wᵀ, all row-major, W [out x in] FP16. Read as column-major, row-major W is Wᵀ
     * [in x out] (ld = in), X is Xᵀ [in x rows] (ld = in) and Y is Yᵀ [out x rows] (ld = out); Yᵀ = W · Xᵀ, i.e.
     * C = op(A) · B with A = the W buffer transposed (OP_T), B = the X buffer (OP_N), m = out, n = rows, k = in.
     */
    public static Gemm linear(int rows, int in, int out, long w, long x, int xType, long y, int yType) {
        return new Gemm(OP_T, OP_N, out, rows, in, w, CUDA_R_16F, in, x, xType, in, y, yType, out);
    }

    /** {@link #linear} with an FP32 weight, input and output (the calibration's exact path). */
    public static Gemm linear32(int rows, int in, int out, long w, long x, long y) {
        return new Gemm(OP_T, OP_N, out, rows, in, w, CUDA_R_32F, in, x, CUDA_R_32F, in, y, CUDA_R_32F, out);
    }

    /**
     * {@code batch} GEMMs of this shape, operand i at a + i·strideA, b + i·strideB, c + i·strideC (elements):
     * cublasGemmStridedBatchedEx. Strides of 0 with batch 1 are the plain call.
     */
    public record Batched(Gemm g, int batch, long strideA, long strideB, long strideC) {
        public Batched {
            if (batch < 1) throw new IllegalArgumentException("batch " + batch);
        }
    }
}
