#!/usr/bin/env bash
# Every GPU check of qvlm in one run, for the GPU host (no Java, no Maven, no network there). Each step runs under
# its own time limit and the script goes on past a failed step; summary.json says how each one ended.
#
# On the build machine (nvcc needed, no GPU): benchmarks/gpu/prepare.sh   (builds everything into .gpu/, ~56 MiB)
# On the GPU host, from the repository root, with .gpu carried along (the device tool: carry [".gpu"]):
#   QVLM_PACK=1 benchmarks/gpu/run.sh        # OUT is set by the device tool; QVLM_PACK keeps what comes back to
#                                            # 4 files: summary.json, gpu-report.md, device.txt, results.tar.gz,
#                                            # refreshed after every step (a run cut short keeps what it did)
# then unpack into benchmarks/results/gpu/CARD-DATE/ and commit it.
#
# Steps, in order, everything under $OUT (default out/gpu):
#   a. device.txt                nvidia-smi, driver, Java
#   b. gpu-tests.log, junit/     every kernel vs the CPU backend, the tiny model vs the HF goldens, int4 GEMV and
#                                calibration kernels (the *GpuTest classes; they fail rather than skip without a GPU)
#   c. bench-13b.json/.txt       qvlm bench --synthetic llava-1.5-13b --device cuda --wbits 16,4 (576 image + 64 text
#                                tokens, 128 new tokens; --profile-ops: each op's GPU time in 3 more steps, against
#                                the timed ms/token); bench-eager-*.json the same without CUDA graphs
#                                (--no-graphs), bench-jcuda-*.json also with JCuda's kernel launch instead of FFM's
#                                (-Dqvlm.cuda.launch=jcuda); jmh-decode.json: DecodeStepBench on cuda, short mode
#   d. jmh-gemv.json             GpuGemvBench: int4 GEMV (and one variant) vs cuBLAS FP16 vs
#                                cuMemcpyDtoD on the 13B shapes; gemv-times.json: the same kernels' GPU time alone
#                                (CUDA events), free of the host's launch cost
#   e. eval-{fp,w4}-{cuda,cpu}.json   the 1,000-question split on both devices, FP and a W4A16 g128 checkpoint made here
#   f. bench-batch-13b.json      continuous batching's decode step on the GPU: 1/2/4/8 sequences together, FP16
#                                and W4A16, round-robin (`qvlm bench --batch 2,4,8`; issue 11's GPU curve)
#   g. quantize-cuda.*           W4A4 qvlm calibration of the bundled model (32 samples) with --device cuda (FP32 weights and
#                                GEMMs), quantize-cpu.* the same on the CPU, quantize-compare.json the two side by side
#   h. quantize-13b.json, calib-13b-extrapolated.json: W4A4 qvlm calibration on the GPU of a 13B-shaped folder
#                                capped at 2 + 2 layers and 2 samples, seconds per block, device memory, and the
#                                total extrapolated to the whole model and 64 samples
#   gpu-report.md                the JMH tables (GB/s, % of copy bandwidth, ms/token, W4 / FP16)
#   summary.json                 exit code and seconds of every step
#
# Environment: QVLM_SKIP="step step" skips the named steps (a rerun of the failed ones). QVLM_CUDA_REQUIRED=false lets GPU tests skip instead of fail. QVLM_DRY_RUN=1 (the test suite's
# GpuScriptDryRunTest) runs every step at toy sizes on a machine without a GPU, with QVLM_JAVA and QVLM_CP /
# QVLM_BENCH_CP naming the Java and the class paths instead of the packed ones; the cuda steps then fail cleanly.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="${OUT:-$ROOT/out/gpu}"
# QVLM_PACK=1: the steps write to a work folder, and after every step $OUT gets a fresh results.tar.gz and
# summary.json, so a run stopped at the device tool's time limit still brings back everything done so far (as 2 files
# of the 8 the tool returns, not a folder of logs it would cut)
PACK_OUT=""
if [[ "${QVLM_PACK:-0}" == 1 ]]; then
  mkdir -p "$OUT"
  PACK_OUT="$OUT"
  OUT="$(mktemp -d "${TMPDIR:-/tmp}/qvlm-gpu-work.XXXXXX")"
