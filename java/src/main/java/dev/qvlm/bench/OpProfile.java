package dev.qvlm.bench;

import dev.qvlm.cuda.CudaBackend;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * Where a decode step's GPU time goes, from the ops {@link CudaBackend#profileOps} timed over several steps: per
 * label (kernel symbol, GEMM shape, copy, memset) the calls and GPU milliseconds per token; the sum of all ops'
 * times (GPU busy); the span from the first op's start to the last op's end (what a step would take if the host
 * never kept the GPU waiting: the target of CUDA graphs); and the timed decode's ms/token beside them. When the timed
 * ms/token is well above the span, the host's launches bound the decode.
 */
public record OpProfile(int steps, List<Entry> entries, double busyMsPerToken, double spanMsPerToken,
                        double timedMsPerToken, int opsPerToken) {
    /** How long the stream is held before each profiled step: longer than a 13B step takes to enqueue (~10 ms). */
    public static final long HOLD_NANOS = 200_000_000L;

    public record Entry(String label, double callsPerToken, double msPerToken) {}

    public static OpProfile of(List<List<CudaBackend.TimedOp>> steps, double timedMsPerToken) {
        Map<String, double[]> by = new TreeMap<>();
        double busy = 0, span = 0;
        int ops = 0;
        for (List<CudaBackend.TimedOp> step : steps) {
            if (step.isEmpty()) continue;
            double first = Double.MAX_VALUE, last = -Double.MAX_VALUE;
            for (CudaBackend.TimedOp op : step) {
                double ms = op.endMs() - op.startMs();
                double[] a = by.computeIfAbsent(op.label(), k -> new double[2]);
                a[0]++;
                a[1] += ms;
                busy += ms;
                first = Math.min(first, op.startMs());
                last = Math.max(last, op.endMs());
            }
            span += last - first;
            ops += step.size();
        }
        int n = Math.max(1, steps.size());
        List<Entry> entries = new ArrayList<>();
        for (var e : by.entrySet()) entries.add(new Entry(e.getKey(), e.getValue()[0] / n, e.getValue()[1] / n));
        entries.sort(Comparator.comparingDouble(Entry::msPerToken).reversed());
        return new OpProfile(steps.size(), List.copyOf(entries), busy / n, span / n, timedMsPerToken, ops / n);
    }

    /** The human-readable table of decode steps: the heaviest labels first, then the totals. */
    public String table(String label) {
        return table(label, "a decode step", "token", "timed decode");
    }

    /** The table for another kind of step (a prefill: per step, against the timed time to first token). */
    public String table(String label, String what, String per, String timed) {
        StringBuilder b = new StringBuilder();
        b.append(String.format("[bench] %s: GPU time of %s, op by op (%d profiled)%n", label, what, steps));
        b.append(String.format("  %-44s %10s %12s %7s%n", "op", "calls/" + per, "GPU ms/" + per, "share"));
        int shown = 0;
        double rest = 0, restCalls = 0;
        for (Entry e : entries) {
            if (shown++ < 14) b.append(String.format("  %-44s %10.1f %12.3f %6.1f%%%n", e.label(), e.callsPerToken(),
                    e.msPerToken(), 100 * e.msPerToken() / Math.max(busyMsPerToken, 1e-12)));
            else {
                rest += e.msPerToken();
                restCalls += e.callsPerToken();
            }
        }
        if (rest > 0) b.append(String.format("  %-44s %10.1f %12.3f %6.1f%%%n", "(others)", restCalls, rest,
                100 * rest / Math.max(busyMsPerToken, 1e-12)));
        b.append(String.format("  %d ops per %s: GPU busy %.3f ms, span %.3f ms (host held back), %s %.3f ms: "
                        + "%.0f%% of the timed step is GPU work%n", opsPerToken, per, busyMsPerToken, spanMsPerToken, timed,
                timedMsPerToken, 100 * spanMsPerToken / Math.max(timedMsPerToken, 1e-12)));
        return b.toString();
    }

    public Map<String, Object> json() {
        Map<String, Object> o = new LinkedHashMap<>();
        o.put("steps", steps);
        o.put("ops_per_token", opsPerToken);
        o.put("gpu_busy_ms_per_token", busyMsPerToken);
        o.put("gpu_span_ms_per_token", spanMsPerToken);
        o.put("timed_ms_per_token", timedMsPerToken);
        List<Map<String, Object>> es = new ArrayList<>();
        for (Entry e : entries) {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("op", e.label());
            m.put("calls_per_token", e.callsPerToken());
            m.put("gpu_ms_per_token", e.msPerToken());
            es.add(m);
        }
        o.put("ops", es);
        return o;
    }
}
