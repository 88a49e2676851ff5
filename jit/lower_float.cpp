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
    case Op::kRndScale: case Op::kGetExp: return i.scalar ? 2 : 1;
    case Op::kCvtU32F32: case Op::kCvtU32F64: return 1;
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
    case Op::kCvtF16F32: return xi::kIdVcvtph2ps;
    case Op::kCvtF32F16: return xi::kIdVcvtps2ph;
    default: return xi::kIdVcvttpd2dq;
  }
}

//! Replaces the inactive elements of `v` (source elements of type elem2,
//! the first at byte `offset` of the source) by 1.0, whose conversion is
//! exact and raises no flag. int32 sources need nothing: int32 -> f64 is
//! exact and raises no flag; 16-bit sources are binary16 (vcvtph2ps).
void replace_inactive_sources(EmitContext& c, const Inst& i, const x86::Vec& v, ir::ValueId mask,
                              int offset) {
  const int bytes = ir::elem_bytes(i.elem2);
  if (bytes == 4 && !ir::elem_is_float(i.elem2)) return;
  static const uint64_t kOne[4] = {0x3c00, 0x3f800000u, 0, 0x3ff0000000000000ull};  // by log2 bytes - 1
  static const InstId kBlend[4] = {xi::kIdVpblendvb, xi::kIdVblendvps, 0, xi::kIdVblendvpd};
  const int width = int(v.size());
  const x86::Vec one = EmitContext::vreg(kOneReg, width), lanes = EmitContext::vreg(kMaskReg, width);
  c.a.vmovups(one, c.splat_constant(kOne[bytes / 2 - 1], bytes));
  c.expand_mask(lanes, EmitContext::vreg(kMaskTmpReg, width), mask, i.elem2, offset);
  c.a.emit(kBlend[bytes / 2 - 1], v, one, v, lanes);
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
      if (i.op == Op::kCvtF32F16) c.a.emit(id, x86::xmm0, src, asmjit::Imm(i.imm & 0xff));
      else c.a.emit(id, x86::xmm0, src);
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

// ---- Unsigned dwords to floating point --------------------------------------------

//! unsigned_split: AVX2 converts only signed dwords. x = hi * 2^16 + lo with
//! hi, lo < 2^16: both convert exactly, hi * 2^16 is exact, and the one
//! vaddps/pd rounds the exact sum once (f32), or is exact (f64: the sum is
//! below 2^32). Two positive (or +0) addends never give -0 in any rounding
//! mode. Inactive f32 lanes hold 0x3f800000 (load_sources), whose 7
//! significant bits convert exactly.
void lower_convert_unsigned(EmitContext& c, const Inst& i) {
  const bool f64 = i.op == Op::kCvtU32F64;
  const x86::Mem low16 = c.splat_constant(0xffff, 4);
  const x86::Mem two16 = f64 ? c.splat_constant(0x40f0000000000000ull, 8)  // 65536.0
                             : c.splat_constant(0x47800000u, 4);
  c.with_rounding(i, [&] {
    c.for_each_chunk(i.bits, [&](int off, int width) {
      const x86::Vec r = EmitContext::vreg(0, width), lo = EmitContext::vreg(2, width);
      // f64: the half-width source chunk; f32: the chunk, inactive lanes benign.
      const x86::Vec x = f64 ? x86::Vec(x86::xmm1) : EmitContext::vreg(0, width);
      if (f64) c.a.vmovdqu(x, c.value(i.src[0], off / 2));
      else load_sources(c, i, off, width);
      const x86::Vec hi = f64 ? x86::Vec(x86::xmm3) : EmitContext::vreg(3, width);
      c.a.vpsrld(hi, x, asmjit::Imm(16));
      c.a.vpand(f64 ? lo.xmm() : lo, x, low16);
      if (f64) {
        c.a.vcvtdq2pd(r, hi);
        c.a.vcvtdq2pd(lo, lo.xmm());
        c.a.vmulpd(r, r, two16);
        c.a.vaddpd(r, r, lo);
      } else {
        c.a.vcvtdq2ps(r, hi);
        c.a.vcvtdq2ps(lo, lo);
        c.a.vmulps(r, r, two16);
        c.a.vaddps(r, r, lo);
      }
      c.a.vmovups(c.value(i.dst, off), r);
    });
  });
}

// ---- vgetexp ------------------------------------------------------------------------

//! GetExp: floor(log2 |x|) is the unbiased exponent of the normalized value
//! (split_float_fields), converted exactly by vcvtdq2ps/pd (for f64 the low
//! dwords of the qword lanes are packed first). The flags come from the quiet
//! compare x == x, which raises exactly vgetexp's: IE for an SNaN, DE for a
//! denormal unless DAZ. Zero (or a denormal under DAZ) gives -inf, inf +inf,
//! NaN the quieted NaN.
void lower_getexp(EmitContext& c, const Inst& i) {
  const bool f64 = i.elem == Elem::kF64;
  const int eb = f64 ? 8 : 4, mant = f64 ? 52 : 23;
  const uint64_t bias = f64 ? 1023 : 127, exp_mask = (2 * bias + 1) << mant;
  const InstId cmpeq = f64 ? xi::kIdVpcmpeqq : xi::kIdVpcmpeqd;
  const InstId cmpgt = f64 ? xi::kIdVpcmpgtq : xi::kIdVpcmpgtd;
  c.with_rounding(i, [&] {
    c.for_each_chunk(i.bits, [&](int off, int width) {
      load_sources(c, i, off, width);
      auto v = [&](int n) { return EmitContext::vreg(n, width); };
      const x86::Vec x = i.scalar ? v(1) : v(0), r = v(2), t = v(3), zero = v(4), sign = v(8),
                     magnitude = v(9), exponent = v(10), fraction = v(11), denormal = v(12),
                     daz = v(13);
      const InstId compare = i.scalar ? (f64 ? xi::kIdVcmpsd : xi::kIdVcmpss)
                                      : (f64 ? xi::kIdVcmppd : xi::kIdVcmpps);
      c.a.emit(compare, t, x, x, asmjit::Imm(0));  // EQ_OQ: the flags only
      c.a.vpxor(zero, zero, zero);
      c.mxcsr_bit_mask(daz, 6);
      c.split_float_fields(x, f64, {sign, magnitude, exponent, fraction, denormal}, t, zero);
      c.a.emit(f64 ? xi::kIdVpsubq : xi::kIdVpsubd, exponent, exponent, c.splat_constant(bias, eb));
      if (f64) {
        c.a.vpshufd(r, exponent, asmjit::Imm(0x08));  // low dwords to 0, 1 of each lane
        if (width == 32) c.a.vpermq(r, r, asmjit::Imm(0x08));
        c.a.vcvtdq2pd(r, r.xmm());
      } else {
        c.a.vcvtdq2ps(r, exponent);
      }
      // Zero, or a denormal under DAZ: -inf. Infinity: +inf. NaN: quieted.
      c.a.vpand(t, denormal, daz);
      c.a.emit(cmpeq, fraction, magnitude, zero);
      c.a.vpor(t, t, fraction);
      c.a.vpblendvb(r, r, c.splat_constant(exp_mask | (1ull << (eb * 8 - 1)), eb), t);
      c.a.emit(cmpeq, t, magnitude, c.splat_constant(exp_mask, eb));
      c.a.vpblendvb(r, r, c.splat_constant(exp_mask, eb), t);
      c.a.emit(cmpgt, t, magnitude, c.splat_constant(exp_mask, eb));
      c.a.vpor(fraction, x, c.splat_constant(1ull << (mant - 1), eb));
      c.a.vpblendvb(r, r, fraction, t);
      if (i.scalar) c.a.emit(f64 ? xi::kIdVblendpd : xi::kIdVblendps, r, v(0), r, asmjit::Imm(1));
      c.a.vmovups(c.value(i.dst, off), r);
    });
  });
}

// ---- Floating point to a signed GPR -------------------------------------------------

//! CvtFInt: the VEX vcvt(t)ss2si/sd2si itself (same rounding, integer
//! indefinite and flags); a 32-bit destination zero-extends into the slot.
void lower_convert_to_int(EmitContext& c, const Inst& i) {
  const bool f64 = i.elem == Elem::kF64, truncate = (i.imm & 1) != 0;
  const InstId id = f64 ? (truncate ? xi::kIdVcvttsd2si : xi::kIdVcvtsd2si)
                        : (truncate ? xi::kIdVcvttss2si : xi::kIdVcvtss2si);
  const x86::Gp r = i.bits == 64 ? x86::Gp(x86::rax) : x86::Gp(x86::eax);
  c.with_rounding(i, [&] {
    c.a.vmovups(x86::xmm0, c.value(i.src[0]));
    c.a.emit(id, r, x86::xmm0);
  });
  c.a.mov(c.value(i.dst), x86::rax);
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
    case Op::kGetExp: lower_getexp(c, i); return true;
    case Op::kCvtU32F32: case Op::kCvtU32F64: lower_convert_unsigned(c, i); return true;
    case Op::kCvtIntF: lower_convert_from_int(c, i); return true;
    case Op::kCvtFInt: lower_convert_to_int(c, i); return true;
    case Op::kCvtI32F64: case Op::kCvtF32F64: case Op::kCvtF64F32: case Op::kCvtF64I32:
    case Op::kCvtF64I32Trunc: case Op::kCvtF16F32: case Op::kCvtF32F16:
      lower_convert_width(c, i);
      return true;
    case Op::kCmpF: break;
    default:
      if (!is_float_elementwise(i.op)) return false;
  }
  const InstId id = native_id(i);
  if (id == 0) return false;  // e.g. an f64 conversion: no such IR form exists
  if (i.op == Op::kCmpF) lower_compare(c, i, id);
  else lower_elementwise(c, i, id);
  return true;
}

bool is_float_elementwise(Op op) {
  switch (op) {
    case Op::kFAdd: case Op::kFSub: case Op::kFMul: case Op::kFDiv: case Op::kFMin:
    case Op::kFMax: case Op::kFSqrt: case Op::kFma: case Op::kCvtI32F32:
    case Op::kCvtF32I32: case Op::kCvtF32I32Trunc:
      return true;
    default:
      return false;
  }
}

InstId float_native_id(const Inst& i) {
  return native_id(i);
}

int float_vector_operands(const Inst& i) {
  return vector_operands(i);
}

}  // namespace avx512emu::jit
