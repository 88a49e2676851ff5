// Owns the reference semantics of the integer element-wise IR ops: arithmetic,
// saturation, multiplies, min/max/abs, bitwise logic and ternlog, shifts and
// rotates, byte shifts, and integer compares/tests into masks. Plain scalar
// loops per element, written from the Intel SDM.
#include <bit>
#include <limits>
#include <type_traits>

#include "interpreter.h"

namespace avx512emu::interp {
namespace {

using ir::Inst;
using ir::Op;

uint64_t width_mask(int bits) { return bits >= 64 ? ~0ull : (1ull << bits) - 1; }

//! Calls `body(U{})` with U the unsigned integer type of `e`'s width.
template <class Body>
void with_elem_type(ir::Elem e, Body&& body) {
  switch (ir::elem_bytes(e)) {
    case 1: body(uint8_t{}); break;
    case 2: body(uint16_t{}); break;
    case 4: body(uint32_t{}); break;
    default: body(uint64_t{}); break;
  }
}

//! Element-wise map over the op's elements: out[k] = fn(k) (type U).
template <class U, class Fn>
void map_elems(const Inst& i, Frame& fr, Fn fn) {
  uint8_t out[64] = {};
  const int n = elem_count(i);
  for (int k = 0; k < n; ++k) {
    const U r = fn(k);
    std::memcpy(out + k * sizeof(U), &r, sizeof(U));
  }
  std::memcpy(fr.bytes(i.dst), out, 64);
}

// ---- Arithmetic ---------------------------------------------------------------------

//! Clamps `x` to the range of the signed (`is_signed`) or unsigned type U.
template <class U>
U saturate(__int128 x, bool is_signed) {
  using S = std::make_signed_t<U>;
  const __int128 lo = is_signed ? __int128(std::numeric_limits<S>::min()) : 0;
  const __int128 hi = is_signed ? __int128(std::numeric_limits<S>::max())
                                : __int128(std::numeric_limits<U>::max());
  return U(x < lo ? lo : x > hi ? hi : x);
}

template <class U>
bool exec_arith(const Inst& i, Frame& fr) {
  using S = std::make_signed_t<U>;
  constexpr int kBits = int(sizeof(U)) * 8;
  const ir::ValueId a = i.src[0], b = i.nsrc > 1 ? i.src[1] : i.src[0];
  auto ua = [&](int k) { return fr.get<U>(a, k); };
  auto ub = [&](int k) { return fr.get<U>(b, k); };
  auto sa = [&](int k) { return fr.get<S>(a, k); };
  auto sb = [&](int k) { return fr.get<S>(b, k); };
  switch (i.op) {
    case Op::kAdd: map_elems<U>(i, fr, [&](int k) { return U(ua(k) + ub(k)); }); return true;
    case Op::kSub: map_elems<U>(i, fr, [&](int k) { return U(ua(k) - ub(k)); }); return true;
    case Op::kAddSatS:
      map_elems<U>(i, fr, [&](int k) { return saturate<U>(__int128(sa(k)) + sb(k), true); });
      return true;
    case Op::kSubSatS:
      map_elems<U>(i, fr, [&](int k) { return saturate<U>(__int128(sa(k)) - sb(k), true); });
      return true;
    case Op::kAddSatU:
      map_elems<U>(i, fr, [&](int k) { return saturate<U>(__int128(ua(k)) + ub(k), false); });
      return true;
    case Op::kSubSatU:
      map_elems<U>(i, fr, [&](int k) { return saturate<U>(__int128(ua(k)) - ub(k), false); });
      return true;
    case Op::kMulLo:  // low half of the product: the same for signed and unsigned
      map_elems<U>(i, fr, [&](int k) { return U(uint64_t(ua(k)) * uint64_t(ub(k))); });
      return true;
    case Op::kMulHiS:
      map_elems<U>(i, fr, [&](int k) { return U((__int128(sa(k)) * sb(k)) >> kBits); });
      return true;
    case Op::kMulHiU:
      map_elems<U>(i, fr, [&](int k) { return U((unsigned __int128)(ua(k)) * ub(k) >> kBits); });
      return true;
    case Op::kMulHiRS:  // bits 30..15 of the product, rounded at bit 14
      map_elems<U>(i, fr, [&](int k) { return U(((int64_t(sa(k)) * sb(k) >> 14) + 1) >> 1); });
      return true;
    case Op::kAvgU:
      map_elems<U>(i, fr, [&](int k) { return U((uint64_t(ua(k)) + ub(k) + 1) >> 1); });
      return true;
    case Op::kMinS: map_elems<U>(i, fr, [&](int k) { return U(sa(k) < sb(k) ? sa(k) : sb(k)); }); return true;
    case Op::kMaxS: map_elems<U>(i, fr, [&](int k) { return U(sa(k) > sb(k) ? sa(k) : sb(k)); }); return true;
    case Op::kMinU: map_elems<U>(i, fr, [&](int k) { return ua(k) < ub(k) ? ua(k) : ub(k); }); return true;
    case Op::kMaxU: map_elems<U>(i, fr, [&](int k) { return ua(k) > ub(k) ? ua(k) : ub(k); }); return true;
    case Op::kAbs:  // the most negative value stays as it is (its negation wraps)
      map_elems<U>(i, fr, [&](int k) { return sa(k) < 0 ? U(U(0) - ua(k)) : ua(k); });
      return true;
    case Op::kLzcnt: map_elems<U>(i, fr, [&](int k) { return U(std::countl_zero(ua(k))); }); return true;
    case Op::kPopcnt: map_elems<U>(i, fr, [&](int k) { return U(std::popcount(ua(k))); }); return true;
    case Op::kConflict:
      map_elems<U>(i, fr, [&](int k) {
        U bits = 0;
        for (int j = 0; j < k; ++j)
          if (ua(j) == ua(k)) bits = U(bits | (U(1) << j));
        return bits;
      });
      return true;
    default: break;
  }
  // ---- Shifts and rotates. Counts at or above the width give 0 (logical)
  // or the sign fill (arithmetic); rotates take the count modulo the width.
  auto shl = [](U x, uint64_t n) { return n >= kBits ? U(0) : U(x << n); };
  auto shr = [](U x, uint64_t n) { return n >= kBits ? U(0) : U(x >> n); };
  auto sar = [](U x, uint64_t n) { return U(S(x) >> (n >= kBits ? kBits - 1 : n)); };
  auto rol = [](U x, uint64_t n) {
    n %= kBits;
    return n == 0 ? x : U(U(x << n) | U(x >> (kBits - n)));
  };
  auto ror = [&](U x, uint64_t n) { return rol(x, kBits - n % kBits); };
  // Concatenating shifts: n = 0 leaves a unchanged (no bit of b comes in).
  auto concat_shl = [](U a, U b, uint64_t n) {
    n %= kBits;
    return n == 0 ? a : U(U(a << n) | U(b >> (kBits - n)));
  };
  auto concat_shr = [](U a, U b, uint64_t n) {
    n %= kBits;
    return n == 0 ? a : U(U(a >> n) | U(b << (kBits - n)));
  };
  auto uc = [&](int k) { return fr.get<U>(i.src[2], k); };
  const uint64_t imm = uint64_t(i.imm) & 0xff;
  const uint64_t vec_count = i.nsrc > 1 ? fr.u64(b) : 0;  // low 64 bits of src1
  switch (i.op) {
    case Op::kShlImm: map_elems<U>(i, fr, [&](int k) { return shl(ua(k), imm); }); return true;
    case Op::kShrImm: map_elems<U>(i, fr, [&](int k) { return shr(ua(k), imm); }); return true;
    case Op::kSarImm: map_elems<U>(i, fr, [&](int k) { return sar(ua(k), imm); }); return true;
    case Op::kShlVec: map_elems<U>(i, fr, [&](int k) { return shl(ua(k), vec_count); }); return true;
    case Op::kShrVec: map_elems<U>(i, fr, [&](int k) { return shr(ua(k), vec_count); }); return true;
    case Op::kSarVec: map_elems<U>(i, fr, [&](int k) { return sar(ua(k), vec_count); }); return true;
    case Op::kShlVar: map_elems<U>(i, fr, [&](int k) { return shl(ua(k), ub(k)); }); return true;
    case Op::kShrVar: map_elems<U>(i, fr, [&](int k) { return shr(ua(k), ub(k)); }); return true;
    case Op::kSarVar: map_elems<U>(i, fr, [&](int k) { return sar(ua(k), ub(k)); }); return true;
    case Op::kRolImm: map_elems<U>(i, fr, [&](int k) { return rol(ua(k), imm); }); return true;
    case Op::kRorImm: map_elems<U>(i, fr, [&](int k) { return ror(ua(k), imm); }); return true;
    case Op::kRolVar: map_elems<U>(i, fr, [&](int k) { return rol(ua(k), ub(k)); }); return true;
    case Op::kRorVar: map_elems<U>(i, fr, [&](int k) { return ror(ua(k), ub(k)); }); return true;
    case Op::kConcatShlImm:
      map_elems<U>(i, fr, [&](int k) { return concat_shl(ua(k), ub(k), imm); });
      return true;
    case Op::kConcatShrImm:
      map_elems<U>(i, fr, [&](int k) { return concat_shr(ua(k), ub(k), imm); });
      return true;
    case Op::kConcatShlVar:
      map_elems<U>(i, fr, [&](int k) { return concat_shl(ua(k), ub(k), uc(k)); });
      return true;
    case Op::kConcatShrVar:
      map_elems<U>(i, fr, [&](int k) { return concat_shr(ua(k), ub(k), uc(k)); });
      return true;
    default: return false;
  }
}

// ---- Widening multiplies ------------------------------------------------------------

//! MulUDQ / MulDQ: each qword = product of the even (low) dwords.
void exec_mul_even_dwords(const Inst& i, Frame& fr, bool is_signed) {
  map_elems<uint64_t>(i, fr, [&](int k) {
    if (is_signed)
      return uint64_t(int64_t(fr.get<int32_t>(i.src[0], 2 * k)) * fr.get<int32_t>(i.src[1], 2 * k));
    return uint64_t(fr.get<uint32_t>(i.src[0], 2 * k)) * fr.get<uint32_t>(i.src[1], 2 * k);
  });
}

//! MAddWD: each dword = sum of two s16 x s16 products. The only overflow
//! (all four words 0x8000) wraps to 0x80000000, as on hardware.
void exec_maddwd(const Inst& i, Frame& fr) {
  map_elems<uint32_t>(i, fr, [&](int k) {
    int64_t sum = 0;
    for (int j = 2 * k; j < 2 * k + 2; ++j)
      sum += int64_t(fr.get<int16_t>(i.src[0], j)) * fr.get<int16_t>(i.src[1], j);
    return uint32_t(uint64_t(sum));
  });
}

//! MAddUBSW: each word = saturated sum of two u8 (src0) x s8 (src1) products.
void exec_maddubsw(const Inst& i, Frame& fr) {
  map_elems<uint16_t>(i, fr, [&](int k) {
    int64_t sum = 0;
    for (int j = 2 * k; j < 2 * k + 2; ++j)
      sum += int64_t(fr.get<uint8_t>(i.src[0], j)) * fr.get<int8_t>(i.src[1], j);
    return saturate<uint16_t>(sum, true);
  });
}

//! SadBW: each qword = sum of the absolute differences of its 8 unsigned
//! byte pairs, zero-extended.
void exec_sad_bw(const Inst& i, Frame& fr) {
  map_elems<uint64_t>(i, fr, [&](int k) {
    uint64_t sum = 0;
    for (int j = 8 * k; j < 8 * k + 8; ++j) {
      const int d = int(fr.get<uint8_t>(i.src[0], j)) - int(fr.get<uint8_t>(i.src[1], j));
      sum += uint64_t(d < 0 ? -d : d);
    }
    return sum;
  });
}

//! DbSadBW: b's dwords are first shuffled within each 128-bit lane by imm
//! (two bits per dword, as vpshufd). Then in each qword, word w is the sum
//! of |a - b| over 4 byte pairs: a's bytes 0..3 (w = 0, 1) or 4..7 (w = 2, 3)
//! against the shuffled b's bytes w..w+3.
void exec_dbsad_bw(const Inst& i, Frame& fr) {
  uint8_t shuffled[64] = {};
  for (int d = 0; d < elem_count(i) / 2; ++d) {
    const int lane_base = d & ~3, pick = int(uint64_t(i.imm) >> (2 * (d & 3))) & 3;
    std::memcpy(shuffled + 4 * d, fr.bytes(i.src[1]) + 4 * (lane_base + pick), 4);
  }
  map_elems<uint16_t>(i, fr, [&](int k) {
    const int q = k / 4 * 8, w = k % 4, a_start = q + (w < 2 ? 0 : 4);
    int sum = 0;
    for (int j = 0; j < 4; ++j) {
      const int d = int(fr.get<uint8_t>(i.src[0], a_start + j)) - int(shuffled[q + w + j]);
      sum += d < 0 ? -d : d;
    }
    return uint16_t(sum);
  });
}

//! VNNI dot products: each dword = acc + the products of its word (DotWSSD,
//! s16 x s16) or byte (DotBUSD, u8 x s8) pairs, modulo 2^32 or, for the S
//! forms, saturated to the s32 range.
void exec_dot(const Inst& i, Frame& fr) {
  const bool bytes = i.op == Op::kDotBUSD || i.op == Op::kDotBUSDS;
  const bool saturating = i.op == Op::kDotWSSDS || i.op == Op::kDotBUSDS;
  map_elems<uint32_t>(i, fr, [&](int k) {
    int64_t sum = fr.get<int32_t>(i.src[0], k);
    if (bytes) {
      for (int j = 4 * k; j < 4 * k + 4; ++j)
        sum += int64_t(fr.get<uint8_t>(i.src[1], j)) * fr.get<int8_t>(i.src[2], j);
    } else {
      for (int j = 2 * k; j < 2 * k + 2; ++j)
        sum += int64_t(fr.get<int16_t>(i.src[1], j)) * fr.get<int16_t>(i.src[2], j);
    }
    return saturating ? saturate<uint32_t>(sum, true) : uint32_t(uint64_t(sum));
  });
}

//! MAdd52Lo/Hi: acc + the low or high 52 bits of the 104-bit product of
//! the low 52 bits of a and b, modulo 2^64.
void exec_madd52(const Inst& i, Frame& fr) {
  constexpr uint64_t kLow52 = (1ull << 52) - 1;
  map_elems<uint64_t>(i, fr, [&](int k) {
    const unsigned __int128 product = (unsigned __int128)(fr.get<uint64_t>(i.src[1], k) & kLow52) *
                                      (fr.get<uint64_t>(i.src[2], k) & kLow52);
    const uint64_t part =
        i.op == Op::kMAdd52Lo ? uint64_t(product) & kLow52 : uint64_t(product >> 52);
    return fr.get<uint64_t>(i.src[0], k) + part;
  });
}

// ---- Bitwise logic ----------------------------------------------------------------------

//! And/AndN/Or/Xor/Ternlog work on bits, whatever the element type.
void exec_bitwise(const Inst& i, Frame& fr) {
  uint8_t out[64] = {};
  for (int k = 0; k < i.bits / 8; ++k) {
    const uint8_t a = fr.bytes(i.src[0])[k];
    const uint8_t b = i.nsrc > 1 ? fr.bytes(i.src[1])[k] : 0;
    switch (i.op) {
      case Op::kAnd: out[k] = a & b; break;
      case Op::kAndN: out[k] = uint8_t(~a & b); break;
      case Op::kOr: out[k] = a | b; break;
      case Op::kXor: out[k] = a ^ b; break;
      default: {  // Ternlog: each result bit is the imm bit indexed by (a<<2)|(b<<1)|c
        const uint8_t c = fr.bytes(i.src[2])[k];
        for (int bit = 0; bit < 8; ++bit) {
          const int index = ((a >> bit) & 1) << 2 | ((b >> bit) & 1) << 1 | ((c >> bit) & 1);
          out[k] |= uint8_t(((i.imm >> index) & 1) << bit);
        }
        break;
      }
    }
  }
  std::memcpy(fr.bytes(i.dst), out, 64);
}

// ---- Byte shifts ------------------------------------------------------------------------

//! vpslldq/vpsrldq: each 128-bit lane shifted by imm bytes, zeros shifted
//! in; imm > 15 clears the lane.
void exec_byte_shift(const Inst& i, Frame& fr) {
  uint8_t out[64] = {};
  const int n = int(uint64_t(i.imm) & 0xff);
  const uint8_t* in = fr.bytes(i.src[0]);
  for (int lane = 0; lane < i.bits / 8; lane += 16) {
    for (int j = 0; j < 16; ++j) {
      const int from = i.op == Op::kByteShlImm ? j - n : j + n;
      if (from >= 0 && from < 16) out[lane + j] = in[lane + from];
    }
  }
  std::memcpy(fr.bytes(i.dst), out, 64);
}

// ---- Compares into masks ----------------------------------------------------------------

//! VPCMP predicate `pred` (0 EQ, 1 LT, 2 LE, 3 FALSE, 4 NE, 5 NLT, 6 NLE, 7 TRUE).
template <class T>
bool vpcmp_predicate(T a, T b, int pred) {
  switch (pred & 7) {
    case 0: return a == b;
    case 1: return a < b;
    case 2: return a <= b;
    case 3: return false;
    case 4: return a != b;
    case 5: return a >= b;
    case 6: return a > b;
    default: return true;
  }
}

//! ShufBitQ (vpshufbitqmb): mask bit j = the bit of a's qword holding byte
//! j that idx's byte j (mod 64) selects.
void exec_shuffle_bits(const Inst& i, Frame& fr) {
  uint64_t m = 0;
  for (int j = 0; j < elem_count(i); ++j) {
    const uint64_t q = fr.get<uint64_t>(i.src[0], j / 8);
    m |= ((q >> (fr.get<uint8_t>(i.src[1], j) & 63)) & 1) << j;
  }
  fr.set_u64(i.dst, m);
}

template <class U>
void exec_to_mask(const Inst& i, Frame& fr) {
  using S = std::make_signed_t<U>;
  uint64_t m = 0;
  for (int k = 0; k < elem_count(i); ++k) {
    const U a = fr.get<U>(i.src[0], k), b = fr.get<U>(i.src[1], k);
    bool bit;
    switch (i.op) {
      case Op::kCmpS: bit = vpcmp_predicate(S(a), S(b), int(i.imm)); break;
      case Op::kCmpU: bit = vpcmp_predicate(a, b, int(i.imm)); break;
      case Op::kTestM: bit = (a & b) != 0; break;
      default: bit = (a & b) == 0; break;  // TestNM
    }
    m |= uint64_t(bit) << k;
  }
  fr.set_u64(i.dst, m & width_mask(elem_count(i)));
}

}  // namespace

bool exec_integer(const Inst& i, Frame& fr) {
  switch (i.op) {
    case Op::kMulUDQ: exec_mul_even_dwords(i, fr, false); return true;
    case Op::kMulDQ: exec_mul_even_dwords(i, fr, true); return true;
    case Op::kMAddWD: exec_maddwd(i, fr); return true;
    case Op::kMAddUBSW: exec_maddubsw(i, fr); return true;
    case Op::kSadBW: exec_sad_bw(i, fr); return true;
    case Op::kDbSadBW: exec_dbsad_bw(i, fr); return true;
    case Op::kDotWSSD: case Op::kDotBUSD: case Op::kDotWSSDS: case Op::kDotBUSDS:
      exec_dot(i, fr);
      return true;
    case Op::kMAdd52Lo: case Op::kMAdd52Hi: exec_madd52(i, fr); return true;
    case Op::kAnd: case Op::kAndN: case Op::kOr: case Op::kXor: case Op::kTernlog:
      exec_bitwise(i, fr);
      return true;
    case Op::kByteShlImm: case Op::kByteShrImm: exec_byte_shift(i, fr); return true;
    case Op::kShufBitQ: exec_shuffle_bits(i, fr); return true;
    case Op::kCmpS: case Op::kCmpU: case Op::kTestM: case Op::kTestNM:
      with_elem_type(i.elem, [&](auto tag) { exec_to_mask<decltype(tag)>(i, fr); });
      return true;
    default: break;
  }
  bool handled = false;
  with_elem_type(i.elem, [&](auto tag) { handled = exec_arith<decltype(tag)>(i, fr); });
  return handled;
}

}  // namespace avx512emu::interp
