package dev.qvlm.cli;

import dev.qvlm.QvlmException;
import dev.qvlm.calib.Method;
import dev.qvlm.calib.WeightRounding;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** compare --methods: [WEIGHTS+]METHOD[+sqALPHA] recipes. */
class RecipeTest {
    static CompareCommand.Recipe p(String s) {
        return CompareCommand.Recipe.parse(s, WeightRounding.RTN, Double.NaN);
    }

    @Test
    void parsesEveryCombination() {
        assertEquals(new CompareCommand.Recipe(WeightRounding.RTN, Method.QVLM, Double.NaN), p("qvlm"));
        assertEquals(new CompareCommand.Recipe(WeightRounding.GPTQ, Method.RTN, Double.NaN), p("gptq"));
        assertEquals(new CompareCommand.Recipe(WeightRounding.AWQ, Method.LAYERWISE, 0.5), p("awq+layerwise+sq"));
        assertEquals(new CompareCommand.Recipe(WeightRounding.GPTQ, Method.QVLM, 0.8), p("GPTQ+qvlm+sq0.8"));
        assertEquals(new CompareCommand.Recipe(WeightRounding.RTN, Method.QVLM, Double.NaN), p("rtn+qvlm"));
        assertEquals(new CompareCommand.Recipe(WeightRounding.RTN, Method.RTN, 0.75), p("sq0.75"));
        assertEquals(new CompareCommand.Recipe(WeightRounding.AWQ_GPTQ, Method.QVLM, 0.5), p("awq+gptq+qvlm+sq0.5"));
        // defaults from --weights / --smooth apply where the recipe is silent
        assertEquals(new CompareCommand.Recipe(WeightRounding.AWQ, Method.QVLM, 0.6),
                CompareCommand.Recipe.parse("qvlm", WeightRounding.AWQ, 0.6));
    }

    @Test
    void rejectsNonsenseWithTheRecipeInTheMessage() {
        for (String bad : new String[]{"qvlm+gptq", "gptq+awq", "awq+qvlm+gptq", "layerwise+qvlm", "sq1.5", "sqx", "foo"}) {
            QvlmException e = assertThrows(QvlmException.class, () -> p(bad), bad);
            assertTrue(e.getMessage().contains("--method"), e.getMessage());
        }
    }
}
