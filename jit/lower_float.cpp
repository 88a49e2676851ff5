// Owns the AVX2 lowering of the floating-point IR ops: every op has a native
// VEX instruction (AVX/FMA3), run under the guest MXCSR that the driver puts
// in force; embedded rounding and SAE go through with_rounding, and inactive
// elements are fed a benign 1.0 so they raise no MXCSR flag.
#include "emit_context.h"

namespace avx512emu::jit {
namespace {

using asmjit::InstId;
using ir::Elem;
using ir::Inst;
using ir::Op;
namespace xi = asmjit::x86::Inst;  // instruction ids: xi::kIdVaddps, ...

// ---- Native instruction table ----------------------------------------------------

//! VEX forms of one op: packed f32/f64 and scalar f32/f64 (0 = none).
struct NativeForms {
  InstId ps, pd, ss, sd;
};

//! Ids for ops that are not FMA; conversions exist only as packed f32/i32.
NativeForms native_forms(Op op) {
  switch (op) {
    case Op::kFAdd: return {xi::kIdVaddps, xi::kIdVaddpd, xi::kIdVaddss, xi::kIdVaddsd};
    case Op::kFSub: return {xi::kIdVsubps, xi::kIdVsubpd, xi::kIdVsubss, xi::kIdVsubsd};
    case Op::kFMul: return {xi::kIdVmulps, xi::kIdVmulpd, xi::kIdVmulss, xi::kIdVmulsd};
    case Op::kFDiv: return {xi::kIdVdivps, xi::kIdVdivpd, xi::kIdVdivss, xi::kIdVdivsd};
    case Op::kFMin: return {xi::kIdVminps, xi::kIdVminpd, xi::kIdVminss, xi::kIdVminsd};
    case Op::kFMax: return {xi::kIdVmaxps, xi::kIdVmaxpd, xi::kIdVmaxss, xi::kIdVmaxsd};
    case Op::kFSqrt: return {xi::kIdVsqrtps, xi::kIdVsqrtpd, xi::kIdVsqrtss, xi::kIdVsqrtsd};
    case Op::kCmpF: return {xi::kIdVcmpps, xi::kIdVcmppd, xi::kIdVcmpss, xi::kIdVcmpsd};
    case Op::kCvtI32F32: return {xi::kIdVcvtdq2ps, 0, 0, 0};
    case Op::kCvtF32I32: return {xi::kIdVcvtps2dq, 0, 0, 0};
    case Op::kCvtF32I32Trunc: return {xi::kIdVcvttps2dq, 0, 0, 0};
    default: return {0, 0, 0, 0};
  }
}

// FMA3 has every negation and every operand order in VEX form, so the
// instruction's own form is emitted with the registers in the same roles:
// NaN choice and flags then match the AVX-512 instruction exactly.
#define AVX512EMU_FMA_FORMS(name) \
  { xi::kIdV##name##ps, xi::kIdV##name##pd, xi::kIdV##name##ss, xi::kIdV##name##sd }
//! [negate: imm bits 0-1][form: imm bits 2-3, 1 = 132, 2 = 213, 3 = 231].
const NativeForms kFmaForms[4][3] = {
    {AVX512EMU_FMA_FORMS(fmadd132), AVX512EMU_FMA_FORMS(fmadd213), AVX512EMU_FMA_FORMS(fmadd231)},
    {AVX512EMU_FMA_FORMS(fnmadd132), AVX512EMU_FMA_FORMS(fnmadd213), AVX512EMU_FMA_FORMS(fnmadd231)},
    {AVX512EMU_FMA_FORMS(fmsub132), AVX512EMU_FMA_FORMS(fmsub213), AVX512EMU_FMA_FORMS(fmsub231)},
    {AVX512EMU_FMA_FORMS(fnmsub132), AVX512EMU_FMA_FORMS(fnmsub213), AVX512EMU_FMA_FORMS(fnmsub231)},
};
#undef AVX512EMU_FMA_FORMS

//! The instruction id for `i`, or 0 when there is none.
InstId native_id(const Inst& i) {
  NativeForms forms = native_forms(i.op);
  if (i.op == Op::kFma) {
    const int form = int((i.imm >> 2) & 3);
    if (form < 1) return 0;
    forms = kFmaForms[i.imm & 3][form - 1];
  }
  // Conversions have an integer `elem` on one side; their single id is `ps`.
  const bool f64 = i.elem == Elem::kF64;
  if (i.scalar) return f64 ? forms.sd : forms.ss;
  return f64 ? forms.pd : forms.ps;
}

// ---- Operands ---------------------------------------------------------------------

//! Vector sources the instruction reads; any further operand is the
//! active-element mask.
int vector_operands(const Inst& i) {
  switch (i.op) {
    case Op::kFma: return 3;
    case Op::kFSqrt: return i.scalar ? 2 : 1;
    case Op::kCvtI32F32: case Op::kCvtF32I32: case Op::kCvtF32I32Trunc: return 1;
    default: return 2;
  }
}

// Register plan: sources in ymm0..ymm2 (the result is computed into ymm0),
// the benign constant in ymm5, lane masks in ymm6/ymm7.
constexpr int kOneReg = 5, kMaskTmpReg = 6, kMaskReg = 7;

//! Loads the sources of the chunk at `off` into v0..v(n-1) and, when the op
//! carries an active-element mask, replaces each inactive element by 1.0:
//! 1.0 op 1.0, sqrt(1.0), fma(1,1,1), compares of 1.0 and the conversions of
//! 1.0 and of 0x3f800000 (an integer with 7 significant bits) are all exact
//! and raise no flag, so only active elements can set MXCSR flags.
void load_sources(EmitContext& c, const Inst& i, int off, int width) {
  const int n = vector_operands(i);
  for (int s = 0; s < n; ++s) c.a.vmovups(EmitContext::vreg(s, width), c.value(i.src[s], off));
  if (i.nsrc <= n) return;
  const ir::ValueId mask = i.src[n];
  const bool f64 = ir::elem_bytes(i.elem) == 8;
  const x86::Vec one = EmitContext::vreg(kOneReg, width), lanes = EmitContext::vreg(kMaskReg, width);
  c.a.vmovups(one, c.splat_constant(f64 ? 0x3ff0000000000000ull : 0x3f800000u, f64 ? 8 : 4));
  if (i.scalar) {
    // Only element 0 is computed; the upper elements of src0 are the
    // result's and must stay. Lane 0 of `lanes` is all-ones when element 0
    // is inactive, every other lane zero; the blend then picks 1.0 there.
    x86::Mem m = c.value(mask);
    m.setSize(4);
    c.a.mov(x86::eax, m);
    c.a.not_(x86::eax);
    c.a.and_(x86::eax, 1);
    c.a.neg(x86::rax);
    if (f64) c.a.vmovq(lanes.xmm(), x86::rax);
    else c.a.vmovd(lanes.xmm(), x86::eax);
    for (int s = 0; s < n; ++s) {
      const x86::Vec v = EmitContext::vreg(s, width);
      c.a.emit(f64 ? xi::kIdVblendvpd : xi::kIdVblendvps, v, v, one, lanes);
    }
    return;
  }
  // Vector: lanes = active elements; vblendv takes the source where set.
  c.expand_mask(lanes, EmitContext::vreg(kMaskTmpReg, width), mask, i.elem, off);
  for (int s = 0; s < n; ++s) {
    const x86::Vec v = EmitContext::vreg(s, width);
    c.a.emit(f64 ? xi::kIdVblendvpd : xi::kIdVblendvps, v, one, v, lanes);
  }
}

// ---- Element-wise ops -------------------------------------------------------------

//! FAdd..FMax, FSqrt, Fma and the conversions: one native instruction per
//! chunk. Scalar forms use the VEX ss/sd instruction, which computes element
//! 0 and copies elements 1..3 from its first source (src0), as required.
void lower_elementwise(EmitContext& c, const Inst& i, InstId id) {
  const int n = vector_operands(i);
  c.with_rounding(i, [&] {
    c.for_each_chunk(i.bits, [&](int off, int width) {
      load_sources(c, i, off, width);
      const x86::Vec v0 = EmitContext::vreg(0, width), v1 = EmitContext::vreg(1, width),
                     v2 = EmitContext::vreg(2, width);
      if (n == 1) c.a.emit(id, v0, v0);
      else if (n == 2) c.a.emit(id, v0, v0, v1);
      else c.a.emit(id, v0, v1, v2);  // FMA: v0 = dst, v1 = src2, v2 = src3
      c.a.vmovups(c.value(i.dst, off), v0);
    });
  });
}

// ---- Compares ---------------------------------------------------------------------

//! CmpF: VEX vcmpps/pd take all 32 predicates; vmovmskps/pd collect one bit
//! per element, chunk by chunk, into the mask value. The scalar form keeps
//! bit 0 only.
void lower_compare(EmitContext& c, const Inst& i, InstId id) {
  const int eb = ir::elem_bytes(i.elem);
  const asmjit::Imm predicate(i.imm & 31);
  c.a.xor_(x86::r8d, x86::r8d);
  c.with_rounding(i, [&] {
    c.for_each_chunk(i.bits, [&](int off, int width) {
      load_sources(c, i, off, width);
      const x86::Vec v0 = EmitContext::vreg(0, width), v1 = EmitContext::vreg(1, width);
      c.a.emit(id, v0, v0, v1, predicate);
      if (eb == 8) c.a.vmovmskpd(x86::eax, v0);
      else c.a.vmovmskps(x86::eax, v0);
      if (i.scalar) c.a.and_(x86::eax, 1);
      if (off) c.a.shl(x86::rax, off / eb);
      c.a.or_(x86::r8, x86::rax);
    });
  });
  c.a.mov(c.value(i.dst), x86::r8);
}

}  // namespace

bool lower_float(EmitContext& c, const ir::Inst& i) {
  switch (i.op) {
    case Op::kFAdd: case Op::kFSub: case Op::kFMul: case Op::kFDiv: case Op::kFMin:
    case Op::kFMax: case Op::kFSqrt: case Op::kFma: case Op::kCvtI32F32:
    case Op::kCvtF32I32: case Op::kCvtF32I32Trunc: case Op::kCmpF: break;
    default: return false;
  }
  const InstId id = native_id(i);
  if (id == 0) return false;  // e.g. an f64 conversion: no such IR form exists
  if (i.op == Op::kCmpF) lower_compare(c, i, id);
  else lower_elementwise(c, i, id);
  return true;
}

}  // namespace avx512emu::jit