fi
G="$ROOT/.gpu"                      # made by prepare.sh
T="${QVLM_TARGET:-$([[ -d "$G" ]] && echo "$G" || echo "$ROOT/java/target")}"
DRY="${QVLM_DRY_RUN:-0}"
mkdir -p "$OUT"
cd "$ROOT"

# ---------------------------------------------------------------- Java and class paths
if [[ -n "${QVLM_CP:-}" ]]; then
  CP="$QVLM_CP"
else
  for f in "$T/qvlm.jar" "$T/qvlm-tests.jar" "$T/lib" "$T/test-lib"; do
    [[ -e "$f" ]] || { echo "run.sh: $f is missing: run benchmarks/gpu/prepare.sh first" >&2; exit 2; }
  done
  ! command -v unzip >/dev/null || [[ -n "$(unzip -l "$T/qvlm.jar" 2>/dev/null | grep qvlm_kernels.fatbin)" ]] \
    || echo "run.sh: warning: $T/qvlm.jar has no fatbin (built without nvcc); the GPU steps will fail" >&2
  CP="$T/qvlm.jar:$T/lib/*:$T/qvlm-tests.jar:$T/test-lib/*"
fi
if [[ -n "${QVLM_BENCH_CP:-}" ]]; then BENCH_CP="$QVLM_BENCH_CP"
elif [[ -d "$G/bench-lib" ]]; then BENCH_CP="$G/qvlm.jar:$G/lib/*:$G/bench-lib/*"
else BENCH_CP="$ROOT/benchmarks/target/benchmarks.jar"; fi

JAVA="${QVLM_JAVA:-}"
if [[ -z "$JAVA" ]] && command -v java >/dev/null 2>&1 && java -version 2>&1 | grep -q 'version "2[5-9]'; then
  JAVA="$(command -v java)"
fi
if [[ -z "$JAVA" ]]; then
  JRE_TAR="$G/jre.tar.xz"; [[ -f "$JRE_TAR" ]] || JRE_TAR="$ROOT/.devjre/jre.tar.xz"
  [[ -f "$JRE_TAR" ]] || { echo "run.sh: no Java 25 on PATH and no .gpu/jre.tar.xz (make it with benchmarks/gpu/prepare.sh)" >&2; exit 2; }
  JRE_DIR="$(mktemp -d "${TMPDIR:-/tmp}/qvlm-jre.XXXXXX")"
  trap 'rm -rf "$JRE_DIR"' EXIT
  tar xJf "$JRE_TAR" -C "$JRE_DIR"
  JAVA="$(find "$JRE_DIR" -path '*/bin/java' -type f | head -1)"
fi
JFLAGS=(--enable-native-access=ALL-UNNAMED --add-modules jdk.incubator.vector -Xss4m -Xmx16g
        -Dqvlm.root="$ROOT" -Dqvlm.cuda.required="${QVLM_CUDA_REQUIRED:-true}")
QVLM=("$JAVA" "${JFLAGS[@]}" -cp "$CP" dev.qvlm.cli.Main)
JMH=("$JAVA" -cp "$BENCH_CP" org.openjdk.jmh.Main)

# Sizes: the real run, or toy sizes for the dry run (same commands, same code paths).
if [[ "$DRY" == 1 ]]; then
  SHAPE=tiny; EVAL_N=4; NEW=4; NEW_BATCH=4; JMH_IT=(-wi 0 -i 1 -r 200ms); GEMV_SHAPES=5120x5120; CALIB_N=2
  GEMV_KERNELS=int4,int4-w1-u4,f16,copy; GEMV_IT=("${JMH_IT[@]}"); GEMV_SHAPES_ARGS=5120x5120
