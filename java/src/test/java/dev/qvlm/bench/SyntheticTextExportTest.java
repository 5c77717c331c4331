package dev.qvlm.bench;

import com.fasterxml.jackson.databind.JsonNode;
import dev.qvlm.config.KnownModels;
import dev.qvlm.config.LlavaConfig;
import dev.qvlm.config.TextConfig;
import dev.qvlm.model.LlavaWeights;
import dev.qvlm.model.LlavaWeights.LlamaLayer;
import dev.qvlm.safetensors.SafeTensors;
import dev.qvlm.tensor.Matrix;
import dev.qvlm.util.Json;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The tinyllama-1.1b bench shape against the published TinyLlama-1.1B config, and {@code qvlm synth --bench}: the
 * exported folder holds exactly the weights {@code qvlm bench --synthetic NAME --seed S} runs.
 */
class SyntheticTextExportTest {
    @Test
    void tinyllamaShapeIsTheTinyLlamaTextModel() {
        TextConfig t = KnownModels.config("tinyllama-1.1b").text();
        // TinyLlama/TinyLlama-1.1B-Chat-v1.0 config.json
        assertEquals(2048, t.hiddenSize());
        assertEquals(5632, t.intermediateSize());
        assertEquals(22, t.numLayers());
        assertEquals(32, t.numHeads());
        assertEquals(4, t.numKvHeads());
        assertEquals(64, t.headDim());
        assertEquals(32000, t.vocabSize());
        assertEquals(10000.0, t.ropeTheta());
        assertEquals(1e-5f, t.rmsNormEps());
        // its published parameter count, 1,100,048,384, less the RMSNorm weights (22·2 + 1 vectors of 2048, float[]
        // in the bench, not matrices), in FP16: the text part of the bench's host weights
        long textMatrixParams = 1_100_048_384L - (22 * 2 + 1) * 2048L;
        long text16 = 0;
        for (SyntheticTextExport.Tensor x : SyntheticTextExport.tensors(KnownModels.config("tinyllama-1.1b"), 1))
            if (x.values() != null) text16 += x.spec().bytes();
        assertEquals(2 * textMatrixParams, text16);
        long all16 = SyntheticModel.hostWeightBytes(KnownModels.config("tinyllama-1.1b"), 16);
        assertTrue(all16 > text16 && all16 < text16 + 20_000_000L, "a small vision tower and projector on top: " + (all16 - text16));
    }

    @Test
    void exportHoldsTheBenchWeights(@TempDir Path dir) throws Exception {
        Path out = dir.resolve("tiny-text");
        dev.qvlm.cli.CliTest.Run r = dev.qvlm.cli.CliTest.run("synth", "--bench", "tiny", "--seed", "3", "--out", out.toString(),
                "--quiet", "--json");
        assertEquals(0, r.code(), r.err());
        LlavaConfig cfg = KnownModels.config("tiny");
        TextConfig t = cfg.text();
        JsonNode c = Json.read(out.resolve("config.json"));
        assertEquals("LlamaForCausalLM", c.get("architectures").get(0).asText());
        assertEquals(t.hiddenSize(), c.get("hidden_size").asInt());
        assertEquals(t.numKvHeads(), c.get("num_key_value_heads").asInt());
        assertEquals(t.headDim(), c.get("head_dim").asInt());
        assertEquals(1e-5, c.get("rms_norm_eps").asDouble(), 0);
        try (Arena arena = Arena.ofShared(); SafeTensors st = SafeTensors.open(out.resolve("model.safetensors"))) {
            // the bench's own weights, materialised as the bench does
            LlavaWeights w = SyntheticModel.build(cfg, 16, 3, arena);
            Map<String, Matrix> expect = new LinkedHashMap<>();
            expect.put("model.embed_tokens.weight", w.text.embedTokens());
            for (int i = 0; i < t.numLayers(); i++) {
                LlamaLayer l = w.text.layers()[i];
                String p = "model.layers." + i + ".";
                expect.put(p + "self_attn.q_proj.weight", l.q().weight());
                expect.put(p + "self_attn.k_proj.weight", l.k().weight());
                expect.put(p + "self_attn.v_proj.weight", l.v().weight());
                expect.put(p + "self_attn.o_proj.weight", l.o().weight());
                expect.put(p + "mlp.gate_proj.weight", l.gate().weight());
                expect.put(p + "mlp.up_proj.weight", l.up().weight());
                expect.put(p + "mlp.down_proj.weight", l.down().weight());
                for (String n : new String[]{"input_layernorm", "post_attention_layernorm"})
                    for (float v : st.toFloatArray(p + n + ".weight")) assertEquals(1f, v, p + n);
            }
            expect.put("lm_head.weight", w.text.lmHead().weight());
            assertEquals(expect.size() + 2 * t.numLayers() + 1, st.names().size(), "no other tensors: " + st.names());
            assertEquals("tiny", st.metadata().get("qvlm_bench_synthetic"));
            for (var e : expect.entrySet()) {
                Matrix m = e.getValue();
                assertArrayEquals(new long[]{m.rows(), m.cols()}, st.info(e.getKey()).shape(), e.getKey());
                float[] got = st.toFloatArray(e.getKey());
                for (int row = 0; row < m.rows(); row++)
                    for (int col = 0; col < m.cols(); col++)
                        if (got[row * m.cols() + col] != m.get(row, col))
                            fail(e.getKey() + "[" + row + "," + col + "]: " + got[row * m.cols() + col] + " != " + m.get(row, col));
            }
        }
        // a different seed gives different weights
        Path other = dir.resolve("seed4");
        assertEquals(0, dev.qvlm.cli.CliTest.run("synth", "--bench", "tiny", "--seed", "4", "--out", other.toString(), "--quiet").code());
        assertFalse(java.util.Arrays.equals(Files.readAllBytes(out.resolve("model.safetensors")),
                Files.readAllBytes(other.resolve("model.safetensors"))));
    }

    @Test
    void badSynthArgumentsAreOneLineAndExitCode2(@TempDir Path dir) {
        String o = dir.resolve("x").toString();
        String[][] bad = {
                {"synth", "--bench", "tiny", "--shape", "llava-1.5-7b", "--out", o},
                {"synth", "--out", o},
                {"synth", "--bench", "llava-9b", "--out", o},
                {"synth", "--bench", "tiny", "--layers", "2", "--out", o},
                {"synth", "--bench", "tiny", "--seed", "99999999999", "--out", o},
        };
        for (String[] a : bad) {
            dev.qvlm.cli.CliTest.Run r = dev.qvlm.cli.CliTest.run(a);
            assertEquals(2, r.code(), String.join(" ", a) + ": " + r.err());
            assertTrue(r.err().startsWith("qvlm: error: "), r.err());
            assertFalse(Files.exists(dir.resolve("x")), "nothing written: " + String.join(" ", a));
        }
    }
}
