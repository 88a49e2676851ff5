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
//! Alternating forms (imm bit 4): [0 = fmaddsub (negate 2), 1 = fmsubadd][form];
//! packed only, so the scalar ids stay 0.
#define AVX512EMU_FMA_PACKED_FORMS(name) \
  { xi::kIdV##name##ps, xi::kIdV##name##pd, 0, 0 }
const NativeForms kFmaAlternatingForms[2][3] = {
    {AVX512EMU_FMA_PACKED_FORMS(fmaddsub132), AVX512EMU_FMA_PACKED_FORMS(fmaddsub213),
     AVX512EMU_FMA_PACKED_FORMS(fmaddsub231)},
    {AVX512EMU_FMA_PACKED_FORMS(fmsubadd132), AVX512EMU_FMA_PACKED_FORMS(fmsubadd213),
     AVX512EMU_FMA_PACKED_FORMS(fmsubadd231)},
};
#undef AVX512EMU_FMA_PACKED_FORMS
#undef AVX512EMU_FMA_FORMS

//! The instruction id for `i`, or 0 when there is none.
InstId native_id(const Inst& i) {
  NativeForms forms = native_forms(i.op);
  if (i.op == Op::kFma) {
    const int form = int((i.imm >> 2) & 3);
    if (form < 1) return 0;
    forms = (i.imm & 16) ? kFmaAlternatingForms[(i.imm & 2) ? 0 : 1][form - 1]
                         : kFmaForms[i.imm & 3][form - 1];
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
    case Op::kRndScale: return i.scalar ? 2 : 1;
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

// ---- Width-changing conversions ---------------------------------------------------

//! The VEX conversion for a width-changing conversion op: packed (ymm <- xmm
//! when widening, xmm <- ymm when narrowing) or scalar (element 0 of the
//! second source, the rest from the first).
InstId conversion_id(const Inst& i) {
  switch (i.op) {
    case Op::kCvtI32F64: return xi::kIdVcvtdq2pd;
    case Op::kCvtF32F64: return i.scalar ? xi::kIdVcvtss2sd : xi::kIdVcvtps2pd;
    case Op::kCvtF64F32: return i.scalar ? xi::kIdVcvtsd2ss : xi::kIdVcvtpd2ps;
    case Op::kCvtF64I32: return xi::kIdVcvtpd2dq;
    default: return xi::kIdVcvttpd2dq;
  }
}

//! Replaces the inactive elements of `v` (source elements of type `from`,
//! the first at byte `offset` of the source) by 1.0, whose conversion is
//! exact and raises no flag. Integer sources need nothing: int32 -> f64 is
//! exact and raises no flag.
void replace_inactive_sources(EmitContext& c, const Inst& i, const x86::Vec& v, ir::ValueId mask,
                              int offset) {
  if (!ir::elem_is_float(i.elem2)) return;
  const bool f64 = i.elem2 == Elem::kF64;
  const int width = int(v.size());
  const x86::Vec one = EmitContext::vreg(kOneReg, width), lanes = EmitContext::vreg(kMaskReg, width);
  c.a.vmovups(one, c.splat_constant(f64 ? 0x3ff0000000000000ull : 0x3f800000u, f64 ? 8 : 4));
  c.expand_mask(lanes, EmitContext::vreg(kMaskTmpReg, width), mask, i.elem2, offset);
  c.a.emit(f64 ? xi::kIdVblendvpd : xi::kIdVblendvps, v, one, v, lanes);
}

//! CvtI32F64, CvtF32F64, CvtF64F32, CvtF64I32(Trunc): one VEX conversion
//! per chunk. Widening reads half a chunk of source per result chunk;
//! narrowing reads up to 256 source bits per 128-bit result piece, and a
//! 128-bit source fills only the low 64 bits (the VEX form zeroes the rest).
void lower_convert_width(EmitContext& c, const Inst& i) {
  const InstId id = conversion_id(i);
  const int ratio = ir::elem_bytes(i.elem) > ir::elem_bytes(i.elem2) ? 2 : 1;  // 2 = widening
  const bool masked = i.nsrc > (i.scalar ? 2 : 1);
  const ir::ValueId mask = masked ? i.src[i.scalar ? 2 : 1] : ir::kNoValue;
  c.with_rounding(i, [&] {
    if (i.scalar) {
      c.a.vmovups(x86::xmm0, c.value(i.src[0]));
      c.a.vmovups(x86::xmm1, c.value(i.src[1]));
      // Only element 0 is converted; blending the others too is harmless.
      if (masked) replace_inactive_sources(c, i, x86::xmm1, mask, 0);
      c.a.emit(id, x86::xmm0, x86::xmm0, x86::xmm1);
      c.a.vmovups(c.value(i.dst), x86::xmm0);
      return;
    }
    if (ratio == 2) {
      c.for_each_chunk(i.bits, [&](int off, int width) {
        const x86::Vec dst = EmitContext::vreg(0, width);
        c.a.vmovups(x86::xmm1, c.value(i.src[0], off / 2));
        if (masked) replace_inactive_sources(c, i, x86::xmm1, mask, off / 2);
        c.a.emit(id, dst, x86::xmm1);
        c.a.vmovups(c.value(i.dst, off), dst);
      });
      return;
    }
    const int src_bytes = c.f.values[i.src[0]].bits / 8;
    for (int off = 0; off < i.bits / 8 && 2 * off < src_bytes; off += 16) {
      const x86::Vec src = EmitContext::vreg(1, std::min(32, src_bytes));
      c.a.vmovups(src, c.value(i.src[0], 2 * off));
      if (masked) replace_inactive_sources(c, i, src, mask, 2 * off);
      c.a.emit(id, x86::xmm0, src);
      c.a.vmovups(c.value(i.dst, off), x86::xmm0);
    }
  });
}

// ---- Integer to floating point ---------------------------------------------------

//! CvtIntF: VEX vcvtsi2ss/sd from a 64-bit GPR. A 32-bit source, signed or
//! unsigned, is extended to 64 bits first (exact, so the one rounding is the
//! same). A u64 with the top bit set has no VEX form: it is halved with its
//! low bit ORed in as a sticky bit (more bits than the format keeps, so the
//! rounding and PE are unchanged), converted, and doubled exactly.
void lower_convert_from_int(EmitContext& c, const Inst& i) {
  const bool f64 = i.elem == Elem::kF64;
  const InstId convert = f64 ? xi::kIdVcvtsi2sd : xi::kIdVcvtsi2ss;
  const bool is_unsigned = (i.imm & 1) != 0;
  c.with_rounding(i, [&] {
    c.a.vmovups(x86::xmm0, c.value(i.src[0]));
    c.a.mov(x86::rax, c.value(i.src[1]));
    if (i.elem2 != Elem::kI64) {
      if (is_unsigned) c.a.mov(x86::eax, x86::eax);
      else c.a.movsxd(x86::rax, x86::eax);
    }
    if (i.elem2 == Elem::kI64 && is_unsigned) {
      asmjit::Label top_bit = c.a.newLabel(), done = c.a.newLabel();
      c.a.test(x86::rax, x86::rax);
      c.a.js(top_bit);
      c.a.emit(convert, x86::xmm0, x86::xmm0, x86::rax);
      c.a.jmp(done);
      c.a.bind(top_bit);
      c.a.mov(x86::rcx, x86::rax);
      c.a.shr(x86::rcx, 1);
      c.a.and_(x86::eax, 1);
      c.a.or_(x86::rcx, x86::rax);
      c.a.emit(convert, x86::xmm0, x86::xmm0, x86::rcx);
      c.a.emit(f64 ? xi::kIdVaddsd : xi::kIdVaddss, x86::xmm0, x86::xmm0, x86::xmm0);
      c.a.bind(done);
    } else {
      c.a.emit(convert, x86::xmm0, x86::xmm0, x86::rax);
    }
    c.a.vmovups(c.value(i.dst), x86::xmm0);
  });
}

// ---- Round to a multiple of 2^-M ----------------------------------------------------

//! RndScale: vrndscale = 2^-M * RoundToInt(2^M * x). vround does RoundToInt
//! with the same imm[3:0] (mode, MXCSR.RC select, PE suppression), the same
//! SNaN quieting and no DE. The two scalings are exact exponent-field
//! additions on the integer side, so they raise no flag and never round:
//! - 2^M * x: only for normal x below 2^p (p = stored significand bits), so
//!   the exponent cannot overflow. Larger x (and Inf/NaN) are already
//!   integers: vround returns them as they are (quieting an SNaN). Zeros and
//!   denormals are rounded unscaled, which gives the same integer because
//!   |x| and |2^M x| are both below 1/2 with the same sign.
//! - 2^-M * r: for every rounded r except zero and the large-x lanes; r is
//!   then an integer >= 1, so r * 2^-M stays normal.
void lower_round_scale(EmitContext& c, const Inst& i) {
  const bool f64 = i.elem == Elem::kF64;
  const int eb = f64 ? 8 : 4, mant = f64 ? 52 : 23, bias = f64 ? 1023 : 127;
  const int scale = int((i.imm >> 4) & 15);
  const asmjit::Imm round_imm(i.imm & 15);
  const InstId vround = i.scalar ? (f64 ? xi::kIdVroundsd : xi::kIdVroundss)
                                 : (f64 ? xi::kIdVroundpd : xi::kIdVroundps);
  const InstId padd = f64 ? xi::kIdVpaddq : xi::kIdVpaddd, psub = f64 ? xi::kIdVpsubq : xi::kIdVpsubd;
  const InstId pcmpgt = f64 ? xi::kIdVpcmpgtq : xi::kIdVpcmpgtd;
  const InstId pcmpeq = f64 ? xi::kIdVpcmpeqq : xi::kIdVpcmpeqd;
  const InstId psrl = f64 ? xi::kIdVpsrlq : xi::kIdVpsrld;
  c.with_rounding(i, [&] {
    c.for_each_chunk(i.bits, [&](int off, int width) {
      load_sources(c, i, off, width);
      auto v = [&](int n) { return EmitContext::vreg(n, width); };
      const x86::Vec x = i.scalar ? v(1) : v(0), r = v(2), big = v(3), t = v(4), zero = v(8),
                     step = v(9);
      if (scale == 0) {
        if (i.scalar) c.a.emit(vround, r, x, x, round_imm);
        else c.a.emit(vround, r, x, round_imm);
      } else {
        c.a.vpxor(zero, zero, zero);
        c.a.vmovdqu(step, c.splat_constant(uint64_t(scale) << mant, eb));
        // big = exponent field >= bias + p: x is an integer, Inf or NaN.
        c.a.emit(psrl, t, x, asmjit::Imm(mant));
        c.a.vpand(t, t, c.splat_constant(f64 ? 0x7ff : 0xff, eb));
        c.a.emit(pcmpgt, big, t, c.splat_constant(uint64_t(bias + mant - 1), eb));
        c.a.emit(pcmpgt, t, t, zero);  // normal or big
        c.a.vpandn(t, big, t);         // normal and not big: scale up
        c.a.vpand(t, t, step);
        c.a.emit(padd, t, x, t);
        if (i.scalar) c.a.emit(vround, r, t, t, round_imm);
        else c.a.emit(vround, r, t, round_imm);
        // Scale down every lane that is neither big nor a rounded zero.
        c.a.vpand(t, r, c.splat_constant(f64 ? 0x7fffffffffffffffull : 0x7fffffffu, eb));
        c.a.emit(pcmpeq, t, t, zero);
        c.a.vpor(t, t, big);
        c.a.vpandn(t, t, step);
        c.a.emit(psub, r, r, t);
      }
      // Scalar: element 0 from the rounding, the rest of src0 unchanged.
      if (i.scalar) c.a.emit(f64 ? xi::kIdVblendpd : xi::kIdVblendps, r, v(0), r, asmjit::Imm(1));
      c.a.vmovups(c.value(i.dst, off), r);
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

//! ComiF/UcomiF: the VEX vcomis/vucomis on element 0 (same flags, same
//! MXCSR exceptions); lahf copies ZF/PF/CF (SF and AF are 0 after them, OF
//! is not in AH and is 0 too) into the RFLAGS value.
void lower_compare_flags(EmitContext& c, const Inst& i) {
  const bool f64 = i.elem == Elem::kF64;
  const InstId id = i.op == Op::kComiF ? (f64 ? xi::kIdVcomisd : xi::kIdVcomiss)
                                       : (f64 ? xi::kIdVucomisd : xi::kIdVucomiss);
  x86::Mem b = c.value(i.src[1]);
  b.setSize(f64 ? 8 : 4);
  c.with_rounding(i, [&] {
    c.a.vmovdqu(x86::xmm0, c.value(i.src[0]));
    c.a.emit(id, x86::xmm0, b);
  });
  c.a.lahf();
  c.a.movzx(x86::eax, x86::ah);
  c.a.and_(x86::eax, int(kFlagZF | kFlagPF | kFlagCF));
  c.a.mov(c.value(i.dst), x86::rax);
}

}  // namespace

bool lower_float(EmitContext& c, const ir::Inst& i) {
  switch (i.op) {
    case Op::kComiF: case Op::kUcomiF: lower_compare_flags(c, i); return true;
    case Op::kRndScale: lower_round_scale(c, i); return true;
    case Op::kCvtIntF: lower_convert_from_int(c, i); return true;
    case Op::kCvtI32F64: case Op::kCvtF32F64: case Op::kCvtF64F32: case Op::kCvtF64I32:
    case Op::kCvtF64I32Trunc:
      lower_convert_width(c, i);
      return true;
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