else
  SHAPE=llava-1.5-13b; EVAL_N=1000; NEW=128; NEW_BATCH=32; JMH_IT=(-wi 1 -i 3 -r 1); GEMV_SHAPES=5120x5120,13824x5120,5120x13824; CALIB_N=32
  GEMV_KERNELS=int4,int4-w1-u4,f16,copy # 12 trials (the variants' GPU time: gemv-times below)
  GEMV_IT=(-wi 1 -w 300ms -i 3 -r 300ms); CALIB13_N=2; GEMV_SHAPES_ARGS="5120x5120 13824x5120 5120x13824"
fi

# ---------------------------------------------------------------- steps
SUMMARY=()
write_summary() {
  {
    echo "{\"device\": \"$( (nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null || true) | head -1)\","
    echo " \"dry_run\": $([[ "$DRY" == 1 ]] && echo true || echo false), \"steps\": {"
    for i in "${!SUMMARY[@]}"; do
      sep=","; (( i == ${#SUMMARY[@]} - 1 )) && sep=""
      echo "  ${SUMMARY[$i]}$sep"
    done
    echo "}}"
  } > "$OUT/summary.json"
}
# pack: the work folder into $PACK_OUT/results.tar.gz (written aside, then renamed), with the small files beside it
pack() {
  [[ -n "$PACK_OUT" ]] || return 0
  write_summary
  tar czf "$PACK_OUT/.results.tmp" -C "$OUT" . && mv "$PACK_OUT/.results.tmp" "$PACK_OUT/results.tar.gz"
  for f in summary.json device.txt gpu-report.md; do [[ -f "$OUT/$f" ]] && cp "$OUT/$f" "$PACK_OUT/$f"; done
  return 0
}
# step NAME LIMIT_S COMMAND...: runs the command under `timeout`, output to $OUT/NAME.log, records rc and seconds.
step() {
  local name=$1 limit=$2; shift 2
  if [[ " ${QVLM_SKIP:-} " == *" $name "* ]]; then echo "== [$name] skipped (QVLM_SKIP)" >&2; return; fi
  local t0=$(date +%s) rc
  echo "== [$name] (limit ${limit}s) $(echo "$*" | sed -e "s/ -cp [^ ]* / /" | head -c 300)" >&2
  timeout --kill-after=10 "$limit" "$@" > "$OUT/$name.log" 2>&1
  rc=$?
  local s=$(( $(date +%s) - t0 ))
  [[ $rc == 124 || $rc == 137 ]] && echo "run.sh: step $name ran past ${limit}s and was stopped" >> "$OUT/$name.log"
  echo "   [$name] exit $rc after ${s}s" >&2
  tail -4 "$OUT/$name.log" | sed 's/^/   | /' >&2
  SUMMARY+=("\"$name\": {\"exit\": $rc, \"seconds\": $s, \"limit\": $limit}")
  pack
}

# a. device
{
  echo "date: $(date -u +%FT%TZ)"; echo "host: $(hostname)"; echo "dry run: $DRY"
  if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,clocks.max.mem --format=csv 2>&1
  else echo "nvidia-smi: not available"; fi
  "$JAVA" -version 2>&1
} > "$OUT/device.txt"
cat "$OUT/device.txt" >&2

# b. kernels vs the CPU backend and the HF goldens (the CPU-side cuda tests run in CI; only the GPU tests here)
step gpu-tests 150 "$JAVA" "${JFLAGS[@]}" -cp "$CP" org.junit.platform.console.ConsoleLauncher execute \
  --select-package dev.qvlm.cuda --include-classname '.*GpuTest' --fail-if-no-tests --reports-dir "$OUT/junit" --details tree --disable-banner --disable-ansi-colors

# c. end-to-end decode on synthetic 13B shapes: our bench command, then the JMH decode step
step bench 120 "${QVLM[@]}" bench --synthetic "$SHAPE" --device cuda --wbits 16,4 --prompt-tokens 64 --new-tokens "$NEW" \
  --profile-ops 3 --out "$OUT/bench-$SHAPE.json"
# the same decode op by op (no CUDA graphs), then also with JCuda's kernel launch (the first card's path): what
# the graphs and the FFM launch each save, measured in one run
step bench-eager 90 "${QVLM[@]}" bench --synthetic "$SHAPE" --device cuda --wbits 16,4 --prompt-tokens 64 \
  --new-tokens "$NEW" --no-graphs --out "$OUT/bench-eager-$SHAPE.json"
step bench-jcuda 90 "$JAVA" "${JFLAGS[@]}" -Dqvlm.cuda.launch=jcuda -cp "$CP" dev.qvlm.cli.Main bench --synthetic "$SHAPE" \
  --device cuda --wbits 16,4 --prompt-tokens 64 --new-tokens "$NEW" --no-graphs --out "$OUT/bench-jcuda-$SHAPE.json"
step jmh-decode 120 "${JMH[@]}" DecodeStepBench -p device=cuda -p shape="$SHAPE" -p wbits=16,4 "${JMH_IT[@]}" \
  -rf json -rff "$OUT/jmh-decode.json"
if [[ "$DRY" == 1 ]]; then # the same benchmark on the CPU, so the dry run proves the measuring path too
  step jmh-decode-cpu 60 "${JMH[@]}" DecodeStepBench -p device=cpu -p shape=tiny -p wbits=4 -p context=16 "${JMH_IT[@]}" \
    -rf json -rff "$OUT/jmh-decode-cpu.json"
fi

# d. GEMV and copy bandwidth
# wall time per call of back-to-back calls (host launch included), int4 beside one variant (int4-wN-uM: N warps per
# block, M chunks of loads in flight per thread); gemv-times below has every variant's GPU time
step jmh-gemv 150 "${JMH[@]}" GpuGemvBench -p shape="$GEMV_SHAPES" -p kernel="$GEMV_KERNELS" "${GEMV_IT[@]}" \
  -rf json -rff "$OUT/jmh-gemv.json"

# the same kernels' GPU time alone (CUDA events; JMH's wall time above includes the host's launch): acceptance 4
step gemv-times 60 "$JAVA" "${JFLAGS[@]}" -cp "$BENCH_CP" dev.qvlm.bench.GpuGemvTimes "$OUT/gemv-times.json" $GEMV_SHAPES_ARGS

# e. accuracy on both devices: FP and a W4A16 g128 checkpoint (quantized here, on the CPU: RTN needs no GPU)
IMG="$ROOT/data/shapes-vqa/images/eval_00000.png"
PROMPT=$'How many objects are in the image?\nA. one\nB. two\nC. three\nD. four\nAnswer with the option\'s letter from the given choices directly.'
rm -rf "$OUT/w4a16g128"
step quantize-w4 120 "${QVLM[@]}" quantize --model models/tiny-llava-shapes --calib data/shapes-vqa/calib.jsonl --calib-samples 8 \
  --method rtn --wbits 4 --abits 16 --group 128 --scope llm --out "$OUT/w4a16g128"
for dev in cuda cpu; do
  step "generate-$dev" 60 "${QVLM[@]}" generate --model models/tiny-llava-shapes --image "$IMG" --prompt "$PROMPT" \
    --max-tokens 4 --json --device "$dev"
  step "eval-fp-$dev" 90 "${QVLM[@]}" eval --model models/tiny-llava-shapes --data data/shapes-vqa/eval.jsonl \
    --limit "$EVAL_N" --quiet --device "$dev" --out "$OUT/eval-fp-$dev.json"
  step "eval-w4-$dev" 90 "${QVLM[@]}" eval --model "$OUT/w4a16g128" --data data/shapes-vqa/eval.jsonl \
    --limit "$EVAL_N" --quiet --device "$dev" --out "$OUT/eval-w4-$dev.json"
done
rm -rf "$OUT/w4a16g128/model.safetensors" # keep the report and config, not the weights

# f. continuous batching on the GPU: decode steps of 1, 2, 4, 8 sequences in one forward pass (issue 11)
step bench-batch 120 "${QVLM[@]}" bench --synthetic "$SHAPE" --device cuda --wbits 16,4 --prompt-tokens 16 --image-tokens 0 \
  --new-tokens "$NEW_BATCH" --batch 2,4,8 --batch-repeat 3 --out "$OUT/bench-batch-$SHAPE.json"

# g. calibration with the GPU (FP32 weights and GEMMs: CudaBackend.openExact), then the same on the CPU, and the two
# compared: blocks, relMSE, chosen percentiles
step quantize-cuda 120 "${QVLM[@]}" quantize --model models/tiny-llava-shapes --calib data/shapes-vqa/calib.jsonl \
  --calib-samples "$CALIB_N" --method qvlm --wbits 4 --abits 4 --device cuda --report "$OUT/quantize-cuda.json"
step quantize-cpu 120 "${QVLM[@]}" quantize --model models/tiny-llava-shapes --calib data/shapes-vqa/calib.jsonl \
  --calib-samples "$CALIB_N" --method qvlm --wbits 4 --abits 4 --device cpu --report "$OUT/quantize-cpu.json"
if [[ -s "$OUT/quantize-cuda.json" && -s "$OUT/quantize-cpu.json" ]]; then
  step quantize-compare 30 python3 "$ROOT/benchmarks/gpu/compare_calib.py" "$OUT/quantize-cuda.json" "$OUT/quantize-cpu.json" \
    "$OUT/quantize-compare.json"
fi

# h. GPU calibration at real size, capped: a LLaVA-1.5-13B-shaped folder with 2 decoder and 2 vision layers (2 GB of
# random FP16), W4A4 qvlm with $CALIB13_N samples, extrapolated to 40 + 24 layers and 64 samples (calib_extrapolate.py)
SYN="${TMPDIR:-/tmp}/qvlm-13b-2l"
rm -rf "$SYN"
if [[ "$DRY" == 1 ]]; then # no 3 GB folder in the test suite: the extrapolation runs on the bundled model's CPU report
  [[ -s "$OUT/quantize-cpu.json" ]] && step calib-13b-extrapolate 30 python3 "$ROOT/benchmarks/gpu/calib_extrapolate.py" \
    "$OUT/quantize-cpu.json" "$CALIB_N" 40 24 "$OUT/calib-13b-extrapolated.json"
else
  step synth-13b 60 "${QVLM[@]}" synth --shape llava-1.5-13b --layers 2 --vision-layers 2 --out "$SYN" --quiet
fi
if [[ -d "$SYN" ]]; then
  step quantize-13b 150 "${QVLM[@]}" quantize --model "$SYN" --calib data/shapes-vqa/calib.jsonl --calib-samples "$CALIB13_N" \
    --method qvlm --wbits 4 --abits 4 --device cuda --report "$OUT/quantize-13b.json"
  [[ -s "$OUT/quantize-13b.json" ]] && step calib-13b-extrapolate 30 python3 "$ROOT/benchmarks/gpu/calib_extrapolate.py" \
    "$OUT/quantize-13b.json" "$CALIB13_N" 40 24 "$OUT/calib-13b-extrapolated.json"
fi
rm -rf "$SYN"

# the JMH tables
reports=()
for f in "$OUT"/jmh-*.json; do [[ -s "$f" ]] && reports+=("$f"); done
if (( ${#reports[@]} )); then
  "$JAVA" --add-modules jdk.incubator.vector -cp "$BENCH_CP" dev.qvlm.bench.GpuReport "${reports[@]}" \
    > "$OUT/gpu-report.md" 2> "$OUT/gpu-report.err"
fi
if [[ -s "$OUT/gemv-times.json" ]]; then # the kernels' own GPU time (GpuGemvTimes) beside JMH's wall time
  { echo; echo "### GEMV kernels' GPU time (CUDA events; gemv-times.json)"; echo; echo '```';
    grep -v '^WARNING' "$OUT/gemv-times.log"; echo '```'; } >> "$OUT/gpu-report.md"
fi

write_summary
cat "$OUT/summary.json" >&2
pack
[[ -n "$PACK_OUT" ]] && rm -rf "$OUT" && OUT="$PACK_OUT"
tests_rc=$(grep -o '"gpu-tests": {"exit": [0-9]*' "$OUT/summary.json" | grep -o '[0-9]*$')
echo "run.sh: results in $OUT" >&2
exit "${tests_rc:-1}"
