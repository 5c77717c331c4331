#!/usr/bin/env bash
# Runs ./qvlm on a set of hostile inputs built from the bundled model (issue 9's classes) and prints, for each:
# exit code, wall seconds, peak resident memory (MB, whole JVM) and the first line of stderr. The README's
# "Bad input and limits" table comes from this script. Needs /usr/bin/time and python3.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
Q="$ROOT/qvlm"
M="$ROOT/models/tiny-llava-shapes"
FUZZ="$ROOT/java/src/test/resources/dev/qvlm/fuzz/HostileInputFuzzTestInputs"
T="$(mktemp -d)"
trap 'rm -rf "$T"' EXIT
"$Q" --version >/dev/null || exit 1 # build first, outside the measurements

model_with() { # model_with NAME PYTHON-EDIT-OF-cfg-OR-tok FILE
  mkdir -p "$T/$1"; for f in "$M"/*; do ln -sf "$f" "$T/$1/"; done
  rm "$T/$1/$3"
  python3 - "$M/$3" "$T/$1/$3" "$2" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); exec(sys.argv[3]); json.dump(d, open(sys.argv[2], "w"))
PY
}
model_with layers "d['text_config']['num_hidden_layers'] = 2**31 - 1" config.json
model_with eps "d['text_config']['rms_norm_eps'] = '1e-5'" config.json
model_with redos "d['pre_tokenizer'] = {'type': 'Split', 'pattern': {'Regex': '(a*)*\\\\1b'}, 'behavior': 'Isolated', 'invert': False}" tokenizer.json
mkdir -p "$T/traversal" && for f in "$M"/*; do ln -sf "$f" "$T/traversal/"; done && rm "$T/traversal/model.safetensors"
echo '{"weight_map": {"lm_head.weight": "../../../../etc/passwd"}}' > "$T/traversal/model.safetensors.index.json"
mkdir -p "$T/data" && echo '{"question": "q", "choices": ["a", "b"], "answer": 0, "image": "../../../../etc/passwd"}' > "$T/data/up.jsonl"
python3 - "$T" <<'PY'
import struct, sys, zlib
def png(path, w, h, colour):
    ch = 3 if colour else 1
    raw = zlib.compress((b"\0" + bytes(w * ch)) * h, 9)
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    open(path, "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2 if colour else 0, 0, 0, 0))
                           + chunk(b"IDAT", raw) + chunk(b"IEND", b""))
png(sys.argv[1] + "/rgb-6000.png", 6000, 6000, True)      # 36 M pixels: under the limit, decoded
png(sys.argv[1] + "/grey-20000.png", 20000, 20000, False) # 400 M pixels: refused from the header
open(sys.argv[1] + "/prompt-1mb.txt", "w").write("--prompt\n\"" + "How many objects are in the image? " * 30000 + "\"\n")
PY

run() { # run LABEL ARGS...
  local label="$1"; shift
  /usr/bin/time -f "%e %M" -o "$T/time" "$Q" "$@" >/dev/null 2>"$T/err"
  local rc=$?
  read -r secs kb < <(tail -1 "$T/time")
  local msg
  msg="$(grep -m1 -v '^\[' "$T/err" | sed "s#$T/##g; s#$ROOT/##g; s#java/src/test/resources/dev/qvlm/fuzz/HostileInputFuzzTestInputs/#…/#g; s#^qvlm: ##" | cut -c1-120)"
  printf '| %s | %d | %.1f | %d | %s |\n' "$label" "$rc" "$secs" "$((kb / 1024))" "${msg:+\`$msg\`}"
}
echo "| input | exit | wall s | peak RSS MB | message |"
echo "|---|---:|---:|---:|---|"
run "PNG header 46000×46000 (124 bytes)" generate --model "$M" --image "$FUZZ/image/bomb-46000.png" --prompt hi
run "PNG 20000×20000 grey" generate --model "$M" --image "$T/grey-20000.png" --prompt hi
run "PNG 6000×6000 RGB (accepted: largest under the limit)" generate --model "$M" --image "$T/rgb-6000.png" --prompt hi --max-tokens 4
run "PNG with a bad CRC" generate --model "$M" --image "$FUZZ/image/bad-crc.png" --prompt hi
run "truncated JPEG" generate --model "$M" --image "$FUZZ/image/truncated.jpg" --prompt hi
run "1 MB prompt (@file)" generate --model "$M" "@$T/prompt-1mb.txt"
run "\`--max-tokens 1000000000\`" generate --model "$M" --prompt hi --max-tokens 1000000000
run "\`--temperature NaN\`" generate --model "$M" --prompt hi --temperature NaN
run "num_hidden_layers 2^31−1" generate --model "$T/layers" --prompt hi
run "rms_norm_eps as a string" generate --model "$T/eps" --prompt hi
run "pre-tokenizer regex \`(a*)*\\1b\`" generate --model "$T/redos" --prompt "$(printf 'a%.0s' {1..64})"
run "weight_map ../../../../etc/passwd" generate --model "$T/traversal" --prompt hi
run "JSONL image ../../../../etc/passwd" eval --model "$M" --data "$T/data/up.jsonl"
run "quantize --out /etc/passwd/x (unwritable)" quantize --model "$M" --calib "$ROOT/data/shapes-vqa/calib.jsonl" --method rtn --wbits 4 --abits 16 --out /etc/passwd/x
mkdir -p "$T/photos" && echo precious > "$T/photos/a.txt"
run "quantize --out photos/ --force (not a checkpoint)" quantize --model "$M" --calib "$ROOT/data/shapes-vqa/calib.jsonl" --method rtn --wbits 4 --abits 16 --out "$T/photos" --force
