// Owns the live form of a translation: what a compiled translation does to
// the guest state block and to the host registers, and how its bytes come
// apart, so that a runtime can run it inline on the live machine state
// instead of calling it against a full copy of the registers.
//
// A translation (compile.h) is `void(CpuState*)`: it reads guest registers
// from the block at rdi, computes with AVX2 scratch registers and writes its
// results back to the block. Run inline, the caller only has to put into the
// block the guest registers the translation reads, save the host registers it
// clobbers, and take back the guest registers it writes; everything else
// stays in the real registers. The analysis decodes the generated code
// (instruction by instruction, so it holds for code from cache files too):
//   - guest state: every access through rdi is classified by its offset in
//     CpuState. An access through rdi with an index register, or rdi used
//     any other way (lea, copies), makes the translation opaque: it is then
//     taken to read and write every guest register;
//   - host effects: GPRs, ymm registers and flags written by any instruction.
// Bytes: the body runs without its MXCSR prologue/epilogue (the live MXCSR is
// the guest's), without the trailing vzeroupper (the program's ymm upper
// halves are live state) and without the ret; the shared tails and the
// constant pool move together, and every relative field that crosses between
// the two parts is listed for fix-up.
#pragma once

#include <cstdint>

namespace avx512emu::jit {

struct LiveForm {
  //! Body: [body_begin, body_end) of the code, run inline. Jumps from the body
  //! to the removed epilogue must land at the end of the body when copied.
  uint32_t body_begin = 0, body_end = 0;
  //! Tails and constants: [data_begin, data_end), copied as one block whose
  //! destination keeps data_begin's offset modulo 32 (constant alignment).
  uint32_t data_begin = 0, data_end = 0;

  //! A relative field in the body whose target lies outside the body.
  struct Fixup {
    uint32_t field = 0;        //!< Offset of the field in the code.
    uint32_t next = 0;         //!< Offset of the end of its instruction.
    uint32_t target = 0;       //!< Target offset in the code (>= data_begin), or
    bool to_body_end = false;  //!< the end of the body (a jump to the removed epilogue).
  };
  static constexpr int kMaxFixups = 48;
  Fixup fixups[kMaxFixups];
  uint8_t fixup_count = 0;

  // Host registers the body clobbers (bit per register, hardware order).
  uint16_t host_gprs_written = 0;
  uint16_t host_vecs_written = 0;  //!< ymm0-15
  bool host_flags_written = false;

  // Guest state the body touches through the block.
  uint16_t guest_gprs_read = 0, guest_gprs_written = 0;
  uint16_t guest_low_read = 0, guest_low_written = 0;  //!< zmm0-15 bits 255:0 (live ymm)
  //! Bit r: zmm r's bits 511:256 (r < 16) or all of it (r >= 16) written / read.
  uint32_t guest_upper_written = 0;
  uint32_t guest_upper_read = 0;
  uint8_t guest_k_written = 0;
  bool reads_rip = false;            //!< RIP-relative guest operand: the block's rip must be set
  bool writes_rflags = false;        //!< kortest, vcomiss, ...: guest flags come from the block
  bool reads_mxcsr_slot = false;     //!< DAZ/FTZ/RC read from the block's mxcsr copy
};

//! Analyses a translation's code (`code_size` bytes of instructions, then
//! constants up to `total_size`). Returns false with `why` set when the code
//! cannot run inline (segment-relative guest operands, unknown instructions,
//! too many fix-ups); the caller then keeps the state-block call.
bool make_live_form(const uint8_t* code, uint32_t code_size, uint32_t total_size, LiveForm& out,
                    const char** why);

}  // namespace avx512emu::jit
