package dev.qvlm.cuda;

import dev.qvlm.model.Linear;
import dev.qvlm.quant.ActQuantizer;

/**
 * The linears of {@link CudaBackend}: dense weights through cuBLAS GemmEx (FP16 operands, FP32 accumulation; FP32
 * throughout on the exact path), 4-bit weights through the W4A16 GEMV for up to {@value Int4Layout#GEMV_MAX_TOKENS}
 * tokens and dequantisation + GemmEx beyond, two or three 4-bit linears of one input in one GEMV launch, and input
 * quantizers: static per-tensor ones on the device (qvlm_fake_quant), dynamic ones through the host. Shapes are
 * checked by the backend.
 */
final class DeviceLinears {
    private final CudaBackend backend;
    private final OpStream ops;
    private final DeviceWeights weights;
    private final Storage storage;

    DeviceLinears(CudaBackend backend, OpStream ops, DeviceWeights weights, Storage storage) {
        this.backend = backend;
        this.ops = ops;
        this.weights = weights;
        this.storage = storage;
    }

    /** out = in · Wᵀ (+ bias), the input quantized first when the linear has a quantizer. */
    void linear(CudaTensor o, CudaTensor x, Linear w) {
        Linear.InputQuantizer q = w.inputQuantizer();
        CudaTensor input = x;
        long quantized = 0;
        if (q instanceof ActQuantizer aq && aq.isStatic()) { // W4A4 and friends: on the device, into scratch
            quantized = ops.take(x.bytes());
            ops.launch(Kernel.FAKE_QUANT, ops.elementwise(x.size()), quantized, x.address(), x.size(), aq.scale(),
                    (float) aq.zeroPoint(), (float) aq.args().maxCode());
            input = new CudaTensor(backend, new DeviceMemory.Allocation(quantized, x.bytes()), 0, x.rows(), x.cols(), storage);
        } else if (q != null) { // dynamic ranges: a host round trip (the quantizer is Java code)
            float[] h = backend.download(x);
            q.apply(h, 0, x.rows(), x.cols());
            input = (CudaTensor) backend.upload(h, x.rows(), x.cols());
        }
        try {
            linearOf(o, x, input, w);
        } finally {
            if (quantized != 0) ops.give(quantized);
        }
    }

    private void linearOf(CudaTensor o, CudaTensor x, CudaTensor input, Linear w) {
        if (weights.runsQ4(w.weight())) {
            linearQ4(o, input, w);
            return;
        }
        if (weights.exact()) { // FP32 x FP32 -> FP32 (CUBLAS_COMPUTE_32F, no TF32): the CPU's products
            ops.gemm(Gemm.linear32(x.rows(), w.in(), w.out(), weights.matrix32(w.weight(), w.name()), input.address(), o.address()));
        } else if (storage == Storage.F16) {
            long wAddr = weights.matrix(w.weight(), w.name());
            ops.gemm(Gemm.linear(x.rows(), w.in(), w.out(), wAddr, input.address(), Gemm.CUDA_R_16F, o.address(), Gemm.CUDA_R_16F));
        } else { // cuBLAS wants A and B of one type: round the FP32 input to FP16, keep the FP32 output
            long wAddr = weights.matrix(w.weight(), w.name());
            long half = toHalf(input);
            ops.gemm(Gemm.linear(x.rows(), w.in(), w.out(), wAddr, half, Gemm.CUDA_R_16F, o.address(), Gemm.CUDA_R_32F));
            ops.give(half);
        }
        addBias(o.address(), o.rows(), w);
    }

    /** A scratch FP16 copy of an FP32 tensor (the GEMV and cuBLAS take FP16 activations); give it back after use. */
    private long toHalf(CudaTensor x) {
        long half = ops.take(2 * x.size());
        ops.launch(Kernel.F32_TO_F16, ops.elementwise(x.size()), half, x.address(), x.size());
        return half;
    }

    /** out[r, :] += w's bias, if it has one. */
    private void addBias(long out, int rows, Linear w) {
        if (w.bias() != null)
            ops.launch(Kernel.BIAS_ADD, ops.elementwise((long) rows * w.out()), out, weights.vector(w.bias()), rows, w.out());
    }

