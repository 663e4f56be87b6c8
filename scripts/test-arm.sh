#!/usr/bin/env bash
# Cross-compiles the kernel stack (util, tensor, kernels) and its tests for aarch64 and runs them
# under qemu-user, so that the NEON kernels (src/kernels/*_neon.cpp) are checked against the
# scalar reference on an x86 machine. Runs twice: on qemu's default CPU ("max": NEON with the
# dot-product extension, so the NEON table is active) and on a Cortex-A72 (ARMv8.0, no sdot: the
# dot kernels must fall back to the scalar ones, and no other code may use ARMv8.2 instructions).
# Exits nonzero on any failure.
#
# Usage: scripts/test-arm.sh            (build dir: build-arm; HERD_ARM_BUILD=dir to change)
#        JOBS=2 scripts/test-arm.sh     (parallel compile jobs; default nproc)
#        scripts/test-arm.sh --deps     (install the packages only; .ci/run does this)
#        scripts/test-arm.sh --check    (exit 0 when the packages are installed, 1 if not)
# Needs Debian/Ubuntu packages (installed automatically when run as root):
#   g++-aarch64-linux-gnu qemu-user, and for arm64 (multiarch):
#   libgtest-dev:arm64 libgmock-dev:arm64 libfmt-dev:arm64 libspdlog-dev:arm64
set -euo pipefail
cd "$(dirname "$0")/.."
build=${HERD_ARM_BUILD:-build-arm}
jobs=${JOBS:-$(nproc)}

packages=(g++-aarch64-linux-gnu qemu-user libgtest-dev:arm64 libgmock-dev:arm64 libfmt-dev:arm64
          libspdlog-dev:arm64)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [[ "${1:-}" == "--check" ]]; then ((${#missing[@]} == 0)); exit; fi
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "test-arm.sh: missing packages: ${missing[*]}" >&2
    echo "install them with:" >&2
    echo "  sudo dpkg --add-architecture arm64 && sudo apt-get update && \\" >&2
    echo "  sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
fi
if [[ "${1:-}" == "--deps" ]]; then exit 0; fi

cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake \
  -DHERD_KERNELS_ONLY=ON -DHERD_BUILD_BENCH=OFF >/dev/null
ninja -C "$build" -j"$jobs" herd_util_tests herd_kernels_tests

# "-L /": the multiarch loader and libc (see the toolchain file for why not the cross copy).
tests="$build/tests/herd_kernels_tests"
echo "== qemu-aarch64: util (CPU features, thread pool)"
qemu-aarch64 -L / "$build/tests/herd_util_tests"
echo "== qemu-aarch64 (cpu max: NEON + dotprod)"
qemu-aarch64 -L / "$tests"
echo "== qemu-aarch64 -cpu cortex-a72 (ARMv8.0, no dotprod: scalar dot kernels, NEON elsewhere)"
qemu-aarch64 -L / -cpu cortex-a72 "$tests"
echo "test-arm.sh: all aarch64 kernel tests passed"
