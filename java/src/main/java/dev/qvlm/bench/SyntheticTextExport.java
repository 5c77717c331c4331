package dev.qvlm.bench;

import dev.qvlm.QvlmException;
import dev.qvlm.config.LlavaConfig;
import dev.qvlm.config.TextConfig;
import dev.qvlm.model.LlavaWeights;
import dev.qvlm.model.LlavaWeights.LlamaLayer;
import dev.qvlm.safetensors.DType;
import dev.qvlm.safetensors.SafeTensorsWriter;
import dev.qvlm.safetensors.SafeTensorsWriter.Spec;
import dev.qvlm.tensor.GeneratedMatrix;
import dev.qvlm.tensor.Matrix;
import dev.qvlm.util.Files2;
import dev.qvlm.util.Json;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;

/**
 * Writes the text model of {@code qvlm bench --synthetic NAME --seed S} at 16 bits — the exact FP16 weights the
 * benchmark runs ({@link SyntheticModel#build} with wbits 16) — as a Hugging Face {@code LlamaForCausalLM} folder:
 * config.json and one model.safetensors (FP16, HF names and row order). Other engines load the same model from it:
 * benchmarks/llamacpp converts it to GGUF. Values are produced from the generated matrices' seeds tensor by tensor
 * (a 13.5 GB file is written with a few MB of memory); RMSNorm weights are the bench's ones. Written to a temporary
 * sibling folder renamed at the end.
 */
public final class SyntheticTextExport {
    private SyntheticTextExport() {}

    /** One exported tensor: its HF name and shape, and the generated matrix (null: an RMSNorm weight of ones). */
    record Tensor(Spec spec, GeneratedMatrix values) {}

    /** The tensors of the text model, in the order transformers saves them. */
    static List<Tensor> tensors(LlavaConfig cfg, int seed) {
        // host null: generated matrices, nothing materialised; the seeds are the ones the bench materialises
        LlavaWeights w = SyntheticModel.build(cfg, 16, seed, null);
        TextConfig t = cfg.text();
        List<Tensor> out = new ArrayList<>();
        out.add(matrix("model.embed_tokens.weight", w.text.embedTokens()));
        for (int i = 0; i < w.text.layers().length; i++) {
            LlamaLayer l = w.text.layers()[i];
            String p = "model.layers." + i + ".";
            out.add(matrix(p + "self_attn.q_proj.weight", l.q().weight()));
            out.add(matrix(p + "self_attn.k_proj.weight", l.k().weight()));
            out.add(matrix(p + "self_attn.v_proj.weight", l.v().weight()));
            out.add(matrix(p + "self_attn.o_proj.weight", l.o().weight()));
            out.add(matrix(p + "mlp.gate_proj.weight", l.gate().weight()));
            out.add(matrix(p + "mlp.up_proj.weight", l.up().weight()));
            out.add(matrix(p + "mlp.down_proj.weight", l.down().weight()));
            out.add(ones(p + "input_layernorm.weight", l.inputNorm(), t.hiddenSize()));
            out.add(ones(p + "post_attention_layernorm.weight", l.postAttentionNorm(), t.hiddenSize()));
        }
        out.add(ones("model.norm.weight", w.text.norm(), t.hiddenSize()));
        out.add(matrix("lm_head.weight", w.text.lmHead().weight()));
        return out;
    }

    private static Tensor matrix(String name, Matrix m) {
        if (!(m instanceof GeneratedMatrix g) || g.format() != GeneratedMatrix.Format.F16)
            throw new IllegalStateException(name + ": expected a generated FP16 matrix, got " + m.storageName());
        return new Tensor(new Spec(name, DType.F16, new long[]{g.rows(), g.cols()}), g);
    }

    private static Tensor ones(String name, float[] norm, int n) {
        for (float v : norm)
            if (v != 1f) throw new IllegalStateException(name + ": the synthetic RMSNorm weights are no longer ones");
        return new Tensor(new Spec(name, DType.F16, new long[]{n}), null);
    }

