// Owns the reference semantics of the shuffle, permute, lane-move and
// width-change IR ops: plain per-element loops written from the Intel SDM.
#include <algorithm>
#include <bit>

#include "interpreter.h"

namespace avx512emu::interp {
namespace {

using ir::Inst;
using ir::Op;

constexpr int kLaneBytes = 16;  // the 128-bit lane of the in-lane shuffles

uint64_t width_mask(int bits) {
  return bits >= 64 ? ~0ull : (1ull << bits) - 1;
}

// ---- Element access ------------------------------------------------------------------

//! Element `e` of `eb` bytes (1, 2, 4 or 8), zero-extended.
uint64_t elem_u(const uint8_t* v, int eb, int e) {
  uint64_t x = 0;
  std::memcpy(&x, v + e * eb, eb);
  return x;
}
//! Element `e` of `eb` bytes, sign-extended.
int64_t elem_s(const uint8_t* v, int eb, int e) {
  const int shift = 64 - 8 * eb;
  return int64_t(elem_u(v, eb, e) << shift) >> shift;
}
void set_elem(uint8_t* v, int eb, int e, uint64_t x) {
  std::memcpy(v + e * eb, &x, eb);
}

//! Bits of value `v`. The IR states some widths only through a source
//! value's width (InsertLane's lane, the narrowing source).
int value_bits(const Frame& fr, ir::ValueId v) {
  return fr.function->values[v].bits;
}

//! Every op below computes into a local result and then writes it to its
//! slot, so a result never aliases a source that is still being read.
struct Result {
  alignas(64) uint8_t bytes[64] = {};
  void store(Frame& fr, const Inst& i) const { std::memcpy(fr.bytes(i.dst), bytes, 64); }
};

// ---- In-lane shuffles ------------------------------------------------------------------

//! vpshufb: per 128-bit lane, byte j = a[idx & 15] of the same lane, or 0
//! when bit 7 of the index byte is set.
void exec_shufb(const Inst& i, Frame& fr, Result& r) {
  const uint8_t* a = fr.bytes(i.src[0]);
  const uint8_t* idx = fr.bytes(i.src[1]);
  for (int j = 0; j < i.bits / 8; ++j) {
    const int lane = j / kLaneBytes * kLaneBytes;
    r.bytes[j] = (idx[j] & 0x80) ? 0 : a[lane + (idx[j] & 15)];
  }
}

//! vpshufd/vpermilps imm: per 128-bit lane, dword j = dword (imm >> 2j) & 3
//! of the lane. vpermilpd imm (qwords): element e = element (imm >> e) & 1
//! of its lane, one imm bit per element of the whole vector.
void exec_shuf_imm(const Inst& i, Frame& fr, Result& r) {
  const uint8_t* a = fr.bytes(i.src[0]);
  const int eb = ir::elem_bytes(i.elem);
  for (int e = 0; e < elem_count(i); ++e) {
    const int per_lane = kLaneBytes / eb, lane = e / per_lane * per_lane;
    const int sel = eb == 8 ? int((i.imm >> e) & 1) : int((i.imm >> (2 * (e % 4))) & 3);
    set_elem(r.bytes, eb, e, elem_u(a, eb, lane + sel));
  }
}

//! vpshuflw/vpshufhw: per 128-bit lane, the low (or high) four words are
//! words (imm >> 2j) & 3 of that half; the other four are copied.
void exec_shuf_words(const Inst& i, Frame& fr, Result& r) {
  const uint8_t* a = fr.bytes(i.src[0]);
  const int shuffled = i.op == Op::kShufWordsHi ? 4 : 0;
  for (int e = 0; e < i.bits / 16; ++e) {
    const int lane = e / 8 * 8, k = e % 8;
    const bool moves = k >= shuffled && k < shuffled + 4;
    const int from = moves ? lane + shuffled + int((i.imm >> (2 * (k - shuffled))) & 3) : e;
    set_elem(r.bytes, 2, e, elem_u(a, 2, from));
  }
}

//! vshufps: per 128-bit lane, dwords 0-1 from a and 2-3 from b, dword j
//! being element (imm >> 2j) & 3 of that source's lane. vshufpd: per lane,
//! qword 0 from a and qword 1 from b, element e picking (imm >> e) & 1.
void exec_shuf2_imm(const Inst& i, Frame& fr, Result& r) {
  const int eb = ir::elem_bytes(i.elem), per_lane = kLaneBytes / eb;
  for (int e = 0; e < elem_count(i); ++e) {
    const int lane = e / per_lane * per_lane, k = e % per_lane;
    const ir::ValueId from = k < per_lane / 2 ? i.src[0] : i.src[1];
    const int sel = eb == 8 ? int((i.imm >> e) & 1) : int((i.imm >> (2 * k)) & 3);
    set_elem(r.bytes, eb, e, elem_u(fr.bytes(from), eb, lane + sel));
  }
}

//! vpermilps/pd by vector: per 128-bit lane, element e = element idx[e] of
//! a's lane, idx being bits 1:0 of the dword (ps) or bit 1 of the qword (pd).
void exec_permil_var(const Inst& i, Frame& fr, Result& r) {
  const int eb = ir::elem_bytes(i.elem), per_lane = kLaneBytes / eb;
  for (int e = 0; e < elem_count(i); ++e) {
    const uint64_t idx = elem_u(fr.bytes(i.src[1]), eb, e);
    const int sel = eb == 8 ? int((idx >> 1) & 1) : int(idx & 3);
    set_elem(r.bytes, eb, e, elem_u(fr.bytes(i.src[0]), eb, e / per_lane * per_lane + sel));
  }
}

//! vpunpckl/h: per 128-bit lane, the low (or high) half of each source's
//! elements interleaved, a first.
void exec_unpack(const Inst& i, Frame& fr, Result& r) {
  const int eb = ir::elem_bytes(i.elem);
  const int per_lane = kLaneBytes / eb;
  const int half = i.op == Op::kUnpackHi ? per_lane / 2 : 0;
  for (int e = 0; e < elem_count(i); ++e) {
    const int lane = e / per_lane * per_lane;
    const int k = e % per_lane;
    const ir::ValueId from = (k & 1) ? i.src[1] : i.src[0];
    set_elem(r.bytes, eb, e, elem_u(fr.bytes(from), eb, lane + half + k / 2));
  }
}

//! vpalignr: per 128-bit lane, bytes imm.. of the 32-byte (a_lane:b_lane),
//! a high; bytes past the pair are 0.
void exec_alignr(const Inst& i, Frame& fr, Result& r) {
  const uint8_t* a = fr.bytes(i.src[0]);
  const uint8_t* b = fr.bytes(i.src[1]);
  for (int j = 0; j < i.bits / 8; ++j) {
    const int lane = j / kLaneBytes * kLaneBytes;
    const int64_t k = j % kLaneBytes + i.imm;
    r.bytes[j] = k < 16 ? b[lane + k] : k < 32 ? a[lane + k - 16] : 0;
  }
}

// ---- Cross-lane permutes ---------------------------------------------------------------

//! vperm{b,w,d,q,ps,pd}: out[e] = table[idx[e] mod n] over the whole vector.
void exec_perm_idx(const Inst& i, Frame& fr, Result& r) {
  const int eb = ir::elem_bytes(i.elem);
  const int n = elem_count(i);
  for (int e = 0; e < n; ++e) {
    const int k = int(elem_u(fr.bytes(i.src[0]), eb, e) & uint64_t(n - 1));
    set_elem(r.bytes, eb, e, elem_u(fr.bytes(i.src[1]), eb, k));
  }
}

//! vpermt2/vpermi2: out[e] = (a:b)[idx[e] mod 2n], a holding elements 0..n-1.
void exec_perm2(const Inst& i, Frame& fr, Result& r) {
  const int eb = ir::elem_bytes(i.elem);
  const int n = elem_count(i);
  for (int e = 0; e < n; ++e) {
    const int k = int(elem_u(fr.bytes(i.src[0]), eb, e) & uint64_t(2 * n - 1));
    const ir::ValueId table = k < n ? i.src[1] : i.src[2];
    set_elem(r.bytes, eb, e, elem_u(fr.bytes(table), eb, k % n));
  }
}

//! vpermq/vpermpd imm: per 256-bit half, qword j = qword (imm >> 2j) & 3.
void exec_perm4x64(const Inst& i, Frame& fr, Result& r) {
  for (int e = 0; e < i.bits / 64; ++e) {
    const int half = e / 4 * 4;
    set_elem(r.bytes, 8, e,
             elem_u(fr.bytes(i.src[0]), 8, half + int((i.imm >> (2 * (e % 4))) & 3)));
  }
}

//! vshuf{i,f}{32x4,64x2}: result lanes of the low half come from a, those of
//! the high half from b; lane j's source lane is imm field j, log2(lanes)
//! bits wide (1 bit for 256-bit vectors, 2 for 512-bit ones).
void exec_shuf_lanes(const Inst& i, Frame& fr, Result& r) {
  const int lanes = i.bits / 128;
  const int field = std::countr_zero(unsigned(lanes));
  for (int j = 0; j < lanes; ++j) {
    const ir::ValueId from = j < lanes / 2 ? i.src[0] : i.src[1];
    const int sel = int((i.imm >> (field * j)) & (lanes - 1));
    std::memcpy(r.bytes + j * kLaneBytes, fr.bytes(from) + sel * kLaneBytes, kLaneBytes);
  }
}

//! valignd/q: elements (imm mod n).. of the 2n-element (a:b), a high.
void exec_valign(const Inst& i, Frame& fr, Result& r) {
  const int eb = ir::elem_bytes(i.elem);
  const int n = elem_count(i);
  const int shift = int(i.imm & (n - 1));
  for (int e = 0; e < n; ++e) {
    const int k = e + shift;
    const uint8_t* from = k < n ? fr.bytes(i.src[1]) : fr.bytes(i.src[0]);
    set_elem(r.bytes, eb, e, elem_u(from, eb, k % n));
  }
}

// ---- Lanes and broadcasts ----------------------------------------------------------------

//! vextract*: the lane is as wide as the result (128 or 256 bits).
void exec_extract_lane(const Inst& i, Frame& fr, Result& r) {
  const int lane_bytes = i.bits / 8;
  std::memcpy(r.bytes, fr.bytes(i.src[0]) + i.imm * lane_bytes, lane_bytes);
}

//! vinsert*: a with lane imm replaced by src1, whose width is the lane's.
//! Without the value table the width is still certain for 256-bit vectors
//! (lanes are 128 bits) and for lane indexes 2 and 3 (four 128-bit lanes).
bool exec_insert_lane(const Inst& i, Frame& fr, Result& r) {
  int lane_bits = value_bits(fr, i.src[1]);
  if (lane_bits == 0) {
    if (i.bits == 512 && i.imm < 2) return false;
    lane_bits = 128;
  }
  const int lane_bytes = lane_bits / 8;
  std::memcpy(r.bytes, fr.bytes(i.src[0]), i.bits / 8);
  std::memcpy(r.bytes + i.imm * lane_bytes, fr.bytes(i.src[1]), lane_bytes);
  return true;
}

//! vpbroadcast*, vbroadcast{ss,sd,*x2}: the low `imm` bytes of src0 repeated.
void exec_broadcast_elem(const Inst& i, Frame& fr, Result& r) {
  const int block = int(i.imm);
  for (int off = 0; off < i.bits / 8; off += block)
    std::memcpy(r.bytes + off, fr.bytes(i.src[0]), block);
}

// ---- Compress and expand -----------------------------------------------------------------

//! vpcompress*: the enabled elements of a, in order, at the low end; 0 above.
void exec_compress(const Inst& i, Frame& fr, Result& r) {
  const int eb = ir::elem_bytes(i.elem);
  const uint64_t m = fr.u64(i.src[1]);
  int out = 0;
  for (int e = 0; e < elem_count(i); ++e)
    if ((m >> e) & 1) set_elem(r.bytes, eb, out++, elem_u(fr.bytes(i.src[0]), eb, e));
}

//! vpexpand*: the low elements of a, in order, at the enabled positions; 0
//! at the others.
void exec_expand(const Inst& i, Frame& fr, Result& r) {
  const int eb = ir::elem_bytes(i.elem);
  const uint64_t m = fr.u64(i.src[1]);
  int in = 0;
  for (int e = 0; e < elem_count(i); ++e)
    if ((m >> e) & 1) set_elem(r.bytes, eb, e, elem_u(fr.bytes(i.src[0]), eb, in++));
}

// ---- Width changes -----------------------------------------------------------------------

//! vpmovzx/sx: element e of the narrow source (elem2), extended to elem.
void exec_extend(const Inst& i, Frame& fr, Result& r) {
  const int eb = ir::elem_bytes(i.elem), sb = ir::elem_bytes(i.elem2);
  for (int e = 0; e < elem_count(i); ++e) {
    const uint64_t x = i.op == Op::kSignExtend ? uint64_t(elem_s(fr.bytes(i.src[0]), sb, e))
                                               : elem_u(fr.bytes(i.src[0]), sb, e);
    set_elem(r.bytes, eb, e, x);
  }
}

//! One source element narrowed to `nb` bytes: truncated, or saturated as a
//! signed or unsigned integer.
uint64_t narrow_elem(Op op, const uint8_t* src, int sb, int e, int nb) {
  const int bits = 8 * nb;
  switch (op) {
    case Op::kTruncSatS: {
      const int64_t lo = -(int64_t(1) << (bits - 1)), hi = (int64_t(1) << (bits - 1)) - 1;
      return uint64_t(std::clamp(elem_s(src, sb, e), lo, hi));
    }
    case Op::kTruncSatU:
      return std::min(elem_u(src, sb, e), width_mask(bits));
    default:
      return elem_u(src, sb, e);  // set_elem keeps the low nb bytes
  }
}

//! vpmov*: each source element (elem2) narrowed to elem, packed at the low
//! end; 0 above, up to the result's width. The source has as many elements
//! as it has bits / elem2; without the value table, as many as fit in the
//! result (the surplus lands in bytes the destination write ignores).
void exec_narrow(const Inst& i, Frame& fr, Result& r) {
  const int nb = ir::elem_bytes(i.elem), sb = ir::elem_bytes(i.elem2);
  int n = value_bits(fr, i.src[0]) / 8 / sb;
  if (n == 0) n = std::min(i.bits / 8 / nb, 64 / sb);
  for (int e = 0; e < n; ++e)
    set_elem(r.bytes, nb, e, narrow_elem(i.op, fr.bytes(i.src[0]), sb, e, nb));
}

//! vpackss/vpackus: per 128-bit lane, a's elements then b's, each saturated
//! from signed elem2 to signed (PackSS) or unsigned (PackUS) elem.
void exec_pack(const Inst& i, Frame& fr, Result& r) {
  const int nb = ir::elem_bytes(i.elem), sb = ir::elem_bytes(i.elem2);
  const int bits = 8 * nb;
  const int per_source = kLaneBytes / sb;  // source elements per lane
  for (int e = 0; e < elem_count(i); ++e) {
    const int lane = e / (2 * per_source), k = e % (2 * per_source);
    const ir::ValueId from = k < per_source ? i.src[0] : i.src[1];
    const int64_t x = elem_s(fr.bytes(from), sb, lane * per_source + k % per_source);
    const int64_t lo = i.op == Op::kPackSS ? -(int64_t(1) << (bits - 1)) : 0;
    const int64_t hi =
        i.op == Op::kPackSS ? (int64_t(1) << (bits - 1)) - 1 : (int64_t(1) << bits) - 1;
    set_elem(r.bytes, nb, e, uint64_t(std::clamp(x, lo, hi)));
  }
}

}  // namespace

bool exec_shuffle(const Inst& i, Frame& fr) {
  Result r;
  switch (i.op) {
    case Op::kShufb:
      exec_shufb(i, fr, r);
      break;
    case Op::kShufImm:
      exec_shuf_imm(i, fr, r);
      break;
    case Op::kShufWordsLo:
    case Op::kShufWordsHi:
      exec_shuf_words(i, fr, r);
      break;
    case Op::kShuf2Imm:
      exec_shuf2_imm(i, fr, r);
      break;
    case Op::kPermilVar:
      exec_permil_var(i, fr, r);
      break;
    case Op::kUnpackLo:
    case Op::kUnpackHi:
      exec_unpack(i, fr, r);
      break;
    case Op::kAlignR:
      exec_alignr(i, fr, r);
      break;
    case Op::kPermIdx:
      exec_perm_idx(i, fr, r);
      break;
    case Op::kPerm2:
      exec_perm2(i, fr, r);
      break;
    case Op::kPerm4x64Imm:
      exec_perm4x64(i, fr, r);
      break;
    case Op::kShufLanes:
      exec_shuf_lanes(i, fr, r);
      break;
    case Op::kValign:
      exec_valign(i, fr, r);
      break;
    case Op::kExtractLane:
      exec_extract_lane(i, fr, r);
      break;
    case Op::kInsertLane:
      if (!exec_insert_lane(i, fr, r)) return false;
      break;
    case Op::kBroadcastElem:
      exec_broadcast_elem(i, fr, r);
      break;
    case Op::kCompress:
      exec_compress(i, fr, r);
      break;
    case Op::kExpand:
      exec_expand(i, fr, r);
      break;
    case Op::kZeroExtend:
    case Op::kSignExtend:
      exec_extend(i, fr, r);
      break;
    case Op::kTruncate:
    case Op::kTruncSatS:
    case Op::kTruncSatU:
      exec_narrow(i, fr, r);
      break;
    case Op::kPackSS:
    case Op::kPackUS:
      exec_pack(i, fr, r);
      break;
    default:
      return false;
  }
  r.store(fr, i);
  return true;
}

}  // namespace avx512emu::interp
