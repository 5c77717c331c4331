#!/usr/bin/env python3
"""Compares two `qvlm quantize --report` files (the GPU's and the CPU's calibration of the same model and settings):
the blocks, each block's relMSE before and after the search, and every linear's chosen percentiles. Prints a table,
writes the comparison as JSON to the path given third; exit 0 (the figures are the result, not a pass/fail)."""
import json
import sys


def load(path):
    with open(path) as f:
        r = json.load(f)
    return r.get("report", r)


def main(gpu_path, cpu_path, out_path):
    g, c = load(gpu_path), load(cpu_path)
    key = lambda b: (b["stack"], b["first"], b["last"])
    same_blocks = [key(b) for b in g["blocks"]] == [key(b) for b in c["blocks"]]
    rows, same, differ = [], 0, []
    for bg, bc in zip(g["blocks"], c["blocks"]):
        rows.append({"block": "%s %d-%d" % key(bg), "gpu_before": bg["relMseBefore"], "gpu_after": bg["relMseAfter"],
                     "cpu_before": bc["relMseBefore"], "cpu_after": bc["relMseAfter"],
                     "gpu_seconds": bg["seconds"], "cpu_seconds": bc["seconds"]})
        for name, choice in bg["choices"].items():
            if bc["choices"].get(name) == choice:
                same += 1
            else:
                differ.append({"linear": name, "gpu": choice, "cpu": bc["choices"].get(name)})
    result = {"same_blocks": same_blocks, "choices_same": same, "choices_differ": len(differ), "blocks": rows,
              "differences": differ}
    with open(out_path, "w") as f:
        json.dump(result, f, indent=1)
    print("blocks identical: %s; chosen percentiles identical for %d of %d linears" % (same_blocks, same, same + len(differ)))
    print("%-16s %12s %12s %12s %12s %8s %8s" % ("block", "gpu before", "gpu after", "cpu before", "cpu after", "gpu s", "cpu s"))
    for r in rows:
        print("%-16s %12.4e %12.4e %12.4e %12.4e %8.1f %8.1f" % (r["block"], r["gpu_before"], r["gpu_after"],
                                                               r["cpu_before"], r["cpu_after"], r["gpu_seconds"], r["cpu_seconds"]))
    for d in differ:
        print("differs: %s gpu %s cpu %s" % (d["linear"], d["gpu"], d["cpu"]))


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: compare_calib.py GPU_REPORT CPU_REPORT OUT_JSON")
    main(*sys.argv[1:])
