#!/usr/bin/env bash
# Configures and builds portcullis.   scripts/build.sh BUILD_DIR [extra cmake args]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${1:?usage: build.sh BUILD_DIR [cmake args]}
shift
cmake -S "$root" -B "$build_dir" -G Ninja "$@" >/dev/null
# Two compile jobs per core at most: C++20 + asio translation units need ~1 GiB each.
cmake --build "$build_dir" -j "$(nproc)"
