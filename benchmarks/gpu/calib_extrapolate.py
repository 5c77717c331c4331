#!/usr/bin/env python3
"""Extrapolates a capped calibration of a real-shaped model (`qvlm synth --layers L --vision-layers V`, calibrated
with S samples) to the whole model and 64 samples. Method, stated in the output: the search's seconds per layer of
each stack (its blocks' seconds / layers searched) times the full model's layers; the statistics pass likewise per
layer; everything times 64 / S, since each evaluation runs every sample through the block (the search's work is
linear in the samples; its evaluation count does not depend on them). Writes JSON to the path given last."""
import json
import sys


def main(report_path, samples, llm_layers, vision_layers, out_path):
    with open(report_path) as f:
        doc = json.load(f)
    r = doc.get("report", doc)
    samples, full = int(samples), {"llm": int(llm_layers), "vision": int(vision_layers), "projector": 1}
    searched, seconds = {}, {}
    for b in r["blocks"]:
        n = b["last"] - b["first"] + 1
        searched[b["stack"]] = searched.get(b["stack"], 0) + n
        seconds[b["stack"]] = seconds.get(b["stack"], 0.0) + b["seconds"]
    layers_here = sum(searched.get(s, 0) for s in ("llm", "vision"))
    stats = r["phaseSeconds"].get("statistics+entropy", 0.0)
    scale = 64.0 / samples
    total_search = sum(seconds[s] / searched[s] * full.get(s, searched[s]) for s in seconds) * scale
    total_stats = stats / max(1, layers_here) * (full["llm"] + full["vision"]) * scale
    out = {
        "samples_run": samples, "samples_extrapolated": 64, "layers_searched": searched, "layers_full": full,
        "seconds_per_layer": {s: seconds[s] / searched[s] for s in seconds},
        "blocks": [{"stack": b["stack"], "layers": "%d-%d" % (b["first"], b["last"]), "seconds": b["seconds"],
                    "evaluations": b["evaluations"]} for b in r["blocks"]],
        "statistics_seconds": stats, "extrapolated_search_seconds": total_search,
        "extrapolated_statistics_seconds": total_stats, "extrapolated_total_seconds": total_search + total_stats,
        "device_memory": doc.get("device_memory"),
        "method": "seconds per searched layer x full layers, x 64 / samples",
    }
    with open(out_path, "w") as f:
        json.dump(out, f, indent=1)
    for b in out["blocks"]:
        print("%-10s layers %-6s %8.1f s  %5d evaluations" % (b["stack"], b["layers"], b["seconds"], b["evaluations"]))
    for s, v in out["seconds_per_layer"].items():
        print("%-10s %.1f s per layer searched (%d samples)" % (s, v, samples))
    print("device memory: %s" % out["device_memory"])
    print("extrapolated to %d LLM + %d vision layers and 64 samples: search %.0f s + statistics %.0f s = %.1f h"
          % (full["llm"], full["vision"], total_search, total_stats, (total_search + total_stats) / 3600))


if __name__ == "__main__":
    if len(sys.argv) != 6:
        sys.exit("usage: calib_extrapolate.py REPORT SAMPLES LLM_LAYERS VISION_LAYERS OUT_JSON")
    main(*sys.argv[1:])
