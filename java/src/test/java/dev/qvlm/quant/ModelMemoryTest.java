package dev.qvlm.quant;

import dev.qvlm.calib.QuantSettings;
import dev.qvlm.config.KnownModels;
import dev.qvlm.config.LlavaConfig;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ModelMemoryTest {
    @Test
    void llava13bParameterCountMatchesThePublishedModel() {
        // LLaMA-2-13B 13,015,864,320 + 64 extra vocab rows x 5120 x 2 (embed, lm_head) + CLIP ViT-L/14-336
        // 303,507,456 + projector 1024x5120 + 5120 + 5120x5120 + 5120
        long expected = 13_015_864_320L + 2L * 64 * 5120 + 303_507_456L + (1024L * 5120 + 5120 + 5120L * 5120 + 5120);
        LlavaConfig cfg = KnownModels.config("llava-1.5-13b");
        ModelMemory.Sizes s = ModelMemory.sizes(cfg, null, QuantSettings.parseScope("llm"));
        assertEquals(expected, s.params());
        assertEquals(2 * expected, s.fp16Bytes());
    }

    @Test
    void w4g128LlmOnlyIsOver3_3xSmallerFor13b() {
        ModelMemory.Sizes s = ModelMemory.sizes(KnownModels.config("llava-1.5-13b"), QuantArgs.perGroup(4, false, 128),
                QuantSettings.parseScope("llm"));
        // per weight: 4 bits + 16/128 (scale) + 4/128 (zero point) = 4.15625 bits
        assertEquals(16 / 4.15625, s.quantizedTensorsRatio(), 1e-6);
        assertTrue(s.ratio() > 3.3, "ratio " + s.ratio());
    }
}
