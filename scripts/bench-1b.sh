#!/usr/bin/env bash
# The performance figures of README and docs/performance.md: a random-weight model of
# Llama-3.2-1B shape in Q4_0, Q8_0 and Q4_K_M (written once by `herd synth`), then `herd bench`
# over all three on 1 and 2 threads, RUNS times in a row (each run is itself a median of 3), then
# decode at depth 4000. Benchmark on a quiet machine: `uptime` near 1, nothing else building.
#
# Usage: scripts/bench-1b.sh [RUNS]       (default 3; models in $HERD_BENCH_MODELS or /tmp)
#        BENCH_ARGS="-p 64 -n 8 -r 1" scripts/bench-1b.sh 1     (a quick smoke run)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
dir=${HERD_BENCH_MODELS:-/tmp}
args=${BENCH_ARGS:--p 512 -n 128 -r 3}
vocab=../shared/models/stories260K.gguf
[[ -x build/herd ]] || { echo "bench-1b.sh: build first (scripts/setup.sh)" >&2; exit 1; }
models=()
for type in q4_0 q8_0 q4_k_m; do
  model="$dir/1b-$type.gguf"
  if [[ ! -f "$model" ]]; then
    vocab_arg=()
    [[ -f "$vocab" ]] && vocab_arg=(--vocab-from "$vocab")
    build/herd synth -o "$model" --type "$type" "${vocab_arg[@]}"
  fi
  models+=(-m "$model")
done
echo "load: $(uptime)"
for ((i = 1; i <= runs; i++)); do
  echo "== run $i of $runs"
  # shellcheck disable=SC2086  # BENCH_ARGS is a list of options
  build/herd bench "${models[@]}" $args -t 1,2 2>/dev/null
done
echo "== decode at depth 4000 (2 threads)"
build/herd bench -m "$dir/1b-q4_0.gguf" -p 16 -n 32 -r 5 -t 2 -d 4000 2>/dev/null | tail -1
echo "load: $(uptime)"
