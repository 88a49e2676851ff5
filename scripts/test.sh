#!/usr/bin/env bash
# Every test: install what is missing, build with tests, run ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh -DBUILD_TESTING=ON
cd build
ctest --output-on-failure -j "$(nproc)" --timeout 1500
