#!/usr/bin/env python3
"""Table + JSON of one compare.sh run: summarize.py RUN_DIR MODELS_DIR OUT.json OUT.md "CASES".

Per case and metric (decode, prefill): the median over rounds of each side's tokens/s, and the median (and range) of
the per-round ratios qvlm / llama.cpp (each round's two runs ran back to back, so their ratio is the least
disturbed figure on a shared machine). Decode compares llama.cpp's tg at the depth of qvlm's decode (after its
prompt: machine.txt's decode_depth, llama-bench -d) when the run has it, and also reports its tg from depth 0. Decode also gets each side's effective weight bandwidth: bytes a decode step
reads × tokens/s (qvlm: the bench's weight_bytes_per_token; llama.cpp: every tensor of the GGUF but token_embd, of
which one row is gathered per token) and qvlm's share of the measured read bandwidth (ReadBandwidth.java, the
best of its runs before and after, at the run's thread count).
"""
import json
import re
import statistics
import sys
from pathlib import Path

# issue 14's acceptance: minimum qvlm / llama.cpp ratio per (shape, format, metric)
TARGETS = {("tinyllama-1.1b", "q4", "decode"): 0.8, ("tinyllama-1.1b", "f16", "decode"): 0.9,
           ("tinyllama-1.1b", "q4", "prefill"): 0.7, ("tinyllama-1.1b", "f16", "prefill"): 0.7,
           ("llava-1.5-7b", "q4", "decode"): 0.9}


def fail(msg):
    print(f"summarize.py: error: {msg}", file=sys.stderr)
    sys.exit(2)


def gguf_decode_bytes(path):
    import gguf
    r = gguf.GGUFReader(path)
    return sum(int(t.n_bytes) for t in r.tensors if t.name != "token_embd.weight")


def read_json(p):
    try:
        return json.loads(Path(p).read_text())
    except (OSError, ValueError) as e:
        fail(f"{p}: {e}")


