package dev.qvlm.config;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.qvlm.TestPaths;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

/** A saved config.json carries both transformers spellings and still describes the same model. */
class ConfigSpellingsTest {
    static final ObjectMapper OM = new ObjectMapper();

    static void assertSameModel(LlavaConfig a, LlavaConfig b) {
        assertEquals(a.text().ropeTheta(), b.text().ropeTheta());
        assertEquals(a.text().hiddenSize(), b.text().hiddenSize());
        assertEquals(a.vision().hiddenSize(), b.vision().hiddenSize());
        assertEquals(a.imageTokenIndex(), b.imageTokenIndex());
        assertEquals(a.dtype(), b.dtype());
        assertEquals(a.visionFeatureLayer(), b.visionFeatureLayer());
    }

    @Test
    void transformers5ConfigGainsTheVersion4Spellings() throws Exception {
        ObjectNode c = (ObjectNode) OM.readTree(Files.readString(TestPaths.tinyModel().resolve("config.json")));
        ((ObjectNode) c.get("text_config").get("rope_parameters")).put("rope_theta", 500000.0);
        LlavaConfig before = LlavaConfig.parse(c, "v5");
        ConfigSpellings.addBoth(c);
        assertEquals("float16", c.get("torch_dtype").asText());
        assertEquals(500000.0, c.at("/text_config/rope_theta").asDouble(), "what transformers 4's LlamaConfig reads");
        assertEquals(c.get("image_token_id"), c.get("image_token_index"));
        assertSameModel(before, LlavaConfig.parse(c, "both"));
    }

    @Test
    void transformers4ConfigGainsTheVersion5Spellings() throws Exception {
        ObjectNode c = (ObjectNode) OM.readTree(Files.readString(TestPaths.tinyModel().resolve("config.json")));
        c.set("torch_dtype", c.remove("dtype"));
        ObjectNode t = (ObjectNode) c.get("text_config");
        t.put("rope_theta", 20000.0);
        t.remove("rope_parameters");
        c.remove("architectures");
        LlavaConfig before = LlavaConfig.parse(c, "v4");
        ConfigSpellings.addBoth(c);
        assertEquals("float16", c.get("dtype").asText());
        assertEquals(20000.0, c.at("/text_config/rope_parameters/rope_theta").asDouble());
        assertEquals("default", c.at("/text_config/rope_parameters/rope_type").asText());
        assertArrayEquals(new String[] {"LlavaForConditionalGeneration"},
                OM.convertValue(c.get("architectures"), String[].class));
        assertSameModel(before, LlavaConfig.parse(c, "both"));
        // rope scaling other than the default is left for the loader to judge, not turned into rope_parameters
        ObjectNode scaled = (ObjectNode) OM.readTree(Files.readString(TestPaths.tinyModel().resolve("config.json")));
        ObjectNode st = (ObjectNode) scaled.get("text_config");
        st.remove("rope_parameters");
        st.put("rope_theta", 10000.0);
        st.putObject("rope_scaling").put("rope_type", "linear").put("factor", 2.0);
        ConfigSpellings.addBoth(scaled);
        assertFalse(st.has("rope_parameters"));
    }
}
