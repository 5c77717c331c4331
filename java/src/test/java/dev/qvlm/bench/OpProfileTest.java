package dev.qvlm.bench;

import dev.qvlm.cuda.CudaBackend.TimedOp;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The op profile's arithmetic on hand-made event times (the events themselves need a GPU). */
class OpProfileTest {
    @Test
    void perTokenTimesBusySumAndSpan() {
        // step 1: gemm 0-3 ms, gap, rmsnorm 4-4.5, gemm 4.5-7.5; step 2 the same shifted, with a memset
        List<TimedOp> s1 = List.of(new TimedOp("gemm", 0, 3), new TimedOp("rmsnorm", 4, 4.5), new TimedOp("gemm", 4.5, 7.5));
        List<TimedOp> s2 = List.of(new TimedOp("gemm", 1, 4), new TimedOp("memset", 4, 4.25), new TimedOp("rmsnorm", 5, 5.5),
                new TimedOp("gemm", 5.5, 8.5));
        OpProfile p = OpProfile.of(List.of(s1, s2), 10.0);
        assertEquals(2, p.steps());
        assertEquals(3, p.opsPerToken()); // 7 ops over 2 steps, rounded down
        assertEquals((6.5 + 6.75) / 2, p.busyMsPerToken(), 1e-12);
        assertEquals(7.5, p.spanMsPerToken(), 1e-12);
        assertEquals("gemm", p.entries().get(0).label());
        assertEquals(2.0, p.entries().get(0).callsPerToken(), 1e-12);
        assertEquals(6.0, p.entries().get(0).msPerToken(), 1e-12);
        assertEquals("memset", p.entries().get(2).label());
        assertEquals(0.5, p.entries().get(2).callsPerToken(), 1e-12);
        String t = p.table("FP16");
        assertTrue(t.contains("75% of the timed step is GPU work"), t);
        assertEquals(7.5, ((Number) p.json().get("gpu_span_ms_per_token")).doubleValue(), 1e-12);
    }
}
