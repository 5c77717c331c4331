package dev.qvlm.runtime;

import dev.qvlm.QvlmException;
import dev.qvlm.backend.Backend;
import dev.qvlm.backend.Tensor;
import dev.qvlm.image.ImageProcessor;
import dev.qvlm.image.ImageProcessorConfig;
import dev.qvlm.model.Checkpoint;
import dev.qvlm.model.LlavaModel;
import dev.qvlm.tokenizer.Tokenizer;

import java.nio.file.Files;
import java.nio.file.Path;

/**
 * A ready-to-run LLaVA: checkpoint, tokenizer, image processor and model on a backend. What the CLI, the evaluator
 * and the quantizer share.
 */
public final class Llava implements AutoCloseable {
    /** LLaVA-1.5's conversation template around one user turn. */
    public static final String PROMPT_TEMPLATE = "USER: <image>\n%s ASSISTANT:";
    public static final String IMAGE_TOKEN = "<image>";

    private final Checkpoint checkpoint;
    private final Tokenizer tokenizer;
    private final ImageProcessor processor;
    private final LlavaModel model;

    private Llava(Checkpoint checkpoint, Tokenizer tokenizer, ImageProcessor processor, LlavaModel model) {
        this.checkpoint = checkpoint;
        this.tokenizer = tokenizer;
        this.processor = processor;
        this.model = model;
    }

    public static Llava open(Path dir, Backend backend) {
        Path tok = dir.resolve("tokenizer.json");
        if (!Files.exists(tok)) throw new QvlmException(dir + ": no tokenizer.json");
        Path pre = dir.resolve("preprocessor_config.json");
        Checkpoint ckpt = Checkpoint.open(dir);
        try {
            Tokenizer tokenizer = Tokenizer.load(tok);
            ImageProcessorConfig pc = Files.exists(pre) ? ImageProcessorConfig.load(pre) : null;
            if (pc == null) throw new QvlmException(dir + ": no preprocessor_config.json");
            int S = ckpt.config().vision().imageSize();
            ImageProcessor proc = new ImageProcessor(pc);
            if (proc.outHeight() != S || proc.outWidth() != S)
                throw new QvlmException(pre + ": crop size " + proc.outHeight() + "x" + proc.outWidth()
                        + " does not match the vision tower's image_size " + S);
            int imageId = tokenizer.tokenId(IMAGE_TOKEN);
            if (imageId != ckpt.config().imageTokenIndex())
                throw new QvlmException(tok + ": token '<image>' has id " + imageId + " but config.json says image_token_index "
                        + ckpt.config().imageTokenIndex());
            return new Llava(ckpt, tokenizer, proc, new LlavaModel(ckpt.config(), ckpt.weights(), backend));
        } catch (RuntimeException e) {
            ckpt.close();
            throw e;
        }
    }

    public Checkpoint checkpoint() {
        return checkpoint;
    }

    public Tokenizer tokenizer() {
        return tokenizer;
    }

    public ImageProcessor processor() {
        return processor;
    }

    public LlavaModel model() {
        return model;
    }

    /** The LLaVA-1.5 chat prompt for one user message about one image. */
    public static String chatPrompt(String userText) {
        return String.format(PROMPT_TEMPLATE, userText);
    }

    /** Tokenizes a prompt (BOS added) and expands each {@code <image>} token to the number of image features. */
    public int[] promptIds(String prompt) {
        int[] ids = tokenizer.encode(prompt);
        int img = model.config().imageTokenIndex(), feats = model.config().imageFeatures();
        int count = 0;
        for (int id : ids) if (id == img) count++;
        int[] out = new int[ids.length + count * (feats - 1)];
        int j = 0;
        for (int id : ids) {
            if (id == img) for (int k = 0; k < feats; k++) out[j++] = img;
            else out[j++] = id;
        }
        return out;
    }

    /** Preprocesses an image file and runs vision tower + projector: the embeddings for its image tokens. */
    public Tensor encodeImage(Path image) {
        return model.encodeImage(processor.preprocess(image));
    }

    @Override
    public void close() {
        checkpoint.close();
    }
}
