#!/usr/bin/env bash
# Rewrites the golden snapshots in tests/golden/ from the current build.
# Review the result with `git diff tests/golden` before committing.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake --build build --target golden_test >/dev/null
AVX512EMU_REBASE=1 ./build/tests/golden_test >/dev/null
git status --short tests/golden
