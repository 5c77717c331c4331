#!/usr/bin/env bash
# Matrix-level timing of cpu/Gemm against the pre-Gemm kernel, interleaved (GemmBench): TinyLlama-1.1B prefill
# shapes (n = 128, F16 and int4) and the bundled model's shapes at n = 1, 2, 4, 8.
#
#   benchmarks/run-gemm.sh [--suite prefill|batched|all] [--rounds N] [--round-ms MS] [--ghz G]
#
# Builds this checkout's CLI jar (java/target/qvlm.jar, as ./qvlm does) and compiles the three bench classes against
# it, so the figures are this worktree's code (the JMH jar links the library installed in ~/.m2).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
export JAVA_HOME=${JAVA_HOME_25:-/usr/lib/jvm/temurin-25-jdk-amd64}
(cd "$ROOT" && mvn -q -B package -pl java -DskipTests 2>&1 | grep -v -e WARNING -e '^\[qvlm\]' -e '^.\[0m' >&2 || true)
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
SRC="$HERE/src/main/java/dev/qvlm/bench"
"$JAVA_HOME/bin/javac" --add-modules jdk.incubator.vector -nowarn -d "$OUT" -cp "$ROOT/java/target/qvlm.jar" \
    "$SRC/GemmBench.java" "$SRC/LegacyMatmul.java" "$SRC/KernelFixture.java" 2> >(grep -v -e 'incubating' -e '^1 warning' -e '^warning' >&2)
exec "$JAVA_HOME/bin/java" --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED ${JAVA_OPTS:-} \
    -cp "$OUT:$ROOT/java/target/qvlm.jar" dev.qvlm.bench.GemmBench "$@" 2> >(grep -v 'incubator modules' >&2)
