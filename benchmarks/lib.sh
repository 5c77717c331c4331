# Shared by the JMH scripts (run-cpu.sh, run-quant.sh): environment, the build of the benchmark jar, the machine
# header and the load average. Source it; it defines JAVA_HOME, HERE, ROOT, JAR, RESULTS, VECTOR_ARGS, FJ_PAR.
#
# The library is built into a private directory (QVLM_BUILD_DIR, default /tmp/jmhbuild-java) and installed to
# ~/.m2, so java/target is never touched; test sources are skipped (-Dmaven.test.skip=true).
export JAVA_HOME=${JAVA_HOME_25:-/usr/lib/jvm/temurin-25-jdk-amd64}
export PATH="$JAVA_HOME/bin:$PATH"
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
JAR="$HERE/target/benchmarks.jar"
RESULTS=${QVLM_RESULTS:-$HERE/results}   # where JSON and Markdown go
BUILD_DIR=${QVLM_BUILD_DIR:-/tmp/jmhbuild-java}
FJ_PAR=${FJ_PAR:-$(nproc)}
VECTOR_ARGS="--add-modules jdk.incubator.vector"
T0=$(date +%s)

# Builds the library and the shaded benchmark jar when REBUILD=1, the jar is missing, or any library or benchmark
# source or pom is newer than the jar.
build_if_needed() {
    if [[ "${REBUILD:-0}" != 1 && -f "$JAR" ]] && [[ -z "$(find "$ROOT/pom.xml" "$ROOT/java/pom.xml" \
            "$ROOT/java/src/main" "$HERE/pom.xml" "$HERE/src" -newer "$JAR" -type f -print -quit 2>/dev/null)" ]]; then
        return 0
    fi
    echo "== building (library -> $BUILD_DIR, benchmarks -> $HERE/target)" >&2
    local log
    log=$(mktemp)
    if ! (cd "$ROOT" && mvn -q install -N \
            && mvn -q install -pl java -Dmaven.test.skip=true -Dqvlm.build.dir="$BUILD_DIR" \
            && mvn -q package -pl benchmarks) >"$log" 2>&1; then
        grep -v '^WARNING' "$log" >&2; rm -f "$log"
        echo "build failed" >&2; exit 1
    fi
    rm -f "$log"
}

# Prints the CPU and the load average before the run, and remembers the load for the report.
machine_header() {
    mkdir -p "$RESULTS"
    LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
    echo "== $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores; load average before: $LOAD_BEFORE" >&2
}

# report CLASS OUT.md FILES...: the Markdown summary of the JMH JSON files, also written to OUT.md.
report() {
    local cls=$1 md=$2; shift 2
    local wall=$(( $(date +%s) - T0 ))
    echo "== load average after: $(cut -d' ' -f1-3 /proc/loadavg); wall time $wall s" >&2
    java $VECTOR_ARGS -Dqvlm.loadBefore="$LOAD_BEFORE" -Dqvlm.wallSeconds=$wall -cp "$JAR" "dev.qvlm.bench.$cls" "$@" \
        2> >(grep -v 'incubator modules' >&2) | tee "$md"
}
