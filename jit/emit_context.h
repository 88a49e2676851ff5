// Owns the contract between the translation driver and the per-family AVX2
// lowerings (lower_*.cpp): register conventions, where IR values live, the
// constant pool, the {lo, hi} chunk helper and opmask expansion.
#pragma once

#include <asmjit/x86.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "compile.h"
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
  //! The value whose lowering was the last thing emitted, when that left it
  //! in rax as well as in its slot: an Address (lower_address leaves it
  //! there) or a lowering that set `result_in_rax` (mask and GPR results).
  //! The drivers set it after each op (lowered()) and clear it after any
  //! other.
  ir::ValueId value_in_rax = ir::kNoValue;
  //! Set by a lowering whose result is in rax when it ends.
  bool result_in_rax = false;
  //! `dst` := value `v` (a GPR-sized value): from rax when it is still there
  //! (no store-to-load round trip through its slot), else from the slot.
  void load_into(const x86::Gp& dst, ir::ValueId v) {
    if (value_in_rax != v)
      a.mov(dst, value(v));
    else if (dst.id() != x86::Gp::kIdAx)
      a.mov(dst, x86::rax);
  }
  //! What the drivers call after lowering `i` (see value_in_rax).
  void lowered(const ir::Inst& i) {
    value_in_rax = i.op == ir::Op::kAddress || result_in_rax ? i.dst : ir::kNoValue;
    result_in_rax = false;
  }

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

  //! Stores `v` (the chunk at byte `offset` of a vector of dword or qword
  //! elements) to `dst` under mask value `mask`: nothing when no element of
  //! the chunk is enabled, a plain store when all are, else vpmaskmov with
  //! the lane mask built in `lanes` (`tmp` clobbered). Full and empty chunks
  //! are the common cases (a loop under a loop-wide mask, tails), and AVX2's
  //! masked store is microcoded on some CPUs (about 4 ns each on AMD Zen 3).
  //! Clobbers rax and the flags.
  void store_masked_chunk(const x86::Mem& dst, const x86::Vec& v, x86::Vec lanes, x86::Vec tmp,
                          ir::ValueId mask, ir::Elem elem, int offset);

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

//! Ends a translation (vzeroupper, ret, the shared tails and the constant
//! pool; compile.cpp) and copies out its position-independent bytes. Both
//! the memory form and the register form end this way, which is the shape
//! live_form.h takes apart.
bool finish_translation(EmitContext& c, asmjit::CodeHolder& code, CompiledCode& out,
                        std::string& error);

// The single VEX instruction per chunk for element-wise ops, shared by the
// memory form (the lowerings below) and the register form (register_form.cpp),
// so each op's host instruction is named once.
//! Integer element-wise: the instruction, or 0 (lower_integer.cpp). Shifts
//! by an xmm count (ShlVec...) have one too, taking src1's low 64 bits.
asmjit::InstId integer_native_id(const ir::Inst& inst);
//! FP element-wise, FMA and the same-width conversions, or 0
//! (lower_float.cpp); `float_vector_operands` is the number of vector
//! sources, after which an operand is the active-element mask.
asmjit::InstId float_native_id(const ir::Inst& inst);
int float_vector_operands(const ir::Inst& inst);
//! FP ops that the float lowering serves with float_native_id (not CmpF).
bool is_float_elementwise(ir::Op op);
//! In-lane shuffles, unpacks, packs and vpermq imm, whose VEX form applied
//! per 256-bit chunk is the operation (lower_shuffle.cpp): the instruction,
//! or 0; and the imm8 for the chunk at byte `off` (false: no imm).
asmjit::InstId chunkwise_shuffle_id(const ir::Inst& inst);
//! Compares and tests into a mask (CmpS, CmpU, TestM, TestNM; lower_integer.cpp),
//! a chunk at a time: with the chunk's sources in `a` and `b` (both may be
//! changed), leaves the chunk's mask bits, shifted to their place, in rax
//! (clobbers rdx, `v`, `bias`). `finish` then applies the complemented
//! predicates to the assembled mask (a GPR or a slot); for the constant
//! predicates it writes the constant (clobbers rax).
struct MaskCompareRegs {
  x86::Vec v, a, b, bias;
};
bool is_mask_compare(ir::Op op);
//! Rotates of dwords and qwords (RolImm, RorImm, RolVar, RorVar; lower_integer.cpp),
//! a chunk at a time: `out` = `a` rotated by the imm or by `b`'s elements;
//! `a` and `b` are only read; `hi`, `lo`, `n` and `rest` are clobbered.
//! What a rotate leaves unused (rotate_uses) may be any register.
struct RotateRegs {
  x86::Vec out, a, b, hi, lo, n, rest;
};
bool is_rotate(ir::Op op);
//! Which RotateRegs a rotate reads or clobbers besides `out` and `a`: a
//! rotate by a whole number of bytes is one vpshufb; other rotates by an
//! imm8 need `hi` and `lo`; by a vector, all of them.
struct RotateUses {
  bool b, hi_lo, n_rest;
};
RotateUses rotate_uses(const ir::Inst& i);
//! Copies the enabled elements only (`count` elements of `eb` bytes, mask
//! value `mask`) between [rsi] and `vec`, in element order: the exact-fault
//! path of masked loads and stores (lower_core.cpp). Clobbers rax, rcx, rdx
//! and r8.
void copy_enabled_elements(EmitContext& c, bool store, const x86::Mem& vec, int eb, int count,
                           ir::ValueId mask);
