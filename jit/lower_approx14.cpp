// Owns the AVX2 lowering of vrcp14/vrsqrt14 (Rcp14, Rsqrt14): Intel's
// piecewise-linear approximations, evaluated exactly in integer arithmetic on
// the encodings, with a gather from the shared coefficient table.
#include "approx14_tables.h"
#include "emit_context.h"

namespace avx512emu::jit {
namespace {

using asmjit::Imm;
using asmjit::InstId;
using ir::Elem;
using ir::Inst;
using ir::Op;
namespace xi = asmjit::x86::Inst;

//! Integer instructions at the element width: dwords for f32, qwords for f64.
struct LaneOps {
  InstId add, sub, shl, shr, shr_var, cmpeq, cmpgt, mul_low;
};
LaneOps lane_ops(bool f64) {
  if (f64)
    return {xi::kIdVpaddq,  xi::kIdVpsubq,   xi::kIdVpsllq,   xi::kIdVpsrlq,
            xi::kIdVpsrlvq, xi::kIdVpcmpeqq, xi::kIdVpcmpgtq, xi::kIdVpmuludq};
  return {xi::kIdVpaddd,  xi::kIdVpsubd,   xi::kIdVpslld,   xi::kIdVpsrld,
          xi::kIdVpsrlvd, xi::kIdVpcmpeqd, xi::kIdVpcmpgtd, xi::kIdVpmulld};
}

//! approx14: per element, the encoding is split into sign, exponent field and
//! fraction, a denormal normalized (split_float_fields). The segment's
//! value + slope * (512 - r) is formed in integers (below 2^26, so exact)
//! and its top 16 fraction bits are the result's.
//! Exponent arithmetic, denormal results, FTZ/DAZ and the special inputs
//! follow, each as a blend; no FP flag is raised, as on hardware.
void lower_approximation(EmitContext& c, const Inst& i) {
  const bool f64 = i.elem == Elem::kF64, rcp = i.op == Op::kRcp14;
  const int eb = f64 ? 8 : 4, mant = f64 ? 52 : 23;
  const int64_t bias = f64 ? 1023 : 127;
  const uint64_t sign_bit = 1ull << (eb * 8 - 1), exp_mask = uint64_t(2 * bias + 1) << mant;
  const LaneOps op = lane_ops(f64);
  auto k = [&](uint64_t v) { return c.splat_constant(v, eb); };

  // The coefficient table, one element-wide entry per gather index.
  const approx14::PackedTable& table = rcp ? approx14::kRcpTable : approx14::kRsqrtTable;
  const int value_bits = rcp ? approx14::kRcpValueBits : approx14::kRsqrtValueBits;
  uint64_t wide_table[64];
  uint32_t narrow_table[64];
  for (int j = 0; j < 64; ++j) wide_table[j] = narrow_table[j] = table.entry[size_t(j)];
  const x86::Mem table_mem = f64 ? c.constant(wide_table, sizeof wide_table)
                                 : c.constant(narrow_table, sizeof narrow_table);

  c.for_each_chunk(i.bits, [&](int off, int width) {
    auto v = [&](int n) { return EmitContext::vreg(n, width); };
    const x86::Vec x = v(0), sign = v(1), ax = v(2), exponent = v(3), fraction = v(4), t = v(5),
                   u = v(6), entry = v(7), zero = v(8), result = v(9), m = v(10), w = v(11),
                   daz = v(12), ftz = v(13), denormal = v(14);
    c.mxcsr_bit_mask(daz, 6);
    if (rcp) c.mxcsr_bit_mask(ftz, 15);
    c.a.vmovdqu(x, c.value(i.scalar ? i.src[1] : i.src[0], off));
    c.a.vpxor(zero, zero, zero);
    c.split_float_fields(x, f64, {sign, ax, exponent, fraction, denormal}, t, zero);

    // Segment index and offset r: rcp14 uses 16 fraction bits, rsqrt14 15
    // plus the exponent's parity (odd: x in [2, 4)).
    const int kept = rcp ? 16 : 15;
    c.a.emit(op.shr, t, fraction, Imm(mant - kept));  // kept fraction bits
    c.a.vpand(u, t, k(1023));                         // r
    c.a.emit(op.shr, t, t, Imm(10));                  // segment
    // rsqrt14: v = unbiased exponent + 2M >= 0, so half = floor(e / 2) + M
    // needs no arithmetic qword shift (AVX2 has none).
    const int64_t m_offset = f64 ? 1024 : 128;
    if (!rcp) {
      c.a.emit(op.add, w, exponent, k(uint64_t(2 * m_offset - bias)));
      c.a.vpand(m, w, k(1));  // odd
      c.a.emit(op.add, t, t, t);
      c.a.vpor(t, t, m);
      c.a.emit(op.shr, w, w, Imm(1));  // half
    }
    c.a.lea(x86::rax, table_mem);
    c.a.vpcmpeqd(result, result, result);
    if (f64)
      c.a.vpgatherqq(entry, x86::ptr(x86::rax, t, 3), result);
    else
      c.a.vpgatherdd(entry, x86::ptr(x86::rax, t, 2), result);
    // approx = (value << shift) + (slope << 9) - slope * r, in [2^25, 2^26).
    c.a.vpand(t, entry, k((1ull << value_bits) - 1));
    c.a.emit(op.shl, t, t, Imm(rcp ? 8 : 7));
    c.a.emit(op.shr, entry, entry, Imm(value_bits));
    c.a.emit(op.mul_low, u, entry, u);
    c.a.emit(op.shl, entry, entry, Imm(9));
    c.a.emit(op.add, t, t, entry);
    c.a.emit(op.sub, t, t, u);
    c.a.emit(op.shr, t, t, Imm(9));
    c.a.vpand(t, t, k(0xffff));
    c.a.emit(op.shl, t, t, Imm(mant - 16));  // segment fraction

    const x86::Vec exact = u;  // lanes where the result is a power of two
    c.a.emit(op.cmpeq, exact, fraction, zero);
    if (rcp) {
      const x86::Vec overflow = v(15);
      // out_exp = 2 bias - 1 - e, +1 for a power of two (fraction 0).
      c.a.vmovdqu(result, k(uint64_t(2 * bias - 1)));
      c.a.emit(op.sub, result, result, exponent);
      c.a.emit(op.sub, result, result, exact);
      // Tiny denormal inputs overflow: out_exp >= 2 bias + 1 -> infinity.
      c.a.emit(op.cmpgt, overflow, result, k(uint64_t(2 * bias)));
      c.a.vpandn(t, exact, t);
      // Denormal result (out_exp <= 0): 1.fraction >> (1 - out_exp), or 0 under FTZ.
      c.a.vmovdqu(w, k(1));
      c.a.emit(op.cmpgt, m, w, result);
      c.a.emit(op.sub, w, w, result);
      c.a.vpor(entry, t, k(1ull << mant));
      c.a.emit(op.shr_var, entry, entry, w);
      c.a.vpandn(entry, ftz, entry);
      c.a.emit(op.shl, result, result, Imm(mant));
      c.a.vpor(result, result, t);
      c.a.vpblendvb(result, result, entry, m);
      c.a.vpor(result, result, sign);
      c.a.vpor(w, sign, k(exp_mask));
      c.a.vpblendvb(result, result, w, overflow);
      // Zero, or a denormal under DAZ: infinity of the same sign.
      c.a.vpand(m, denormal, daz);
      c.a.emit(op.cmpeq, entry, ax, zero);
      c.a.vpor(m, m, entry);
      c.a.vpblendvb(result, result, w, m);
      // Infinity: zero of the same sign.
      c.a.emit(op.cmpeq, m, ax, k(exp_mask));
      c.a.vpblendvb(result, result, sign, m);
    } else {
      // A power of 4 (fraction 0, even exponent) gives exactly 2^-n.
      c.a.emit(op.sub, m, zero, m);  // odd as a lane mask
      c.a.vpandn(exact, m, exact);
      c.a.vpandn(t, exact, t);
      c.a.vmovdqu(result, k(uint64_t(bias - 1 + m_offset)));
      c.a.emit(op.sub, result, result, w);
      c.a.emit(op.sub, result, result, exact);
      c.a.emit(op.shl, result, result, Imm(mant));
      c.a.vpor(result, result, t);
      // +Infinity: +0. Negative: the QNaN indefinite.
      c.a.emit(op.cmpeq, m, x, k(exp_mask));
      c.a.vpandn(result, m, result);
      c.a.emit(op.cmpgt, m, zero, x);
      c.a.vpblendvb(result, result, k(sign_bit | exp_mask | (1ull << (mant - 1))), m);
      // Zero, or a denormal under DAZ: infinity of the same sign.
      c.a.vpand(m, denormal, daz);
      c.a.emit(op.cmpeq, entry, ax, zero);
      c.a.vpor(m, m, entry);
      c.a.vpor(w, sign, k(exp_mask));
      c.a.vpblendvb(result, result, w, m);
    }
    // NaN: quieted.
    c.a.emit(op.cmpgt, m, ax, k(exp_mask));
    c.a.vpor(w, x, k(1ull << (mant - 1)));
    c.a.vpblendvb(result, result, w, m);
    // Scalar: element 0 from the approximation, the rest of src0 unchanged.
    if (i.scalar) {
      c.a.vmovdqu(w, c.value(i.src[0]));
      c.a.emit(f64 ? xi::kIdVblendpd : xi::kIdVblendps, result, w, result, Imm(1));
    }
    c.a.vmovdqu(c.value(i.dst, off), result);
  });
}

}  // namespace

bool lower_approx14(EmitContext& c, const ir::Inst& i) {
  if (i.op != Op::kRcp14 && i.op != Op::kRsqrt14) return false;
  lower_approximation(c, i);
  return true;
}

}  // namespace avx512emu::jit
