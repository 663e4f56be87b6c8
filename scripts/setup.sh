#!/usr/bin/env bash
# Installs herd's build dependencies from Debian's apt and builds it into build/.
#   scripts/setup.sh              install packages (needs root or sudo) and build
#   scripts/setup.sh --deps       install packages only
#   scripts/setup.sh --test-deps  install packages and what only the tests use (Node.js and npm
#                                 for the client-library tests, Chromium for the dashboard's)
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  build-essential cmake ninja-build pkg-config
  libfmt-dev libspdlog-dev nlohmann-json3-dev libcli11-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libcpp-httplib-dev libssl-dev libucx-dev libicu-dev
  iproute2 procps
)

install_packages() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]} == 0)); then
    echo "setup: all packages present"
    return
  fi
  local sudo=""
  if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

install_packages
if [[ "${1:-}" == "--test-deps" ]]; then
  sudo=""
  if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
  # Node.js and npm for the client-library tests (tests/clients); a Node.js from elsewhere
  # (nodesource) already brings npm, and Debian's npm package would conflict with it.
  if ! command -v npm >/dev/null; then
    echo "setup: installing nodejs npm"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq nodejs npm >/dev/null ||
      echo "setup: could not install nodejs/npm: the client-library tests will be skipped"
  fi
  # Chromium for the dashboard's browser test (driven by puppeteer-core from npm).
  if ! command -v chromium >/dev/null; then
    echo "setup: installing chromium"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null ||
      echo "setup: could not install chromium: the dashboard's browser test will be skipped"
  fi
  exit 0
fi
if [[ "${1:-}" == "--deps" ]]; then exit 0; fi

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
ninja -C build -j"$(nproc)" herd
echo "setup: built build/herd"
