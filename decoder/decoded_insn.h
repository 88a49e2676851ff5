// Owns the compact decoded-instruction type and the decode entry point. No
// Zydis type appears here: the Zydis adapter copies what we need.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace avx512emu {

enum class DecodeStatus : uint8_t {
  kOk,
  kNotAvx512,    //!< A valid instruction that is not in an AVX512* ISA set.
  kInvalid,      //!< Bytes that no CPU decodes (#UD).
  kTruncated,    //!< The bytes end before the instruction does.
};
const char* decode_status_name(DecodeStatus s);

enum class OperandKind : uint8_t { kNone, kVec, kMask, kGpr, kMem, kImm };

//! Embedded rounding override ({rn,rd,ru,rz}-sae); kNone means "use MXCSR.RC".
enum class Rounding : uint8_t { kNone, kNearest, kDown, kUp, kZero };

struct MemOperand {
  int8_t base = -1;    //!< GPR number 0..15, or -1.
  int8_t index = -1;   //!< GPR number 0..15, or -1.
  uint8_t scale = 1;
  bool rip_relative = false;
  uint8_t segment = 0; //!< 0 none/ds/ss/es/cs, 1 fs, 2 gs.
  int64_t disp = 0;    //!< Displacement, disp8*N already scaled by Zydis.
  uint16_t bytes = 0;  //!< Bytes the operand covers (the broadcast element when broadcasting).
};

struct Operand {
  OperandKind kind = OperandKind::kNone;
  uint8_t reg = 0;         //!< zmm/k/GPR number.
  uint16_t bits = 0;       //!< Register or memory width in bits.
  bool read = false, written = false;
  MemOperand mem;
  uint64_t imm = 0;
};

//! One decoded instruction, as small as the lowering needs.
struct DecodedInsn {
  uint8_t length = 0;
  uint8_t bytes[15] = {};
  uint16_t mnemonic_id = 0;        //!< Opaque decoder id, stable within one build.
  const char* mnemonic = "";       //!< Lower-case Intel mnemonic ("vpaddd").
  const char* isa_set = "";        //!< Zydis ISA set name ("AVX512F_512").
  bool evex = false;               //!< EVEX-encoded (opmask KOP instructions are VEX).
  bool vex = false;                //!< VEX-encoded (neither: a legacy encoding).
  uint16_t vector_bits = 0;        //!< EVEX.L'L: 128/256/512 (0 for opmask instructions).
  uint8_t opmask = 0;              //!< k register for {k}, 0 when unmasked.
  bool zeroing = false;            //!< {z}.
  uint8_t broadcast = 0;           //!< Broadcast count N of {1toN}, 0 if none.
  Rounding rounding = Rounding::kNone;
  bool sae = false;                //!< {sae} or implied by embedded rounding.
  uint8_t operand_count = 0;       //!< Visible operands only.
  Operand ops[5];
};

//! Decodes one 64-bit-mode instruction. `out` is valid when the status is kOk
//! or kNotAvx512.
DecodeStatus decode(const uint8_t* bytes, size_t size, DecodedInsn& out);

//! Length of the instruction at `bytes`, or 0 when it does not decode. Much
//! cheaper than decode(): no operands, for cache lookups.
size_t instruction_length(const uint8_t* bytes, size_t size);

//! Intel-syntax text of the decoded instruction, for printing and snapshots.
std::string format_insn(const DecodedInsn& insn, uint64_t address = 0);

//! Text of `n` bytes in lower-case hex, no separators.
std::string hex_bytes(const uint8_t* p, size_t n);

}  // namespace avx512emu

namespace avx512emu {

//! One instruction of a disassembled code block.
struct DisasmLine {
  uint32_t offset = 0;
  uint8_t length = 0;
  std::string text;      //!< Intel syntax.
  std::string isa_set;   //!< Zydis ISA set name.
  bool evex = false;
  bool valid = true;
};

//! Disassembles a code block linearly (for listings and for checking that
//! generated code holds no AVX-512). Stops at the first undecodable byte,
//! which is reported as an invalid line.
std::vector<DisasmLine> disassemble(const uint8_t* code, size_t size);

}  // namespace avx512emu
