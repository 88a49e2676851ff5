// Owns `avx512emu run`: runs a program with the trap runtime preloaded.
#pragma once

#include <string>

namespace avx512emu {

//! Exit status of `run` when its --cache file is missing, corrupt, foreign or
//! from another version (the program is then not started).
inline constexpr int kBadCacheExitCode = 3;

//! `avx512emu run [--stats] [--no-patch] [--simulate-avx2] [--cache FILE] [--help]
//! -- PROGRAM ARGS...`
//! `argv` holds the arguments after "run". Execs the program on success (does
//! not return); returns 2 for bad arguments, kBadCacheExitCode for an
//! unusable --cache file, 126/127 when the program cannot be executed (as
//! shells do), 1 when the preload library is missing.
int run_command(int argc, char** argv);

//! The preload library: $AVX512EMU_PRELOAD, else libavx512emu-preload.so next
//! to the running executable, else in ../lib/avx512emu/ relative to it.
//! Empty when none exists.
std::string find_preload_library();

}  // namespace avx512emu
