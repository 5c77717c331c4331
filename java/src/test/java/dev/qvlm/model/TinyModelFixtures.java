package dev.qvlm.model;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.qvlm.TestPaths;
import dev.qvlm.backend.Tensor;
import dev.qvlm.cpu.CpuBackend;
import dev.qvlm.safetensors.DType;
import dev.qvlm.safetensors.SafeTensors;
import dev.qvlm.safetensors.SafeTensorsWriter;
import dev.qvlm.safetensors.TensorInfo;
import dev.qvlm.util.Json;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.function.Consumer;
import java.util.function.Predicate;
import java.util.function.UnaryOperator;
import java.util.stream.Stream;

/**
 * Builds variants of the bundled tiny model (models/tiny-llava-shapes) in a scratch folder: renamed tensors,
 * re-encoded dtypes, sharded files, edited config.json. Used by {@link CheckpointLayoutTest} and
 * {@link BadCheckpointTest}.
 */
final class TinyModelFixtures {
    private static final ValueLayout.OfShort SHORT_LE = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private TinyModelFixtures() {}

    /** How each tensor's bytes are written. */
    enum Recode {
        /** the original bytes (F16), bit for bit */
        AS_IS,
        /** decoded to FP32 (exact for F16 sources) */
        F32,
        /** rounded to bfloat16 (round to nearest even) */
        BF16,
        /** rounded to bfloat16, then stored as the FP32 value of that bfloat16 (exact) */
        BF16_AS_F32
    }

    static Path original() {
        return TestPaths.tinyModel();
    }

    static SafeTensors openOriginalWeights() {
        return SafeTensors.open(original().resolve("model.safetensors"));
    }

    /** Copies every file of the tiny model except its weights (config.json, tokenizer, preprocessor...). */
    static void copyNonWeights(Path dst) {
        try {
            Files.createDirectories(dst);
            try (Stream<Path> s = Files.list(original())) {
                for (Path p : s.toList()) {
                    String n = p.getFileName().toString();
                    if (n.endsWith(".safetensors") || n.endsWith(".safetensors.index.json")) continue;
                    Files.copy(p, dst.resolve(n));
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** Writes the tensors of {@code src} accepted by {@code keep} to {@code file}, renamed and re-encoded. */
    static void writeWeights(SafeTensors src, Path file, Predicate<String> keep, UnaryOperator<String> rename,
                             Recode recode) {
        SafeTensorsWriter w = new SafeTensorsWriter().metadata("format", "pt");
        for (String name : src.names()) {
            if (!keep.test(name)) continue;
            TensorInfo t = src.info(name);
            String out = rename.apply(name);
            switch (recode) {
                case AS_IS -> w.add(out, t.dtype(), t.shape(), src.segment(name));
                case F32 -> w.addF32(out, t.shape(), src.toFloatArray(name));
                case BF16 -> {
                    float[] v = src.toFloatArray(name);
                    MemorySegment seg = MemorySegment.ofArray(new byte[v.length * 2]);
                    for (int i = 0; i < v.length; i++) seg.setAtIndex(SHORT_LE, i, toBf16Bits(v[i]));
                    w.add(out, DType.BF16, t.shape(), seg);
                }
                case BF16_AS_F32 -> {
                    float[] v = src.toFloatArray(name);
                    for (int i = 0; i < v.length; i++) v[i] = Float.intBitsToFloat(toBf16Bits(v[i]) << 16);
                    w.addF32(out, t.shape(), v);
                }
            }
        }
        w.write(file);
    }

    /** float → bfloat16 bits, round to nearest, ties to even (what torch's .to(torch.bfloat16) does). */
    static short toBf16Bits(float f) {
        int bits = Float.floatToRawIntBits(f);
        if (Float.isNaN(f)) return (short) ((bits >>> 16) | 0x40);
        int rounding = 0x7fff + ((bits >>> 16) & 1);
        return (short) ((bits + rounding) >>> 16);
    }

    /** A full copy of the tiny model with renamed / re-encoded weights in one model.safetensors. */
    static Path variant(Path dir, UnaryOperator<String> rename, Recode recode) {
        copyNonWeights(dir);
        try (SafeTensors src = openOriginalWeights()) {
            writeWeights(src, dir.resolve("model.safetensors"), n -> true, rename, recode);
        }
        return dir;
    }

    /** A full copy of the tiny model without the given tensors. */
    static Path without(Path dir, String... drop) {
        List<String> d = Arrays.asList(drop);
        copyNonWeights(dir);
        try (SafeTensors src = openOriginalWeights()) {
            for (String n : drop)
                if (!src.contains(n)) throw new IllegalArgumentException("fixture bug: no tensor " + n);
            writeWeights(src, dir.resolve("model.safetensors"), n -> !d.contains(n), n -> n, Recode.AS_IS);
        }
        return dir;
    }

    static ObjectNode readConfig(Path dir) {
        return (ObjectNode) Json.read(dir.resolve("config.json")).deepCopy();
    }

    static void writeConfig(Path dir, JsonNode cfg) {
        try {
            Files.writeString(dir.resolve("config.json"), Json.write(cfg));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** Edits config.json of a model folder in place. */
    static void editConfig(Path dir, Consumer<ObjectNode> edit) {
        ObjectNode cfg = readConfig(dir);
        edit.accept(cfg);
        writeConfig(dir, cfg);
    }

    /** The original weights, bit for bit, under a copy of config.json that {@code edit} rewrote. */
    static Path withConfig(Path dir, Consumer<ObjectNode> edit) {
        variant(dir, n -> n, Recode.AS_IS);
        editConfig(dir, edit);
        return dir;
    }

    // ---------------------------------------------------------------- running

    /** Golden sample inputs (pixel values, prompt ids). */
    record Sample(float[] pixels, int[] ids) {
        static Sample load(String s) {
            try (SafeTensors g = SafeTensors.open(TestPaths.golden().resolve("golden.safetensors"))) {
                return new Sample(g.toFloatArray(s + ".pixel_values"),
                        Arrays.stream(g.toLongArray(s + ".input_ids")).mapToInt(Math::toIntExact).toArray());
            }
        }
    }

    /** Logits at every position of the sample, through the full model (vision tower, projector, decoder). */
    static float[] logits(Checkpoint ckpt, Sample s) {
        LlavaModel model = new LlavaModel(ckpt.config(), ckpt.weights(), new CpuBackend());
        Tensor img = model.encodeImage(s.pixels());
        return model.forward(model.newCache(s.ids().length), s.ids(), img, true);
    }

    static float[] logits(Path dir, Sample s) {
        try (Checkpoint c = Checkpoint.open(dir)) {
            return logits(c, s);
        }
    }
}
