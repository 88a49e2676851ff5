// Owns the AVX2 lowering of the per-element bit counts (Lzcnt, Popcnt) and of
// Conflict (vpconflict): AVX2 has none of them.
#include <bit>

#include "emit_context.h"

namespace avx512emu::jit {
namespace {

using asmjit::Imm;
using asmjit::InstId;
using ir::Inst;
using ir::Op;
namespace xi = asmjit::x86::Inst;

x86::Vec vreg(int n, int width) {
  return EmitContext::vreg(n, width);
}

//! nibble_ladder: counts each 4-bit nibble with a vpshufb table, then doubles
//! the field width (8, 16, 32, 64 bits) up to the element width. Each step
//! combines the counts of a field's high and low halves:
//! - Popcnt: high + low;
//! - Lzcnt: high, plus low when the high half is all zeros (exactly when its
//!   count equals the half width).
//! The counts never exceed 64, so each fits the low half of its field and
//! every step is exact integer arithmetic.
void lower_bit_count(EmitContext& c, const Inst& i) {
  static const uint8_t kPopcnt4[16] = {0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4};
  static const uint8_t kLzcnt4[16] = {4, 3, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0};
  static const InstId kShr[4] = {0, xi::kIdVpsrlw, xi::kIdVpsrld, xi::kIdVpsrlq};
  static const InstId kCmpEq[4] = {xi::kIdVpcmpeqb, xi::kIdVpcmpeqw, xi::kIdVpcmpeqd,
                                   xi::kIdVpcmpeqq};
  static const InstId kAdd[4] = {xi::kIdVpaddb, xi::kIdVpaddw, xi::kIdVpaddd, xi::kIdVpaddq};
  const bool leading_zeros = i.op == Op::kLzcnt;
  // The table is chosen through a pointer: indexing the conditional
  // expression directly makes gcc 12's UBSan (-fPIC) report a bogus index -15.
  const uint8_t* const nibble_counts = leading_zeros ? kLzcnt4 : kPopcnt4;
  uint8_t table[32];
  for (int j = 0; j < 32; ++j) table[j] = nibble_counts[j % 16];
  const int eb = ir::elem_bytes(i.elem);
  c.for_each_chunk(i.bits, [&](int off, int width) {
    const x86::Vec r = vreg(0, width), lo = vreg(1, width), hi = vreg(2, width), t = vreg(3, width),
                   nibble = vreg(4, width);
    c.a.vmovdqu(nibble, c.splat_constant(0x0f, 1));
    c.a.vmovdqu(r, c.value(i.src[0], off));
    c.a.vpand(lo, r, nibble);
    c.a.vpsrlw(hi, r, Imm(4));
    c.a.vpand(hi, hi, nibble);
    c.a.vmovdqu(t, c.constant(table, sizeof table));
    c.a.vpshufb(lo, t, lo);
    c.a.vpshufb(hi, t, hi);
    for (int field = 1; field <= eb; field *= 2) {
      const int w = std::countr_zero(unsigned(field));  // row in the tables above
      const int half_bits = field * 4;
      if (field > 1) {  // split the previous level's counts into this field's halves
        c.a.emit(kShr[w], hi, r, Imm(half_bits));
        c.a.vpand(lo, r, c.splat_constant((1ull << half_bits) - 1, field));
      }
      if (leading_zeros) {
        c.a.emit(kCmpEq[w], t, hi, c.splat_constant(uint64_t(half_bits), field));
        c.a.vpand(lo, lo, t);
      }
      c.a.emit(kAdd[w], r, hi, lo);
    }
    c.a.vmovdqu(c.value(i.dst, off), r);
  });
}

//! conflict_scalar: vpconflict compares every pair of elements across the
//! whole vector, which AVX2 has no instruction for. A GPR loop sets bit j of
//! element i for each earlier element j equal to it: at most 16 elements,
//! so at most 120 compares.
void lower_conflict(EmitContext& c, const Inst& i) {
  const int eb = ir::elem_bytes(i.elem);
  const int count = i.bits / 8 / eb;
  const int shift = eb == 8 ? 3 : 2;
  const x86::Gp value = eb == 8 ? x86::Gp(x86::rax) : x86::Gp(x86::eax);
  const x86::Gp bits = eb == 8 ? x86::Gp(x86::rdx) : x86::Gp(x86::edx);
  asmjit::Label outer = c.a.newLabel(), inner = c.a.newLabel(), next = c.a.newLabel(),
                store = c.a.newLabel();
  c.a.lea(x86::r8, c.value(i.src[0]));
  c.a.lea(x86::r9, c.value(i.dst));
  c.a.xor_(x86::r10d, x86::r10d);  // element i
  c.a.bind(outer);
  c.a.mov(value, x86::ptr(x86::r8, x86::r10, shift, 0, eb));
  c.a.xor_(x86::edx, x86::edx);
  c.a.xor_(x86::ecx, x86::ecx);  // element j < i
  c.a.bind(inner);
  c.a.cmp(x86::rcx, x86::r10);
  c.a.jae(store);
  c.a.cmp(x86::ptr(x86::r8, x86::rcx, shift, 0, eb), value);
  c.a.jne(next);
  c.a.bts(x86::rdx, x86::rcx);
  c.a.bind(next);
  c.a.inc(x86::rcx);
  c.a.jmp(inner);
  c.a.bind(store);
  c.a.mov(x86::ptr(x86::r9, x86::r10, shift, 0, eb), bits);
  c.a.inc(x86::r10);
  c.a.cmp(x86::r10, count);
  c.a.jb(outer);
}

//! shuffle_bits: vpshufbitqmb selects one bit per byte with a per-byte
//! count, which AVX2 cannot shift by. vpshufb fetches, within each qword,
//! the byte that holds the selected bit (index bits 5:3 plus the qword's
//! base byte); a second vpshufb turns index bits 2:0 into a one-bit mask;
//! vpand/vpcmpeqb/vpmovmskb collect "bit set" per byte.
void lower_shuffle_bits(EmitContext& c, const Inst& i) {
  uint8_t qword_base[32], bit_of[32];
  for (int j = 0; j < 32; ++j) {
    qword_base[j] = uint8_t(j & 8);
    bit_of[j] = uint8_t(1u << (j & 7));
  }
  c.a.xor_(x86::r8d, x86::r8d);
  c.for_each_chunk(i.bits, [&](int off, int width) {
    const x86::Vec a = vreg(0, width), idx = vreg(1, width), sel = vreg(2, width),
                   bit = vreg(3, width), t = vreg(4, width);
    c.a.vmovdqu(a, c.value(i.src[0], off));
    c.a.vmovdqu(idx, c.value(i.src[1], off));
    c.a.vpsrlw(sel, idx, Imm(3));
    c.a.vpand(sel, sel, c.splat_constant(7, 1));
    c.a.vpor(sel, sel, c.constant(qword_base, sizeof qword_base));
    c.a.vpshufb(sel, a, sel);
    c.a.vpand(bit, idx, c.splat_constant(7, 1));
    c.a.vmovdqu(t, c.constant(bit_of, sizeof bit_of));
    c.a.vpshufb(bit, t, bit);
    c.a.vpand(sel, sel, bit);
    c.a.vpcmpeqb(sel, sel, bit);
    c.a.vpmovmskb(x86::eax, sel);
    if (off) c.a.shl(x86::rax, off);
    c.a.or_(x86::r8, x86::rax);
  });
  c.a.mov(c.value(i.dst), x86::r8);
}

}  // namespace

bool lower_bitcount(EmitContext& c, const ir::Inst& i) {
  switch (i.op) {
    case Op::kLzcnt:
    case Op::kPopcnt:
      lower_bit_count(c, i);
      return true;
    case Op::kConflict:
      lower_conflict(c, i);
      return true;
    case Op::kShufBitQ:
      lower_shuffle_bits(c, i);
      return true;
    default:
      return false;
  }
}

}  // namespace avx512emu::jit
