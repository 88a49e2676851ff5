// Owns the translation driver: IR function in, position-independent AVX2
// machine code out.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ir.h"

namespace avx512emu::jit {

struct CompiledCode {
  std::vector<uint8_t> bytes;  //!< Instructions followed by the constant pool.
  size_t code_size = 0;        //!< Bytes of instructions (the rest is data).
};

//! Compiles `f`. Fails with a one-line reason when an op has no AVX2 lowering.
bool compile_to_avx2(const ir::Function& f, CompiledCode& out, std::string& error);

}  // namespace avx512emu::jit
