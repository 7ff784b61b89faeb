#!/usr/bin/env bash
# README command 1: install what is missing, build (Release) and run the quickstart demo:
# a small echo service on loopback with portcullis in front of it as a TCP proxy.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
scripts/install-deps.sh build
scripts/build.sh build -DCMAKE_BUILD_TYPE=Release -DPORTCULLIS_BUILD_TESTS=OFF -DPORTCULLIS_BUILD_BENCH=OFF
exec python3 "$root/examples/quickstart/quickstart.py" --binary "$root/build/proxy/portcullis" "$@"
