// Owns the VEX instructions that the runtime must run itself although they
// are not AVX-512: zeroing idioms (vpxor xmm4, xmm4, xmm4 and the like) and
// vzeroupper/vzeroall. On an AVX-512 CPU they zero zmmN[511:256] (vzeroupper:
// bits 511:128 of zmm0-15). Run natively on an AVX2 CPU, the shadow only
// sees that when ymmN changes (sigill_runtime.h); a zeroing idiom on a ymmN
// that was already zero, or a vzeroupper with bits 255:128 already zero,
// changes nothing the runtime can compare, and the shadow keeps a stale
// upper half that the next AVX-512 instruction reads. The sweep registers
// these instructions as sites with the translations below, so they trap (or
// run in a stub) like AVX-512 instructions.
#pragma once

#include <cstddef>
#include <cstdint>

#include "avx512emu.h"

namespace avx512emu::runtime {

enum class VexIdiomKind : uint8_t {
  kNone,
  kZeroRegister,  //!< dst = src1 = src2 of an op whose result is then 0: zmm[reg] := 0.
  kVzeroupper,    //!< zmm0-15 bits 511:128 := 0.
  kVzeroall,      //!< zmm0-15 := 0.
};

struct VexIdiom {
  VexIdiomKind kind = VexIdiomKind::kNone;
  uint8_t reg = 0;     //!< kZeroRegister: the register (0-15).
  uint8_t length = 0;  //!< Instruction length.
  const char* mnemonic = "";
};

//! Recognises an idiom at the start of `bytes` (an instruction boundary),
//! in its plain encodings only: a 2- or 3-byte VEX prefix with nothing
//! before it, register operands. Anything else is kNone.
VexIdiom match_vex_idiom(const uint8_t* bytes, size_t size);

//! The translation that performs `idiom` on a CpuState and advances rip by
//! its length. Built on first use (not from a signal handler); never freed.
const Translation* vex_idiom_translation(const VexIdiom& idiom);

//! Whether `t` is one of the translations above (for --stats).
bool is_vex_idiom_translation(const Translation* t);

}  // namespace avx512emu::runtime
