// Owns what the two Zydis users of decoder/ share (private header): the
// 64-bit decoder and the hardware number of a general-purpose register.
#pragma once

#include <Zydis/Zydis.h>

namespace avx512emu::zydis_common {

inline const ZydisDecoder& decoder64() {
  static const ZydisDecoder decoder = [] {
    ZydisDecoder d;
    ZydisDecoderInit(&d, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64);
    return d;
  }();
  return decoder;
}

//! Zydis numbers GPRs by class; the hardware number (rax = 0 ... r15 = 15)
//! is what the state block uses. Any width maps to its 64-bit register
//! (ah -> rax). -1 for none, -2 for a register of another class.
inline int gpr_number(ZydisRegister r) {
  if (r == ZYDIS_REGISTER_NONE) return -1;
  switch (ZydisRegisterGetClass(r)) {
    case ZYDIS_REGCLASS_GPR8:
    case ZYDIS_REGCLASS_GPR16:
    case ZYDIS_REGCLASS_GPR32:
    case ZYDIS_REGCLASS_GPR64:
      return ZydisRegisterGetId(ZydisRegisterGetLargestEnclosing(ZYDIS_MACHINE_MODE_LONG_64, r));
    default:
      return -2;
  }
}

}  // namespace avx512emu::zydis_common
