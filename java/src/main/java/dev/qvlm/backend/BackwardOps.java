package dev.qvlm.backend;

import dev.qvlm.config.Activation;
import dev.qvlm.model.Linear;

/**
 * The backward (vector–Jacobian) counterparts of the {@link Backend} ops, in FP32, for training the vision tower
 * (Q-VLM's visual-encoder optimisation). Each takes the upstream gradient dY of an op's output and the op's saved
 * or recomputed inputs. Gradients "accumulate" (+=) where an input feeds several consumers (a LayerNorm output
 * feeds q, k and v; a residual stream feeds a layer and the skip), so callers allocate zeroed tensors once and let
 * every consumer add into them. Fake-quantizers use the straight-through estimator: d Q(x) / dx = 1.
 * The CPU implements these; the CUDA backend does not yet (its kernels are a later issue).
 */
public interface BackwardOps {
    /**
     * For out = Q(in) · Wᵀ + b with W the linear's current (possibly fake-quantized) weight: dX += dY · W,
     * dW += dYᵀ · Q(in) (when dW is non-null, [out x in] row-major), db += Σ_rows dY (when non-null).
     */
    void linearBackward(Tensor dX, float[] dW, float[] db, Tensor dY, Tensor in, Linear w);

    /** y = γ ⊙ x / rms(x): dX += ∂y/∂x ᵀ dY; dGamma += Σ_rows dY ⊙ x / rms(x) (when non-null). */
    void rmsNormBackward(Tensor dX, float[] dGamma, Tensor dY, Tensor x, float[] gamma, float eps);

    /** y = γ ⊙ (x − μ)/σ + β: dX += ∂y/∂x ᵀ dY; dGamma, dBeta += their row sums (when non-null). */
    void layerNormBackward(Tensor dX, float[] dGamma, float[] dBeta, Tensor dY, Tensor x, float[] gamma, float eps);

    /** y = act(x): dX = dY ⊙ act'(x) (overwrites dX, which may be dY itself). */
    void activateBackward(Tensor dX, Tensor dY, Tensor x, Activation act);

    /** y = act(gate) ⊙ up: dGate = dY ⊙ up ⊙ act'(gate), dUp = dY ⊙ act(gate) (both overwritten). */
    void gatedActivateBackward(Tensor dGate, Tensor dUp, Tensor dY, Tensor gate, Tensor up, Activation act);

    /** RoPE is a rotation per pair, so its backward rotates dY by the opposite angle, in place. */
    void ropeBackward(Tensor dY, int heads, int headDim, int startPos, double theta);

    /**
     * Backward of {@link Backend#attention}: the softmax is recomputed from q and k. dQ is overwritten; dK and dV
     * ([kvLen x kvHeads*headDim]) accumulate over the query heads that share a KV head.
     */
    void attentionBackward(Tensor dQ, Tensor dK, Tensor dV, Tensor dOut, Tensor q, Tensor k, Tensor v, int kvLen,
                           int heads, int kvHeads, int headDim, int qPos0, boolean causal, float scale);
}
