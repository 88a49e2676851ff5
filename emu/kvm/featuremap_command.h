// Owns the `avx512emu featuremap` subcommand: option parsing, running the
// coverage (with verification unless told otherwise) and printing the map
// or the check of a source host's CPUID dump.
#pragma once

namespace avx512emu::kvm {

//! Runs `avx512emu featuremap ARGS...`; `argv` holds the arguments after the
//! subcommand name. Returns the process exit status: 0 success, 1 when
//! --check-source finds a feature that blocks migration, 2 for bad usage or
//! an unreadable or malformed source dump.
int featuremap_command(int argc, char** argv);

}  // namespace avx512emu::kvm
