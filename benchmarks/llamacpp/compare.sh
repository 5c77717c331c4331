#!/usr/bin/env bash
# Side-by-side CPU speed of qvlm and llama.cpp on the same LLaMA shapes and the same (synthetic) weights,
# interleaved: each round runs every case once on both sides, alternating which side goes first, so that the load
# of a shared machine hits both alike. Prints one table (tokens/s both sides, ratio qvlm / llama.cpp, effective weight
# GB/s, % of the measured read bandwidth) and writes JSON + Markdown.
#
#   benchmarks/llamacpp/compare.sh                       # 3 rounds, every case
#   ROUNDS=1 CASES="tinyllama-1.1b:q4" benchmarks/llamacpp/compare.sh
#   QVLM_BENCH_FLAGS="--int8-activations" benchmarks/llamacpp/compare.sh   # extra flags for `qvlm bench`
#
# Cases (CASES, space separated SHAPE:FORMAT): SHAPE a `qvlm bench --synthetic` shape; FORMAT f16 (llama.cpp F16 vs
# our FP16, `--wbits 16`) or q4 (llama.cpp Q4_0 vs our W4A16 g128, `--wbits 4`). Default: tinyllama-1.1b:f16
# tinyllama-1.1b:q4 llava-1.5-7b:q4 (7B only at 4 bits: 13.5 GB of FP16 does not fit next to the other jobs).
#
# Each side measures decode of N_GEN tokens after the N_PROMPT-token prompt (qvlm bench --new-tokens N_GEN after
# its prefill; llama-bench tg N_GEN at depth N_PROMPT, `-d`, so both attend over the same context; its tg from an
# empty context, depth 0, is reported beside it) and prefill of N_PROMPT tokens from an empty context (llama-bench
# pp N_PROMPT; qvlm bench's time to first token of BOS + N_PROMPT-1 text tokens, --image-tokens 0), THREADS
# threads (llama-bench -t; qvlm bench --threads when it has the option).
# Environment: ROUNDS (3), REPS (llama-bench -r, 2), THREADS (2), N_PROMPT (128), N_GEN (64), SEED (1),
# QVLM_BENCH_FLAGS, LLAMA_BENCH_FLAGS (appended to each side's command), OUT (results/llamacpp-compare.json),
# NICE (the prefix of both sides' commands, default "nice": a shared machine's other jobs keep their share; NICE=
# for none),
# plus build.sh's and models.sh's (LLAMACPP_SRC, LLAMACPP_BUNDLE, NODE_LLAMA_CPP_VERSION, ...).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
WORK="${LLAMACPP_WORK:-$HERE/.work}"
ROUNDS="${ROUNDS:-3}" REPS="${REPS:-2}" THREADS="${THREADS:-2}" N_PROMPT="${N_PROMPT:-128}" N_GEN="${N_GEN:-64}"
SEED="${SEED:-1}"
read -r -a NICE_CMD <<< "${NICE-nice}"
CASES="${CASES:-tinyllama-1.1b:f16 tinyllama-1.1b:q4 llava-1.5-7b:q4}"
OUT="${OUT:-$ROOT/benchmarks/results/llamacpp-compare.json}"
export JAVA_HOME="${JAVA_HOME_25:-/usr/lib/jvm/temurin-25-jdk-amd64}"
die() { echo "llamacpp/compare.sh: error: $*" >&2; exit 2; }
[[ -x "$JAVA_HOME/bin/java" ]] || die "no Java 25 at $JAVA_HOME (set JAVA_HOME_25)"
[[ "$N_PROMPT" -ge 2 && "$N_GEN" -ge 1 && "$ROUNDS" -ge 1 && "$REPS" -ge 1 ]] || die "N_PROMPT >= 2, N_GEN, ROUNDS, REPS >= 1"

shapes=()
for c in $CASES; do
  s="${c%%:*}" f="${c#*:}"
  [[ "$f" == f16 || "$f" == q4 ]] || die "case $c: format must be f16 or q4"
  [[ " ${shapes[*]:-} " == *" $s "* ]] || shapes+=("$s")
done

"$HERE/build.sh"
"$HERE/models.sh" "${shapes[@]}"
for c in $CASES; do
  s="${c%%:*}" f="${c#*:}"
  g="$WORK/models/$s-$([[ $f == f16 ]] && echo f16 || echo q4_0).gguf"
  [[ -f "$g" ]] || die "case $c: $g missing (for f16 cases keep the F16 file: KEEP_F16=\"$s\" models.sh $s)"
done

RUN="$WORK/runs/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$RUN"
LB="$WORK/build/bin/llama-bench"
QVLM="$ROOT/qvlm"
# our CLI first, so that its jar is built before any timing
"$QVLM" bench --help > "$RUN/qvlm-bench-help.txt"
QFLAGS=()
grep -q -- '--threads' "$RUN/qvlm-bench-help.txt" && QFLAGS+=(--threads "$THREADS")
# as many timed prefills as llama-bench's -r runs (qvlm reports their median, llama-bench their mean)
grep -q -- '--prefill-repeat' "$RUN/qvlm-bench-help.txt" && QFLAGS+=(--prefill-repeat "$REPS")
read -r -a EXTRA_Q <<< "${QVLM_BENCH_FLAGS:-}"
read -r -a EXTRA_L <<< "${LLAMA_BENCH_FLAGS:-}"

