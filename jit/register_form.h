// Owns the register form of a translation: code that runs on the live
// registers instead of a copy of them in the state block.
//
// Contract of the register form (the runtime's inline stubs run it):
//   - guest zmm0-15 bits 255:0 are the host's ymm0-15, live; bits 511:256,
//     zmm16-31 and k0-7 are in the state block at rdi, as in the memory form;
//   - guest GPRs are read from and written to the block (the caller puts the
//     ones the code reads there), RFLAGS results too;
//   - MXCSR is live: the guest's is the host's, so there is no switch;
//   - host ymm registers other than the instruction's own are free scratch:
//     the caller saves the ones the code clobbers (jit/live_form.h finds them);
//   - the bytes have the memory form's shape (body, vzeroupper, ret, tails,
//     constants), so live_form.h takes them apart the same way.
// Only instructions whose every IR op has a register lowering get a register
// form (element-wise integer and FP ops, the short sequences for the ones
// AVX2 lacks: vpternlog, 64-bit multiply, min/max and abs (ChunkLowering),
// in-lane shuffles, rotates, compares into masks, plain, broadcast and
// masked loads, stores, masked dword/qword stores, merge/zero masking,
// opmask and GPR ops); the others keep the memory form.
// Each op's host instruction comes from the same tables as the memory form
// (integer_native_id, float_native_id), so semantics are not restated.
//
// The evaluation is chunk-major: all ops for bits 255:0, then all for bits
// 511:256. Element-wise ops never mix chunks, so each value needs one host
// register at a time. Loads of every chunk are hoisted before the first
// write, and the live destination is written after the last pass, so a
// fault (a load, an alignment check, an unmasked FP exception) leaves every
// guest register as it was before the instruction.
#pragma once

#include <cstdint>
#include <string>

#include "compile.h"
#include "ir.h"

namespace avx512emu::jit {

//! The guest ymm registers (bit per zmm0-15) the register form reads and
//! writes live; everything else it touches is in the state block.
struct RegisterFormUse {
  uint16_t low_read = 0, low_written = 0;
};

//! Compiles `f` into its register form when every op has a register
//! lowering; otherwise returns false with `why`. With `callable` the code is
//! wrapped into a `void(CpuState*)` like the memory form (ymm0-15 and MXCSR
//! loaded from the block and stored back), so that tests can compare it
//! with the memory form and the hardware through the same harness.
bool compile_register_form(const ir::Function& f, bool callable, CompiledCode& out,
                           RegisterFormUse& use, std::string& why);

}  // namespace avx512emu::jit
