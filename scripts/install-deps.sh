#!/usr/bin/env bash
# Installs the Debian 12 packages portcullis needs to build, test and benchmark, skipping the ones
# already present. Needs root (or sudo) and Debian's package mirror; nothing else is downloaded.
#   scripts/install-deps.sh [build|test|bench]...   (default: build test)
set -euo pipefail

build_pkgs=(
  cmake ninja-build g++ pkg-config git openssl python3
  android-libboringssl-dev libasio-dev libnghttp2-dev libhttp-parser-dev
  libprotobuf-dev protobuf-compiler libspdlog-dev libyaml-cpp-dev libcli11-dev nlohmann-json3-dev
  libre2-dev libsqlite3-dev libtss2-dev
  libgtest-dev libgmock-dev libbenchmark-dev
)
test_pkgs=(python3 curl openssl haproxy iproute2 procps clang libclang-rt-14-dev nghttp2-client)
bench_pkgs=(haproxy iperf3 wrk nginx libnginx-mod-stream stunnel4 procps)

groups=("$@")
[[ ${#groups[@]} -eq 0 ]] && groups=(build test)
wanted=()
for g in "${groups[@]}"; do
  case $g in
    build) wanted+=("${build_pkgs[@]}") ;;
    test) wanted+=("${test_pkgs[@]}") ;;
    bench) wanted+=("${bench_pkgs[@]}") ;;
    *) echo "install-deps: unknown group '$g' (build, test, bench)" >&2; exit 2 ;;
  esac
done

# Node (for the grpc-js interop peer) may come from Debian or elsewhere: only ask for Debian's
# when no node/npm is on PATH at all.
if [[ " ${groups[*]} " == *" test "* ]] && ! { command -v node && command -v npm; } >/dev/null; then
  wanted+=(nodejs npm)
fi

missing=()
for p in "${wanted[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install-deps: all ${#wanted[@]} packages present"
else
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO=sudo
  echo "install-deps: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  echo "install-deps: done"
fi

# The grpc-js interop peer (tests/interop), pinned by package-lock.json, from the npm registry.
# Its tests skip with a message when this could not run.
if [[ " ${groups[*]} " == *" test "* ]]; then
  interop=$(cd "$(dirname "${BASH_SOURCE[0]}")/../tests/interop" && pwd)
  if [[ ! -d $interop/node_modules/@grpc/grpc-js ]]; then
    (cd "$interop" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) \
      && echo "install-deps: npm ci in tests/interop done" \
      || echo "install-deps: npm ci in tests/interop failed; grpc-js interop tests will skip" >&2
  fi
fi
