#!/usr/bin/env bash
# Fuzz campaign: runs each Jazzer target of dev.qvlm.fuzz.HostileInputFuzzTest for a set time, one after the
# other, and prints executions and duration per target (the README's table).
#
#   benchmarks/fuzz/run.sh [DURATION] [TARGET ...]     DURATION: Jazzer syntax, default 10m
#   targets: safetensors configJson tokenizer tokenizerText image scienceQaRow quantizationConfig (default: all)
#
# The test JVM gets a 1 GB heap, so an input that needs more memory is a finding (OutOfMemoryError). Findings
# (crashing inputs) land in java/src/test/resources/dev/qvlm/fuzz/HostileInputFuzzTestInputs/<target>/ and are
# replayed by every normal test run from then on; the generated corpus stays in .cifuzz-corpus/ (not committed).
# Logs: benchmarks/fuzz/logs/<target>.log. The RegexInjection detector is off: regexes in tokenizer.json and
# quantization configs are input by design, bounded by dev.qvlm.util.RegexBudget instead.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DURATION="${1:-10m}"
shift || true
TARGETS=("$@")
[[ ${#TARGETS[@]} -eq 0 ]] && TARGETS=(safetensors configJson tokenizer tokenizerText image scienceQaRow quantizationConfig)
if [[ -z "${JAVA_HOME:-}" ]] || ! "${JAVA_HOME}/bin/java" -version 2>&1 | grep -q 'version "2[5-9]'; then
  for j in /usr/lib/jvm/temurin-25-jdk-amd64 /usr/lib/jvm/temurin-25-jdk /usr/lib/jvm/java-25-openjdk-amd64; do
    [[ -x "$j/bin/java" ]] && { export JAVA_HOME="$j"; break; }
  done
fi
LOGS="$ROOT/benchmarks/fuzz/logs"
mkdir -p "$LOGS"
cd "$ROOT"
mvn -q -B -Dstyle.color=never test-compile -pl java >/dev/null || { echo "fuzz: build failed" >&2; exit 1; }
printf '%-20s %10s %10s %12s %s\n' target seconds runs exec/s result
status=0
for t in "${TARGETS[@]}"; do
  log="$LOGS/$t.log"
  start=$(date +%s)
  JAZZER_FUZZ=1 mvn -B -Dstyle.color=never test -pl java -Dtest="HostileInputFuzzTest#$t" \
      -Dsurefire.failIfNoSpecifiedTests=false -Dqvlm.test.heap=-Xmx1g -Dqvlm.jazzer.hooks=true -Djazzer.max_duration="$DURATION" \
      -Djazzer.disabled_hooks=com.code_intelligence.jazzer.sanitizers.RegexInjection >"$log" 2>&1
  rc=$?
  secs=$(( $(date +%s) - start ))
  runs=$(grep -oE 'Done [0-9]+ runs' "$log" | tail -1 | grep -oE '[0-9]+')
  fsecs=$(grep -oE 'Done [0-9]+ runs in [0-9]+ second' "$log" | tail -1 | grep -oE '[0-9]+ second' | grep -oE '[0-9]+')
  result=ok; [[ $rc -ne 0 ]] && { result="FINDING (see $log)"; status=1; }
  rate=-; [[ -n "$runs" && -n "$fsecs" && "$fsecs" -gt 0 ]] && rate=$(( runs / fsecs ))
  printf '%-20s %10s %10s %12s %s\n' "$t" "${fsecs:-$secs}" "${runs:-?}" "$rate" "$result"
done
exit $status
