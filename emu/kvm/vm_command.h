// Owns `avx512emu vm`: runs a bundled guest workload in the small VMM.
#pragma once

namespace avx512emu::kvm {

//! `avx512emu vm ARGS...` (argv holds the arguments after "vm"). Returns the
//! process exit status: 0 on a result, 1 on a guest or VMM failure, 2 on
//! bad arguments.
int vm_command(int argc, char** argv);

}  // namespace avx512emu::kvm