    /** out = in · Wᵀ (+ bias) with 4-bit W: the GEMV for ≤ 8 tokens, else dequantise + GemmEx. */
    private void linearQ4(CudaTensor o, CudaTensor input, Linear lin) {
        DeviceWeights.Q4 w = weights.q4(lin.weight(), lin.name());
        int n = input.rows();
        long half = storage == Storage.F32 ? toHalf(input) : 0, x = half != 0 ? half : input.address();
        if (n <= Int4Layout.GEMV_MAX_TOKENS) {
            ops.launch(Kernel.q4Gemv(n), Int4Layout.gemvLaunch(w.rows(), w.cols()), o.address(), x, w.words(), w.params(), n,
                    w.rows(), w.cols(), w.groupSize(), w.groups());
        } else {
            long dense = ops.take(2L * w.rows() * w.cols());
            ops.launch(Kernel.Q4_DEQUANT, ops.elementwise((long) w.rows() * (w.cols() / Int4Layout.CHUNK_COLS)), dense, w.words(),
                    w.params(), w.rows(), w.cols(), w.groupSize(), w.groups());
            ops.gemm(Gemm.linear(n, w.cols(), w.rows(), dense, x, Gemm.CUDA_R_16F, o.address(),
                    storage == Storage.F16 ? Gemm.CUDA_R_16F : Gemm.CUDA_R_32F));
            ops.give(dense);
        }
        if (half != 0) ops.give(half);
        addBias(o.address(), o.rows(), lin);
    }

    /**
     * Two or three 4-bit linears of one input (q, k, v; gate, up) with the same columns and group size, no input
     * quantizer, at most {@value Int4Layout#GEMV_MAX_TOKENS} tokens: one GEMV launch for all (each tile as alone).
     * False, with nothing done, for anything else (the caller then runs them one at a time).
     */
    boolean linears(CudaTensor[] outs, CudaTensor x, Linear[] ws) {
        boolean one = ws.length >= 2 && ws.length <= 3 && x.rows() >= 1 && x.rows() <= Int4Layout.GEMV_MAX_TOKENS;
        for (int i = 0; one && i < ws.length; i++) {
            Linear w = ws[i];
            one = weights.runsQ4(w.weight()) && w.inputQuantizer() == null && w.in() == x.cols()
                    && w.weight().cols() == ws[0].weight().cols() && groupSize(w) == groupSize(ws[0])
                    && outs[i].rows() == x.rows() && outs[i].cols() == w.out();
        }
        if (!one) return false;
        DeviceWeights.Q4[] w = new DeviceWeights.Q4[3];
        long[] o = new long[3];
        int tiles = 0;
        for (int i = 0; i < ws.length; i++) {
            w[i] = weights.q4(ws[i].weight(), ws[i].name());
            o[i] = outs[i].address();
            tiles += Int4Layout.tiles(w[i].rows());
        }
        long half = storage == Storage.F32 ? toHalf(x) : 0, xa = half != 0 ? half : x.address();
        DeviceWeights.Q4 w0 = w[0], w1 = w[1], w2 = ws.length == 3 ? w[2] : null;
        LaunchGeometry.Launch g = new LaunchGeometry.Launch(tiles, 1, Int4Layout.gemvLaunch(w0.rows(), w0.cols()).block(), 0);
        ops.launch(Kernel.q4GemvMulti(x.rows()), g, o[0], o[1], w2 == null ? 0L : o[2], xa, w0.words(), w0.params(),
                w1.words(), w1.params(), w2 == null ? 0L : w2.words(), w2 == null ? 0L : w2.params(), x.rows(), w0.rows(),
                w1.rows(), w2 == null ? 0 : w2.rows(), w0.cols(), w0.groupSize(), w0.groups());
        if (half != 0) ops.give(half);
        for (int i = 0; i < ws.length; i++) addBias(o[i], x.rows(), ws[i]);
        return true;
    }

    private int groupSize(Linear w) {
        return weights.q4(w.weight(), w.name()).groupSize();
    }
}
