#!/usr/bin/env bash
# Builds, on this machine (nvcc needed, no GPU), everything benchmarks/gpu/run.sh needs on the GPU host, into one
# ignored folder .gpu/ that the device tool carries (its limit: 64 MiB with the tracked tree), and checks the size:
#   .gpu/qvlm.jar, lib/            the CLI with the fatbin, and its dependencies
#   .gpu/qvlm-tests.jar, test-lib/ the GPU tests and the JUnit console launcher
#   .gpu/bench-lib/                the JMH benchmarks (thin jar) and JMH itself
#   .gpu/jre.tar.xz                a jlinked Java 25 (the host has none)
# Then, with the device tool: run `QVLM_PACK=1 benchmarks/gpu/run.sh` with carry [".gpu"].
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
export JAVA_HOME=${JAVA_HOME_25:-/usr/lib/jvm/temurin-25-jdk-amd64}
export PATH="$JAVA_HOME/bin:$PATH"
command -v nvcc >/dev/null || { echo "prepare.sh: nvcc not found: the jar would have no kernels" >&2; exit 2; }

log=$(mktemp)
trap 'rm -f "$log"' EXIT
echo "== building the CLI, the GPU tests and the benchmarks" >&2
if ! (mvn -q -B -Dstyle.color=never package -pl java -Pgpu-dist -DskipTests \
      && mvn -q -B install -N \
      && mvn -q -B install -pl java -Dmaven.test.skip=true -Dqvlm.build.dir=/tmp/jmhbuild-java \
      && mvn -q -B package -pl benchmarks \
      && mvn -q -B dependency:copy-dependencies -pl benchmarks -DincludeScope=runtime \
           -DincludeGroupIds=org.openjdk.jmh,net.sf.jopt-simple,org.apache.commons -DoutputDirectory=target/bench-lib) \
      >"$log" 2>&1; then
  grep -v '^WARNING' "$log" >&2
  echo "prepare.sh: build failed" >&2; exit 1
fi

rm -rf .gpu.tmp && mkdir -p .gpu.tmp/lib .gpu.tmp/test-lib .gpu.tmp/bench-lib
cp java/target/qvlm.jar java/target/qvlm-tests.jar .gpu.tmp/
cp java/target/lib/* .gpu.tmp/lib/
cp java/target/test-lib/* .gpu.tmp/test-lib/
# the thin jar from the compiled classes (original-benchmarks.jar can be a stale shaded jar after repeated packages)
"$JAVA_HOME/bin/jar" cf .gpu.tmp/bench-lib/benchmarks.jar -C benchmarks/target/classes .
cp benchmarks/target/bench-lib/* .gpu.tmp/bench-lib/
[[ -n "$(unzip -l .gpu.tmp/qvlm.jar | grep qvlm_kernels.fatbin)" ]] || { echo "prepare.sh: qvlm.jar has no fatbin" >&2; exit 1; }

echo "== packing a Java 25 runtime" >&2
jre=$(mktemp -d)
"$JAVA_HOME/bin/jlink" --add-modules java.base,java.logging,java.management,jdk.management,java.net.http,java.sql,jdk.httpserver,jdk.incubator.vector,jdk.unsupported,java.desktop,jdk.zipfs \
  --strip-debug --no-man-pages --no-header-files --compress=zip-0 --output "$jre/jre" 2>/dev/null
tar -C "$jre" -cf - jre | xz -9e -T2 > .gpu.tmp/jre.tar.xz
rm -rf "$jre" .gpu && mv .gpu.tmp .gpu
grep -qx "/.gpu/" .git/info/exclude 2>/dev/null || echo "/.gpu/" >> .git/info/exclude

carry=$(du -sb .gpu | cut -f1)
tree=$(git ls-files -z | xargs -0 stat -c %s 2>/dev/null | awk '{s+=$1} END {print s}')
total=$(( carry + tree ))
printf '.gpu: %.1f MiB; tracked tree: %.1f MiB; together %.1f MiB of the 64 MiB the device tool carries\n' \
  "$(echo "$carry/1048576" | bc -l)" "$(echo "$tree/1048576" | bc -l)" "$(echo "$total/1048576" | bc -l)"
(( total < 64 * 1048576 )) || { echo "prepare.sh: too large to carry" >&2; exit 1; }
