#!/usr/bin/env bash
# The serving figures of README ("Serving many requests"): a random-weight model of
# Llama-3.2-1B shape in Q4_0 (written once by `herd synth`), served through the API —
#   1. 1, 4 and 8 simultaneous streams on one node (2 threads);
#   2. 1 and 4 streams through a 2-node local pipeline (1 thread per node);
#   3. 4 streams while a 2,000-token prompt arrives (inter-token latency; the long answer
#      checked against the same request alone);
#   4. a chat's second turn after a ~1,500-token first turn: TTFT against the cold first turn.
# Each `herd bench` line is a median of RUNS runs. Benchmark on a quiet machine.
#
# Usage: scripts/bench-serving.sh [RUNS]    (default 3; model in $HERD_BENCH_MODELS or /tmp)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
dir=${HERD_BENCH_MODELS:-/tmp}
model="$dir/1b-q4_0.gguf"
vocab=../shared/models/stories260K.gguf
[[ -x build/herd ]] || { echo "bench-serving.sh: build first (scripts/setup.sh)" >&2; exit 1; }
if [[ ! -f "$model" ]]; then
  vocab_arg=()
  [[ -f "$vocab" ]] && vocab_arg=(--vocab-from "$vocab")
  build/herd synth -o "$model" --type q4_0 "${vocab_arg[@]}"
fi
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-), load: $(uptime)"
echo "== 1. streams at once, one node"
build/herd bench -m "$model" --concurrency 1,4,8 -p 64 -n 128 -t 2 -r "$runs" 2>/dev/null
echo "== 2. streams at once, 2-node pipeline (1 thread per node)"
build/herd bench -m "$model" --nodes 2 --node-threads 1 --concurrency 1,4 -p 64 -n 128 -t 2 \
  -r "$runs" 2>/dev/null
echo "== 3. a 2000-token prompt arrives while 4 streams decode"
build/herd bench -m "$model" --concurrency 4 --long-prompt 2000 -p 64 -n 128 -t 2 -r "$runs" \
  2>/dev/null

echo "== 4. a chat's second turn reuses the first turn's KV cache"
port=$((20000 + RANDOM % 20000))
build/herd serve -m "$model" --api-port "$port" --parallel 2 -c 2048 -t 2 2>/dev/null &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null' EXIT
for _ in $(seq 1 300); do
  curl -sf "http://127.0.0.1:$port/health" >/dev/null && break
  sleep 0.2
done
# Prompt ids: 1,500 of them (a long first turn), then 24 more (the next user message).
ids() { awk -v n="$1" -v seed="$2" 'BEGIN { s = seed; printf "1";
  for (i = 1; i < n; i++) { s = (s * 1103515245 + 12345) % 2147483648; printf ",%d", 3 + s % 500 } }'; }
first=$(ids 1500 7)
second="$first,$(ids 25 11 | cut -d, -f2-)"
ask() {  # prompt ids, cache_prompt -> "seconds cached_tokens"
  local body="{\"prompt\":[$1],\"max_tokens\":1,\"temperature\":0,\"cache_prompt\":$2}"
  local out
  out=$(curl -s -w '\n%{time_total}' -H 'Content-Type: application/json' -d "$body" \
    "http://127.0.0.1:$port/v1/completions")
  echo "$(tail -1 <<<"$out") $(head -1 <<<"$out" | grep -o '"cached_tokens":[0-9]*' | cut -d: -f2)"
}
ask "$(ids 16 3)" false >/dev/null  # warm-up: page the weights in
for ((i = 1; i <= runs; i++)); do
  read -r cold cold_cached < <(ask "$first" false)   # computed afresh
  read -r warm warm_cached < <(ask "$second" true)   # the first turn is in a slot
  awk -v c="$cold" -v w="$warm" -v cc="$cold_cached" -v wc="$warm_cached" 'BEGIN {
    printf "run: first turn (1500 tokens) %.0f ms, cached %d; second turn %.0f ms, cached %d; ratio %.3f\n",
           1000 * c, cc, 1000 * w, wc, w / c }'
done
