#!/usr/bin/env bash
# README command 1: install what is missing, build (Release) and run the quickstart demo: one
# sidecar with its embedded authority gives kernel-attested demo workloads (python3 under their own
# uids, hence root) per-caller SVIDs, allows one call, refuses an unattested caller and revokes an
# exited workload's SVID.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
scripts/install-deps.sh build
scripts/build.sh build -DCMAKE_BUILD_TYPE=Release -DPORTCULLIS_BUILD_TESTS=OFF -DPORTCULLIS_BUILD_BENCH=OFF
exec python3 "$root/examples/quickstart/quickstart.py" --binary "$root/build/proxy/portcullis" "$@"