def main():
    run, models, out_json, out_md, cases = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]), sys.argv[5].split()
    machine = dict(line.split("=", 1) for line in (run / "machine.txt").read_text().splitlines() if "=" in line)
    threads = None
    bw = {}
    for f in ("bandwidth-before.json", "bandwidth-after.json"):
        if (run / f).exists():
            for x in read_json(run / f)["results"]:
                bw[x["threads"]] = max(bw.get(x["threads"], 0), x["best_gb_s"])
    results = []
    for case in cases:
        shape, fmt = case.split(":")
        gguf_file = models / f"{shape}-{'f16' if fmt == 'f16' else 'q4_0'}.gguf"
        llama_bytes = gguf_decode_bytes(gguf_file)
        rounds = sorted({int(m.group(1)) for p in run.glob(f"llama-{shape}-{fmt}-*.json")
                         if (m := re.search(r"-(\d+)\.json$", p.name))})
        per = []
        for r in rounds:
            lj = read_json(run / f"llama-{shape}-{fmt}-{r}.json")
            qp = run / f"qvlm-{shape}-{fmt}-{r}.json"
            if not qp.exists():
                continue
            qj = read_json(qp)
            # decode at the depth of qvlm's (after its prompt) when the run has it; prefill from an empty context
            depth = int(machine.get("decode_depth", "0") or 0)
            tg0 = [e for e in lj if e["n_gen"] > 0 and e["n_prompt"] == 0 and e.get("n_depth", 0) == 0]
            tg = [e for e in lj if e["n_gen"] > 0 and e["n_prompt"] == 0 and e.get("n_depth", 0) == depth] or tg0
            pp = [e for e in lj if e["n_prompt"] > 0 and e["n_gen"] == 0 and e.get("n_depth", 0) == 0]
            if not tg or not pp:
                fail(f"{run}/llama-{shape}-{fmt}-{r}.json: no tg and pp results")
            q = qj["runs"][0]
            threads = tg[0]["n_threads"]
            lp = run / f"load-{shape}-{fmt}-{r}.txt"
            per.append({
                "round": r, "load1_at_start": float(lp.read_text()) if lp.exists() else None,
                "llama_decode_tps": tg[0]["avg_ts"], "llama_prefill_tps": pp[0]["avg_ts"],
                "llama_decode_depth": tg[0].get("n_depth", 0),
                "llama_decode_depth0_tps": tg0[0]["avg_ts"] if tg0 else None,
                "llama_decode_samples": tg[0].get("samples_ts"), "llama_prefill_samples": pp[0].get("samples_ts"),
                "qvlm_decode_tps": q["decode_tokens_per_s"],
                "qvlm_prefill_tps": q["prefill_tokens"] / (q["ttft_ms"] / 1e3),
                "qvlm_weight_bytes_per_token": q["weight_bytes_per_token"],
                "llama_build_commit": tg[0].get("build_commit"), "llama_n_prompt": pp[0]["n_prompt"],
                "llama_n_gen": tg[0]["n_gen"], "qvlm_prefill_tokens": q["prefill_tokens"],
                "qvlm_decode_tokens": q["decode_tokens"], "qvlm_backend": q.get("backend"),
            })
        if not per:
            fail(f"no complete round for {case} in {run}")
        for metric in ("decode", "prefill"):
            lt = [p[f"llama_{metric}_tps"] for p in per]
            qt = [p[f"qvlm_{metric}_tps"] for p in per]
            ratios = [q / l for q, l in zip(qt, lt)]
            row = {"shape": shape, "format": fmt, "metric": metric, "rounds": len(per),
                   "llama_tps": statistics.median(lt), "qvlm_tps": statistics.median(qt),
                   "ratio": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
                   "target": TARGETS.get((shape, fmt, metric))}
            if metric == "decode":
                row["llama_decode_depth"] = per[0]["llama_decode_depth"]
                d0 = [p["llama_decode_depth0_tps"] for p in per if p["llama_decode_depth0_tps"]]
                if d0 and row["llama_decode_depth"]:
                    row["llama_depth0_tps"] = statistics.median(d0)
                    row["ratio_to_depth0"] = statistics.median(q / p["llama_decode_depth0_tps"] for q, p in zip(qt, per))
                qb = per[0]["qvlm_weight_bytes_per_token"]
                row["qvlm_bytes_per_token"] = qb
                row["llama_bytes_per_token"] = llama_bytes
                row["qvlm_gb_s"] = qb * row["qvlm_tps"] / 1e9
                row["llama_gb_s"] = llama_bytes * row["llama_tps"] / 1e9
                if threads in bw:
                    row["qvlm_of_read_bw"] = row["qvlm_gb_s"] / bw[threads]
                    row["llama_of_read_bw"] = row["llama_gb_s"] / bw[threads]
            results.append(row)
        results[-1]["per_round"] = per
        results[-2]["per_round"] = per

    label = {"f16": ("F16", "FP16"), "q4": ("Q4_0", "W4A16 g128")}
    head = (f"qvlm vs llama.cpp, {threads} threads, {min(r['rounds'] for r in results)} "
            f"interleaved rounds; {machine.get('cpu')}, {machine.get('nproc')} cores, load {machine.get('load_before')} "
            f"before / {machine.get('load_after')} after; llama.cpp {machine.get('llama_cpp_commit', '')[:12]}")
    lines = [head, "",
             "| shape | llama.cpp | qvlm | metric | llama.cpp tok/s | qvlm tok/s | ratio (range) | target | "
             "llama.cpp GB/s | qvlm GB/s | qvlm % of read BW | llama.cpp decode from depth 0: tok/s, ratio |",
             "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        ll, ql = label[r["format"]]
        tgt = f"≥ {r['target']:.1f}" if r["target"] else ""
        mark = "" if not r["target"] else (" ✓" if r["ratio"] >= r["target"] else " ✗")
        gb = ("", "", "")
        d0 = f"{r['llama_depth0_tps']:.2f}, {r['ratio_to_depth0']:.2f}" if "llama_depth0_tps" in r else ""
        metric = r["metric"] + (f" at depth {r['llama_decode_depth']}" if r.get("llama_decode_depth") else "")
        if r["metric"] == "decode":
            gb = (f"{r['llama_gb_s']:.1f}", f"{r['qvlm_gb_s']:.1f}",
                  f"{100 * r['qvlm_of_read_bw']:.0f} %" if "qvlm_of_read_bw" in r else "")
        lines.append(f"| {r['shape']} | {ll} | {ql} | {metric} | {r['llama_tps']:.2f} | {r['qvlm_tps']:.2f} | "
                     f"{r['ratio']:.2f}{mark} ({r['ratio_min']:.2f}–{r['ratio_max']:.2f}) | {tgt} | "
                     f"{gb[0]} | {gb[1]} | {gb[2]} | {d0} |")
    loads = [p["load1_at_start"] for r in results for p in r.get("per_round", []) if p["load1_at_start"] is not None]
    nproc = int(machine.get("nproc", "0") or 0)
    # the 1-minute load average at a case's start still counts the previous case's own benchmark threads, so a quiet
    # machine reads about `threads` there: warn only above that plus half a core per core
    if loads and nproc and max(loads) > (threads or 0) + 0.5 * nproc:
        lines += ["", f"WARNING: the load average reached {max(loads):.1f} on {nproc} cores during the run, more than "
                      f"the benchmark's own {threads or 0} threads: other jobs "
                      "shared the cores. llama.cpp splits every op statically between its threads and waits at a barrier "
                      "after each, so a descheduled thread stalls the step; its decode collapses under load far more "
                      "than qvlm's. "
                      "Ratios from such a run say little: rerun on a quiet machine (load below the threads + 0.5 per core)."]
    bws = ", ".join(f"{t} thread{'s' if t > 1 else ''} {v:.1f} GB/s" for t, v in sorted(bw.items()))
    lines += ["", f"Measured read bandwidth (ReadBandwidth.java, 2 GiB, best): {bws}.",
              f"qvlm flags: {machine.get('qvlm_flags', '').strip() or '(none)'}; llama-bench extra flags: "
              f"{machine.get('llama_flags', '').strip() or '(none)'}; qvlm {machine.get('qvlm_commit')}; "
              f"{machine.get('java')}."]
    commands = sorted({p.read_text().strip() for c in cases for p in run.glob(f"*-{c.replace(':', '-')}-1.cmd")})
    lines += ["", "Commands (round 1):"] + [f"    {c}" for c in commands]
    text = "\n".join(lines) + "\n"
    print(text)
    out_md.write_text(text)
    report = {"machine": machine, "max_load1": max(loads) if loads else None, "read_bandwidth_gb_s": bw, "threads": threads, "results": results,
              "commands_round_1": commands, "raw": str(run)}
    tmp = out_json.with_name(out_json.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=1) + "\n")
    tmp.replace(out_json)


if __name__ == "__main__":
    main()
