#!/usr/bin/env bash
# CPU matvec/matmul kernel benchmarks (JMH) -> benchmarks/results/cpu-matmul.json + a Markdown table.
#
#   benchmarks/run-cpu.sh                 # build if needed, run everything (~4-5 min on 2 cores), print the table
#   REBUILD=1 benchmarks/run-cpu.sh       # force the Maven build
#   FJ_PASS=0 benchmarks/run-cpu.sh       # skip the second pass of vectorised kernels with a larger FJ pool
#   benchmarks/run-cpu.sh -p dtype=f16 -i 5   # extra JMH options, appended to both JMH runs
#
# The library is built into a private directory (QVLM_BUILD_DIR, default /tmp/jmhbuild-java) and installed to
# ~/.m2, so java/target is never touched. Test sources are skipped (-Dmaven.test.skip=true).
#
# Matmul.matmul splits its rows over the fork-join common pool, whose default parallelism is nproc-1; on a 2-core
# machine that is 1 and the kernel then runs on one thread. The second pass (FJ_PASS, default on) reruns the
# vectorised kernels with -Djava.util.concurrent.ForkJoinPool.common.parallelism=$FJ_PAR (default: nproc) and
# writes results/cpu-matmul-fjp$FJ_PAR.json; the table shows both, column "FJ par.".
set -euo pipefail

export JAVA_HOME=${JAVA_HOME_25:-/usr/lib/jvm/temurin-25-jdk-amd64}
export PATH="$JAVA_HOME/bin:$PATH"
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
JAR="$HERE/target/benchmarks.jar"
RESULTS="$HERE/results"
BUILD_DIR=${QVLM_BUILD_DIR:-/tmp/jmhbuild-java}
FJ_PASS=${FJ_PASS:-0}
FJ_PAR=${FJ_PAR:-$(nproc)}
VECTOR_ARGS="--add-modules jdk.incubator.vector"
BENCHES='dev\.qvlm\.bench\.(MatvecBench|MatmulBench|MatmulLargeBench)\.'

needs_build() {
    [[ "${REBUILD:-0}" == 1 || ! -f "$JAR" ]] && return 0
    # rebuild when any library or benchmark source or pom is newer than the jar
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
    # maven-shade-plugin drops this next to the pom on every package (no CLI switch to turn it off)
    rm -f "$HERE/dependency-reduced-pom.xml"
fi

mkdir -p "$RESULTS"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
echo "== $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores; load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

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
echo "== load average after: $(cut -d' ' -f1-3 /proc/loadavg); benchmark wall time $(( $(date +%s) - t0 )) s" >&2

java $VECTOR_ARGS -Dqvlm.loadBefore="$LOAD_BEFORE" -Dqvlm.wallSeconds=$(( $(date +%s) - t0 )) -cp "$JAR" dev.qvlm.bench.Report "${files[@]}" 2> >(grep -v 'incubator modules' >&2) | tee "$RESULTS/cpu-matmul.md"
