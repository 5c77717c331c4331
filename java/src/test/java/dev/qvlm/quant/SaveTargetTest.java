package dev.qvlm.quant;

import dev.qvlm.QvlmException;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * What each --target accepts, against vLLM's scheme selection (CompressedTensorsConfig._get_scheme_from_parts:
 * _is_wNa16_group_channel + WNA16_SUPPORTED_BITS {4, 8}; _is_static_tensor_w8a8 / _is_dynamic_token_w8a8 need 8-bit
 * symmetric tensor/channel weights; _is_dynamic_token_w4a8_int needs 4-bit symmetric group/channel weights and
 * dynamic per-token 8-bit inputs), and the format each setting is written in.
 */
class SaveTargetTest {
    static final QuantArgs W4G128_SYM = QuantArgs.perGroup(4, true, 128), W4G128_ASYM = QuantArgs.perGroup(4, false, 128),
            W4CH_SYM = QuantArgs.perChannel(4, true), W8CH_SYM = QuantArgs.perChannel(8, true), W8CH_ASYM = QuantArgs.perChannel(8, false),
            A8_TENSOR = QuantArgs.perTensor(8, false), A8_TOKEN = QuantArgs.perToken(8, false);

    static String refusal(SaveTarget t, QuantArgs w, QuantArgs a, boolean dyn) {
        return assertThrows(QvlmException.class, () -> t.check(w, a, dyn)).getMessage();
    }

    @Test
    void vllmAcceptsWhatItHasASchemeFor() {
        SaveTarget v = SaveTarget.VLLM;
        v.check(W4G128_SYM, null, false);
        v.check(W4G128_ASYM, null, false); // zero points: WNA16_ZP_SUPPORTED_TYPES_MAP {4, 8}
        v.check(W4CH_SYM, null, false);
        v.check(W8CH_SYM, null, false);
        v.check(W8CH_SYM, A8_TENSOR, false);
        v.check(W8CH_SYM, A8_TOKEN, true);
        v.check(QuantArgs.perGroup(4, true, 32), A8_TOKEN, true);
        assertEquals("pack-quantized", CompressedTensors.formatFor(W8CH_SYM, null), "W8A16: the WNA16 path needs pack-quantized");
        assertEquals("int-quantized", CompressedTensors.formatFor(W8CH_SYM, A8_TENSOR));
    }

    @Test
    void vllmRefusesWithOneMessageNamingWhatWorks() {
        SaveTarget v = SaveTarget.VLLM;
        String m = refusal(v, QuantArgs.perChannel(4, true), QuantArgs.perTensor(8, false), false);
        assertTrue(m.contains("W4A8") && m.contains("--act-dynamic") && m.contains("--target transformers"), m);
        m = refusal(v, W8CH_ASYM, A8_TENSOR, false);
        assertTrue(m.contains("symmetric") && m.contains("--no-wsym"), m);
        m = refusal(v, QuantArgs.perGroup(8, true, 128), A8_TOKEN, true);
        assertTrue(m.contains("--group"), m);
        m = refusal(v, QuantArgs.perGroup(3, false, 128), null, false);
        assertTrue(m.contains("W3A16") && m.contains("--wbits 4 or 8"), m);
        m = refusal(v, QuantArgs.perChannel(4, false), QuantArgs.perTensor(4, false), false);
        assertTrue(m.contains("W4A4") && m.contains("--target qvlm"), m);
        m = refusal(v, QuantArgs.perChannel(6, false), QuantArgs.perToken(6, false), true);
        assertTrue(m.contains("W6A6"), m);
        assertTrue(refusal(v, null, A8_TENSOR, false).contains("--wbits"));
    }

    @Test
    void transformersAndQvlmRunEverySettingWeSave() {
        for (SaveTarget t : new SaveTarget[] {SaveTarget.TRANSFORMERS, SaveTarget.QVLM}) {
            t.check(QuantArgs.perGroup(3, false, 128), null, false);
            t.check(QuantArgs.perChannel(4, false), QuantArgs.perTensor(4, false), false);
            t.check(W8CH_ASYM, A8_TENSOR, false);
            t.check(QuantArgs.perChannel(6, false), QuantArgs.perToken(6, false), true);
        }
    }

    @Test
    void defaultsAndParsing() {
        assertEquals(SaveTarget.VLLM, SaveTarget.DEFAULT);
        assertTrue(SaveTarget.VLLM.defaultSymmetricWeights());
        assertTrue(SaveTarget.TRANSFORMERS.defaultSymmetricWeights());
        assertFalse(SaveTarget.QVLM.defaultSymmetricWeights());
        assertEquals(SaveTarget.TRANSFORMERS, SaveTarget.parse("Transformers"));
        String m = assertThrows(QvlmException.class, () -> SaveTarget.parse("tensorrt")).getMessage();
        assertTrue(m.contains("--target") && m.contains("tensorrt") && m.contains("vllm, transformers or qvlm"), m);
    }
}
