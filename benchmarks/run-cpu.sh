#!/usr/bin/env bash
# CPU matvec/matmul kernel benchmarks (JMH) -> benchmarks/results/cpu-matmul.json + a Markdown table.
#
#   benchmarks/run-cpu.sh                 # build if needed, run everything (~4-5 min on 2 cores), print the table
#   REBUILD=1 benchmarks/run-cpu.sh       # force the Maven build
#   FJ_PASS=1 benchmarks/run-cpu.sh       # add a second pass of vectorised kernels with a larger FJ pool
#   benchmarks/run-cpu.sh -p dtype=f16 -i 5   # extra JMH options, appended to both JMH runs
#
# Matmul.matmul splits its rows over the fork-join common pool, whose default parallelism is nproc-1; on a 2-core
# machine that is 1 and the kernel then runs on one thread. The second pass (FJ_PASS, default off) reruns the
# vectorised kernels with -Djava.util.concurrent.ForkJoinPool.common.parallelism=$FJ_PAR (default: nproc) and
# writes results/cpu-matmul-fjp$FJ_PAR.json; the table shows both, column "FJ par.".
set -euo pipefail
source "$(dirname "$0")/lib.sh"
FJ_PASS=${FJ_PASS:-0}
BENCHES='dev\.qvlm\.bench\.(MatvecBench|MatmulBench|MatmulLargeBench)\.'

build_if_needed
machine_header
echo "== JMH main run -> $RESULTS/cpu-matmul.json" >&2
java -jar "$JAR" "$BENCHES" -rf json -rff "$RESULTS/cpu-matmul.json" "$@" >&2
files=("$RESULTS/cpu-matmul.json")
if [[ "$FJ_PASS" == 1 ]]; then
    out="$RESULTS/cpu-matmul-fjp$FJ_PAR.json"
    echo "== JMH vectorised kernels with ForkJoinPool.common.parallelism=$FJ_PAR -> $out" >&2
    java -jar "$JAR" "$BENCHES" -p impl=vector \
        -jvmArgsAppend "$VECTOR_ARGS -Djava.util.concurrent.ForkJoinPool.common.parallelism=$FJ_PAR" \
        -rf json -rff "$out" "$@" >&2
    files+=("$out")
fi
report Report "$RESULTS/cpu-matmul.md" "${files[@]}"