void emit_rotate_chunk(EmitContext& c, const ir::Inst& inst, const RotateRegs& r);
//! Narrowing (vpmov*, lower_shuffle.cpp): the source's 256-bit chunks are
//! in `chunk` (chunk 1 only for a 512-bit source); the packed result is
//! left in chunk[0], zero-extended to 256 bits. `tmp` is clobbered, and a
//! saturating narrowing of qwords clobbers ymm1-ymm3.
struct NarrowRegs {
  x86::Ymm chunk[2];
  x86::Xmm tmp;
};
void emit_narrow(EmitContext& c, const ir::Inst& inst, const NarrowRegs& r);
//! One chunk (16 or 32 bytes) of an op that AVX2 computes with a short
//! sequence (lower_integer.cpp): the sources in `a`, `b`, `c` (copies the
//! body may change), the result to leave in `out`, and temporaries.
struct Chunk {
  int width;
  x86::Vec out, a, b, c;
  int temp_regs[5];
  x86::Vec tmp(int n) const { return EmitContext::vreg(temp_regs[n], width); }
};
//! Such an op's sequence, which touches nothing but the chunk's registers
//! and constants: the memory form runs it on values loaded from the block,
//! the register form (register_form.h) on registers it allocates.
struct ChunkLowering {
  int temps = 0;  //!< tmp(0) .. tmp(temps - 1)
  std::function<void(EmitContext&, const Chunk&)> body;
};
//! The chunk lowering of `inst`, when it has one.
bool chunk_lowering(const ir::Inst& inst, ChunkLowering& out);
void emit_mask_compare_chunk(EmitContext& c, const ir::Inst& inst, int off, const MaskCompareRegs& r);
void emit_mask_compare_finish(EmitContext& c, const ir::Inst& inst, const asmjit::Operand& mask);
bool chunkwise_shuffle_imm(const ir::Inst& inst, int off, asmjit::Imm& imm);

// Family lowerings: each returns false when `inst.op` is not one of its ops.
bool lower_core(EmitContext& c, const ir::Inst& inst);      // lower_core.cpp: state, memory, masking, opmask
bool lower_integer(EmitContext& c, const ir::Inst& inst);   // lower_integer.cpp
bool lower_float(EmitContext& c, const ir::Inst& inst);     // lower_float.cpp
bool lower_shuffle(EmitContext& c, const ir::Inst& inst);   // lower_shuffle.cpp
bool lower_crypto(EmitContext& c, const ir::Inst& inst);    // lower_crypto.cpp: AES, CLMUL
bool lower_bitcount(EmitContext& c, const ir::Inst& inst);  // lower_bitcount.cpp: lzcnt, popcnt, conflict
bool lower_approx14(EmitContext& c, const ir::Inst& inst);  // lower_approx14.cpp: vrcp14, vrsqrt14

}  // namespace avx512emu::jit
