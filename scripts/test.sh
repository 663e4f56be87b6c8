#!/usr/bin/env bash
# Builds everything and runs the whole test suite (unit, golden-model, multi-process) with ctest,
# then the file-format corruption tests, the tensor/kernel tests, the scheduler/API tests and the
# peer-message parsers again under AddressSanitizer + UBSan, then the kernel tests cross-compiled
# for aarch64 under qemu (NEON kernels) where that toolchain is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test-deps
jobs=$(nproc)

# The official OpenAI client for Node and puppeteer-core (drives Chromium), for tests/clients (from
# the npm registry, pinned by its lock).
if command -v npm >/dev/null; then
  (cd tests/clients && npm ci --no-audit --no-fund --loglevel=error) ||
    echo "test.sh: npm ci failed: the client-library tests will be skipped"
else
  echo "test.sh: npm not found: the client-library tests will be skipped"
fi

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
ninja -C build -j"$jobs"
(cd build && ctest --output-on-failure -j"$jobs" --timeout 900)

# Untrusted-input parsers under sanitizers: a crash here is a bug even if the Release run passed.
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DHERD_SANITIZE=ON -DHERD_BUILD_BENCH=OFF >/dev/null
ninja -C build-asan -j"$jobs" herd_gguf_tests herd_tensor_tests herd_kernels_tests herd_engine_tests \
  herd_grammar_tests herd_api_tests herd_cluster_tests
(cd build-asan && ctest --output-on-failure -R '^Gguf' -j"$jobs" --timeout 900)
# The quantizers and kernels, on rows that are not vector-aligned (tests/kernels: kMisalign).
build-asan/tests/herd_tensor_tests --gtest_brief=1
build-asan/tests/herd_kernels_tests --gtest_brief=1
# The scheduler and the API: threads sharing sequences, tickets and sockets.
build-asan/tests/herd_engine_tests --gtest_brief=1 --gtest_filter='Scheduler*:Batch*:KvSlots*:*Chunked*'
build-asan/tests/herd_api_tests --gtest_brief=1
# JSON schemas from clients, and the matcher that enforces them.
build-asan/tests/herd_grammar_tests --gtest_brief=1
# What peers send: signed control messages and the stage protocol, 10^4 malformed each.
build-asan/tests/herd_cluster_tests --gtest_brief=1 \
  --gtest_filter='Envelope*:Messages*:StageProtocol*:StageServer*'


# The NEON kernels cannot run on this CPU: cross-compiled and run under qemu-user.
if scripts/test-arm.sh --check; then
  JOBS="$jobs" scripts/test-arm.sh
else
  echo "test.sh: aarch64 NEON tests skipped: no cross toolchain (install: scripts/test-arm.sh --deps)"
fi
