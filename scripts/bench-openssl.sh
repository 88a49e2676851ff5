#!/usr/bin/env bash
# Measures `openssl speed -evp chacha20` at 16 KiB blocks three ways in one
# run: natively (OpenSSL's AVX-512 code on this CPU), on OpenSSL's own AVX2
# path (OPENSSL_ia32cap masks AVX-512F), and emulated (the AVX-512 path under
# `avx512emu run --simulate-avx2`, every AVX-512 instruction made to trap),
# and prints the throughputs and their ratios. On a CPU without AVX-512 the
# native leg is left out and the emulated one forces OpenSSL's AVX-512 path.
#
#   scripts/bench-openssl.sh [--seconds N] [--build DIR]
#
# Needs the openssl command (Debian package openssl) and a build of avx512emu
# (scripts/build.sh). AVX512EMU_STATE_BLOCK_STUBS=1 in the environment
# measures the state-block stubs instead of the inline ones.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=3
build=build
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="${2:?--seconds needs a number}"; shift 2 ;;
    --build) build="${2:?--build needs a directory}"; shift 2 ;;
    -h|--help) sed -n "2,13p" "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench-openssl.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
case "$seconds" in ''|*[!0-9]*) echo "bench-openssl.sh: --seconds wants a whole number" >&2; exit 2 ;; esac
emu="$build/emu/avx512emu"
command -v openssl >/dev/null || { echo "bench-openssl.sh: openssl is not installed (apt-get install openssl)" >&2; exit 3; }
[ -x "$emu" ] || { echo "bench-openssl.sh: $emu not found; run scripts/build.sh first" >&2; exit 3; }

# Bytes per second at 16384-byte blocks, from openssl speed's last column.
speed() {
  "$@" openssl speed -evp chacha20 -bytes 16384 -seconds "$seconds" 2>/dev/null |
    awk '/^ChaCha20|^chacha20/ { v = $NF; sub(/k$/, "", v); print v * 1000 }' | tail -1
}
echo "openssl speed -evp chacha20, 16 KiB blocks, ${seconds} s each" >&2
avx2=$(speed env OPENSSL_ia32cap="~0x0:~0x10000")
if grep -qw avx512f /proc/cpuinfo; then
  native=$(speed env)
  emulated=$(speed "$emu" run --simulate-avx2 --)
else
  # No AVX-512 here: there is no native leg, and OpenSSL is told that the
  # CPU has AVX512F and AVX512VL (the second word of OPENSSL_ia32cap is
  # CPUID.7.0:EBX, replaced as given), so it takes its AVX-512 path, whose
  # instructions trap for real and run emulated.
  echo "(this CPU has no AVX-512: no native leg; OpenSSL's AVX-512 path is forced)" >&2
  native=""
  emulated=$(speed "$emu" run -- env OPENSSL_ia32cap="~0x0:0x80010000")
fi
for v in "$avx2" "$emulated"; do
  [ -n "$v" ] || { echo "bench-openssl.sh: openssl speed printed no ChaCha20 line" >&2; exit 1; }
done
awk -v n="$native" -v a="$avx2" -v e="$emulated" 'BEGIN {
  if (n != "") printf "native AVX-512      %10.1f MB/s\n", n / 1e6
  printf "OpenSSL AVX2 path   %10.1f MB/s\n", a / 1e6
  printf "emulated AVX-512    %10.1f MB/s\n", e / 1e6
  printf "emulated / AVX2 path  %.3f\n", e / a
  if (n != "") printf "emulated / native     %.3f\n", e / n
}'
