// Owns test-form enumeration: every valid EVEX (or, for opmask instructions,
// VEX) encoding shape of a mnemonic, assembled to concrete instruction bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "decoded_insn.h"

namespace avx512emu::selfcheck {

//! How the memory operand's address is formed; each is its own form because
//! the encodings (SIB, disp8*N compression, disp32) differ.
enum class Addressing : uint8_t {
  kNone,            //!< No memory operand.
  kBase,            //!< [base]
  kBaseDisp8,       //!< [base + disp], disp compressible to disp8*N.
  kBaseIndexDisp32, //!< [base + index*scale + disp32]
};

//! One concrete instruction to test, plus what the self-check needs to know
//! about it without decoding again.
struct TestForm {
  uint8_t bytes[15] = {};
  uint8_t length = 0;
  std::string text;       //!< Intel syntax (format_insn).
  std::string mnemonic;   //!< As decoded (equals the requested mnemonic).
  std::string signature;  //!< Dedup key: opcode, operand kinds/widths, decorations.

  bool evex = false;            //!< False only for the VEX opmask (KOP) instructions.
  uint16_t vector_bits = 0;     //!< EVEX.L'L as decoded; 0 for opmask instructions.
  bool masked = false;          //!< Has a {k} write mask (k1..k7).
  uint8_t mask_reg = 0;         //!< The {k} register when masked.
  bool zeroing = false;         //!< {z}.
  uint8_t broadcast = 0;        //!< N of {1toN}, 0 when not broadcasting.
  Rounding rounding = Rounding::kNone;  //!< Embedded rounding {rn/rd/ru/rz-sae}.
  bool sae = false;             //!< {sae}, also set with embedded rounding.
  bool aliased = false;         //!< All vector operands use the same register.

  bool has_mem = false;
  Addressing addressing = Addressing::kNone;
  int8_t mem_base = -1;         //!< GPR number of the memory base.
  int8_t mem_index = -1;        //!< GPR number of the index, or -1.
  uint8_t mem_scale = 1;
  int64_t mem_disp = 0;
  uint16_t mem_bytes = 0;       //!< Bytes accessed (one element when broadcasting).
  bool mem_written = false;     //!< The memory operand is a destination.

  bool has_imm = false;
  uint8_t imm_offset = 0;       //!< Byte offset of the imm8 (always the last byte).
  uint8_t imm = 0;              //!< Current imm8 value.
};

//! Knobs of enumerate_forms(); the defaults give the fullest coverage.
struct EnumerateOptions {
  //! Also emit [base+disp8*N] and [base+index*scale+disp32] forms.
  bool addressing_variants = true;
  //! Also emit, per shape, a form whose vector operands all share one register.
  bool aliased_variants = true;
};

//! Enumerates every valid encoding shape of `mnemonic` (lower-case Intel
//! name as Zydis spells it): vector widths per operand, k/GPR/memory/imm8
//! operands, no mask / {k} / {k}{z}, {1toN} broadcasts, {er} and {sae}. Each
//! form is assembled with EVEX forced and kept only if decode() accepts it as
//! the same mnemonic (EVEX, or VEX for the *_KOP opmask instructions).
//! Register numbers (zmm0-31, k0-7, GPRs) are drawn from `seed`; rsp/rbp are
//! never a memory base and the base/index registers are never GPR operands.
//! Forms come out sorted by signature, so the result is reproducible.
std::vector<TestForm> enumerate_forms(const char* mnemonic, uint64_t seed = 1,
                                      const EnumerateOptions& options = {});

//! Fills `form` from raw instruction bytes (for checking one instruction
//! seen in the wild). False when the bytes do not decode as AVX-512, use
//! rip-relative/segment/VSIB addressing, or address memory through rsp.
bool form_from_bytes(const uint8_t* bytes, size_t length, TestForm& form);

//! The same form with its imm8 replaced (bytes, `imm` and `text` updated).
//! Forms without an immediate are returned unchanged.
TestForm with_imm(const TestForm& form, uint8_t imm);

//! The imm8 values worth testing for `mnemonic`: all 256 for vpternlog*, all
//! 8 predicates for vpcmp*, all 32 for vcmp*; otherwise a spread (0, 1, 7,
//! 8, 15, 16, 31, 32, 63, 255, ...) plus a few random values from `seed`.
//! With `exhaustive` false the exhaustive sets shrink to the spread.
std::vector<uint8_t> immediate_values(const char* mnemonic, bool exhaustive = true,
                                      uint64_t seed = 1);

}  // namespace avx512emu::selfcheck
