// Owns the AVX2 lowering of the integer element-wise IR ops: native VEX
// instructions where AVX2 has the same operation, and named fallbacks for the
// AVX-512-only forms (64-bit multiply/min/max/abs/sar, 16-bit variable shifts,
// rotates, ternlog) and for compares and tests into mask values.
#include <bit>
#include <cstdint>
#include <functional>

#include "emit_context.h"

namespace avx512emu::jit {
namespace {

using asmjit::Imm;
using asmjit::InstId;
using ir::Inst;
using ir::Op;
namespace xi = asmjit::x86::Inst;  // instruction ids: xi::kIdVpaddd, ...

uint64_t width_mask(int bits) { return bits >= 64 ? ~0ull : (1ull << bits) - 1; }
x86::Vec vreg(int n, int width) { return EmitContext::vreg(n, width); }
//! Row of an element width in the {1, 2, 4, 8}-byte tables below.
int width_index(const Inst& i) { return std::countr_zero(unsigned(ir::elem_bytes(i.elem))); }

// ---- Shift classification ----------------------------------------------------------

enum class ShiftDir { kLeft, kRightLogical, kRightArith };
//! Where a shift or rotate takes its count from.
enum class CountKind { kNone, kImm, kVec, kVar };

CountKind count_kind(Op op) {
  switch (op) {
    case Op::kShlImm: case Op::kShrImm: case Op::kSarImm: case Op::kRolImm: case Op::kRorImm:
    case Op::kByteShlImm: case Op::kByteShrImm:
      return CountKind::kImm;
    case Op::kShlVec: case Op::kShrVec: case Op::kSarVec: return CountKind::kVec;
    case Op::kShlVar: case Op::kShrVar: case Op::kSarVar: case Op::kRolVar: case Op::kRorVar:
      return CountKind::kVar;
    default: return CountKind::kNone;
  }
}

ShiftDir shift_dir(Op op) {
  switch (op) {
    case Op::kShlImm: case Op::kShlVec: case Op::kShlVar: return ShiftDir::kLeft;
    case Op::kShrImm: case Op::kShrVec: case Op::kShrVar: return ShiftDir::kRightLogical;
    default: return ShiftDir::kRightArith;
  }
}

//! The VEX shift for direction × count kind × element width, or 0. The imm
//! and xmm-count forms share an id (vpsllw ymm, ymm, imm8 / xmm); both give
//! 0 (logical) or the sign fill (arithmetic) for counts >= the width, as
//! AVX-512 does. AVX2 has no vpsraq and no 16-bit variable shifts.
InstId shift_id(ShiftDir dir, CountKind kind, int width_idx) {
  static const InstId kUniform[3][4] = {
      {0, xi::kIdVpsllw, xi::kIdVpslld, xi::kIdVpsllq},
      {0, xi::kIdVpsrlw, xi::kIdVpsrld, xi::kIdVpsrlq},
      {0, xi::kIdVpsraw, xi::kIdVpsrad, 0}};
  static const InstId kVariable[3][4] = {{0, 0, xi::kIdVpsllvd, xi::kIdVpsllvq},
                                         {0, 0, xi::kIdVpsrlvd, xi::kIdVpsrlvq},
                                         {0, 0, xi::kIdVpsravd, 0}};
  return kind == CountKind::kVar ? kVariable[int(dir)][width_idx] : kUniform[int(dir)][width_idx];
}

//! Emits dst = src shifted with `id` by the instruction's count: the imm8,
//! the xmm count register `count` or per-element counts in `count`.
void emit_shift(EmitContext& c, InstId id, CountKind kind, const x86::Vec& dst, const x86::Vec& src,
                const x86::Vec& count, int64_t imm) {
  if (kind == CountKind::kImm) c.a.emit(id, dst, src, Imm(imm & 0xff));
  else if (kind == CountKind::kVec) c.a.emit(id, dst, src, count.xmm());
  else c.a.emit(id, dst, src, count);
}

// ---- Native instruction table ------------------------------------------------------

//! The VEX instruction that does what `i` does to each 256-bit chunk, or 0
//! when AVX2 has none (then a fallback below applies).
InstId native_id(const Inst& i) {
  static const InstId kAdd[4] = {xi::kIdVpaddb, xi::kIdVpaddw, xi::kIdVpaddd, xi::kIdVpaddq};
  static const InstId kSub[4] = {xi::kIdVpsubb, xi::kIdVpsubw, xi::kIdVpsubd, xi::kIdVpsubq};
  static const InstId kAddSatS[4] = {xi::kIdVpaddsb, xi::kIdVpaddsw, 0, 0};
  static const InstId kAddSatU[4] = {xi::kIdVpaddusb, xi::kIdVpaddusw, 0, 0};
  static const InstId kSubSatS[4] = {xi::kIdVpsubsb, xi::kIdVpsubsw, 0, 0};
  static const InstId kSubSatU[4] = {xi::kIdVpsubusb, xi::kIdVpsubusw, 0, 0};
  static const InstId kMulLo[4] = {0, xi::kIdVpmullw, xi::kIdVpmulld, 0};
  static const InstId kAvgU[4] = {xi::kIdVpavgb, xi::kIdVpavgw, 0, 0};
  static const InstId kMulHiS[4] = {0, xi::kIdVpmulhw, 0, 0};
  static const InstId kMulHiU[4] = {0, xi::kIdVpmulhuw, 0, 0};
  static const InstId kMulHiRS[4] = {0, xi::kIdVpmulhrsw, 0, 0};
  static const InstId kMinS[4] = {xi::kIdVpminsb, xi::kIdVpminsw, xi::kIdVpminsd, 0};
  static const InstId kMinU[4] = {xi::kIdVpminub, xi::kIdVpminuw, xi::kIdVpminud, 0};
  static const InstId kMaxS[4] = {xi::kIdVpmaxsb, xi::kIdVpmaxsw, xi::kIdVpmaxsd, 0};
  static const InstId kMaxU[4] = {xi::kIdVpmaxub, xi::kIdVpmaxuw, xi::kIdVpmaxud, 0};
  static const InstId kAbs[4] = {xi::kIdVpabsb, xi::kIdVpabsw, xi::kIdVpabsd, 0};
  const int e = width_index(i);
  switch (i.op) {
    case Op::kAdd: return kAdd[e];
    case Op::kSub: return kSub[e];
    case Op::kAddSatS: return kAddSatS[e];
    case Op::kAddSatU: return kAddSatU[e];
    case Op::kSubSatS: return kSubSatS[e];
    case Op::kSubSatU: return kSubSatU[e];
    case Op::kMulLo: return kMulLo[e];
    case Op::kMulHiS: return kMulHiS[e];
    case Op::kMulHiU: return kMulHiU[e];
    case Op::kMulHiRS: return kMulHiRS[e];
    // These read fixed source widths whatever the element type says.
    case Op::kMulUDQ: return xi::kIdVpmuludq;
    case Op::kMulDQ: return xi::kIdVpmuldq;
    case Op::kMAddWD: return xi::kIdVpmaddwd;
    case Op::kMAddUBSW: return xi::kIdVpmaddubsw;
    case Op::kSadBW: return xi::kIdVpsadbw;
    case Op::kAvgU: return kAvgU[e];
    case Op::kMinS: return kMinS[e];
    case Op::kMinU: return kMinU[e];
    case Op::kMaxS: return kMaxS[e];
    case Op::kMaxU: return kMaxU[e];
    case Op::kAbs: return kAbs[e];
    // Bitwise: any element type, including f32/f64 (vandps and friends).
    case Op::kAnd: return xi::kIdVpand;
    case Op::kAndN: return xi::kIdVpandn;
    case Op::kOr: return xi::kIdVpor;
    case Op::kXor: return xi::kIdVpxor;
    // Per 128-bit lane, and imm > 15 clears the lane, as in AVX-512.
    case Op::kByteShlImm: return xi::kIdVpslldq;
    case Op::kByteShrImm: return xi::kIdVpsrldq;
    case Op::kShlImm: case Op::kShrImm: case Op::kSarImm:
    case Op::kShlVec: case Op::kShrVec: case Op::kSarVec:
    case Op::kShlVar: case Op::kShrVar: case Op::kSarVar:
      return shift_id(shift_dir(i.op), count_kind(i.op), e);
    default: return 0;
  }
}

//! One native instruction per chunk. Binary ops take src1 straight from its
//! slot; vector-count shifts take the xmm count; imm forms take the imm8.
void lower_native(EmitContext& c, const Inst& i, InstId id) {
  const CountKind kind = count_kind(i.op);
  c.for_each_chunk(i.bits, [&](int off, int width) {
    const x86::Vec v = vreg(0, width);
    c.a.vmovdqu(v, c.value(i.src[0], off));
    if (i.op == Op::kAbs) {
      c.a.emit(id, v, v);
    } else if (kind == CountKind::kImm) {
      c.a.emit(id, v, v, Imm(i.imm & 0xff));
    } else if (kind == CountKind::kVec) {
      c.a.vmovdqu(x86::xmm1, c.value(i.src[1]));  // count: low 64 bits of src1
      c.a.emit(id, v, v, x86::xmm1);
    } else {
      c.a.emit(id, v, v, c.value(i.src[1], off));
    }
    c.a.vmovdqu(c.value(i.dst, off), v);
  });
}

// ---- Fallback driver -----------------------------------------------------------------

//! Registers of one chunk for a fallback: sources loaded into a (ymm1),
//! b (ymm2; for vector-count shifts the xmm2 count) and c (ymm3); the body
//! leaves the result in out (ymm0) and may use ymm4–ymm15 (tmp(n) is
//! ymm(4 + n)).
void lower_chunks(EmitContext& c, const Inst& i, const std::function<void(const Chunk&)>& body) {
  const bool vector_count = count_kind(i.op) == CountKind::kVec;
  c.for_each_chunk(i.bits, [&](int off, int width) {
    const Chunk k{width,          vreg(0, width), vreg(1, width),
                  vreg(2, width), vreg(3, width), {4, 5, 6, 7, 8}};
    c.a.vmovdqu(k.a, c.value(i.src[0], off));
    if (i.nsrc > 1) {
      if (vector_count)
        c.a.vmovdqu(k.b.xmm(), c.value(i.src[1]));
      else
        c.a.vmovdqu(k.b, c.value(i.src[1], off));
    }
    if (i.nsrc > 2) c.a.vmovdqu(k.c, c.value(i.src[2], off));
    body(k);
    c.a.vmovdqu(c.value(i.dst, off), k.out);
  });
}

// ---- Concatenating shifts ----------------------------------------------------------

//! concat_shift: vpshld/vpshrd have no AVX2 form; with n = count mod W they
//! are (a << n) | (b >> (W - n)) and (a >> n) | (b << (W - n)). AVX2's
//! logical shifts give 0 for a count of W, which is exactly the n = 0 case
//! (a unchanged), so two shifts and an or are exact. Per-element counts use
//! vpsllv/vpsrlv (dwords, qwords) with W - n from a vpsub.
void lower_concat_shift(EmitContext& c, const Inst& i) {
  const int e = width_index(i), bits = 8 * ir::elem_bytes(i.elem);
  const bool left = i.op == Op::kConcatShlImm || i.op == Op::kConcatShlVar;
  const bool by_imm = i.op == Op::kConcatShlImm || i.op == Op::kConcatShrImm;
  const ShiftDir near = left ? ShiftDir::kLeft : ShiftDir::kRightLogical;
  const ShiftDir far = left ? ShiftDir::kRightLogical : ShiftDir::kLeft;
  const CountKind kind = by_imm ? CountKind::kImm : CountKind::kVar;
  const InstId near_id = shift_id(near, kind, e), far_id = shift_id(far, kind, e);
  const int64_t n = i.imm & (bits - 1);
  lower_chunks(c, i, [&](const Chunk& k) {
    const x86::Vec fill = k.tmp(0), rest = k.tmp(1);
    if (by_imm) {
      emit_shift(c, near_id, kind, k.out, k.a, k.c, n);
      emit_shift(c, far_id, kind, fill, k.b, k.c, bits - n);
    } else {
      static const InstId kSub[4] = {0, 0, xi::kIdVpsubd, xi::kIdVpsubq};
      c.a.vpand(k.c, k.c, c.splat_constant(uint64_t(bits - 1), bits / 8));
      c.a.vmovdqu(rest, c.splat_constant(uint64_t(bits), bits / 8));
      c.a.emit(kSub[e], rest, rest, k.c);
      emit_shift(c, near_id, kind, k.out, k.a, k.c, 0);
      emit_shift(c, far_id, kind, fill, k.b, rest, 0);
    }
    c.a.vpor(k.out, k.out, fill);
  });
}

//! concat_shift_var_i16: AVX2 has no per-word shifts. Each word pair is
//! widened into one dword whose high word is the kept element and whose low
//! word the filler (left), or the reverse (right); one vpsllvd/vpsrlvd by
//! n = count mod 16 then leaves the result word in the dword's high (left)
//! or low (right) half, with no bit of the neighbour word reaching it. Even
//! and odd words are done apart and merged by a word blend.
void lower_concat_shift_var_i16(EmitContext& c, const Inst& i) {
  const bool left = i.op == Op::kConcatShlVar;
  lower_chunks(c, i, [&](const Chunk& k) {
    const x86::Vec even = k.tmp(0), odd = k.tmp(1), n = k.tmp(2), t = k.tmp(3);
    const x86::Vec& kept = k.a;
    const x86::Vec& filler = k.b;
    const x86::Mem low_words = c.splat_constant(0x0000ffff, 4);
    const x86::Mem high_words = c.splat_constant(0xffff0000, 4);
    // Even words: the dword is (kept_even:filler_even) for left shifts,
    // (filler_even:kept_even) for right ones.
    c.a.vpslld(even, left ? kept : filler, 16);
    c.a.vpand(t, left ? filler : kept, low_words);
    c.a.vpor(even, even, t);
    // Odd words: their high halves already sit in place; the other word
    // comes down from its own high half.
    c.a.vpand(odd, left ? kept : filler, high_words);
    c.a.vpsrld(t, left ? filler : kept, 16);
    c.a.vpor(odd, odd, t);
    c.a.vpand(n, k.c, c.splat_constant(0x0000000f, 4));
    c.a.vpsrld(t, k.c, 16);
    c.a.vpand(t, t, c.splat_constant(0x0000000f, 4));
    if (left) {
      c.a.vpsllvd(even, even, n);
      c.a.vpsllvd(odd, odd, t);
      c.a.vpsrld(even, even, 16);  // result word from the high half down
    } else {
      c.a.vpsrlvd(even, even, n);
      c.a.vpsrlvd(odd, odd, t);
      c.a.vpslld(odd, odd, 16);  // result word from the low half up
    }
    c.a.vpblendw(k.out, even, odd, 0xaa);
  });
}

// ---- 64-bit arithmetic fallbacks -----------------------------------------------------

//! mullo_i64: AVX2 has no vpmullq. With 32-bit halves, the low 64 bits of
//! a*b are lo(a)*lo(b) + ((hi(a)*lo(b) + lo(a)*hi(b)) << 32), three vpmuludq.
void mullo_i64_chunk(EmitContext& c, const Chunk& k) {
  const x86::Vec t0 = k.tmp(0), t1 = k.tmp(1);
  c.a.vpsrlq(t0, k.a, 32);
  c.a.vpmuludq(t0, t0, k.b);  // hi(a) * lo(b)
  c.a.vpsrlq(t1, k.b, 32);
  c.a.vpmuludq(t1, t1, k.a);  // lo(a) * hi(b)
  c.a.vpaddq(t0, t0, t1);
  c.a.vpsllq(t0, t0, 32);
  c.a.vpmuludq(k.out, k.a, k.b);  // lo(a) * lo(b), all 64 bits
  c.a.vpaddq(k.out, k.out, t0);
}

//! minmax_i64: AVX2 has no vpmin/vpmax for qwords. vpcmpgtq gives a > b
//! (unsigned: after flipping both sign bits), vblendvpd picks by it.
void minmax_i64_chunk(EmitContext& c, const Chunk& k, bool is_signed, bool is_max) {
  const x86::Vec gt = k.tmp(0);
  if (is_signed) {
    c.a.vpcmpgtq(gt, k.a, k.b);
  } else {
    const x86::Vec bias = k.tmp(1), bb = k.tmp(2);
    c.a.vmovdqu(bias, c.splat_constant(0x8000000000000000ull, 8));
    c.a.vpxor(bb, k.b, bias);
    c.a.vpxor(bias, k.a, bias);
    c.a.vpcmpgtq(gt, bias, bb);
  }
  // vblendvpd takes its second source where the mask's sign bit is set.
  if (is_max)
    c.a.vblendvpd(k.out, k.b, k.a, gt);
  else
    c.a.vblendvpd(k.out, k.a, k.b, gt);
}

//! abs_i64: AVX2 has no vpabsq. Negate (0 - a) and take it where a's sign
//! bit is set, with a as its own vblendvpd mask.
void abs_i64_chunk(EmitContext& c, const Chunk& k) {
  const x86::Vec neg = k.tmp(0);
  c.a.vpxor(neg, neg, neg);
  c.a.vpsubq(neg, neg, k.a);
  c.a.vblendvpd(k.out, k.a, neg, k.a);
}

// ---- VNNI dot products -----------------------------------------------------------------

//! dot_wssd: vpmaddwd then vpaddd. vpmaddwd's only overflow (all four words
//! 0x8000) wraps to 0x80000000, which is the same sum modulo 2^32 that
//! vpdpwssd adds, so the result is exact.
//! dot_busd: vpmaddubsw saturates, so it cannot be used. The even and the
//! odd bytes are widened to words instead (zero-extended for the unsigned
//! source, sign-extended for the signed one); two vpmaddwd then give the
//! even and odd pair sums exactly (|sum| < 2^17), and vpaddd adds both.
//! The S forms saturate acc + sum, with the sum computed in 32 bits: for
//! bytes it is exact (|sum| < 2^17); for words it wraps only when all four
//! words are 0x8000 (2^30 + 2^30), giving 0x80000000, a value the true sum
//! (>= -2^31 + 2^16) never takes, so that pattern is read as +2^31.
//! saturating_add_s32 then adds with the usual overflow test.
//! madd52: AVX2 multiplies only 32 x 32 -> 64 bits (vpmuludq). With a and b
//! cut to 52 bits and split into 26-bit limbs (a = a1:a0, b = b1:b0), the
//! product is a1b1 * 2^52 + mid * 2^26 + a0b0 with mid = a1b0 + a0b1; every
//! partial product is below 2^52 and mid below 2^53, so all sums fit 64 bits:
//! lo = a0b0 + (mid mod 2^26) * 2^26 (< 2^53), low half = lo mod 2^52, high
//! half = a1b1 + mid / 2^26 + lo / 2^52. vpaddq adds it to the accumulator.
void lower_madd52(EmitContext& c, const Inst& i) {
  const x86::Mem limb = c.splat_constant((1ull << 26) - 1, 8);
  const x86::Mem low52 = c.splat_constant((1ull << 52) - 1, 8);
  lower_chunks(c, i, [&](const Chunk& k) {
    const x86::Vec a1 = k.tmp(0), b1 = k.tmp(1), mid = k.tmp(2), t = k.tmp(3), lo = k.tmp(4);
    c.a.vpand(a1, k.b, low52);
    c.a.vpsrlq(a1, a1, 26);
    c.a.vpand(b1, k.c, low52);
    c.a.vpsrlq(b1, b1, 26);
    c.a.vpand(k.b, k.b, limb);  // a0
    c.a.vpand(k.c, k.c, limb);  // b0
    c.a.vpmuludq(mid, a1, k.c);
    c.a.vpmuludq(t, k.b, b1);
    c.a.vpaddq(mid, mid, t);
    c.a.vpmuludq(lo, k.b, k.c);
    c.a.vpand(t, mid, limb);
    c.a.vpsllq(t, t, 26);
    c.a.vpaddq(lo, lo, t);
    if (i.op == Op::kMAdd52Lo) {
      c.a.vpand(t, lo, low52);
    } else {
      c.a.vpmuludq(t, a1, b1);
      c.a.vpsrlq(mid, mid, 26);
      c.a.vpaddq(t, t, mid);
      c.a.vpsrlq(lo, lo, 52);
      c.a.vpaddq(t, t, lo);
    }
    c.a.vpaddq(k.out, k.a, t);
  });
}

//! dbsad_bw: AVX2's vpsadbw sums 8 byte differences per qword. For each of
//! the 4 words of a qword, vpshufb places the 4 byte pairs that word needs
//! at bytes 0..3 of the qword and zeros (|0 - 0| = 0) at bytes 4..7; the
//! qword's SAD (at most 1020) is then that word, shifted into place and
//! ORed. vpshufd does the per-lane dword shuffle of b first.
void lower_dbsad_bw(EmitContext& c, const Inst& i) {
  uint8_t pick_a[4][32], pick_b[4][32];
  for (int w = 0; w < 4; ++w) {
    for (int j = 0; j < 32; ++j) {
      const int q = j & ~7, byte = j & 7;
      pick_a[w][j] = byte < 4 ? uint8_t((q & 15) + (w < 2 ? 0 : 4) + byte) : 0x80;
      pick_b[w][j] = byte < 4 ? uint8_t((q & 15) + w + byte) : 0x80;
    }
  }
  lower_chunks(c, i, [&](const Chunk& k) {
    const x86::Vec a = k.tmp(0), b = k.tmp(1);
    c.a.vpshufd(k.b, k.b, Imm(i.imm & 0xff));
    c.a.vpxor(k.out, k.out, k.out);
    for (int w = 0; w < 4; ++w) {
      c.a.vpshufb(a, k.a, c.constant(pick_a[w], 32));
      c.a.vpshufb(b, k.b, c.constant(pick_b[w], 32));
      c.a.vpsadbw(a, a, b);
      if (w) c.a.vpsllq(a, a, Imm(16 * w));
      c.a.vpor(k.out, k.out, a);
    }
  });
}

void lower_dot(EmitContext& c, const Inst& i) {
  const bool words = i.op == Op::kDotWSSD || i.op == Op::kDotWSSDS;
  const bool saturating = i.op == Op::kDotWSSDS || i.op == Op::kDotBUSDS;
  lower_chunks(c, i, [&](const Chunk& k) {
    const x86::Vec even = k.tmp(0), odd = k.tmp(1), t = k.tmp(2);
    const x86::Vec& sum = even;
    if (words) {
      c.a.vpmaddwd(sum, k.b, k.c);
    } else {
      c.a.vpand(even, k.b, c.splat_constant(0x00ff, 2));  // unsigned even bytes
      c.a.vpsllw(t, k.c, 8);
      c.a.vpsraw(t, t, 8);  // signed even bytes
      c.a.vpmaddwd(even, even, t);
      c.a.vpsrlw(odd, k.b, 8);  // unsigned odd bytes
      c.a.vpsraw(t, k.c, 8);    // signed odd bytes
      c.a.vpmaddwd(odd, odd, t);
      c.a.vpaddd(sum, even, odd);
    }
    c.a.vpaddd(k.out, k.a, sum);
    if (!saturating) return;
    // saturating_add_s32: overflow when acc and the sum have one sign and
    // the wrapped result the other; the bound is INT_MAX ^ (acc >> 31).
    const x86::Vec sum_neg = odd, overflow = t, bound = k.tmp(3);
    c.a.vpxor(sum_neg, sum_neg, sum_neg);
    c.a.vpcmpgtd(sum_neg, sum_neg, sum);  // sum < 0 ...
    c.a.vpcmpgtd(bound, sum, c.splat_constant(0x80000000u, 4));
    c.a.vpand(sum_neg, sum_neg, bound);  // ... and not the wrapped +2^31
    c.a.vpsrad(bound, k.a, 31);
    c.a.vpxor(overflow, bound, sum_neg);  // signs differ: never overflows
    c.a.vpxor(t, overflow, c.splat_constant(~0ull, 8));
    c.a.vpxor(sum_neg, k.out, k.a);  // result sign differs from acc's
    c.a.vpand(overflow, t, sum_neg);
    c.a.vpxor(bound, bound, c.splat_constant(0x7fffffffu, 4));
    c.a.vblendvps(k.out, k.out, bound, overflow);
  });
}

// ---- Shift and rotate fallbacks --------------------------------------------------------

//! sar_i64: AVX2 has no vpsraq/vpsravq. With s = (a < 0 ? ~0 : 0),
//! sar(a, n) = srl(a ^ s, n) ^ s: the logical shift brings in zeros, which the
//! outer xor turns into copies of the sign. Counts >= 64 make srl give 0, so
//! the result is s: the sign fill, as required. Serves imm, xmm and
//! per-element counts.
void lower_sar_i64(EmitContext& c, const Inst& i) {
  const CountKind kind = count_kind(i.op);
  const InstId srl = shift_id(ShiftDir::kRightLogical, kind, 3);
  lower_chunks(c, i, [&](const Chunk& k) {
    const x86::Vec s = k.tmp(0), t = k.tmp(1);
    c.a.vpxor(s, s, s);
    c.a.vpcmpgtq(s, s, k.a);  // 0 > a
    c.a.vpxor(t, k.a, s);
    emit_shift(c, srl, kind, t, t, k.b, i.imm);
    c.a.vpxor(k.out, t, s);
  });
}

//! var_shift_i16: AVX2 has no vpsllvw/vpsrlvw/vpsravw. Each dword holds two
//! words; shift each with the dword variable shift while it sits in the
//! dword's upper half, so the bits that leave the word leave the dword (left)
//! or land in the discarded lower half (right), and the sign bit is the
//! dword's (arithmetic). Counts >= 16 then give 0 / the sign fill.
//! Odd words: (a & 0xffff0000) shifted by (count >> 16), masked to the upper
//! half. Even words: (a << 16) shifted by (count & 0xffff), moved down by 16.
void lower_var_shift_i16(EmitContext& c, const Inst& i) {
  const InstId id = shift_id(shift_dir(i.op), CountKind::kVar, 2);
  lower_chunks(c, i, [&](const Chunk& k) {
    const x86::Vec hi_mask = k.tmp(0), odd = k.tmp(1), n = k.tmp(2), even = k.tmp(3);
    c.a.vmovdqu(hi_mask, c.splat_constant(0xffff0000u, 4));
    c.a.vpand(odd, k.a, hi_mask);
    c.a.vpsrld(n, k.b, 16);
    c.a.emit(id, odd, odd, n);
    c.a.vpand(odd, odd, hi_mask);
    c.a.vpslld(even, k.a, 16);
    c.a.vpandn(n, hi_mask, k.b);  // count & 0xffff
    c.a.emit(id, even, even, n);
    c.a.vpsrld(even, even, 16);
    c.a.vpor(k.out, odd, even);
  });
}

//! rotate: AVX2 has no vprold/vprolq. rol(a, n) = (a << n) | (a >> (w - n))
//! with n = count mod w (ror swaps the shifts). A count of 0 mod w makes the
//! right shift w, which gives 0, so no special case is needed for variable
//! counts; the imm form just copies.
void lower_rotate(EmitContext& c, const Inst& i) {
  lower_chunks(c, i, [&](const Chunk& k) {
    emit_rotate_chunk(c, i, {k.out, k.a, k.b, k.tmp(0), k.tmp(1), k.tmp(2), k.tmp(3)});
  });
}

// ---- Ternary logic ---------------------------------------------------------------------

//! Computes the boolean function of (b, c) whose truth table is `table`
//! (bit (b<<1)|c) into `dst` and returns the register holding it (b or c
//! themselves for the tables 0xC and 0xA). Tables with bit 0 set are the
//! complement of one with bit 0 clear: that one, then xor with `ones`
//! (all-ones, set up by the caller).
x86::Vec emit_bool2(EmitContext& c, int table, const x86::Vec& dst, const x86::Vec& b,
                    const x86::Vec& cc, const x86::Vec& ones) {
  const int base = (table & 1) ? (~table & 15) : table;
  x86::Vec r = dst;
  switch (base) {
    case 0x0: c.a.vpxor(dst, dst, dst); break;
    case 0x2: c.a.vpandn(dst, b, cc); break;  // ~b & c
    case 0x4: c.a.vpandn(dst, cc, b); break;  // b & ~c
    case 0x6: c.a.vpxor(dst, b, cc); break;
    case 0x8: c.a.vpand(dst, b, cc); break;
    case 0xA: r = cc; break;
    case 0xC: r = b; break;
    default: c.a.vpor(dst, b, cc); break;  // 0xE
  }
  if (table & 1) {
    c.a.vpxor(dst, r, ones);
    r = dst;
  }
  return r;
}

//! ternlog: AVX2 has no vpternlog. Shannon expansion on a: with f0 and f1
//! the 2-input functions of (b, c) for a = 0 (imm bits 0-3) and a = 1 (imm
//! bits 4-7), the result is a ? f1 : f0 = f0 ^ (a & (f0 ^ f1)). Every
//! 2-input function is at most two instructions (plus one shared all-ones),
//! so any imm takes at most seven (0x96 = a^b^c takes two, 0xCA = a?b:c three).
void ternlog_chunk(EmitContext& c, const Chunk& k, int imm) {
  const int f0 = imm & 15, g = f0 ^ (imm >> 4);
  const x86::Vec ones = k.tmp(0), tg = k.tmp(1), tf = k.tmp(2);
  const bool uses_g = g != 0 && g != 15;
  if ((f0 & 1) || (uses_g && (g & 1))) c.a.vpcmpeqd(ones, ones, ones);
  if (g == 0) {  // a does not matter
    const x86::Vec r = emit_bool2(c, f0, k.out, k.b, k.c, ones);
    if (r != k.out) c.a.vmovdqa(k.out, r);
    return;
  }
  x86::Vec sel = k.a;  // a & g
  if (uses_g) {
    const x86::Vec r = emit_bool2(c, g, tg, k.b, k.c, ones);
    c.a.vpand(tg, r, k.a);
    sel = tg;
  }
  if (f0 == 0) {
    c.a.vmovdqa(k.out, sel);
    return;
  }
  c.a.vpxor(k.out, emit_bool2(c, f0, tf, k.b, k.c, ones), sel);
}

// ---- Compares and tests into masks -------------------------------------------------------

}  // namespace

//! Compares and tests build one mask bit per element: a vector compare per
//! chunk giving all-ones lanes, then vpmovmskb / vmovmskps / vmovmskpd (words:
//! vpmovmskb and pext of every second bit), shifted into place. Predicates
//! that AVX2 lacks are the complement of one it has (LE = !GT, NE = !EQ,
//! ...): the complement is taken on the finished mask, xor with the
//! element-count mask, so bits above the element count stay 0. Unsigned
//! compares flip both sign bits first; tests compare a & b with zero.
namespace {
enum class MaskBase { kFalse, kEq, kGt, kGtSwapped, kTestZero };

MaskBase mask_base(const Inst& i, bool& invert) {
  if (i.op == Op::kTestM || i.op == Op::kTestNM) {
    invert = i.op == Op::kTestM;
    return MaskBase::kTestZero;  // (a & b) == 0
  }
  static const MaskBase kPredicate[8] = {MaskBase::kEq, MaskBase::kGtSwapped, MaskBase::kGt,
                                         MaskBase::kFalse, MaskBase::kEq, MaskBase::kGtSwapped,
                                         MaskBase::kGt, MaskBase::kFalse};
  // 0 EQ, 1 LT = b > a, 2 LE = !(a > b), 3 FALSE, 4 NE, 5 NLT = !(b > a), 6 NLE, 7 TRUE
  static const bool kInvert[8] = {false, false, true, false, true, true, false, true};
  invert = kInvert[i.imm & 7];
  return kPredicate[i.imm & 7];
}
}  // namespace

//! rotate: AVX2 has no vprold/vprolq. A rotate by n is (a << n) | (a >> (w - n))
//! with n = count mod w; per-element counts take w - n from a vpsub.
namespace {
//! The left-rotate amount of a rotate by imm8, in bits (0 .. element bits - 1).
int rotate_left_bits(const Inst& i) {
  const int bits = ir::elem_bytes(i.elem) * 8;
  const int n = int((i.imm & 0xff) % bits);
  return i.op == Op::kRolImm ? n : (bits - n) % bits;
}
bool rotate_by_imm(const Inst& i) {
  return i.op == Op::kRolImm || i.op == Op::kRorImm;
}
}  // namespace

RotateUses rotate_uses(const Inst& i) {
  if (!rotate_by_imm(i)) return {true, true, true};
  return {false, rotate_left_bits(i) % 8 != 0, false};
}

void emit_rotate_chunk(EmitContext& c, const Inst& i, const RotateRegs& r) {
  const int e = std::countr_zero(unsigned(ir::elem_bytes(i.elem)));
  const int bits = ir::elem_bytes(i.elem) * 8;
  const bool left = i.op == Op::kRolImm || i.op == Op::kRolVar;
  const bool by_imm = rotate_by_imm(i);
  if (by_imm && !rotate_uses(i).hi_lo && rotate_left_bits(i) != 0) {
    // A whole number of bytes (ChaCha's 16 and 8, most 64-bit mixes): one
    // byte shuffle. Byte j of each element takes byte j - shift of the
    // same element; vpshufb indexes within a 16-byte lane.
    const int eb = bits / 8, shift = rotate_left_bits(i) / 8;
    uint8_t pattern[32];
    for (int j = 0; j < 32; ++j) {
      const int in_lane = j % 16, element = in_lane / eb * eb;
      pattern[j] = uint8_t(element + (in_lane - element - shift + eb) % eb);
    }
    c.a.vpshufb(r.out, r.a, c.constant(pattern, sizeof pattern));
    return;
  }
  const InstId shl = e == 3 ? (by_imm ? xi::kIdVpsllq : xi::kIdVpsllvq) : (by_imm ? xi::kIdVpslld : xi::kIdVpsllvd);
  const InstId shr = e == 3 ? (by_imm ? xi::kIdVpsrlq : xi::kIdVpsrlvq) : (by_imm ? xi::kIdVpsrld : xi::kIdVpsrlvd);
  if (by_imm) {
    const int up = rotate_left_bits(i);
    if (up == 0) {
      c.a.vmovdqa(r.out, r.a);
      return;
    }
    c.a.emit(shl, r.hi, r.a, Imm(up));
    c.a.emit(shr, r.lo, r.a, Imm(bits - up));
  } else {
    c.a.vpand(r.n, r.b, c.splat_constant(uint64_t(bits - 1), bits / 8));
    c.a.vmovdqu(r.rest, c.splat_constant(uint64_t(bits), bits / 8));
    c.a.emit(e == 3 ? xi::kIdVpsubq : xi::kIdVpsubd, r.rest, r.rest, r.n);  // w - n
    c.a.emit(shl, r.hi, r.a, left ? r.n : r.rest);
    c.a.emit(shr, r.lo, r.a, left ? r.rest : r.n);
  }
  c.a.vpor(r.out, r.hi, r.lo);
}

bool is_rotate(Op op) {
  return op == Op::kRolImm || op == Op::kRorImm || op == Op::kRolVar || op == Op::kRorVar;
}

bool is_mask_compare(Op op) {
  return op == Op::kCmpS || op == Op::kCmpU || op == Op::kTestM || op == Op::kTestNM;
}

void emit_mask_compare_chunk(EmitContext& c, const Inst& i, int off, const MaskCompareRegs& r) {
  static const InstId kCmpEq[4] = {xi::kIdVpcmpeqb, xi::kIdVpcmpeqw, xi::kIdVpcmpeqd,
                                   xi::kIdVpcmpeqq};
  static const InstId kCmpGt[4] = {xi::kIdVpcmpgtb, xi::kIdVpcmpgtw, xi::kIdVpcmpgtd,
                                   xi::kIdVpcmpgtq};
  const int e = width_index(i);
  const int eb = ir::elem_bytes(i.elem);
  bool invert = false;
  const MaskBase base = mask_base(i, invert);
  if (base == MaskBase::kFalse) {
    c.a.xor_(x86::eax, x86::eax);
    return;
  }
  const bool is_unsigned = i.op == Op::kCmpU && base != MaskBase::kEq;
  switch (base) {
    case MaskBase::kEq: c.a.emit(kCmpEq[e], r.v, r.a, r.b); break;
    case MaskBase::kTestZero:
      c.a.vpand(r.v, r.a, r.b);
      c.a.vpxor(r.a, r.a, r.a);
      c.a.emit(kCmpEq[e], r.v, r.v, r.a);
      break;
    default: {
      if (is_unsigned) {
        c.a.vmovdqu(r.bias, c.splat_constant(1ull << (eb * 8 - 1), eb));
        c.a.vpxor(r.a, r.a, r.bias);
        c.a.vpxor(r.b, r.b, r.bias);
      }
      if (base == MaskBase::kGt) c.a.emit(kCmpGt[e], r.v, r.a, r.b);
      else c.a.emit(kCmpGt[e], r.v, r.b, r.a);
      break;
    }
  }
  switch (eb) {
    case 1: c.a.vpmovmskb(x86::eax, r.v); break;
    case 2:
      c.a.vpmovmskb(x86::eax, r.v);
      c.a.mov(x86::edx, 0xAAAAAAAAu);
      c.a.pext(x86::eax, x86::eax, x86::edx);
      break;
    case 4: c.a.vmovmskps(x86::eax, r.v); break;
    default: c.a.vmovmskpd(x86::eax, r.v); break;
  }
  if (off) c.a.shl(x86::rax, off / eb);
}

void emit_mask_compare_finish(EmitContext& c, const Inst& i, const asmjit::Operand& mask) {
  bool invert = false;
  const MaskBase base = mask_base(i, invert);
  const int count = i.bits / 8 / ir::elem_bytes(i.elem);
  if (base == MaskBase::kFalse) {
    c.a.mov(x86::rax, invert ? width_mask(count) : 0);
    c.a.emit(xi::kIdMov, mask, x86::rax);
  } else if (invert) {
    c.a.mov(x86::rdx, width_mask(count));
    c.a.emit(xi::kIdXor, mask, x86::rdx);
  }
}

namespace {

void lower_to_mask(EmitContext& c, const Inst& i) {
  const x86::Mem dst = c.value(i.dst);
  bool invert = false;
  if (mask_base(i, invert) == MaskBase::kFalse) {  // FALSE / TRUE: a constant
    emit_mask_compare_finish(c, i, dst);
    return;
  }
  c.a.xor_(x86::r8d, x86::r8d);
  c.for_each_chunk(i.bits, [&](int off, int width) {
    const MaskCompareRegs r{vreg(0, width), vreg(1, width), vreg(2, width), vreg(3, width)};
    c.a.vmovdqu(r.a, c.value(i.src[0], off));
    c.a.vmovdqu(r.b, c.value(i.src[1], off));
    emit_mask_compare_chunk(c, i, off, r);
    c.a.or_(x86::r8, x86::rax);
  });
  emit_mask_compare_finish(c, i, x86::r8);
  c.a.mov(dst, x86::r8);
}

//! The ops without a native instruction for this element width.
bool lower_fallback(EmitContext& c, const Inst& i) {
  const int eb = ir::elem_bytes(i.elem);
  if (eb == 8) {
    switch (i.op) {
      case Op::kSarImm: case Op::kSarVec: case Op::kSarVar: lower_sar_i64(c, i); return true;
      default: return false;
    }
  }
  if (eb == 2 && count_kind(i.op) == CountKind::kVar) {  // vpsllvw, vpsrlvw, vpsravw
    lower_var_shift_i16(c, i);
    return true;
  }
  return false;
}

}  // namespace

InstId integer_native_id(const Inst& i) {
  return native_id(i);
}

bool chunk_lowering(const Inst& i, ChunkLowering& out) {
  const int eb = ir::elem_bytes(i.elem);
  if (i.op == Op::kTernlog) {
    const int imm = int(i.imm & 0xff);
    out = {3, [imm](EmitContext& c, const Chunk& k) { ternlog_chunk(c, k, imm); }};
    return true;
  }
  if (eb != 8 || i.scalar) return false;
  const auto minmax = [&](bool is_signed, bool is_max) {
    out = {3, [is_signed, is_max](EmitContext& c, const Chunk& k) {
             minmax_i64_chunk(c, k, is_signed, is_max);
           }};
    return true;
  };
  switch (i.op) {
    case Op::kMulLo:
      out = {2, mullo_i64_chunk};
      return true;
    case Op::kMinS:
      return minmax(/*is_signed=*/true, /*is_max=*/false);
    case Op::kMaxS:
      return minmax(/*is_signed=*/true, /*is_max=*/true);
    case Op::kMinU:
      return minmax(/*is_signed=*/false, /*is_max=*/false);
    case Op::kMaxU:
      return minmax(/*is_signed=*/false, /*is_max=*/true);
    case Op::kAbs:
      out = {1, abs_i64_chunk};
      return true;
    default:
      return false;
  }
}

bool lower_integer(EmitContext& c, const Inst& i) {
  if (ChunkLowering chunked; chunk_lowering(i, chunked)) {
    lower_chunks(c, i, [&](const Chunk& k) { chunked.body(c, k); });
    return true;
  }
  switch (i.op) {
    case Op::kMAdd52Lo: case Op::kMAdd52Hi: lower_madd52(c, i); return true;
    case Op::kDbSadBW: lower_dbsad_bw(c, i); return true;
    case Op::kDotWSSD: case Op::kDotBUSD: case Op::kDotWSSDS: case Op::kDotBUSDS:
      lower_dot(c, i);
      return true;
    case Op::kConcatShlVar: case Op::kConcatShrVar:
      if (ir::elem_bytes(i.elem) == 2) lower_concat_shift_var_i16(c, i);
      else lower_concat_shift(c, i);
      return true;
    case Op::kConcatShlImm: case Op::kConcatShrImm: lower_concat_shift(c, i); return true;
    case Op::kCmpS: case Op::kCmpU: case Op::kTestM: case Op::kTestNM: lower_to_mask(c, i); return true;
    case Op::kRolImm: case Op::kRorImm: case Op::kRolVar: case Op::kRorVar:
      if (ir::elem_bytes(i.elem) < 4) return false;
      lower_rotate(c, i);
      return true;
    default: break;
  }
  if (const InstId id = native_id(i)) {
    lower_native(c, i, id);
    return true;
  }
  return lower_fallback(c, i);
}

}  // namespace avx512emu::jit
