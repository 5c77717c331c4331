package dev.qvlm.bench;

import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.qvlm.TestPaths;
import dev.qvlm.cli.CliTest;
import dev.qvlm.safetensors.TensorInfo;
import dev.qvlm.safetensors.WeightStore;
import dev.qvlm.util.Json;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The pipeline of {@link RealLayoutPipelineTest} at the real 7B width: llava-1.5-7b-hf with 2 decoder and 2 vision
 * layers (1.3 GB of FP16 weights; each prefill of ~600 tokens costs minutes of CPU on two shared cores). Skipped
 * unless -Dqvlm.realsize=1, because that is too slow for the quick CI run; benchmarks/real-size/run.sh --test runs it.
 */
class RealSizePipelineTest {
    @TempDir
    Path tmp;

    @Test
    void twoLayersOf7bWidthEndToEnd() {
        assumeTrue("1".equals(System.getProperty("qvlm.realsize")),
                "too slow for the quick CI run (1.3 GB folder, several 7B-width prefills): run benchmarks/real-size/run.sh --test");
        Path fp16 = tmp.resolve("fp16"), w4 = tmp.resolve("w4");
        ObjectNode cfg = SyntheticFolder.config("llava-1.5-7b");
        SyntheticFolder.capLayers(cfg, 2, 2);
        SyntheticFolder.write(cfg, TestPaths.root().resolve("models/llava-1.5-tokenizer"), fp16, 400_000_000L, 0, null);
        String img = TestPaths.data().resolve("images/eval_00000.png").toString();
        CliTest.Run g = CliTest.run("generate", "--model", fp16.toString(), "--image", img, "--prompt", "Describe the image.",
                "--max-tokens", "2", "--json");
        assertEquals(0, g.code(), g.err());
        CliTest.Run q = CliTest.run("quantize", "--model", fp16.toString(), "--method", "rtn", "--wbits", "4", "--group", "128",
                "--out", w4.toString(), "--quiet");
        assertEquals(0, q.code(), q.err());
        // every 4-bit linear: packed codes + FP32 group scales + packed zero points
        long fpBytes = 0, qBytes = 0;
        try (WeightStore a = WeightStore.open(fp16); WeightStore b = WeightStore.open(w4)) {
            for (String n : b.names()) {
                if (!n.endsWith(".weight_packed")) continue;
                String p = n.substring(0, n.length() - "_packed".length());
                TensorInfo t = a.info(p);
                fpBytes += t.end() - t.begin();
                for (String s : new String[]{"_packed", "_scale", "_zero_point", "_shape"}) {
                    TensorInfo u = b.info(p + s);
                    qBytes += u.end() - u.begin();
                }
            }
        }
        // per group of 128 weights: 256 bytes FP16 against 64 packed + 4 (FP32 scale) + 0.5 (4-bit zero point)
        double ratio = (double) fpBytes / qBytes;
        assertEquals(256 / 68.5, ratio, 0.005, "FP16 / W4 g128 bytes of the quantized linears");
        CliTest.Run g4 = CliTest.run("generate", "--model", w4.toString(), "--image", img, "--prompt", "Describe the image.",
                "--max-tokens", "2", "--json");
        assertEquals(0, g4.code(), g4.err());
        Path report = tmp.resolve("eval.json");
        CliTest.Run e = CliTest.run("eval", "--model", w4.toString(), "--data", TestPaths.data().resolve("eval.jsonl").toString(),
                "--limit", "1", "--out", report.toString(), "--quiet");
        assertEquals(0, e.code(), e.err());
        assertEquals(1, Json.read(report).get("n").asInt());
    }
}
