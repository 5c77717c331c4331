#!/usr/bin/env bash
# Loopback load test of `qvlm serve` on the bundled model (bounded: a fixed number of requests, each with a
# client timeout; the server is stopped with SIGTERM at the end and must exit 0).
#
#   benchmarks/serve-load.sh                      # 1/2/4/8-stream batching curve, then 200 requests from 8 clients
#   REQUESTS=50 CLIENTS=4 benchmarks/serve-load.sh
#   MODEL=out/w4 benchmarks/serve-load.sh         # a saved quantized checkpoint
#   REPEAT=11 STREAM_TOKENS=200 benchmarks/serve-load.sh   # more round-robin repeats of the curve (noisy machine)
#
# Prints a table, the server's peak RSS (VmHWM) and one JSON line; writes benchmarks/results/serve-load.json.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
MODEL=${MODEL:-$ROOT/models/tiny-llava-shapes}
REQUESTS=${REQUESTS:-200}
CLIENTS=${CLIENTS:-8}
SLOTS=${SLOTS:-8}
PORT=${PORT:-18080}
HEAP=${HEAP:-512m}
REPEAT=${REPEAT:-5}
STREAM_TOKENS=${STREAM_TOKENS:-200}
"$ROOT/qvlm" --help >/dev/null   # builds the jar when needed
JAVA_HOME=${JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}
JAR="$ROOT/java/target/qvlm.jar"
LOG=$(mktemp)
JAVA_OPTS="-Xmx$HEAP" "$ROOT/qvlm" serve --model "$MODEL" --port "$PORT" --slots "$SLOTS" --queue 64 >"$LOG" 2>&1 &
LAUNCHER=$!
cleanup() { kill -TERM "$LAUNCHER" 2>/dev/null || true; rm -f "$LOG"; }
trap cleanup EXIT
for _ in $(seq 1 120); do grep -q "listening on" "$LOG" && break; sleep 0.5; done
grep -q "listening on" "$LOG" || { echo "server did not start:"; cat "$LOG"; exit 1; }
SERVER=$LAUNCHER   # the launcher execs java: same pid
echo "server pid $SERVER, model $MODEL, $SLOTS slots, heap $HEAP; $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
OUT=$(mktemp)
timeout 1200 "$JAVA_HOME/bin/java" -cp "$JAR:$ROOT/java/target/lib/*" dev.qvlm.bench.ServeLoad \
    --url "http://127.0.0.1:$PORT" --images "$ROOT/data/shapes-vqa/images" --requests "$REQUESTS" --clients "$CLIENTS" \
    --repeat "$REPEAT" --stream-tokens "$STREAM_TOKENS" | tee "$OUT"
RSS_KB=$(awk '/VmHWM/ {print $2}' "/proc/$SERVER/status")
echo "server peak RSS (VmHWM): $((RSS_KB / 1024)) MiB"
kill -TERM "$SERVER"
for _ in $(seq 1 60); do kill -0 "$SERVER" 2>/dev/null || break; sleep 0.5; done
wait "$LAUNCHER" && RC=0 || RC=$?
echo "server exit code after SIGTERM: $RC"
mkdir -p "$HERE/results"
grep '^JSON ' "$OUT" | sed 's/^JSON //' | python3 -c "import json,sys; d=json.load(sys.stdin); d['server_peak_rss_mib']=$RSS_KB/1024; d['server_exit_code']=$RC; d['machine']='$(nproc) cores, $(grep -m1 "model name" /proc/cpuinfo | cut -d: -f2 | xargs)'; print(json.dumps(d, indent=1))" > "$HERE/results/serve-load.json"
rm -f "$OUT"
trap - EXIT
rm -f "$LOG"
