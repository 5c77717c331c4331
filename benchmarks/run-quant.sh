#!/usr/bin/env bash
# Packed 4-bit vs F16/F32 CPU matvec benchmarks (JMH) -> benchmarks/results/quant-matvec*.json + a Markdown table
# (benchmarks/results/quant-matvec.md). Same conventions as run-cpu.sh.
#
#   benchmarks/run-quant.sh                 # build if needed, run (~3-4 min on 2 cores), print the table
#   REBUILD=1 benchmarks/run-quant.sh       # force the Maven build
#   FJ_PASS=0 benchmarks/run-quant.sh       # skip the second pass with a larger fork-join pool
#   benchmarks/run-quant.sh -p shape=4096x4096   # extra JMH options, appended to every JMH run
#
# The library is built into a private directory (QVLM_BUILD_DIR, default /tmp/jmhbuild-java) and installed to
# ~/.m2, so java/target is never touched. Matmul splits rows over the fork-join common pool (default parallelism
# nproc-1, i.e. 1 thread on a 2-core machine); the second pass (FJ_PASS, default on) reruns everything with
# -Djava.util.concurrent.ForkJoinPool.common.parallelism=$FJ_PAR (default: nproc). MemReadBench measures the
# memory-read roofline of the machine for the "% of read roofline" column.
set -euo pipefail

export JAVA_HOME=${JAVA_HOME_25:-/usr/lib/jvm/temurin-25-jdk-amd64}
export PATH="$JAVA_HOME/bin:$PATH"
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
JAR="$HERE/target/benchmarks.jar"
RESULTS="$HERE/results"
BUILD_DIR=${QVLM_BUILD_DIR:-/tmp/jmhbuild-java}
FJ_PASS=${FJ_PASS:-1}
FJ_PAR=${FJ_PAR:-$(nproc)}
VECTOR_ARGS="--add-modules jdk.incubator.vector"
BENCHES='dev\.qvlm\.bench\.(QuantMatvecBench|MemReadBench)\.'

needs_build() {
    [[ "${REBUILD:-0}" == 1 || ! -f "$JAR" ]] && return 0
    [[ -n "$(find "$ROOT/pom.xml" "$ROOT/java/pom.xml" "$ROOT/java/src/main" "$HERE/pom.xml" "$HERE/src" \
              -newer "$JAR" -type f -print -quit 2>/dev/null)" ]]
}

t0=$(date +%s)
if needs_build; then
    echo "== building (library -> $BUILD_DIR, benchmarks -> $HERE/target)" >&2
    log=$(mktemp)
    if ! (cd "$ROOT" && mvn -q install -N \
            && mvn -q install -pl java -Dmaven.test.skip=true -Dqvlm.build.dir="$BUILD_DIR" \
            && mvn -q package -pl benchmarks) >"$log" 2>&1; then
        grep -v '^WARNING' "$log" >&2; rm -f "$log"
        echo "build failed" >&2; exit 1
    fi
    rm -f "$log"
fi

mkdir -p "$RESULTS"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
echo "== $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores; load average before: $LOAD_BEFORE" >&2

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
wall=$(( $(date +%s) - t0 ))
echo "== load average after: $(cut -d' ' -f1-3 /proc/loadavg); wall time $wall s" >&2

java $VECTOR_ARGS -Dqvlm.loadBefore="$LOAD_BEFORE" -Dqvlm.wallSeconds=$wall -cp "$JAR" dev.qvlm.bench.QuantReport "${files[@]}" \
    2> >(grep -v 'incubator modules' >&2) | tee "$RESULTS/quant-matvec.md"