    /** The LlamaForCausalLM config.json of the text model. */
    static Map<String, Object> hfConfig(LlavaConfig cfg) {
        TextConfig t = cfg.text();
        Map<String, Object> c = new LinkedHashMap<>();
        c.put("architectures", List.of("LlamaForCausalLM"));
        c.put("model_type", "llama");
        c.put("hidden_size", t.hiddenSize());
        c.put("intermediate_size", t.intermediateSize());
        c.put("num_hidden_layers", t.numLayers());
        c.put("num_attention_heads", t.numHeads());
        c.put("num_key_value_heads", t.numKvHeads());
        c.put("head_dim", t.headDim());
        c.put("vocab_size", t.vocabSize());
        c.put("max_position_embeddings", t.maxPositionEmbeddings());
        c.put("rms_norm_eps", Double.parseDouble(Float.toString(t.rmsNormEps()))); // 1e-05, not its float widened
        c.put("rope_theta", t.ropeTheta());
        c.put("hidden_act", "silu");
        c.put("bos_token_id", t.bosTokenId());
        c.put("eos_token_id", t.eosTokenIds()[0]);
        c.put("tie_word_embeddings", false);
        c.put("torch_dtype", "float16");
        return c;
    }

    /**
     * Writes the folder.
     *
     * @return bytes of tensor data written
     */
    public static long write(String shape, LlavaConfig cfg, int seed, Path out, Consumer<String> log) {
        Path target = out.toAbsolutePath().normalize();
        if (Files.exists(target)) throw new QvlmException("--out " + out + " already exists");
        List<Tensor> all = tensors(cfg, seed);
        Map<String, GeneratedMatrix> values = new LinkedHashMap<>();
        List<Spec> specs = new ArrayList<>();
        long total = 0;
        for (Tensor t : all) {
            specs.add(t.spec());
            values.put(t.spec().name(), t.values());
            total += t.spec().bytes();
        }
        final long all0 = total;
        Files2.writeFolderAtomically(out, "--out " + out, false, tmp -> {
            long[] done = {0};
            long t0 = System.nanoTime();
            Map<String, String> meta = new LinkedHashMap<>();
            meta.put("format", "pt");
            meta.put("qvlm_bench_synthetic", shape);
            meta.put("qvlm_bench_seed", Integer.toString(seed));
            SafeTensorsWriter.writeStreaming(tmp.resolve("model.safetensors"), meta, specs, (t, os) -> {
                fill(os, t, values.get(t.name()));
                long before = done[0];
                done[0] += t.bytes();
                if (log != null && (done[0] * 10 / all0 != before * 10 / all0))
                    log.accept(String.format("  model.safetensors: %.0f%% of %.2f GB (%.0f s)", 100.0 * done[0] / all0,
                            all0 / 1e9, (System.nanoTime() - t0) / 1e9));
            });
            Json.writeAtomically(tmp.resolve("config.json"), hfConfig(cfg));
        });
        return total;
    }

    /** Row-major FP16 bits of a generated matrix (element r·cols + c, {@link GeneratedMatrix#f16Bits}), or ones. */
    private static void fill(OutputStream os, Spec t, GeneratedMatrix g) throws IOException {
        byte[] buf = new byte[1 << 20];
        long n = t.bytes() / 2;
        short one = Float.floatToFloat16(1f);
        for (long done = 0; done < n; ) {
            int m = (int) Math.min(buf.length / 2, n - done);
            for (int i = 0; i < m; i++) {
                short h = g == null ? one : GeneratedMatrix.f16Bits(g.seed(), done + i, g.amp());
                buf[2 * i] = (byte) h;
                buf[2 * i + 1] = (byte) (h >>> 8);
            }
            os.write(buf, 0, 2 * m);
            done += m;
        }
    }
}
