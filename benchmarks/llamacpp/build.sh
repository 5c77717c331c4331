#!/usr/bin/env bash
# Builds llama.cpp's llama-bench and llama-quantize (Release, native CPU) under benchmarks/llamacpp/.work/,
# from a source checkout found in this order:
#   1. $LLAMACPP_SRC: an existing llama.cpp checkout (used as is, not modified);
#   2. $LLAMACPP_BUNDLE: a git bundle of llama.cpp (e.g. node-llama-cpp's llama/gitRelease.bundle);
#   3. the npm package node-llama-cpp (version $NODE_LLAMA_CPP_VERSION, default below), fetched with `npm pack`;
#      its tarball ships llama.cpp's source as the git bundle llama/gitRelease.bundle.
# Reruns reuse the checkout and the build (cmake only rebuilds what changed). Prints the commit at the end and
# writes it to .work/llama.cpp.commit. Exits 2 with a message when no source can be found or the build fails.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WORK="${LLAMACPP_WORK:-$HERE/.work}"
NODE_LLAMA_CPP_VERSION="${NODE_LLAMA_CPP_VERSION:-3.22.1}"
JOBS="${LLAMACPP_JOBS:-2}"
mkdir -p "$WORK"
die() { echo "llamacpp/build.sh: error: $*" >&2; exit 2; }

if [[ -n "${LLAMACPP_SRC:-}" ]]; then
  [[ -f "$LLAMACPP_SRC/CMakeLists.txt" && -d "$LLAMACPP_SRC/gguf-py" ]] \
    || die "LLAMACPP_SRC=$LLAMACPP_SRC is not a llama.cpp checkout (no CMakeLists.txt or gguf-py/)"
  SRC="$(cd "$LLAMACPP_SRC" && pwd)"
else
  SRC="$WORK/llama.cpp"
  if [[ ! -f "$SRC/CMakeLists.txt" ]]; then
    BUNDLE="${LLAMACPP_BUNDLE:-}"
    if [[ -z "$BUNDLE" ]]; then
      command -v npm >/dev/null || die "no llama.cpp source: set LLAMACPP_SRC (a checkout) or LLAMACPP_BUNDLE (a git bundle), or install npm so that node-llama-cpp@$NODE_LLAMA_CPP_VERSION (which ships llama/gitRelease.bundle) can be fetched"
      TGZ="$WORK/node-llama-cpp-$NODE_LLAMA_CPP_VERSION.tgz"
      if [[ ! -f "$TGZ" ]]; then
        echo "fetching node-llama-cpp@$NODE_LLAMA_CPP_VERSION with npm pack..." >&2
        (cd "$WORK" && npm pack --silent "node-llama-cpp@$NODE_LLAMA_CPP_VERSION" >/dev/null) \
          || die "npm pack node-llama-cpp@$NODE_LLAMA_CPP_VERSION failed (no registry access?); set LLAMACPP_SRC or LLAMACPP_BUNDLE instead"
      fi
      rm -rf "$WORK/npm" && mkdir -p "$WORK/npm"
      tar -xzf "$TGZ" -C "$WORK/npm" package/llama/gitRelease.bundle package/llama/llama.cpp.info.json 2>/dev/null \
        || die "$TGZ has no package/llama/gitRelease.bundle (this node-llama-cpp version does not ship llama.cpp's source)"
      BUNDLE="$WORK/npm/package/llama/gitRelease.bundle"
      cp "$WORK/npm/package/llama/llama.cpp.info.json" "$WORK/llama.cpp.info.json"
    fi
    [[ -f "$BUNDLE" ]] || die "LLAMACPP_BUNDLE=$BUNDLE does not exist"
    git bundle verify "$BUNDLE" >/dev/null 2>&1 || die "$BUNDLE is not a complete git bundle"
    rm -rf "$SRC.tmp"
    git -c advice.detachedHead=false clone -q "$BUNDLE" "$SRC.tmp" || die "git clone from $BUNDLE failed"
    mv "$SRC.tmp" "$SRC"
  fi
fi
COMMIT="$(git -C "$SRC" rev-parse HEAD 2>/dev/null || echo unknown)"
echo "$COMMIT" > "$WORK/llama.cpp.commit"

BUILD="$WORK/build"
if [[ -f "$BUILD/CMakeCache.txt" ]] && ! grep -qx "CMAKE_CACHEFILE_DIR:INTERNAL=$BUILD" "$BUILD/CMakeCache.txt"; then
  # .work was copied or moved: cmake refuses a cache made elsewhere; the binaries are static, so they still run
  if [[ -x "$BUILD/bin/llama-bench" && -x "$BUILD/bin/llama-quantize" ]]; then
    echo "llama.cpp $COMMIT: using the prebuilt $BUILD/bin (built in another folder; delete $BUILD to rebuild)" >&2
    exit 0
  fi
  rm -rf "$BUILD"
fi
if [[ ! -f "$BUILD/CMakeCache.txt" ]]; then
  # Only what the comparison needs: no server/examples/tests, no curl; GGML_NATIVE = -march=native (AVX-512 here).
  cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DBUILD_SHARED_LIBS=OFF >/dev/null \
    || die "cmake configure of $SRC failed"
fi
nice cmake --build "$BUILD" --config Release -j "$JOBS" --target llama-bench llama-quantize \
  || die "building llama-bench/llama-quantize failed (see the compiler output above)"
for t in llama-bench llama-quantize; do
  [[ -x "$BUILD/bin/$t" ]] || die "$BUILD/bin/$t missing after the build"
done
echo "llama.cpp $COMMIT built: $BUILD/bin/llama-bench, $BUILD/bin/llama-quantize" >&2
