#!/usr/bin/env bash
# README command 2: install what is missing, build with tests, run ctest (unit + integration),
# then rebuild under ASan+UBSan and run the unit tests and fuzz regressions there too.
#   PORTCULLIS_SKIP_SANITIZE=1 scripts/test.sh   skips the sanitizer pass
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
scripts/install-deps.sh build test

echo "== build (Release, tests on) =="
scripts/build.sh build -DCMAKE_BUILD_TYPE=Release -DPORTCULLIS_BUILD_TESTS=ON
echo "== ctest: unit + integration =="
(cd build && ctest --output-on-failure -j 2 --timeout 600)

if [[ -z ${PORTCULLIS_SKIP_SANITIZE:-} ]]; then
  echo "== build (ASan+UBSan) =="
  scripts/build.sh build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPORTCULLIS_SANITIZE=address,undefined \
    -DPORTCULLIS_BUILD_BENCH=OFF
  echo "== ctest under ASan+UBSan: unit tests =="
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --output-on-failure -j 2 -L unit --timeout 600)
fi
