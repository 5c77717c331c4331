#!/usr/bin/env bash
# Builds cuda-kernels/ into one fatbin at $1 (default: java/target/classes/dev/qvlm/cuda/qvlm_kernels.fatbin),
# working in $2 (default: a folder beside the fatbin). Called by the Maven build of java/ (exec-maven-plugin, phase
# process-resources); usable by hand.
#  * nvcc from $CUDACXX, else $CUDA_HOME/bin/nvcc, else nvcc on PATH, else /usr/local/cuda/bin/nvcc.
#    None found: prints one line and exits 0, so CPU-only machines still build (the CUDA backend then reports
#    that the fatbin is missing).
#    QVLM_SKIP_CUDA=1 skips the kernels the same way.
#  * Incremental: nothing to do when the fatbin is newer than every source, this script and CMakeLists.txt.
#  * cmake (CMakeLists.txt beside this script) when installed, else nvcc directly with the same flags.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SRC="$(cd "$HERE/../cuda-kernels" && pwd)"
OUT="${1:-$HERE/../java/target/classes/dev/qvlm/cuda/qvlm_kernels.fatbin}"
WORK="${2:-$(dirname "$OUT")/../../../../cuda-build}"

if [[ -n "${QVLM_SKIP_CUDA:-}" ]]; then
  echo "[qvlm] QVLM_SKIP_CUDA is set: CUDA kernels skipped; the build continues without the fatbin"
  exit 0
fi
NVCC=""
for c in "${CUDACXX:-}" "${CUDA_HOME:+$CUDA_HOME/bin/nvcc}" "$(command -v nvcc 2>/dev/null || true)" /usr/local/cuda/bin/nvcc; do
  if [[ -n "$c" && -x "$c" ]]; then NVCC="$c"; break; fi
done
if [[ -z "$NVCC" ]]; then
  echo "[qvlm] nvcc not found (CUDACXX, CUDA_HOME, PATH): CUDA kernels skipped; the build continues without the fatbin"
  exit 0
fi

if [[ -f "$OUT" && -z "$(find "$SRC" "$HERE/build-kernels.sh" "$HERE/CMakeLists.txt" -newer "$OUT" -print -quit)" ]]; then
  echo "[qvlm] CUDA kernels up to date: $OUT"
  exit 0
fi

mkdir -p "$(dirname "$OUT")" "$WORK"
TMP="$OUT.part"
if command -v cmake >/dev/null 2>&1; then
  cmake -S "$HERE" -B "$WORK" -DQVLM_NVCC="$NVCC" -DQVLM_FATBIN="$TMP" -DQVLM_KERNEL_DIR="$SRC" >"$WORK/configure.log" \
    || { cat "$WORK/configure.log"; exit 1; }
  rm -f "$TMP"
  cmake --build "$WORK" >"$WORK/build.log" 2>&1 || { cat "$WORK/build.log"; exit 1; }
else
  # Keep in step with QVLM_NVCC_FLAGS of CMakeLists.txt.
  NVCC_FLAGS=(-O3 -std=c++17 -lineinfo
              -gencode arch=compute_80,code=sm_80
              -gencode arch=compute_90,code=sm_90
              -gencode arch=compute_90,code=compute_90)
  "$NVCC" -fatbin "${NVCC_FLAGS[@]}" -o "$TMP" "$SRC/qvlm_kernels.cu"
fi
mv -f "$TMP" "$OUT"
echo "[qvlm] CUDA kernels built with $NVCC ($("$NVCC" --version | sed -n 's/.*release \([0-9.]*\).*/\1/p')): $OUT ($(stat -c %s "$OUT") bytes; sm_80, sm_90, compute_90)"
