#!/usr/bin/env bash
# Packed 4-bit vs F16/F32 CPU matvec benchmarks (JMH) -> benchmarks/results/quant-matvec*.json + a Markdown table
# (benchmarks/results/quant-matvec.md). Same conventions as run-cpu.sh (shared parts in lib.sh).
#
#   benchmarks/run-quant.sh                 # build if needed, run (~3-4 min on 2 cores), print the table
#   REBUILD=1 benchmarks/run-quant.sh       # force the Maven build
#   FJ_PASS=0 benchmarks/run-quant.sh       # skip the second pass with a larger fork-join pool
#   benchmarks/run-quant.sh -p shape=4096x4096   # extra JMH options, appended to every JMH run
#
# Matmul splits rows over the fork-join common pool (default parallelism nproc-1, i.e. 1 thread on a 2-core
# machine); the second pass (FJ_PASS, default on) reruns everything with
# -Djava.util.concurrent.ForkJoinPool.common.parallelism=$FJ_PAR (default: nproc). MemReadBench measures the
# memory-read roofline of the machine for the "% of read roofline" column.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
FJ_PASS=${FJ_PASS:-1}
BENCHES='dev\.qvlm\.bench\.(QuantMatvecBench|MemReadBench)\.'

build_if_needed
machine_header
echo "== JMH main run -> $RESULTS/quant-matvec.json" >&2
java -jar "$JAR" "$BENCHES" -rf json -rff "$RESULTS/quant-matvec.json" "$@" >&2
files=("$RESULTS/quant-matvec.json")
if [[ "$FJ_PASS" == 1 ]]; then
    out="$RESULTS/quant-matvec-fjp$FJ_PAR.json"
    echo "== JMH with ForkJoinPool.common.parallelism=$FJ_PAR -> $out" >&2
    java -jar "$JAR" "$BENCHES" \
        -jvmArgsAppend "$VECTOR_ARGS -Djava.util.concurrent.ForkJoinPool.common.parallelism=$FJ_PAR" \
        -rf json -rff "$out" "$@" >&2
    files+=("$out")
fi
report QuantReport "$RESULTS/quant-matvec.md" "${files[@]}"
