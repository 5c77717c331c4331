#!/usr/bin/env bash
# Every GPU check of qvlm in one run, for the GPU host (no Java, no Maven, no network there).
#
# On the build machine (nvcc needed, no GPU):
#   mvn -q package -pl java -Pgpu-dist -DskipTests     # java/target/: qvlm.jar, lib/, qvlm-tests.jar, test-lib/
#   ../shared/gpu-host/pack-jre.sh                      # .devjre/jre.tar.xz (a jlinked Java 25)
# On the GPU host, from the repository root (java/target and .devjre carried along):
#   OUT=/some/dir benchmarks/gpu/run.sh
#
# Writes to $OUT (default out/gpu): device.txt (nvidia-smi, driver, Java), gpu-tests.log (every kernel vs the CPU
# backend and the tiny model vs the HF goldens, with max |Δ| per check), junit/ (XML reports), generate-*.json and
# eval-*.json (CLI on cuda and cpu), summary.json. Exit code: that of the GPU tests.
# GPU tests fail, rather than skip, when the GPU is unusable (-Dqvlm.cuda.required=true); QVLM_CUDA_REQUIRED=false
# turns that off (e.g. to dry-run this script on a machine without a GPU).
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="${OUT:-$ROOT/out/gpu}"
T="${QVLM_TARGET:-$ROOT/java/target}"
mkdir -p "$OUT"
cd "$ROOT"

for f in "$T/qvlm.jar" "$T/qvlm-tests.jar" "$T/lib" "$T/test-lib"; do
  [[ -e "$f" ]] || { echo "run.sh: $f is missing: build with 'mvn -q package -pl java -Pgpu-dist -DskipTests' first" >&2; exit 2; }
done
[[ -n "$(unzip -l "$T/qvlm.jar" 2>/dev/null | grep qvlm_kernels.fatbin)" ]] \
  || echo "run.sh: warning: $T/qvlm.jar has no fatbin (built without nvcc); the GPU tests will fail" >&2

# Java: a Java 25 on PATH, else the packed runtime (unpacked into a fresh private folder).
JAVA=""
if command -v java >/dev/null 2>&1 && java -version 2>&1 | grep -q 'version "2[5-9]'; then JAVA="$(command -v java)"; fi
if [[ -z "$JAVA" ]]; then
  [[ -f "$ROOT/.devjre/jre.tar.xz" ]] || { echo "run.sh: no Java 25 on PATH and no .devjre/jre.tar.xz (make it with ../shared/gpu-host/pack-jre.sh)" >&2; exit 2; }
  JRE_DIR="$(mktemp -d "${TMPDIR:-/tmp}/qvlm-jre.XXXXXX")"
  trap 'rm -rf "$JRE_DIR"' EXIT
  tar xJf "$ROOT/.devjre/jre.tar.xz" -C "$JRE_DIR"
  JAVA="$(find "$JRE_DIR" -path '*/bin/java' -type f | head -1)"
fi
JFLAGS=(--enable-native-access=ALL-UNNAMED --add-modules jdk.incubator.vector -Xss4m -Xmx16g
        -Dqvlm.root="$ROOT" -Dqvlm.cuda.required="${QVLM_CUDA_REQUIRED:-true}")
CP="$T/qvlm.jar:$T/lib/*:$T/qvlm-tests.jar:$T/test-lib/*"

{
  echo "date: $(date -u +%FT%TZ)"; echo "host: $(hostname)"
  if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,clocks.max.mem --format=csv 2>&1
  else echo "nvidia-smi: not available"; fi
  "$JAVA" -version 2>&1
} > "$OUT/device.txt"
cat "$OUT/device.txt"

# 1. the GPU tests: kernels vs CpuBackend, tiny model vs HF goldens (plus the CPU-side cuda tests)
start=$(date +%s)
"$JAVA" "${JFLAGS[@]}" -cp "$CP" org.junit.platform.console.ConsoleLauncher execute \
  --select-package dev.qvlm.cuda --reports-dir "$OUT/junit" --details tree --disable-banner \
  > "$OUT/gpu-tests.log" 2>&1
tests_rc=$?
tests_s=$(( $(date +%s) - start ))
tail -25 "$OUT/gpu-tests.log"

# 2. the CLI on both devices: a greedy answer and a 200-question eval (accuracy must agree closely)
IMG="$ROOT/data/shapes-vqa/images/eval_00000.png"
PROMPT=$'How many objects are in the image?\nA. one\nB. two\nC. three\nD. four\nAnswer with the option\'s letter from the given choices directly.'
cli_rc=0
for dev in cuda cpu; do
  "$JAVA" "${JFLAGS[@]}" -jar "$T/qvlm.jar" generate --model models/tiny-llava-shapes --image "$IMG" --prompt "$PROMPT" \
    --max-tokens 4 --json --device "$dev" > "$OUT/generate-$dev.json" 2> "$OUT/generate-$dev.err" || cli_rc=1
  "$JAVA" "${JFLAGS[@]}" -jar "$T/qvlm.jar" eval --model models/tiny-llava-shapes --data data/shapes-vqa/eval.jsonl \
    --limit 200 --quiet --device "$dev" --out "$OUT/eval-$dev.json" > "$OUT/eval-$dev.txt" 2>&1 || cli_rc=1
done

cat > "$OUT/summary.json" <<JSON
{"gpu_tests_exit": $tests_rc, "gpu_tests_seconds": $tests_s, "cli_exit": $cli_rc,
 "device": "$( (nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null || true) | head -1)",
 "reports": ["gpu-tests.log", "junit/", "generate-cuda.json", "generate-cpu.json", "eval-cuda.json", "eval-cpu.json"]}
JSON
echo "run.sh: GPU tests exit $tests_rc (${tests_s}s), CLI exit $cli_rc; results in $OUT"
exit $tests_rc
