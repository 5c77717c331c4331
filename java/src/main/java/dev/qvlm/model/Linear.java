package dev.qvlm.model;

import dev.qvlm.tensor.Matrix;

/**
 * One nn.Linear of the model: weight (out, in) and optional bias. The quantizer swaps {@link #weight} for a
 * (fake-)quantized matrix and may attach an input quantizer; the forward pass does not change.
 */
public final class Linear {
    /** Which part of LLaVA a linear belongs to: the scope flags of quantization select by this. */
    public enum Part { VISION_EMBEDDING, VISION, PROJECTOR, LLM, LM_HEAD }

    private final String name;
    private final Part part;
    private volatile Matrix weight;
    private final float[] bias;
    private volatile InputQuantizer inputQuantizer;

    /** Quantizes a linear's input activations in place (fake-quant): rows x cols, row-major. */
    public interface InputQuantizer {
        void apply(float[] x, int off, int rows, int cols);

        /**
         * Whether each row's result depends on that row alone (static or per-token ranges). A quantizer whose range
         * spans all rows (dynamic per tensor) is not, so a batched forward runs it one sequence at a time.
         */
        default boolean rowIndependent() {
            return true;
        }
    }

    public Linear(String name, Part part, Matrix weight, float[] bias) {
        this.name = name;
        this.part = part;
        this.weight = weight;
        this.bias = bias;
        if (bias != null && bias.length != weight.rows())
            throw new IllegalArgumentException(name + ": bias length " + bias.length + " != rows " + weight.rows());
    }

    public String name() {
        return name;
    }

    public Part part() {
        return part;
    }

    public Matrix weight() {
        return weight;
    }

    public float[] bias() {
        return bias;
    }

    public int in() {
        return weight.cols();
    }

    public int out() {
        return weight.rows();
    }

    public void setWeight(Matrix w) {
        if (w.rows() != weight.rows() || w.cols() != weight.cols())
            throw new IllegalArgumentException(name + ": shape change");
        this.weight = w;
    }

    public InputQuantizer inputQuantizer() {
        return inputQuantizer;
    }

    public void setInputQuantizer(InputQuantizer q) {
        this.inputQuantizer = q;
    }

    @Override
    public String toString() {
        return name + " (" + weight.rows() + "x" + weight.cols() + ", " + weight.storageName() + ")";
    }
}
