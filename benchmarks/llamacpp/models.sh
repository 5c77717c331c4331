#!/usr/bin/env bash
# Writes the GGUF files of the comparison from our synthetic weights, under benchmarks/llamacpp/.work/models/:
#   SHAPE-f16.gguf   (tinyllama-1.1b only)  and  SHAPE-q4_0.gguf
# SHAPE is a `qvlm bench --synthetic` shape (tinyllama-1.1b, llava-1.5-7b, tiny). Steps per shape, each skipped when
# its output exists:
#   1. qvlm synth --bench SHAPE --seed $SEED: the bench's exact FP16 text weights as a LlamaForCausalLM folder;
#   2. hf_to_gguf.py (llama.cpp's gguf-py): F16 GGUF, streamed tensor by tensor;
#   3. llama-quantize F16 -> Q4_0 (llama.cpp's standard Q4_0 mix: output.weight in Q6_K, as in published files).
# For shapes whose F16 GGUF is not kept (KEEP_F16 lists those that are; default tinyllama-1.1b), the HF folder and
# the F16 GGUF are deleted once the Q4_0 file exists: LLaMA-7B needs 27 GB of disk for a few minutes, not for good.
# Needs build.sh to have run (llama-quantize, the checkout's gguf-py).
#   benchmarks/llamacpp/models.sh tinyllama-1.1b llava-1.5-7b
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
WORK="${LLAMACPP_WORK:-$HERE/.work}"
SEED="${SEED:-1}"
KEEP_F16=" ${KEEP_F16:-tinyllama-1.1b tiny} "
die() { echo "llamacpp/models.sh: error: $*" >&2; exit 2; }
SRC="${LLAMACPP_SRC:-$WORK/llama.cpp}"
QUANTIZE="$WORK/build/bin/llama-quantize"
[[ -d "$SRC/gguf-py/gguf" ]] || die "no llama.cpp checkout with gguf-py at $SRC: run benchmarks/llamacpp/build.sh first"
[[ -x "$QUANTIZE" ]] || die "no $QUANTIZE: run benchmarks/llamacpp/build.sh first"
python3 -c 'import numpy' 2>/dev/null || die "python3 with numpy is needed by gguf-py"
[[ $# -gt 0 ]] || die "usage: models.sh SHAPE... (e.g. tinyllama-1.1b llava-1.5-7b)"
mkdir -p "$WORK/models"
for shape in "$@"; do
  M="$WORK/models/$shape"
  HF="$M-hf" F16="$M-f16.gguf" Q4="$M-q4_0.gguf"
  keep=0; [[ "$KEEP_F16" == *" $shape "* ]] && keep=1
  if [[ -f "$Q4" && ( $keep == 0 || -f "$F16" ) ]]; then echo "$shape: GGUF files present" >&2; continue; fi
  if [[ ! -f "$F16" ]]; then
    if [[ ! -f "$HF/model.safetensors" ]]; then
      rm -rf "$HF"
      echo "$shape: qvlm synth --bench $shape --seed $SEED" >&2
      nice "$ROOT/qvlm" synth --bench "$shape" --seed "$SEED" --out "$HF" --quiet
    fi
    echo "$shape: F16 GGUF with gguf-py" >&2
    PYTHONPATH="$SRC/gguf-py${PYTHONPATH:+:$PYTHONPATH}" nice python3 "$HERE/hf_to_gguf.py" "$HF" "$F16"
  fi
  if [[ ! -f "$Q4" ]]; then
    echo "$shape: llama-quantize Q4_0" >&2
    nice "$QUANTIZE" "$F16" "$Q4.tmp" Q4_0 2 > "$WORK/models/$shape-quantize.log" 2>&1 \
      || { tail -5 "$WORK/models/$shape-quantize.log" >&2; rm -f "$Q4.tmp"; die "llama-quantize $F16 failed"; }
    mv "$Q4.tmp" "$Q4"
  fi
  rm -rf "$HF"
  [[ $keep == 1 ]] || rm -f "$F16"
  ls -l "$WORK/models/$shape"*.gguf >&2
done
