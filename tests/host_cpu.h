// Owns the tests' answer to "does this CPU run AVX-512 itself?", which
// decides what a test compares with: the native run where it does, the
// reference interpreter (subprocess.h reference_run) where it does not.
#pragma once

#include <cstdlib>

namespace avx512emu::testing {

//! Whether this CPU runs AVX-512F/BW/DQ/VL/CD itself. False under
//! AVX512EMU_ASSUME_NO_AVX512=1, which runs the suite as on an AVX2-only
//! CPU (the library's selfcheck::host_runs_avx512 reads it too).
inline bool cpu_runs_avx512() {
  if (const char* v = std::getenv("AVX512EMU_ASSUME_NO_AVX512"); v && *v && *v != '0') return false;
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
         __builtin_cpu_supports("avx512cd");
}

}  // namespace avx512emu::testing
