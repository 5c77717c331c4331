package dev.qvlm.cuda;

import dev.qvlm.TestPaths;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * The Java side's kernel names and parameter lists ({@link Kernel}) against the extern "C" entry points of
 * cuda-kernels/qvlm_kernels.cu: a mismatch would only show on a GPU, as a missing symbol or garbage arguments.
 */
class KernelNamesTest {
    static Map<String, String> entryPoints() throws Exception {
        String src = Files.readString(TestPaths.root().resolve("cuda-kernels/qvlm_kernels.cu")).replace("\\\n", " ");
        Matcher m = Pattern.compile("extern \"C\" __global__ void (?:__launch_bounds__\\(\\d+\\) )?(qvlm_\\w+?)(_##SUF)?\\(([^)]*)\\)").matcher(src);
        Map<String, String> out = new LinkedHashMap<>();
        while (m.find()) {
            StringBuilder sig = new StringBuilder();
            for (String p : m.group(3).split(",")) {
                String t = p.strip();
                sig.append(t.contains("*") ? 'p' : t.startsWith("long long") ? 'l' : t.startsWith("int") ? 'i'
                        : t.startsWith("float") ? 'f' : t.startsWith("double") ? 'd' : '?');
            }
            if (m.group(2) != null) {
                out.put(m.group(1) + "_f16", sig.toString());
                out.put(m.group(1) + "_f32", sig.toString());
            } else out.put(m.group(1), sig.toString());
        }
        return out;
    }

    @Test
    void javaAndCudaAgreeOnNamesAndSignatures() throws Exception {
        Map<String, String> cu = entryPoints();
        Map<String, String> java = new LinkedHashMap<>();
        for (Kernel k : Kernel.values())
            for (Storage s : Storage.values()) java.put(k.symbol(s), k.signature());
        assertEquals(new ArrayList<>(cu.keySet()).stream().sorted().toList(), java.keySet().stream().sorted().toList());
        List<String> bad = new ArrayList<>();
        for (var e : java.entrySet())
            if (!e.getValue().equals(cu.get(e.getKey()))) bad.add(e.getKey() + ": java " + e.getValue() + ", cu " + cu.get(e.getKey()));
        assertEquals(List.of(), bad);
        assertEquals(cu.size(), Kernel.allSymbols().size());
    }

    @Test
    void activationCodesAreTheEnumOrdinals() throws Exception {
        String src = Files.readString(TestPaths.root().resolve("cuda-kernels/common.cuh"));
        for (dev.qvlm.config.Activation a : dev.qvlm.config.Activation.values())
            assertEquals(true, src.contains("#define QVLM_ACT_" + a.name() + " " + a.ordinal()), a.name());
        assertEquals(true, src.contains("#define QVLM_MAX_HEAD_DIM " + LaunchGeometry.MAX_HEAD_DIM));
    }
}