{
  echo "date_utc=$(date -u +%FT%TZ)"
  echo "cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), family $(grep -m1 'cpu family' /proc/cpuinfo | cut -d: -f2 | tr -d ' ') model $(grep -m1 '^model[[:space:]]*:' /proc/cpuinfo | cut -d: -f2 | tr -d ' ')"
  echo "cpu_flags=$(grep -m1 '^flags' /proc/cpuinfo | grep -o -w -E 'avx2|avx512f|avx512_vnni|avx512bw|avx_vnni' | sort -u | tr '\n' ' ')"
  echo "nproc=$(nproc)"
  echo "mem_total_kb=$(awk '/MemTotal/{print $2}' /proc/meminfo)"
  echo "load_before=$(cut -d' ' -f1-3 /proc/loadavg)"
  echo "llama_cpp_commit=$(cat "$WORK/llama.cpp.commit")"
  echo "llama_cpp_source=$(cat "$WORK/llama.cpp.info.json" 2>/dev/null | tr -d '\n ' || echo "LLAMACPP_SRC=${LLAMACPP_SRC:-}")"
  echo "node_llama_cpp=${NODE_LLAMA_CPP_VERSION:-3.22.1}"
  echo "qvlm_commit=$(git -C "$ROOT" rev-parse HEAD)$(git -C "$ROOT" diff --quiet HEAD -- java || echo '+dirty')"
  echo "java=$("$JAVA_HOME/bin/java" -version 2>&1 | head -1)"
  echo "qvlm_flags=${QFLAGS[*]:-} ${EXTRA_Q[*]:-}"
  echo "decode_depth=$N_PROMPT"
  echo "llama_flags=${EXTRA_L[*]:-}"
  echo "nice=${NICE_CMD[*]:-}"
} > "$RUN/machine.txt"

echo "== read bandwidth (1 and $THREADS threads, 2 GiB)" >&2
nice "$JAVA_HOME/bin/java" --add-modules jdk.incubator.vector "$HERE/ReadBandwidth.java" --gib 2 --threads "1,$THREADS" --json \
  2> >(grep -v 'incubator modules' >&2) > "$RUN/bandwidth-before.json"

run_llama() { # case round
  local s="${1%%:*}" f="${1#*:}"
  local g="$WORK/models/$s-$([[ $f == f16 ]] && echo f16 || echo q4_0).gguf"
  local cmd=("$LB" -m "$g" -t "$THREADS" -p "$N_PROMPT" -n "$N_GEN" -d "0,$N_PROMPT" -r "$REPS" -o json "${EXTRA_L[@]}")
  echo "   llama.cpp: ${cmd[*]}" >&2
  echo "${cmd[*]}" > "$RUN/llama-$s-$f-$2.cmd"
  "${NICE_CMD[@]}" "${cmd[@]}" > "$RUN/llama-$s-$f-$2.json" 2> "$RUN/llama-$s-$f-$2.log" \
    || { tail -5 "$RUN/llama-$s-$f-$2.log" >&2; die "llama-bench failed on $g"; }
}
run_qvlm() { # case round
  local s="${1%%:*}" f="${1#*:}"
  local cmd=("$QVLM" bench --synthetic "$s" --wbits "$([[ $f == f16 ]] && echo 16 || echo 4)" --image-tokens 0
             --prompt-tokens "$((N_PROMPT - 1))" --new-tokens "$N_GEN" --seed "$SEED" --json "${QFLAGS[@]}" "${EXTRA_Q[@]}")
  echo "   qvlm:      ${cmd[*]}" >&2
  echo "${cmd[*]}" > "$RUN/qvlm-$s-$f-$2.cmd"
  "${NICE_CMD[@]}" "${cmd[@]}" > "$RUN/qvlm-$s-$f-$2.json" 2> "$RUN/qvlm-$s-$f-$2.log" \
    || { tail -5 "$RUN/qvlm-$s-$f-$2.log" >&2; die "qvlm bench failed on $s $f"; }
}

for ((r = 1; r <= ROUNDS; r++)); do
  for c in $CASES; do
    echo "== round $r/$ROUNDS: $c (load $(cut -d' ' -f1 /proc/loadavg))" >&2
    cut -d' ' -f1 /proc/loadavg > "$RUN/load-${c%%:*}-${c#*:}-$r.txt"
    if ((r % 2)); then run_llama "$c" "$r"; run_qvlm "$c" "$r"; else run_qvlm "$c" "$r"; run_llama "$c" "$r"; fi
  done
done

echo "== read bandwidth again" >&2
nice "$JAVA_HOME/bin/java" --add-modules jdk.incubator.vector "$HERE/ReadBandwidth.java" --gib 2 --threads "1,$THREADS" --json \
  2> >(grep -v 'incubator modules' >&2) > "$RUN/bandwidth-after.json"
echo "load_after=$(cut -d' ' -f1-3 /proc/loadavg)" >> "$RUN/machine.txt"

mkdir -p "$(dirname "$OUT")"
PYTHONPATH="${LLAMACPP_SRC:-$WORK/llama.cpp}/gguf-py${PYTHONPATH:+:$PYTHONPATH}" \
  python3 "$HERE/summarize.py" "$RUN" "$WORK/models" "$OUT" "${OUT%.json}.md" "$CASES"
echo "raw results: $RUN" >&2
