// Owns the contract between the translation driver and the per-family AVX2
// lowerings (lower_*.cpp): register conventions, where IR values live, the
// constant pool, the {lo, hi} chunk helper and opmask expansion.
#pragma once

#include <asmjit/x86.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "cpu_state.h"
#include "ir.h"

namespace avx512emu::jit {

namespace x86 = asmjit::x86;

//! Emission state for one translation.
//!
//! Register conventions inside a translation (SysV, so all are caller-saved):
//! - rdi: the CpuState pointer, never changed;
//! - rax, rcx, rdx, rsi, r8–r11: free scratch GPRs for any lowering;
//! - ymm0–ymm15: free scratch vectors for any lowering.
//! Every IR value lives in memory: state reads alias the register's slot in
//! CpuState, everything else has its own 64-byte scratch slot. A lowering
//! loads its operands, computes, and stores its result; bytes of a value
//! beyond its width are undefined and must not be relied on.
class EmitContext {
 public:
  EmitContext(x86::Assembler& a, const ir::Function& f);

  x86::Assembler& a;
  const ir::Function& f;

  //! Memory operand at byte `offset` of value `v`'s slot (no size set).
  x86::Mem value(ir::ValueId v, int offset = 0) const;
  //! Memory operand at `offset` in CpuState.
  x86::Mem state(int32_t offset) const { return x86::ptr(x86::rdi, offset); }

  //! RIP-relative reference to `n` bytes of read-only data placed after the
  //! code (32-byte aligned, deduplicated). Keeps translations position independent.
  x86::Mem constant(const void* data, size_t n);
  //! A 32-byte constant made of `value` repeated per element of `bytes` width.
  x86::Mem splat_constant(uint64_t value, int bytes);

  //! The {lo, hi} helper: calls `body(offset, width)` once per 128-bit chunk
  //! when `bits` is 128, else once per 256-bit chunk (one for 256, two for
  //! 512). `offset` is the chunk's byte offset; `width` is 16 or 32.
  void for_each_chunk(int bits, const std::function<void(int offset, int width)>& body);
  //! xmmN or ymmN for a chunk of `width` bytes.
  static x86::Vec vreg(int n, int width) { return width == 16 ? x86::Vec(x86::xmm(n)) : x86::Vec(x86::ymm(n)); }

  //! Loads into `dst` (width 16/32) a lane mask for the chunk at byte
  //! `offset` of a vector of `elem` elements: each element all-ones where the
  //! bit of mask value `mask` is set, else zero. Clobbers rax and `tmp`.
  void expand_mask(x86::Vec dst, x86::Vec tmp, ir::ValueId mask, ir::Elem elem, int offset);

  //! Runs `body` with MXCSR.RC overridden by `inst.rounding` and, for SAE or
  //! embedded rounding, with the exception flags left as they were. Without
  //! either, just runs `body`.
  void with_rounding(const ir::Inst& inst, const std::function<void()>& body);

  //! Sets `dst` (width 16/32) to all-ones lanes when MXCSR bit `bit` of the
  //! guest is set (6 = DAZ, 15 = FTZ), else zero. Clobbers rax.
  void mxcsr_bit_mask(x86::Vec dst, int bit);

  //! Float fields of the lanes of `x` (f32 dwords or f64 qwords):
  //! `sign`, `magnitude` = x without it, `exponent` = the biased exponent of
  //! the normalized value (1 - normalization shift for a denormal: 0 or
  //! below), `fraction` = its normalized fraction, `denormal` = all-ones
  //! where x's exponent field is 0. Denormals are normalized by the exact
  //! subtraction (1.fraction - 1.0), whose exponent locates the leading one:
  //! normal operands and an exact result raise no flag and DAZ/FTZ are inert.
  //! `zero` must hold zeros; `t` is clobbered.
  struct FloatFields {
    x86::Vec sign, magnitude, exponent, fraction, denormal;
  };
  void split_float_fields(const x86::Vec& x, bool f64, const FloatFields& out, const x86::Vec& t,
                          const x86::Vec& zero);

  //! Label of a shared sequence that raises #GP(0), as a misaligned aligned
  //! access does on hardware.
  asmjit::Label general_protection_label();

  //! Emits shared tails and the constant pool after the last instruction;
  //! returns the offset where the instructions end and data begins.
  size_t finish();

 private:
  struct Constant {
    std::vector<uint8_t> bytes;
    asmjit::Label label;
  };
  std::vector<Constant> constants_;
  asmjit::Label gp_label_;
  bool gp_used_ = false;
};

// Family lowerings: each returns false when `inst.op` is not one of its ops.
bool lower_core(EmitContext& c, const ir::Inst& inst);      // lower_core.cpp: state, memory, masking, opmask
bool lower_integer(EmitContext& c, const ir::Inst& inst);   // lower_integer.cpp
bool lower_float(EmitContext& c, const ir::Inst& inst);     // lower_float.cpp
bool lower_shuffle(EmitContext& c, const ir::Inst& inst);   // lower_shuffle.cpp
bool lower_crypto(EmitContext& c, const ir::Inst& inst);    // lower_crypto.cpp: AES, CLMUL
bool lower_bitcount(EmitContext& c, const ir::Inst& inst);  // lower_bitcount.cpp: lzcnt, popcnt, conflict
bool lower_approx14(EmitContext& c, const ir::Inst& inst);  // lower_approx14.cpp: vrcp14, vrsqrt14

}  // namespace avx512emu::jit
