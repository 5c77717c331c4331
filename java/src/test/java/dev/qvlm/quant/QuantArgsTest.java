package dev.qvlm.quant;

import dev.qvlm.QvlmException;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class QuantArgsTest {
    @Test
    void badBitsNameTheValueAndTheRange() {
        for (int bits : new int[] {1, 9, 0, 16}) {
            QvlmException e = assertThrows(QvlmException.class, () -> QuantArgs.perChannel(bits, false));
            assertTrue(e.getMessage().contains("got " + bits), e.getMessage());
            assertTrue(e.getMessage().contains("2..8"), e.getMessage());
        }
        assertDoesNotThrow(() -> QuantArgs.perChannel(2, false));
        assertDoesNotThrow(() -> QuantArgs.perChannel(8, true));
    }

    @Test
    void groupThatDoesNotDivideTheWidthNamesLayerWidthAndGroup() {
        QuantArgs a = QuantArgs.perGroup(4, false, 128);
        QvlmException e = assertThrows(QvlmException.class, () -> a.validateFor(200, "language_model.model.layers.3.mlp.up_proj"));
        assertTrue(e.getMessage().contains("language_model.model.layers.3.mlp.up_proj"), e.getMessage());
        assertTrue(e.getMessage().contains("200"), e.getMessage());
        assertTrue(e.getMessage().contains("128"), e.getMessage());
        assertDoesNotThrow(() -> a.validateFor(256, "x"));
        assertThrows(QvlmException.class, () -> QuantArgs.perGroup(4, false, 0));
        // the quantizer entry points validate too
        assertThrows(QvlmException.class, () -> WeightQuantizer.quantize(
                new dev.qvlm.tensor.F32Matrix(2, 200, new float[400]), a, 1.0));
        assertThrows(QvlmException.class, () -> QuantArgs.perToken(8, false).validateFor(64, "w"));
    }

    @Test
    void levelsAndDivisors() {
        QuantArgs asym = QuantArgs.perChannel(4, false), sym = QuantArgs.perChannel(4, true);
        assertEquals(15, asym.qmax());
        assertEquals(7, sym.qmax());
        assertEquals(15, sym.maxCode());
        assertEquals(8, sym.symmetricZero());
        assertEquals(128, QuantArgs.perGroup(4, false, 128).effectiveGroupSize(3, 256));
        assertEquals(2, QuantArgs.perGroup(4, false, 128).groupsPerRow(256));
        assertEquals(256, asym.effectiveGroupSize(3, 256));
        assertEquals(768, QuantArgs.perTensor(4, false).effectiveGroupSize(3, 256));
        assertEquals(0, QuantArgs.perChannel(4, false).groupSize());
    }

    @Test
    void parsers() {
        assertArrayEquals(new int[] {4, 16}, QuantArgs.parseBits("w4a16"));
        assertArrayEquals(new int[] {8, 8}, QuantArgs.parseBits("W8A8"));
        assertArrayEquals(new int[] {3, 16}, QuantArgs.parseBits("w3"));
        assertThrows(QvlmException.class, () -> QuantArgs.parseBits("w9a8"));
        assertThrows(QvlmException.class, () -> QuantArgs.parseBits("w4a1"));
        QvlmException e = assertThrows(QvlmException.class, () -> QuantArgs.parseBits("4bit"));
        assertTrue(e.getMessage().contains("'4bit'"), e.getMessage());
        assertEquals(128, QuantArgs.parseGroup("g128"));
        assertEquals(64, QuantArgs.parseGroup("64"));
        assertEquals(0, QuantArgs.parseGroup("channel"));
        assertEquals(0, QuantArgs.parseGroup("g-1"));
        assertThrows(QvlmException.class, () -> QuantArgs.parseGroup("gx"));
        assertEquals(QuantArgs.perGroup(4, false, 128), QuantArgs.parse(4, false, "g128"));
        assertEquals(QuantArgs.perToken(8, false), QuantArgs.parse(8, false, "token"));
        assertEquals(QuantArgs.perChannel(8, true), QuantArgs.parse(8, true, "channel"));
        assertEquals("int4 asym g128", QuantArgs.perGroup(4, false, 128).label());
    }
}
