package dev.qvlm.cpu;

import org.junit.jupiter.api.Test;

import java.lang.classfile.Attributes;
import java.lang.classfile.ClassFile;
import java.lang.classfile.ClassModel;
import java.lang.classfile.MethodModel;
import java.lang.classfile.attribute.CodeAttribute;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.regex.Pattern;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * No method of ours passes or returns a Vector API value unless C2 always inlines it. A call that C2 does not inline
 * moves its vectors through the heap, boxed, on every call; C2 decides per compilation (early and on-stack-
 * replacement compiles see cold call sites and apply the 35-byte {@code MaxInlineSize} instead of the hot 325), so
 * the same build ran a TinyLlama W4 decode at 45 tokens/s in one run and 8.7 in the next, and a 7B one at 9.6 and
 * 1.4, with a young collection every 11 ms. Helpers of more than 35 bytes of bytecode are written out in their loops
 * or take arrays instead.
 */
class VectorCallsTest {
    /** Bytecode size up to which C2 inlines a callee at any call site (-XX:MaxInlineSize, default 35). */
    private static final int ALWAYS_INLINED = 35;
    private static final Pattern VECTOR_VALUE = Pattern.compile("Ljdk/incubator/vector/(\\w*Vector|VectorMask|VectorShuffle);");
    /** Runs once, in a class initializer. */
    private static final Set<String> ALLOWED = Set.of("dev/qvlm/cpu/Gemm.swapTable");

    @Test
    void noVectorPassingMethodIsTooLargeToAlwaysInline() throws Exception {
        Path root = Path.of(VectorMath.class.getProtectionDomain().getCodeSource().getLocation().toURI());
        List<String> bad = new ArrayList<>();
        int seen = 0;
        try (Stream<Path> files = Files.walk(root.resolve("dev/qvlm"))) {
            for (Path p : files.filter(f -> f.toString().endsWith(".class")).toList()) {
                ClassModel cm = ClassFile.of().parse(p);
                for (MethodModel m : cm.methods()) {
                    String desc = m.methodType().stringValue();
                    if (!VECTOR_VALUE.matcher(desc).find()) continue;
                    seen++;
                    int len = m.findAttribute(Attributes.code()).map(CodeAttribute::codeLength).orElse(0);
                    String name = cm.thisClass().asInternalName() + "." + m.methodName().stringValue();
                    if (len > ALWAYS_INLINED && !ALLOWED.contains(name)) bad.add(name + desc + ": " + len + " bytes");
                }
            }
        }
        assertTrue(seen > 0, "the scan found the vector helpers (VectorMath.sum at least)");
        assertTrue(bad.isEmpty(), "vector values cross these calls, too large to be inlined everywhere: " + bad);
    }
}
