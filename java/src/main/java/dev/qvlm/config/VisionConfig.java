package dev.qvlm.config;

/** CLIP vision tower settings ({@code vision_config}), with HF's defaults already applied. */
public record VisionConfig(
        int hiddenSize,
        int intermediateSize,
        int numLayers,
        int numHeads,
        int numChannels,
        int imageSize,
        int patchSize,
        float layerNormEps,
        Activation hiddenAct) {

    public int headDim() {
        return hiddenSize / numHeads;
    }

    public int numPatches() {
        int side = imageSize / patchSize;
        return side * side;
    }

    /** Patches plus the class token. */
    public int numPositions() {
        return numPatches() + 1;
    }
}
