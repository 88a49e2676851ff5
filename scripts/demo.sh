#!/usr/bin/env bash
# The main job: install what is missing, build, then translate and run the
# bundled AVX-512 sample and check it against native execution.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh -DBUILD_TESTING=OFF
./build/emu/avx512emu demo
