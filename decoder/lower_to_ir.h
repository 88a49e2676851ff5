// Owns the lowering of a decoded AVX-512 instruction to IR.
#pragma once

#include <string>

#include "decoded_insn.h"
#include "ir.h"

namespace avx512emu {

//! Lowers `insn` through the semantics table. On failure returns false and
//! sets `error` to a one-line reason ("vpconflictd: no semantics row", ...).
bool lower_to_ir(const DecodedInsn& insn, ir::Function& out, std::string& error);

}  // namespace avx512emu
