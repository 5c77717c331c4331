#!/usr/bin/env bash
# Real-size pipeline on the CPU with the launcher's default flags: writes a synthetic llava-hf folder (qvlm synth),
# then generate (FP16) -> quantize rtn W4 g128 --out -> generate and eval --limit N from the W4 folder, with memory
# estimates, and prints the wall time, CPU time and peak RSS (/usr/bin/time -v, GB = 1e9 bytes) of every step as
# a table (+ JSON in benchmarks/results/).
#
#   benchmarks/real-size/run.sh                        # LLaVA-1.5-7B, all layers (14 GB FP16; ~1 h on 2 shared cores)
#   benchmarks/real-size/run.sh --layers 2 --vision-layers 2   # 2 layers of 7B width (~1.3 GB, minutes)
#   benchmarks/real-size/run.sh --test                 # the JUnit pipeline test that quick CI skips (RealSizePipelineTest)
#
# Options: --shape NAME (llava-1.5-7b|llava-1.5-13b), --layers N, --vision-layers N, --dir DIR (default
# /work/big/real-size, never inside git), --limit N (eval questions, default 5), --max-tokens N (default 4),
# --keep (do not delete the folders afterwards). Needs about 1.35x the FP16 size free on --dir's disk.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
QVLM="$ROOT/qvlm"
SHAPE=llava-1.5-7b; LAYERS=; VLAYERS=; DIR=/work/big/real-size; LIMIT=5; MAXTOK=4; KEEP=0; TEST=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --shape) SHAPE="$2"; shift 2;;
    --layers) LAYERS="$2"; shift 2;;
    --vision-layers) VLAYERS="$2"; shift 2;;
    --dir) DIR="$2"; shift 2;;
    --limit) LIMIT="$2"; shift 2;;
    --max-tokens) MAXTOK="$2"; shift 2;;
    --keep) KEEP=1; shift;;
    --test) TEST=1; shift;;
    -h|--help) sed -n '2,13p' "$0"; exit 0;;
    *) echo "run.sh: unknown option $1" >&2; exit 2;;
  esac
done
if [[ $TEST == 1 ]]; then
  cd "$ROOT" && exec mvn -q -B test -pl java -Dtest=RealSizePipelineTest -Dqvlm.realsize=1 -Dsurefire.failIfNoSpecifiedTests=false
fi
command -v /usr/bin/time >/dev/null || { echo "run.sh: /usr/bin/time is required (apt-get install time)" >&2; exit 2; }
NAME="$SHAPE${LAYERS:+-L$LAYERS}${VLAYERS:+-V$VLAYERS}"
WORK="$DIR/$NAME"
mkdir -p "$DIR"
[[ -e "$WORK" ]] && { echo "run.sh: $WORK exists; remove it first" >&2; exit 2; }
mkdir -p "$WORK"
cleanup() { [[ $KEEP == 1 ]] || rm -rf "$WORK"; }
trap cleanup EXIT
IMG="$ROOT/data/shapes-vqa/images/eval_00000.png"
ROWS=()
step() { # step NAME CMD...: runs CMD under /usr/bin/time, keeps stdout/stderr in $WORK/NAME.log
  local name="$1"; shift
  echo "== $name: $*" >&2
  if ! /usr/bin/time -v -o "$WORK/$name.time" nice "$@" >"$WORK/$name.log" 2>&1; then
    tail -20 "$WORK/$name.log" >&2; echo "run.sh: step $name failed" >&2; exit 1
  fi
  tail -3 "$WORK/$name.log" >&2
  local wall rss cpu
  wall=$(awk -F': ' '/Elapsed/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$WORK/$name.time")
  rss=$(awk -F': ' '/Maximum resident/ {printf "%.2f", $2*1024/1e9}' "$WORK/$name.time")
  cpu=$(awk -F': ' '/User time|System time/ {s+=$2} END {printf "%.1f", s}' "$WORK/$name.time")
  ROWS+=("$name|$wall|$cpu|$rss")
  printf '   %s: wall %s s, CPU %s s, peak RSS %s GB\n' "$name" "$wall" "$cpu" "$rss" >&2
}
echo "machine: $(nproc) cores, $(lscpu | awk -F': +' '/Model name/ {print $2}'), $(free -g | awk '/Mem:/ {print $2}') GB RAM; $(date -u)" >&2
synth_args=(synth --shape "$SHAPE" --out "$WORK/fp16" --quiet)
[[ -n "$LAYERS" ]] && synth_args+=(--layers "$LAYERS")
[[ -n "$VLAYERS" ]] && synth_args+=(--vision-layers "$VLAYERS")
"$QVLM" --version >/dev/null   # builds the jar outside the timed steps
step synth "$QVLM" "${synth_args[@]}"
step memory-fp16 "$QVLM" memory --model "$WORK/fp16" --wbits 4 --group 128 --scope all
step quantize-w4 "$QVLM" quantize --model "$WORK/fp16" --method rtn --wbits 4 --group 128 --out "$WORK/w4"
step memory-w4 "$QVLM" memory --model "$WORK/w4" --wbits 4 --group 128 --scope all
step generate-w4 "$QVLM" generate --model "$WORK/w4" --image "$IMG" --prompt "Describe the image." --max-tokens "$MAXTOK"
step generate-fp16 "$QVLM" generate --model "$WORK/fp16" --image "$IMG" --prompt "Describe the image." --max-tokens "$MAXTOK"
step eval-w4 "$QVLM" eval --model "$WORK/w4" --data "$ROOT/data/shapes-vqa/eval.jsonl" --limit "$LIMIT" --out "$WORK/eval-w4.json"
FP=$(du -sb "$WORK/fp16" | cut -f1); W4=$(du -sb "$WORK/w4" | cut -f1)
printf '\n%-14s %8s %8s %13s\n' step "wall s" "CPU s" "peak RSS GB"
for r in "${ROWS[@]}"; do IFS='|' read -r n w c m <<<"$r"; printf '%-14s %8s %8s %13s\n' "$n" "$w" "$c" "$m"; done
awk -v f="$FP" -v w="$W4" 'BEGIN {printf "folders: FP16 %.2f GB, W4 %.2f GB (%.3fx)\n", f/1e9, w/1e9, w/f}'
grep -h "generate, " "$WORK"/memory-*.log || true
mkdir -p "$ROOT/benchmarks/results"
{
  printf '{"shape": "%s", "layers": "%s", "vision_layers": "%s", "fp16_folder_bytes": %s, "w4_folder_bytes": %s, "steps": [' "$SHAPE" "$LAYERS" "$VLAYERS" "$FP" "$W4"
  sep=; for r in "${ROWS[@]}"; do IFS='|' read -r n w c m <<<"$r"; printf '%s{"step": "%s", "wall_s": %s, "cpu_s": %s, "peak_rss_gb": %s}' "$sep" "$n" "$w" "$c" "$m"; sep=", "; done
  printf ']}\n'
} > "$ROOT/benchmarks/results/real-size-$NAME.json"
echo "results: benchmarks/results/real-size-$NAME.json" >&2
