// Owns the AVX2 lowering of the shuffle, permute, lane-move and width-change
// IR ops: native VEX instructions where AVX2 has the same per-lane
// operation, named fallbacks (table lookup, lane copies, narrowing, element
// loops) where AVX-512 goes cross-lane or has no AVX2 counterpart.
#include <algorithm>
#include <bit>
#include <cstdint>

#include "emit_context.h"

namespace avx512emu::jit {
namespace {

using asmjit::Imm;
using asmjit::InstId;
using ir::Inst;
using ir::Op;
namespace xi = asmjit::x86::Inst;  // instruction ids: xi::kIdVpshufb, ...

constexpr int kLaneBytes = 16;  // the 128-bit lane of the in-lane shuffles

uint64_t width_mask(int bits) { return bits >= 64 ? ~0ull : (1ull << bits) - 1; }
int log2_of(int x) { return std::countr_zero(unsigned(x)); }
x86::Vec vreg(int n, int width) { return EmitContext::vreg(n, width); }

//! `m` resized to `bytes`, for instructions whose memory form has an
//! operand narrower than the register.
x86::Mem sized(x86::Mem m, int bytes) {
  m.setSize(uint32_t(bytes));
  return m;
}

// ---- Native instruction table --------------------------------------------------------

//! Index of an element width in the {1, 2, 4, 8}-byte rows below.
int width_index(int bytes) { return log2_of(bytes); }

//! The VEX instruction that does what `i` does to each 256-bit chunk (each
//! 128-bit lane for the in-lane ops), or 0 when AVX2 has none.
InstId native_id(const Inst& i) {
  static const InstId kUnpackLo[4] = {xi::kIdVpunpcklbw, xi::kIdVpunpcklwd, xi::kIdVpunpckldq,
                                      xi::kIdVpunpcklqdq};
  static const InstId kUnpackHi[4] = {xi::kIdVpunpckhbw, xi::kIdVpunpckhwd, xi::kIdVpunpckhdq,
                                      xi::kIdVpunpckhqdq};
  // [destination width][source width]; 0 where no such extension exists.
  static const InstId kZeroExtend[4][4] = {
      {0, 0, 0, 0},
      {xi::kIdVpmovzxbw, 0, 0, 0},
      {xi::kIdVpmovzxbd, xi::kIdVpmovzxwd, 0, 0},
      {xi::kIdVpmovzxbq, xi::kIdVpmovzxwq, xi::kIdVpmovzxdq, 0}};
  static const InstId kSignExtend[4][4] = {
      {0, 0, 0, 0},
      {xi::kIdVpmovsxbw, 0, 0, 0},
      {xi::kIdVpmovsxbd, xi::kIdVpmovsxwd, 0, 0},
      {xi::kIdVpmovsxbq, xi::kIdVpmovsxwq, xi::kIdVpmovsxdq, 0}};
  const int e = width_index(ir::elem_bytes(i.elem)), e2 = width_index(ir::elem_bytes(i.elem2));
  switch (i.op) {
    case Op::kShufb: return xi::kIdVpshufb;
    case Op::kShufImm: return e == 2 ? InstId(xi::kIdVpshufd) : e == 3 ? InstId(xi::kIdVpermilpd) : 0;
    case Op::kShufWordsLo: return xi::kIdVpshuflw;
    case Op::kShufWordsHi: return xi::kIdVpshufhw;
    case Op::kShuf2Imm: return e == 2 ? InstId(xi::kIdVshufps) : e == 3 ? InstId(xi::kIdVshufpd) : 0;
    case Op::kPermilVar: return e == 2 ? InstId(xi::kIdVpermilps) : e == 3 ? InstId(xi::kIdVpermilpd) : 0;
    case Op::kUnpackLo: return kUnpackLo[e];
    case Op::kUnpackHi: return kUnpackHi[e];
    case Op::kAlignR: return xi::kIdVpalignr;
    case Op::kPerm4x64Imm: return i.elem == ir::Elem::kF64 ? xi::kIdVpermpd : xi::kIdVpermq;
    case Op::kPackSS: return e == 0 ? InstId(xi::kIdVpacksswb) : e == 1 ? InstId(xi::kIdVpackssdw) : 0;
    case Op::kPackUS: return e == 0 ? InstId(xi::kIdVpackuswb) : e == 1 ? InstId(xi::kIdVpackusdw) : 0;
    case Op::kZeroExtend: return kZeroExtend[e][e2];
    case Op::kSignExtend: return kSignExtend[e][e2];
    default: return 0;
  }
}

// ---- Native per-chunk ops ------------------------------------------------------------

bool takes_imm(Op op) {
  switch (op) {
    case Op::kShufImm: case Op::kShufWordsLo: case Op::kShufWordsHi: case Op::kShuf2Imm:
    case Op::kAlignR: case Op::kPerm4x64Imm:
      return true;
    default: return false;
  }
}

//! The imm8 for the chunk at byte `off`. vpermilpd and vshufpd spend one imm
//! bit per qword element across the whole vector, while their VEX forms read
//! bits 0..3 for their own four elements: a chunk gets the bits of its
//! elements. Every other imm applies to each lane alike.
Imm chunk_imm(const Inst& i, int off) {
  const bool bit_per_qword =
      ir::elem_bytes(i.elem) == 8 && (i.op == Op::kShufImm || i.op == Op::kShuf2Imm);
  return Imm((bit_per_qword ? i.imm >> (off / 8) : i.imm) & 0xff);
}

//! Ops whose VEX form, applied per 256-bit chunk, is the AVX-512 operation:
//! the in-lane shuffles and permutes, unpacks, packs and vpermq/vpermpd imm
//! (which is defined per 256-bit half). Unary ops take their immediate.
void lower_chunkwise(EmitContext& c, const Inst& i, InstId id) {
  const bool with_imm = takes_imm(i.op);
  c.for_each_chunk(i.bits, [&](int off, int width) {
    const Imm imm = chunk_imm(i, off);
    const x86::Vec v = vreg(0, width);
    if (i.nsrc == 1) {
      c.a.emit(id, v, c.value(i.src[0], off), imm);
    } else {
      c.a.vmovdqu(v, c.value(i.src[0], off));
      if (with_imm) c.a.emit(id, v, v, c.value(i.src[1], off), imm);
      else c.a.emit(id, v, v, c.value(i.src[1], off));
    }
    c.a.vmovdqu(c.value(i.dst, off), v);
  });
}

//! vpmovzx/sx: each output chunk extends the source bytes that map onto it,
//! straight from memory (the VEX form reads exactly width/ratio bytes).
void lower_extend(EmitContext& c, const Inst& i, InstId id) {
  const int ratio = ir::elem_bytes(i.elem) / ir::elem_bytes(i.elem2);
  c.for_each_chunk(i.bits, [&](int off, int width) {
    const x86::Vec v = vreg(0, width);
    c.a.emit(id, v, sized(c.value(i.src[0], off / ratio), width / ratio));
    c.a.vmovdqu(c.value(i.dst, off), v);
  });
}

// ---- Table lookup: PermIdx and Perm2 ---------------------------------------------------

// Register plan: sub-table results in ymm0..ymm7, the unit index in ymm15,
// the blend selector in ymm14.
constexpr int kIndexReg = 15, kSelectReg = 14;

//! Rewrites element indexes (elements of `eb` bytes, into a table of `count`
//! elements) as indexes of `unit`-byte units: an element index k becomes, in
//! each of its units u, the unit index k * (eb / unit) + u.
void to_unit_indexes(EmitContext& c, const x86::Vec& idx, int eb, int unit, int count) {
  // vpshufb zeroes a byte whose index has bit 7 set, so byte indexes are
  // reduced first; vpermd/vpermilps and the blend-bit shifts ignore high bits.
  if (unit == 1) c.a.vpand(idx, idx, c.splat_constant(uint64_t(count - 1), eb));
  if (eb == unit) return;
  // Scale (eb / unit is 2 here), copy the low unit over the element, then add
  // each unit's number within the element; the scaled index is even, so the
  // byte add never carries.
  c.a.emit(eb == 2 ? xi::kIdVpsllw : xi::kIdVpsllq, idx, idx, Imm(1));
  uint8_t dup[32], add[32];
  for (int j = 0; j < 32; ++j) {
    const int p = j % kLaneBytes, within = p % eb;
    dup[j] = uint8_t(p - within + within % unit);
    add[j] = uint8_t(within % unit == 0 ? within / unit : 0);
  }
  c.a.vpshufb(idx, idx, c.constant(dup, sizeof dup));
  c.a.vpaddb(idx, idx, c.constant(add, sizeof add));
}

//! table_lookup: out[e] = (tables)[idx[e] mod count] for any element width.
//! AVX2 can look up in a register: vpshufb in one 16-byte lane (bytes),
//! vpermd in 32 bytes / vpermilps in 16 bytes (dwords). Indexes become
//! byte or dword unit indexes; every sub-table that size is looked up
//! (vpermd on a 256-bit dword table is the whole native vpermd), then the
//! candidates are merged in a binary tree, level b keyed by the unit-index
//! bit above the sub-table's own bits, moved to the blend's sign bit by a
//! left shift (vpsllw moves each byte's bit into that byte's bit 7: a word
//! shift only carries low-byte bits into the high byte's low bits).
void lower_table_lookup(EmitContext& c, const Inst& i) {
  const int eb = ir::elem_bytes(i.elem);
  const int vbytes = i.bits / 8;
  const int tables = i.op == Op::kPerm2 ? 2 : 1;
  const int count = tables * vbytes / eb;
  const int unit = eb >= 4 ? 4 : 1;
  c.for_each_chunk(i.bits, [&](int off, int width) {
    const x86::Vec idx = vreg(kIndexReg, width), sel = vreg(kSelectReg, width);
    c.a.vmovdqu(idx, c.value(i.src[0], off));
    to_unit_indexes(c, idx, eb, unit, count);
    const int sub_bytes = unit == 1 ? kLaneBytes : width;
    const int subs = tables * vbytes / sub_bytes;
    for (int k = 0; k < subs; ++k) {
      const x86::Vec r = vreg(k, width);
      const int at = k * sub_bytes;  // byte offset in the concatenated tables
      const x86::Mem part = c.value(i.src[1 + at / vbytes], at % vbytes);
      if (unit == 4 && width == 32) {
        c.a.vpermd(r, idx, part);
        continue;
      }
      if (width == 32) c.a.vbroadcasti128(r, part);  // the 16-byte table in both lanes
      else c.a.vmovdqu(r, part);
      if (unit == 1) c.a.vpshufb(r, r, idx);
      else c.a.vpermilps(r, r, idx);
    }
    const int sub_bits = log2_of(sub_bytes / unit);
    for (int level = 0, live = subs; live > 1; ++level, live /= 2) {
      const int shift = 8 * unit - 1 - (sub_bits + level);
      c.a.emit(unit == 1 ? xi::kIdVpsllw : xi::kIdVpslld, sel, idx, Imm(shift));
      for (int j = 0; j < live / 2; ++j) {
        const x86::Vec r = vreg(j, width), lo = vreg(2 * j, width), hi = vreg(2 * j + 1, width);
        if (unit == 1) c.a.vpblendvb(r, lo, hi, sel);
        else c.a.vblendvps(r, lo, hi, sel);
      }
    }
    c.a.vmovdqu(c.value(i.dst, off), vreg(0, width));
  });
}

// ---- 128-bit lane moves -----------------------------------------------------------------

//! Builds each 256-bit chunk of the result from two 16-byte memory lanes:
//! vmovdqu for the low lane, vinserti128 for the high one.
void store_lane_pairs(EmitContext& c, const Inst& i,
                      const std::function<x86::Mem(int lane)>& lane_source) {
  c.for_each_chunk(i.bits, [&](int off, int width) {
    const int lane = off / kLaneBytes;
    c.a.vmovdqu(x86::xmm0, lane_source(lane));
    if (width == 32) c.a.vinserti128(x86::ymm0, x86::ymm0, lane_source(lane + 1), 1);
    c.a.vmovdqu(c.value(i.dst, off), vreg(0, width));
  });
}

//! vshuf{i,f}{32x4,64x2}: lanes of the low half from src0, of the high half
//! from src1, lane j chosen by imm field j (1 bit wide at 256 bits, 2 at 512).
void lower_shuf_lanes(EmitContext& c, const Inst& i) {
  const int lanes = i.bits / 128;
  const int field = log2_of(lanes);
  store_lane_pairs(c, i, [&](int j) {
    const ir::ValueId from = j < lanes / 2 ? i.src[0] : i.src[1];
    const int sel = int((i.imm >> (field * j)) & (lanes - 1));
    return c.value(from, sel * kLaneBytes);
  });
}

//! valign_by_lanes: the result is bytes sb.. of (src0:src1), src1 low, with
//! sb = (imm mod n) * eb a translation-time constant. Each 16-byte result
//! lane is one vpalignr of the two adjacent 16-byte lanes of that
//! concatenation it straddles (a plain copy when sb is lane aligned).
void lower_valign(EmitContext& c, const Inst& i) {
  const int eb = ir::elem_bytes(i.elem);
  const int vbytes = i.bits / 8;
  const int sb = int(i.imm & (vbytes / eb - 1)) * eb;
  auto concat_lane = [&](int m) {
    return m * kLaneBytes < vbytes ? c.value(i.src[1], m * kLaneBytes)
                                   : c.value(i.src[0], m * kLaneBytes - vbytes);
  };
  for (int k = 0; k < vbytes / kLaneBytes; ++k) {
    const int start = k * kLaneBytes + sb;
    const int m = start / kLaneBytes, r = start % kLaneBytes;
    if (r == 0) {
      c.a.vmovdqu(x86::xmm0, concat_lane(m));
    } else {
      c.a.vmovdqu(x86::xmm0, concat_lane(m + 1));
      c.a.vpalignr(x86::xmm0, x86::xmm0, concat_lane(m), r);
    }
    c.a.vmovdqu(c.value(i.dst, k * kLaneBytes), x86::xmm0);
  }
}

//! vextract*: one lane as wide as the result.
void lower_extract_lane(EmitContext& c, const Inst& i) {
  const int lane_bytes = i.bits / 8;
  const x86::Vec v = vreg(0, lane_bytes);
  c.a.vmovdqu(v, c.value(i.src[0], int(i.imm) * lane_bytes));
  c.a.vmovdqu(c.value(i.dst), v);
}

//! vinsert*: src0 with lane imm replaced by src1 (lane width = src1's bits).
//! A chunk inside the lane comes from src1; a 16-byte lane inside a chunk
//! goes in with vinserti128.
void lower_insert_lane(EmitContext& c, const Inst& i) {
  const int lane_bytes = c.f.values[i.src[1]].bits / 8;
  const int lane_off = int(i.imm) * lane_bytes;
  c.for_each_chunk(i.bits, [&](int off, int width) {
    const x86::Vec v = vreg(0, width);
    if (lane_off <= off && off + width <= lane_off + lane_bytes) {
      c.a.vmovdqu(v, c.value(i.src[1], off - lane_off));
    } else {
      c.a.vmovdqu(v, c.value(i.src[0], off));
      if (off <= lane_off && lane_off + lane_bytes <= off + width)
        c.a.vinserti128(v, v, c.value(i.src[1]), (lane_off - off) / kLaneBytes);
    }
    c.a.vmovdqu(c.value(i.dst, off), v);
  });
}

//! vpbroadcast*, vbroadcast{ss,sd,*x2}: the low `imm` bytes of src0 repeated,
//! broadcast straight from the value's slot.
void lower_broadcast_elem(EmitContext& c, const Inst& i) {
  const int block = int(i.imm);
  const x86::Vec v = vreg(0, i.bits == 128 ? 16 : 32);
  const x86::Mem src = sized(c.value(i.src[0]), block);
  switch (block) {
    case 1: c.a.vpbroadcastb(v, src); break;
    case 2: c.a.vpbroadcastw(v, src); break;
    case 4: c.a.vpbroadcastd(v, src); break;
    case 8: c.a.vpbroadcastq(v, src); break;
    case 16:
      if (v.size() == 16) c.a.vmovdqu(v, src);
      else c.a.vbroadcasti128(v, src);
      break;
    default: c.a.vmovdqu(v, src); break;  // 32: the block is a whole chunk
  }
  c.for_each_chunk(i.bits, [&](int off, int) { c.a.vmovdqu(c.value(i.dst, off), v); });
}

// ---- Compress and expand -------------------------------------------------------------------

//! GPR of `bytes` width (1, 2, 4, 8).
x86::Gp gpr_of(const x86::Gp& r, int bytes) {
  switch (bytes) {
    case 1: return r.r8();
    case 2: return r.r16();
    case 4: return r.r32();
    default: return r.r64();
  }
}

//! Zeroes the first `bytes` (16, 32 or 64) of the result.
void zero_result(EmitContext& c, const Inst& i, int bytes) {
  c.a.vpxor(x86::xmm15, x86::xmm15, x86::xmm15);
  c.for_each_chunk(bytes * 8, [&](int off, int width) { c.a.vmovdqu(c.value(i.dst, off), vreg(15, width)); });
}

//! Dword permutations that pack the enabled lanes of a 256-bit chunk to
//! its bottom, one 8-byte row of vpermd indices per mask value: 256 rows
//! for 8 dword lanes, 16 rows for 4 qword lanes (a qword is a dword pair).
//! Unused index bytes are 0; compress_dwords_qwords zeroes those lanes.
struct CompressTable {
  uint8_t row[256][8] = {};
  constexpr explicit CompressTable(int eb) {
    const int lanes = 32 / eb, per = eb / 4;
    for (int m = 0; m < (1 << lanes); ++m) {
      int n = 0;
      for (int l = 0; l < lanes; ++l)
        if (m >> l & 1)
          for (int d = 0; d < per; ++d) row[m][n++] = uint8_t(l * per + d);
    }
  }
};
constexpr CompressTable kCompressDwords(4), kCompressQwords(8);
//! Dword lane numbers as element numbers, for the lanes-below-count test.
constexpr int32_t kDwordLane[8] = {0, 1, 2, 3, 4, 5, 6, 7};
constexpr int32_t kQwordLane[8] = {0, 0, 1, 1, 2, 2, 3, 3};

//! Compress of dwords and qwords, a 256-bit chunk at a time, in registers:
//! vpermd by the table row of the chunk's mask bits packs its enabled
//! elements to the bottom and the lanes past their count are zeroed. A
//! 512-bit compress then joins the chunks: the high chunk's packed elements
//! are rotated up by the low chunk's count (vpermd by lane - count, modulo
//! 8), the low half takes them above that count and the high half keeps the
//! ones that wrapped. The result is written with whole-chunk stores, so a
//! later load of it forwards from them. Clobbers rax, rcx, r8, ymm1-ymm6.
void compress_dwords_qwords(EmitContext& c, const Inst& i) {
  const int eb = ir::elem_bytes(i.elem);
  const int lanes = (i.bits == 128 ? 16 : 32) / eb;  // mask bits per chunk
  const CompressTable& table = eb == 4 ? kCompressDwords : kCompressQwords;
  c.a.lea(x86::r8, c.constant(table.row, size_t(8) << (32 / eb)));
  const x86::Mem lane = c.constant(eb == 4 ? kDwordLane : kQwordLane, sizeof kDwordLane);
  const x86::Ymm lo = x86::ymm2, hi = x86::ymm4, below = x86::ymm3, rot = x86::ymm6;
  for (int off = 0; off < std::max(i.bits / 8, 32); off += 32) {
    const x86::Ymm packed = off ? hi : lo;
    c.a.mov(x86::rax, c.value(i.src[1]));
    if (off) c.a.shr(x86::rax, off / eb);
    c.a.and_(x86::eax, (1 << lanes) - 1);
    c.a.vpmovzxbd(x86::ymm1, x86::ptr(x86::r8, x86::rax, 3, 0, 8));
    c.a.vpermd(packed, x86::ymm1, c.value(i.src[0], off));
    c.a.popcnt(x86::ecx, x86::eax);
    c.a.vmovd(x86::xmm5, x86::ecx);
    c.a.vpbroadcastd(x86::ymm5, x86::xmm5);
    c.a.vpcmpgtd(x86::ymm5, x86::ymm5, lane);  // lane's element < count
    c.a.vpand(packed, packed, x86::ymm5);
    if (!off) {
      c.a.vmovdqa(below, x86::ymm5);             // dword lanes below the low chunk's count
      if (eb == 8) c.a.add(x86::ecx, x86::ecx);  // that count in dwords
      c.a.vmovd(x86::Xmm(rot.id()), x86::ecx);
    }
  }
  if (i.bits == 512) {
    c.a.vpbroadcastd(rot, x86::Xmm(rot.id()));
    c.a.vmovdqu(x86::ymm1, c.constant(kDwordLane, sizeof kDwordLane));
    c.a.vpsubd(rot, x86::ymm1, rot);  // lane - count: vpermd reads its low 3 bits
    c.a.vpermd(hi, rot, hi);
    c.a.vpblendvb(lo, hi, lo, below);
    c.a.vpand(hi, hi, below);
    c.a.vmovdqu(c.value(i.dst, 32), hi);
  }
  c.a.vmovdqu(c.value(i.dst), lo);
}

//! compress_expand_scalar: AVX2 has no compress/expand, and any vector form
//! needs a table indexed by the mask (compress_dwords_qwords has one). A GPR loop over the set mask
//! bits (tzcnt/blsr) moves one element per enabled position: to the next packed slot (compress) or
//! from it (expand). The rest of the result is zero.
void lower_compress_expand(EmitContext& c, const Inst& i) {
  const int eb = ir::elem_bytes(i.elem);
  if (i.op == Op::kCompress && eb >= 4) {
    compress_dwords_qwords(c, i);
    return;
  }
  const int count = i.bits / 8 / eb;
  const int shift = log2_of(eb);
  zero_result(c, i, i.bits / 8);
  asmjit::Label loop = c.a.newLabel(), done = c.a.newLabel();
  c.a.mov(x86::rcx, c.value(i.src[1]));
  if (count < 64) {
    c.a.mov(x86::rdx, width_mask(count));
    c.a.and_(x86::rcx, x86::rdx);
  }
  c.a.lea(x86::r8, c.value(i.src[0]));
  c.a.lea(x86::r9, c.value(i.dst));
  c.a.xor_(x86::r10d, x86::r10d);  // packed position
  c.a.bind(loop);
  c.a.test(x86::rcx, x86::rcx);
  c.a.jz(done);
  c.a.tzcnt(x86::rdx, x86::rcx);  // enabled position
  const x86::Gp r = gpr_of(x86::rax, eb);
  const bool compress = i.op == Op::kCompress;
  c.a.mov(r, x86::ptr(x86::r8, compress ? x86::rdx : x86::r10, shift, 0, eb));
  c.a.mov(x86::ptr(x86::r9, compress ? x86::r10 : x86::rdx, shift, 0, eb), r);
  c.a.inc(x86::r10);
  c.a.blsr(x86::rcx, x86::rcx);
  c.a.jmp(loop);
  c.a.bind(done);
}

// ---- Narrowing -------------------------------------------------------------------------------

//! min/max of elements of `bytes` width with a constant bound: the AVX2
//! instruction for words and dwords; qwords have none (min_max_q64 below).
struct MinMaxIds {
  InstId min_s, max_s, min_u;
};
MinMaxIds min_max_ids(int bytes) {
  switch (bytes) {
    case 2: return {xi::kIdVpminsw, xi::kIdVpmaxsw, xi::kIdVpminuw};
    case 4: return {xi::kIdVpminsd, xi::kIdVpmaxsd, xi::kIdVpminud};
    default: return {0, 0, 0};
  }
}

//! min_max_q64: AVX2 has no vpmin/vpmax on qwords; vpcmpgtq picks the
//! elements past `bound` and vblendvpd replaces them. An unsigned compare
//! flips the sign bit of both sides first. Clobbers ymm1..ymm3.
void min_max_q64(EmitContext& c, const x86::Vec& v, uint64_t bound, bool is_min, bool is_signed) {
  const x86::Vec biased = vreg(1, v.size()), past = vreg(2, v.size()), flipped = vreg(3, v.size());
  const uint64_t flip = is_signed ? 0 : 1ull << 63;
  c.a.vmovdqu(biased, c.splat_constant(bound ^ flip, 8));
  x86::Vec key = v;
  if (flip) {
    c.a.vpxor(flipped, v, c.splat_constant(flip, 8));
    key = flipped;
  }
  if (is_min) c.a.vpcmpgtq(past, key, biased);  // v > bound
  else c.a.vpcmpgtq(past, biased, key);         // v < bound
  c.a.vblendvpd(v, v, c.splat_constant(bound, 8), past);
}

//! Clamps the source elements (elem2) of `v` to the range of the narrow
//! element (elem): signed for TruncSatS, unsigned for TruncSatU.
void saturate(EmitContext& c, const Inst& i, const x86::Vec& v) {
  const int sb = ir::elem_bytes(i.elem2), nbits = 8 * ir::elem_bytes(i.elem);
  const MinMaxIds ids = min_max_ids(sb);
  const uint64_t umax = width_mask(nbits);
  const uint64_t smax = umax >> 1, smin = ~smax & width_mask(8 * sb);
  if (i.op == Op::kTruncSatU) {
    if (ids.min_u) c.a.emit(ids.min_u, v, v, c.splat_constant(umax, sb));
    else min_max_q64(c, v, umax, /*is_min=*/true, /*is_signed=*/false);
    return;
  }
  if (ids.min_s) {
    c.a.emit(ids.min_s, v, v, c.splat_constant(smax, sb));
    c.a.emit(ids.max_s, v, v, c.splat_constant(smin, sb));
  } else {
    min_max_q64(c, v, smax, /*is_min=*/true, /*is_signed=*/true);
    min_max_q64(c, v, smin, /*is_min=*/false, /*is_signed=*/true);
  }
}

//! narrow_by_lanes: AVX2 has no vpmov* narrowing. Per source chunk:
//! saturate if asked, and gather the low bytes of each element with vpshufb,
//! lane 0's to the front of lane 0 and lane 1's right after where lane 0's
//! end, so that one vpor of the two lanes packs the chunk's result. The
//! chunks' results are joined in a register and the result is written with
//! whole-register stores, zeroes above it included: a consumer's full-width
//! load of it then forwards from one store instead of stalling on several
//! narrow ones.
void lower_narrow(EmitContext& c, const Inst& i) {
  const int src_bits = c.f.values[i.src[0]].bits;
  // Chunk 0 packs into ymm0, chunk 1 into ymm4 (saturate clobbers ymm1-3).
  const NarrowRegs r{{x86::ymm0, x86::ymm4}, x86::xmm5};
  c.for_each_chunk(src_bits, [&](int off, int width) {
    c.a.vmovdqu(EmitContext::vreg(r.chunk[off / 32].id(), width), c.value(i.src[0], off));
  });
  emit_narrow(c, i, r);
  // ymm0 holds the result zero-extended to 256 bits (VEX writes of xmm0
  // clear the rest); the value is at least 128 bits wide.
  const int bytes = i.bits / 8;
  c.a.vmovdqu(c.value(i.dst), bytes >= 32 ? x86::Vec(x86::ymm0) : x86::Vec(x86::xmm0));
  if (bytes > 32) {
    c.a.vpxor(x86::xmm15, x86::xmm15, x86::xmm15);
    c.a.vmovdqu(c.value(i.dst, 32), x86::ymm15);
  }
}

}  // namespace

void emit_narrow(EmitContext& c, const Inst& i, const NarrowRegs& r) {
  const int nb = ir::elem_bytes(i.elem), sb = ir::elem_bytes(i.elem2);
  const int ratio = sb / nb;
  const int src_bits = c.f.values[i.src[0]].bits;
  const int lane_out = kLaneBytes / ratio;  // packed bytes per source lane
  uint8_t gather[32];
  for (int j = 0; j < 32; ++j) {
    const int p = j % kLaneBytes - (j < kLaneBytes ? 0 : lane_out);  // place in the lane's output
    gather[j] = p >= 0 && p < lane_out ? uint8_t(p / nb * sb + p % nb) : 0x80;
  }
  c.for_each_chunk(src_bits, [&](int off, int width) {
    const x86::Vec v = EmitContext::vreg(r.chunk[off / 32].id(), width);
    if (i.op != Op::kTruncate) saturate(c, i, v);
    c.a.vpshufb(v, v, c.constant(gather, sizeof gather));
    if (width == 32) {
      c.a.vextracti128(r.tmp, v.ymm(), 1);
      c.a.vpor(v.xmm(), v.xmm(), r.tmp);
    }
  });
  const int chunk_out = 2 * lane_out;  // bytes one 256-bit chunk packs to
  const x86::Ymm out = r.chunk[0];
  const x86::Xmm high = r.chunk[1].xmm();
  if (src_bits > 256) {
    if (chunk_out == 16)
      c.a.vinserti128(out, out, high, 1);
    else if (chunk_out == 8)
      c.a.vpunpcklqdq(out.xmm(), out.xmm(), high);
    else
      c.a.vpunpckldq(out.xmm(), out.xmm(), high);
  }
}

bool is_chunkwise_shuffle(Op op) {
  switch (op) {
    case Op::kShufb: case Op::kShufImm: case Op::kShufWordsLo: case Op::kShufWordsHi:
    case Op::kShuf2Imm: case Op::kPermilVar: case Op::kUnpackLo: case Op::kUnpackHi:
    case Op::kAlignR: case Op::kPerm4x64Imm: case Op::kPackSS: case Op::kPackUS:
      return true;
    default:
      return false;
  }
}

InstId chunkwise_shuffle_id(const Inst& i) {
  return is_chunkwise_shuffle(i.op) ? native_id(i) : 0;
}

bool chunkwise_shuffle_imm(const Inst& i, int off, Imm& imm) {
  imm = chunk_imm(i, off);
  return takes_imm(i.op);
}

bool lower_shuffle(EmitContext& c, const ir::Inst& i) {
  switch (i.op) {
    case Op::kShufb: case Op::kShufImm: case Op::kShufWordsLo: case Op::kShufWordsHi:
    case Op::kShuf2Imm: case Op::kPermilVar: case Op::kUnpackLo: case Op::kUnpackHi:
    case Op::kAlignR: case Op::kPerm4x64Imm: case Op::kPackSS: case Op::kPackUS: {
      const InstId id = native_id(i);
      if (id == 0) return false;  // no such IR form comes from the table
      lower_chunkwise(c, i, id);
      return true;
    }
    case Op::kZeroExtend: case Op::kSignExtend: {
      const InstId id = native_id(i);
      if (id == 0) return false;
      lower_extend(c, i, id);
      return true;
    }
    case Op::kPermIdx: case Op::kPerm2: lower_table_lookup(c, i); return true;
    case Op::kShufLanes: lower_shuf_lanes(c, i); return true;
    case Op::kValign: lower_valign(c, i); return true;
    case Op::kExtractLane: lower_extract_lane(c, i); return true;
    case Op::kInsertLane: lower_insert_lane(c, i); return true;
    case Op::kBroadcastElem: lower_broadcast_elem(c, i); return true;
    case Op::kCompress: case Op::kExpand: lower_compress_expand(c, i); return true;
    case Op::kTruncate: case Op::kTruncSatS: case Op::kTruncSatU: lower_narrow(c, i); return true;
    default: return false;
  }
}

}  // namespace avx512emu::jit
