// Owns the decoding of host (generated or copied) x86-64 code into the facts
// a code relocator and a register-liveness check need: length, the relative
// field to fix up when the bytes move, the memory operand, and the registers
// and flags each instruction writes. No Zydis type appears here.
#pragma once

#include <cstddef>
#include <cstdint>

namespace avx512emu {

//! What kind of control transfer or special instruction this is.
enum class HostInsnKind : uint8_t {
  kPlain,     //!< Falls through to the next instruction.
  kJump,      //!< jmp rel8/rel32 (unconditional, relative).
  kCondJump,  //!< jcc rel8/rel32, jrcxz, loop.
  kRet,
  kVzeroupper,  //!< vzeroupper or vzeroall.
  kStmxcsr,     //!< vstmxcsr / stmxcsr m32.
  kLdmxcsr,     //!< vldmxcsr / ldmxcsr m32.
  kOther,       //!< Any other control transfer (call, indirect jmp, syscall, ...),
                //!< and the XSAVE/FXSAVE family (the whole register state).
};

//! Bits of HostInsn::flags_tested / flags_replaced.
enum HostFlag : uint8_t {
  kHostCF = 1,
  kHostPF = 2,
  kHostAF = 4,
  kHostZF = 8,
  kHostSF = 16,
  kHostOF = 32,
  kHostArithFlags = 63,
};

//! One memory operand (the explicit one; instructions with two are kOther
//! for our purposes and flagged in `two_memory_operands`).
struct HostMemOperand {
  bool present = false;
  int8_t base = -1;          //!< GPR 0..15 (hardware order), -1 none; 16 = rip.
  int8_t index = -1;         //!< GPR 0..15, -1 none (vector indices: 17).
  uint8_t scale = 0;
  uint8_t segment = 0;       //!< 0 none/ds/ss/es/cs, 1 fs, 2 gs.
  int64_t disp = 0;
  uint16_t bytes = 0;        //!< Bytes accessed (0 for lea / agen only).
  bool read = false, written = false;
  bool address_only = false; //!< lea: computes the address, touches no memory.
};

struct HostInsn {
  uint8_t length = 0;
  HostInsnKind kind = HostInsnKind::kPlain;
  //! Relative field (branch displacement or RIP-relative disp), when there
  //! is one: its offset and size (1 or 4) in the instruction, and the target
  //! as an offset from the instruction's start.
  uint8_t rel_offset = 0, rel_size = 0;
  int64_t rel_target = 0;
  HostMemOperand mem;
  bool two_memory_operands = false;
  uint16_t gprs_read = 0;     //!< Bit per GPR read as a value, hardware order (rax = bit 0);
                              //!< address registers are in `mem`.
  uint16_t gprs_written = 0;
  uint16_t vecs_read = 0;     //!< Bit per xmm/ymm/zmm register 0..15 (16..31 are never used by AVX2 code).
  uint16_t vecs_written = 0;
  bool high_vec = false;      //!< Touches a vector register 16..31, a k register or a zmm.
  bool flags_written = false; //!< Any of OSZAPC/DF written (set, cleared or left undefined).
  //! The arithmetic flags (HostFlag bits) the instruction tests, and the ones
  //! it leaves with a new value (set, cleared or undefined): enough for a
  //! flags-liveness scan over copied code.
  uint8_t flags_tested = 0, flags_replaced = 0;
  bool vex = false;           //!< VEX-encoded (writes zero bits 511:256 of its vector destination).
  bool evex = false;          //!< EVEX-encoded: an AVX-512 instruction.
  bool stack = false;         //!< push/pop/call/ret/enter/leave or rsp written.
};

//! Decodes one 64-bit-mode instruction. Returns false on bytes that do not
//! decode (or are truncated).
bool decode_host_insn(const uint8_t* bytes, size_t size, HostInsn& out);

}  // namespace avx512emu
