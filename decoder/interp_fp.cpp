// Owns the reference semantics of the floating-point IR ops: every element is
// computed by one host scalar SSE/FMA operation under the guest's MXCSR, so
// rounding, DAZ/FTZ and the exception flags are the hardware's own.
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <utility>

#include "approx14_tables.h"
#include "interpreter.h"

namespace avx512emu::interp {
namespace {

using ir::Elem;
using ir::Inst;
using ir::Op;

// ---- Guest MXCSR ----------------------------------------------------------------

constexpr uint32_t kMxcsrFlags = 0x3f;     // IE DE ZE OE UE PE
constexpr uint32_t kMxcsrMasks = 0x1f80;   // every exception masked
constexpr uint32_t kMxcsrRcShift = 13;
constexpr uint32_t kMxcsrIE = 0x01, kMxcsrPE = 0x20, kMxcsrDaz = 0x40, kMxcsrFtz = 0x8000;

// The MXCSR accesses are volatile asm with a "memory" clobber: operands are
// loaded from the frame after the guest MXCSR is in force and results are
// stored to it before the flags are read back, so the compiler cannot move
// any FP operation out of the guest environment.
uint32_t read_mxcsr() {
  uint32_t v;
  asm volatile("vstmxcsr %0" : "=m"(v) : : "memory");
  return v;
}
void write_mxcsr(uint32_t v) { asm volatile("vldmxcsr %0" : : "m"(v) : "memory"); }

//! Scope that runs host FP code under the guest's MXCSR (with every
//! exception masked, so nothing traps), applying `inst`'s embedded rounding,
//! and on exit ORs the raised flags into the guest MXCSR unless `inst` is SAE.
class GuestMxcsr {
 public:
  GuestMxcsr(CpuState& state, const Inst& inst) : state_(state), sae_(inst.sae), host_(read_mxcsr()) {
    uint32_t m = (state.mxcsr & ~kMxcsrFlags) | kMxcsrMasks;
    if (inst.rounding != Rounding::kNone) {
      // Rounding::kNearest..kZero are RC 0..3 in order.
      const uint32_t rc = uint32_t(int(inst.rounding) - int(Rounding::kNearest));
      m = (m & ~(3u << kMxcsrRcShift)) | (rc << kMxcsrRcShift);
    }
    write_mxcsr(m);
  }
  ~GuestMxcsr() {
    const uint32_t flags = read_mxcsr() & kMxcsrFlags;
    write_mxcsr(host_);
    if (!sae_) state_.mxcsr |= flags;
  }
  GuestMxcsr(const GuestMxcsr&) = delete;
  GuestMxcsr& operator=(const GuestMxcsr&) = delete;

 private:
  CpuState& state_;
  bool sae_;
  uint32_t host_;
};

// ---- NaN encoding -----------------------------------------------------------------

// NaN tests work on the bits: an FP comparison would itself raise #I on SNaN.
template <class T> struct FloatBits;
template <> struct FloatBits<float> {
  using U = uint32_t;
  static constexpr U kExp = 0x7f800000u, kFraction = 0x007fffffu, kQuiet = 0x00400000u;
};
template <> struct FloatBits<double> {
  using U = uint64_t;
  static constexpr U kExp = 0x7ff0000000000000ull, kFraction = 0x000fffffffffffffull,
                     kQuiet = 0x0008000000000000ull;
};

template <class T>
bool is_nan(T x) {
  using B = FloatBits<T>;
  typename B::U u;
  std::memcpy(&u, &x, sizeof u);
  return (u & B::kExp) == B::kExp && (u & B::kFraction) != 0;
}

template <class T>
T quieted(T x) {
  using B = FloatBits<T>;
  typename B::U u;
  std::memcpy(&u, &x, sizeof u);
  u |= B::kQuiet;
  std::memcpy(&x, &u, sizeof u);
  return x;
}

//! SDM NaN rule for SSE/AVX operations with several sources: the result is
//! the first NaN source in operand order, quieted. `r` is returned when no
//! source is a NaN. The compiler may commute a+b or a*b, so the host's own
//! NaN choice is not trusted.
template <class T>
T first_nan_or(T r, std::initializer_list<T> sources) {
  // The host operation must run even when its value is replaced: it raises
  // the flags (#I for an SNaN). GCC deletes unused FP operations despite
  // -ftrapping-math, so `r` is pinned in a register by an empty asm.
  asm volatile("" : "+x"(r));
  for (T s : sources)
    if (is_nan(s)) return quieted(s);
  return r;
}

// ---- One element ------------------------------------------------------------------

// Scalar intrinsics on a one-element vector. The other lanes hold +0.0,
// which never raises a flag.
inline __m128 vec1(float x) { return _mm_set_ss(x); }
inline __m128d vec1(double x) { return _mm_set_sd(x); }
inline float elem0(__m128 v) { return _mm_cvtss_f32(v); }
inline double elem0(__m128d v) { return _mm_cvtsd_f64(v); }

inline __m128 host_min(__m128 a, __m128 b) { return _mm_min_ss(a, b); }
inline __m128d host_min(__m128d a, __m128d b) { return _mm_min_sd(a, b); }
inline __m128 host_max(__m128 a, __m128 b) { return _mm_max_ss(a, b); }
inline __m128d host_max(__m128d a, __m128d b) { return _mm_max_sd(a, b); }
inline __m128 host_sqrt(__m128 a) { return _mm_sqrt_ss(a); }
inline __m128d host_sqrt(__m128d a) { return _mm_sqrt_sd(a, a); }

template <class T>
T binary_elem(Op op, T a, T b) {
  switch (op) {
    case Op::kFAdd: return first_nan_or(T(a + b), {a, b});
    case Op::kFSub: return first_nan_or(T(a - b), {a, b});
    case Op::kFMul: return first_nan_or(T(a * b), {a, b});
    case Op::kFDiv: return first_nan_or(T(a / b), {a, b});
    // min/max: (a < b ? a : b), so src2 when either is a NaN or both are
    // zeros; a QNaN raises #I. The host minss/maxss is exactly that
    // (including DAZ on the returned operand) and is not commutative.
    case Op::kFMin: return elem0(host_min(vec1(a), vec1(b)));
    case Op::kFMax: return elem0(host_max(vec1(a), vec1(b)));
    default: return elem0(host_sqrt(vec1(b)));  // kFSqrt
  }
}

// FMA: x*y+z with the product and/or the addend negated, rounded once.
inline __m128 host_fma(int negate, __m128 x, __m128 y, __m128 z) {
  switch (negate) {
    case 0: return _mm_fmadd_ss(x, y, z);
    case 1: return _mm_fnmadd_ss(x, y, z);
    case 2: return _mm_fmsub_ss(x, y, z);
    default: return _mm_fnmsub_ss(x, y, z);
  }
}
inline __m128d host_fma(int negate, __m128d x, __m128d y, __m128d z) {
  switch (negate) {
    case 0: return _mm_fmadd_sd(x, y, z);
    case 1: return _mm_fnmadd_sd(x, y, z);
    case 2: return _mm_fmsub_sd(x, y, z);
    default: return _mm_fnmsub_sd(x, y, z);
  }
}

//! Operands (dst, src2, src3) of the instruction; imm bits 2-3 choose the
//! form: 132 = dst*src3+src2, 213 = src2*dst+src3, 231 = src2*src3+dst.
//! Hardware returns the first NaN of (x, y, z) in that formula order,
//! quieted and never negated; the host intrinsic may be emitted in any form,
//! so the NaN is chosen here.
template <class T>
T fma_elem(int64_t imm, T dst, T src2, T src3) {
  T x = src2, y = src3, z = dst;  // 231
  switch ((imm >> 2) & 3) {
    case 1: x = dst, y = src3, z = src2; break;
    case 2: x = src2, y = dst, z = src3; break;
    default: break;
  }
  const T r = elem0(host_fma(int(imm & 3), vec1(x), vec1(y), vec1(z)));
  return first_nan_or(r, {x, y, z});
}

//! One VCMPPS predicate (0..31) as a host cmpss/cmpsd: same truth table and
//! same flags (#I on SNaN, or on any NaN for the signaling predicates; #D).
template <class T, int P>
bool compare_elem(T a, T b) {
  if constexpr (sizeof(T) == 4) return (_mm_movemask_ps(_mm_cmp_ss(vec1(a), vec1(b), P)) & 1) != 0;
  else return (_mm_movemask_pd(_mm_cmp_sd(vec1(a), vec1(b), P)) & 1) != 0;
}
template <class T, size_t... P>
constexpr std::array<bool (*)(T, T), 32> compare_table(std::index_sequence<P...>) {
  return {&compare_elem<T, int(P)>...};
}
template <class T>
constexpr std::array<bool (*)(T, T), 32> kCompare = compare_table<T>(std::make_index_sequence<32>());

//! vcomis/vucomis: the host's VEX instruction on element 0 gives the same
//! ZF/PF/CF (unordered 111, less 001, equal 100, greater 000) and raises the
//! same MXCSR flags; OF, SF and AF are cleared.
template <class T>
uint64_t compare_flags(bool signaling, T a, T b) {
  bool zf, pf, cf;
#define AVX512EMU_COMPARE_FLAGS(insn)                                          \
  asm volatile(insn " %[b], %[a]"                                              \
               : "=@ccz"(zf), "=@ccp"(pf), "=@ccc"(cf)                         \
               : [a] "x"(a), [b] "x"(b)                                        \
               : "memory")
  if constexpr (sizeof(T) == 4) {
    if (signaling) AVX512EMU_COMPARE_FLAGS("vcomiss");
    else AVX512EMU_COMPARE_FLAGS("vucomiss");
  } else {
    if (signaling) AVX512EMU_COMPARE_FLAGS("vcomisd");
    else AVX512EMU_COMPARE_FLAGS("vucomisd");
  }
#undef AVX512EMU_COMPARE_FLAGS
  return (zf ? kFlagZF : 0) | (pf ? kFlagPF : 0) | (cf ? kFlagCF : 0);
}

template <class T>
void exec_compare_flags(const Inst& i, Frame& fr) {
  GuestMxcsr env(fr.state, i);
  fr.set_u64(i.dst, compare_flags<T>(i.op == Op::kComiF, fr.get<T>(i.src[0], 0),
                                     fr.get<T>(i.src[1], 0)));
}

// Conversions use the packed instruction on a one-element vector: the same
// rounding, DAZ and invalid (0x80000000) behaviour as vcvt*ps*.
inline float cvt_i32_f32(int32_t x) { return _mm_cvtss_f32(_mm_cvtepi32_ps(_mm_cvtsi32_si128(x))); }
inline int32_t cvt_f32_i32(float x) { return _mm_cvtsi128_si32(_mm_cvtps_epi32(_mm_set_ss(x))); }
inline int32_t cvtt_f32_i32(float x) { return _mm_cvtsi128_si32(_mm_cvttps_epi32(_mm_set_ss(x))); }
inline double cvt_i32_f64(int32_t x) { return _mm_cvtsd_f64(_mm_cvtepi32_pd(_mm_cvtsi32_si128(x))); }
inline double cvt_f32_f64(float x) { return _mm_cvtsd_f64(_mm_cvtps_pd(_mm_set_ss(x))); }
inline float cvt_f64_f32(double x) { return _mm_cvtss_f32(_mm_cvtpd_ps(_mm_set_sd(x))); }
inline int32_t cvt_f64_i32(double x) { return _mm_cvtsi128_si32(_mm_cvtpd_epi32(_mm_set_sd(x))); }
// Binary16 conversions: F16C, present on every AVX2 host.
__attribute__((target("f16c"))) inline float cvt_f16_f32(uint16_t h) {
  return _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h)));
}
//! imm[2] selects MXCSR.RC, else imm[1:0] is the rounding mode.
__attribute__((target("f16c"))) inline uint16_t cvt_f32_f16(float x, int64_t imm) {
  const __m128 v = _mm_set_ss(x);
  __m128i h;
  switch ((imm & 4) ? 4 : imm & 3) {
    case 0: h = _mm_cvtps_ph(v, 0); break;
    case 1: h = _mm_cvtps_ph(v, 1); break;
    case 2: h = _mm_cvtps_ph(v, 2); break;
    case 3: h = _mm_cvtps_ph(v, 3); break;
    default: h = _mm_cvtps_ph(v, 4); break;
  }
  return uint16_t(_mm_cvtsi128_si32(h));
}
inline int32_t cvtt_f64_i32(double x) { return _mm_cvtsi128_si32(_mm_cvttpd_epi32(_mm_set_sd(x))); }

// ---- vrcp14 / vrsqrt14 ---------------------------------------------------------------

//! Field layout of T's encoding.
template <class T>
struct Encoding {
  using U = typename FloatBits<T>::U;
  static constexpr int kMant = sizeof(T) == 4 ? 23 : 52;
  static constexpr int64_t kBias = sizeof(T) == 4 ? 127 : 1023;
  static constexpr int64_t kMaxExp = 2 * kBias + 1;
  static constexpr U kSign = U(1) << (sizeof(T) * 8 - 1);
  static constexpr U kHidden = U(1) << kMant;
};

//! Finite nonzero |x| as 1.fraction * 2^(exponent - bias): a denormal is
//! normalized, giving an exponent field of 0 or below.
template <class T>
void normalize(typename Encoding<T>::U ax, int64_t& exponent, typename Encoding<T>::U& fraction) {
  using E = Encoding<T>;
  exponent = int64_t(ax >> E::kMant);
  fraction = ax & FloatBits<T>::kFraction;
  if (exponent == 0) {
    const int shift = std::countl_zero(fraction) - (int(sizeof(T)) * 8 - 1 - E::kMant);
    fraction = typename E::U(fraction << shift) & FloatBits<T>::kFraction;
    exponent = 1 - shift;
  }
}

//! The fraction field of the segment evaluation value + slope * (512 - r):
//! 26 bits whose top 16 below the leading one are the result's fraction.
//! Segment `entry` holds value | slope << value_bits; r = the 10 fraction
//! bits after the segment index; `value_shift` scales the value to 2^26.
template <class T>
typename Encoding<T>::U segment_fraction(uint32_t entry, int value_bits, int value_shift,
                                         uint64_t r) {
  const uint64_t value = entry & ((1u << value_bits) - 1), slope = entry >> value_bits;
  const uint64_t approx = (value << value_shift) + (slope << 9) - slope * r;  // in [2^25, 2^26)
  return typename Encoding<T>::U((approx >> 9) & 0xffff) << (Encoding<T>::kMant - 16);
}

template <class T>
typename Encoding<T>::U rcp14_bits(typename Encoding<T>::U x, uint32_t mxcsr) {
  using E = Encoding<T>;
  using U = typename E::U;
  const U sign = x & E::kSign, ax = x & ~E::kSign;
  if ((ax & FloatBits<T>::kExp) == FloatBits<T>::kExp)
    return (ax & FloatBits<T>::kFraction) ? x | FloatBits<T>::kQuiet : sign;  // NaN, 1/inf = 0
  if (ax == 0 || (ax < E::kHidden && (mxcsr & kMxcsrDaz))) return sign | FloatBits<T>::kExp;
  int64_t exponent;
  U fraction;
  normalize<T>(ax, exponent, fraction);
  // 1/(1.f * 2^e) = (1/1.f) * 2^-e with 1/1.f in (1/2, 1), or exactly 1.
  int64_t out_exp = 2 * E::kBias - exponent;
  U out_fraction = 0;
  if (fraction != 0) {
    const U top16 = fraction >> (E::kMant - 16);
    out_fraction = segment_fraction<T>(approx14::kRcpTable.entry[size_t(top16 >> 10)],
                                       approx14::kRcpValueBits, 8, top16 & 1023);
    out_exp -= 1;
  }
  if (out_exp >= E::kMaxExp) return sign | FloatBits<T>::kExp;  // tiny denormal: overflow
  if (out_exp <= 0) {  // denormal result: the significand shifted, truncated
    if (mxcsr & kMxcsrFtz) return sign;
    return sign | U((E::kHidden | out_fraction) >> (1 - out_exp));
  }
  return sign | U(out_exp) << E::kMant | out_fraction;
}

template <class T>
typename Encoding<T>::U rsqrt14_bits(typename Encoding<T>::U x, uint32_t mxcsr) {
  using E = Encoding<T>;
  using U = typename E::U;
  const U sign = x & E::kSign;
  U ax = x & ~E::kSign;
  if (ax < E::kHidden && (mxcsr & kMxcsrDaz)) ax = 0;
  if ((ax & FloatBits<T>::kExp) == FloatBits<T>::kExp && (ax & FloatBits<T>::kFraction))
    return x | FloatBits<T>::kQuiet;
  if (ax == 0) return sign | FloatBits<T>::kExp;
  if (sign) return E::kSign | FloatBits<T>::kExp | FloatBits<T>::kQuiet;  // QNaN indefinite
  if (ax == FloatBits<T>::kExp) return 0;
  int64_t exponent;
  U fraction;
  normalize<T>(ax, exponent, fraction);
  // x = 1.f * 2^(2n + odd): evaluate on [1, 2) or [2, 4), then scale by 2^-n.
  const int64_t unbiased = exponent - E::kBias;
  const int odd = int(unbiased & 1);
  const int64_t n = unbiased >> 1;  // floor
  if (fraction == 0 && !odd) return U(E::kBias - n) << E::kMant;  // a power of 4: exact
  const U top15 = fraction >> (E::kMant - 15);
  const U out_fraction =
      segment_fraction<T>(approx14::kRsqrtTable.entry[size_t((top15 >> 10) * 2 + odd)],
                          approx14::kRsqrtValueBits, 7, top15 & 1023);
  return U(E::kBias - 1 - n) << E::kMant | out_fraction;
}

//! Starts an FP result: a scalar form takes bits 127:32 (or 127:64) of its
//! result from src0, a packed form starts from zero (inactive elements stay
//! zero; masking happens later).
void start_fp_result(const Inst& i, Frame& fr) {
  uint8_t* const dst = fr.bytes(i.dst);
  if (i.scalar) std::memcpy(dst, fr.bytes(i.src[0]), 16);
  else std::memset(dst, 0, 64);
}

//! Rcp14/Rsqrt14: no rounding, no flags; DAZ and (vrcp14) FTZ from MXCSR.
template <class T>
void exec_approx14(const Inst& i, Frame& fr) {
  using U = typename Encoding<T>::U;
  const ir::ValueId src = i.scalar ? i.src[1] : i.src[0];
  const int n = i.scalar ? 1 : elem_count(i);
  start_fp_result(i, fr);
  for (int e = 0; e < n; ++e) {
    const U x = fr.get<U>(src, e);
    fr.set<U>(i.dst, e, i.op == Op::kRcp14 ? rcp14_bits<T>(x, fr.state.mxcsr)
                                          : rsqrt14_bits<T>(x, fr.state.mxcsr));
  }
}

// ---- vgetexp ---------------------------------------------------------------------

//! floor(log2 |x|) of one element: NaN quieted, 0 (or a denormal under DAZ)
//! gives -inf, inf gives +inf, a denormal its normalized exponent. The value
//! is an exact integer conversion; the flags are those of the quiet compare
//! x == x, which raises exactly IE for an SNaN and DE for a denormal (none
//! under DAZ), as vgetexp does.
template <class T>
T getexp_elem(T x, uint32_t mxcsr) {
  using E = Encoding<T>;
  using U = typename E::U;
  volatile bool raise_flags = kCompare<T>[0](x, x);
  (void)raise_flags;
  U u;
  std::memcpy(&u, &x, sizeof u);
  const U ax = u & ~E::kSign;
  U r;
  if (ax > FloatBits<T>::kExp) {
    r = u | FloatBits<T>::kQuiet;
  } else if (ax == FloatBits<T>::kExp) {
    r = FloatBits<T>::kExp;
  } else if (ax == 0 || (ax < E::kHidden && (mxcsr & kMxcsrDaz))) {
    r = E::kSign | FloatBits<T>::kExp;
  } else {
    int64_t exponent;
    U fraction;
    normalize<T>(ax, exponent, fraction);
    const T value = T(int32_t(exponent - E::kBias));
    std::memcpy(&r, &value, sizeof r);
  }
  std::memcpy(&x, &r, sizeof r);
  return x;
}

template <class T>
void exec_getexp(const Inst& i, Frame& fr) {
  const uint64_t active = active_mask(i, fr, i.scalar ? 2 : 1);
  const ir::ValueId src = i.scalar ? i.src[1] : i.src[0];
  const int n = i.scalar ? 1 : elem_count(i);
  start_fp_result(i, fr);
  GuestMxcsr env(fr.state, i);
  for (int e = 0; e < n; ++e)
    if ((active >> e) & 1) fr.set<T>(i.dst, e, getexp_elem(fr.get<T>(src, e), fr.state.mxcsr));
}

// ---- Integer to floating point (vcvt(u)si2ss/sd) -------------------------------------

inline float cvt_i64(int64_t x, float) { return _mm_cvtss_f32(_mm_cvtsi64_ss(_mm_setzero_ps(), x)); }
inline double cvt_i64(int64_t x, double) { return _mm_cvtsd_f64(_mm_cvtsi64_sd(_mm_setzero_pd(), x)); }

//! CvtIntF: element 0 = the integer, rounded once under the guest MXCSR (or
//! {er}); elements 1.. from src0. 32-bit integers, signed or unsigned, are
//! exact as int64. A u64 of 2^63 or more is halved with its low bit kept as
//! a sticky bit, which leaves the one rounding (and PE) unchanged because
//! the value has more significant bits than the format, then doubled exactly.
template <class T>
void exec_convert_from_int(const Inst& i, Frame& fr) {
  std::memcpy(fr.bytes(i.dst), fr.bytes(i.src[0]), 16);
  const uint64_t v = fr.u64(i.src[1]);
  const bool is_unsigned = (i.imm & 1) != 0;
  GuestMxcsr env(fr.state, i);
  T r;
  if (i.elem2 != Elem::kI64) r = cvt_i64(is_unsigned ? int64_t(uint32_t(v)) : int64_t(int32_t(v)), T{});
  else if (!is_unsigned || int64_t(v) >= 0) r = cvt_i64(int64_t(v), T{});
  else {
    r = cvt_i64(int64_t((v >> 1) | (v & 1)), T{});
    r = r + r;
  }
  fr.set<T>(i.dst, 0, r);
}

// ---- Floating point to a signed GPR (vcvt(t)ss2si/sd2si) ------------------------------

//! CvtFInt: the host's scalar conversion of element 0 under the guest MXCSR
//! (or {er}): the same rounding, the same integer indefinite and flags.
template <class T>
void exec_convert_to_int(const Inst& i, Frame& fr) {
  const T x = fr.get<T>(i.src[0], 0);
  const bool truncate = (i.imm & 1) != 0;
  GuestMxcsr env(fr.state, i);
  uint64_t r;
  if constexpr (sizeof(T) == 4) {
    const __m128 v = _mm_set_ss(x);
    if (i.bits == 64) r = uint64_t(truncate ? _mm_cvttss_si64(v) : _mm_cvtss_si64(v));
    else r = uint32_t(truncate ? _mm_cvttss_si32(v) : _mm_cvtss_si32(v));
  } else {
    const __m128d v = _mm_set_sd(x);
    if (i.bits == 64) r = uint64_t(truncate ? _mm_cvttsd_si64(v) : _mm_cvtsd_si64(v));
    else r = uint32_t(truncate ? _mm_cvttsd_si32(v) : _mm_cvtsd_si32(v));
  }
  fr.set_u64(i.dst, r);
}

// ---- Round to a multiple of 2^-M (vrndscale) -----------------------------------------

//! vrndscale of one element, computed on the encoding: the significand is cut
//! below 2^-M and rounded by the selected mode, so the result and its flags
//! (IE for an SNaN, PE when bits are lost unless imm[3]; never DE) come from
//! the SDM definition 2^-M * RoundToInt(2^M * x) rather than from any host
//! rounding instruction.
template <class T>
T round_scale_elem(T x, int64_t imm, uint32_t mxcsr, uint32_t& flags) {
  using B = FloatBits<T>;
  using U = typename B::U;
  constexpr int kMant = sizeof(T) == 4 ? 23 : 52;
  constexpr int kBias = sizeof(T) == 4 ? 127 : 1023;
  constexpr U kSign = U(1) << (sizeof(T) * 8 - 1);
  const int scale = int((imm >> 4) & 15);
  U u;
  std::memcpy(&u, &x, sizeof u);
  const U sign = u & kSign;
  const int exp = int((u & B::kExp) >> kMant);
  const U frac = u & B::kFraction;
  if ((u & B::kExp) == B::kExp) {  // NaN or infinity
    if (frac != 0 && !(frac & B::kQuiet)) flags |= kMxcsrIE;
    return frac != 0 ? quieted(x) : x;
  }
  if (exp == 0 && (frac == 0 || (mxcsr & kMxcsrDaz))) {  // zero, or a denormal read as zero
    std::memcpy(&x, &sign, sizeof sign);
    return x;
  }
  // x = significand * 2^low_exp.
  const uint64_t significand = exp ? uint64_t(frac) | (uint64_t(1) << kMant) : uint64_t(frac);
  const int low_exp = (exp ? exp : 1) - kBias - kMant;
  const int dropped = -low_exp - scale;  // significand bits below 2^-M
  if (dropped <= 0) return x;
  uint64_t q = 0;
  bool inexact = true, above_half = false, exactly_half = false;
  if (dropped < 64) {
    q = significand >> dropped;
    const uint64_t rest = significand & ((uint64_t(1) << dropped) - 1);
    const uint64_t half = uint64_t(1) << (dropped - 1);
    inexact = rest != 0;
    above_half = rest > half;
    exactly_half = rest == half;
  }
  const uint32_t rc = (imm & 4) ? (mxcsr >> kMxcsrRcShift) & 3 : uint32_t(imm & 3);
  switch (rc) {
    case 0: q += (above_half || (exactly_half && (q & 1))) ? 1 : 0; break;  // nearest even
    case 1: q += (sign && inexact) ? 1 : 0; break;                           // toward -inf
    case 2: q += (!sign && inexact) ? 1 : 0; break;                          // toward +inf
    default: break;                                                          // toward zero
  }
  if (inexact && !(imm & 8)) flags |= kMxcsrPE;
  // q <= 2^kMant + 1 and 2^-M >= 2^-15: q * 2^-M is exact and normal.
  U r = sign;
  if (q != 0) {
    const T magnitude = std::ldexp(T(q), -scale);
    std::memcpy(&r, &magnitude, sizeof r);
    r |= sign;
  }
  std::memcpy(&x, &r, sizeof r);
  return x;
}

template <class T>
void exec_round_scale(const Inst& i, Frame& fr) {
  const uint64_t active = active_mask(i, fr, i.scalar ? 2 : 1);
  const ir::ValueId src = i.scalar ? i.src[1] : i.src[0];
  const int n = i.scalar ? 1 : elem_count(i);
  start_fp_result(i, fr);
  uint32_t flags = 0;
  for (int e = 0; e < n; ++e)
    if ((active >> e) & 1)
      fr.set<T>(i.dst, e, round_scale_elem(fr.get<T>(src, e), i.imm, fr.state.mxcsr, flags));
  if (!i.sae) fr.state.mxcsr |= flags;
}

// ---- Element loops ----------------------------------------------------------------

//! Number of fixed operands, before the optional active-element mask.
int fixed_operands(const Inst& i) {
  switch (i.op) {
    case Op::kFma: return 3;
    case Op::kFSqrt: return i.scalar ? 2 : 1;
    case Op::kCvtI32F32: case Op::kCvtF32I32: case Op::kCvtF32I32Trunc: case Op::kCvtI32F64:
    case Op::kCvtF64I32: case Op::kCvtF64I32Trunc: return 1;
    case Op::kCvtF32F64: case Op::kCvtF64F32: return i.scalar ? 2 : 1;
    case Op::kCvtF16F32: case Op::kCvtF32F16: case Op::kCvtU32F32: case Op::kCvtU32F64: return 1;
    default: return 2;
  }
}

//! Element-wise ops of type T. Scalar forms compute element 0 and take the
//! rest of the 128-bit result from src0. Inactive elements are skipped (no
//! flags) and left zero.
template <class T>
void exec_arith(const Inst& i, Frame& fr) {
  const uint64_t active = active_mask(i, fr, fixed_operands(i));
  const int n = i.scalar ? 1 : elem_count(i);
  start_fp_result(i, fr);
  GuestMxcsr env(fr.state, i);
  for (int e = 0; e < n; ++e) {
    if (!((active >> e) & 1)) continue;
    const T a = fr.get<T>(i.src[0], e);
    T r;
    if (i.op == Op::kFma) {
      // vfmaddsub/vfmsubadd: odd elements negate the addend the other way.
      const int64_t imm = ((i.imm & 16) && (e & 1)) ? i.imm ^ 2 : i.imm;
      r = fma_elem(imm, a, fr.get<T>(i.src[1], e), fr.get<T>(i.src[2], e));
    }
    else if (i.op == Op::kFSqrt && !i.scalar) r = binary_elem(i.op, a, a);
    else r = binary_elem(i.op, a, fr.get<T>(i.src[1], e));
    fr.set<T>(i.dst, e, r);
  }
}

template <class T>
void exec_compare(const Inst& i, Frame& fr) {
  const uint64_t active = active_mask(i, fr, fixed_operands(i));
  const int n = i.scalar ? 1 : elem_count(i);
  const auto cmp = kCompare<T>[size_t(i.imm & 31)];
  uint64_t result = 0;
  {
    GuestMxcsr env(fr.state, i);
    for (int e = 0; e < n; ++e)
      if ((active >> e) & 1)
        result |= uint64_t(cmp(fr.get<T>(i.src[0], e), fr.get<T>(i.src[1], e))) << e;
    fr.set_u64(i.dst, result);
  }
}

//! Conversions, element e of the source (elem2) to element e of the result
//! (elem). A narrowing conversion of a 128-bit source fills only the low
//! half; the rest is zero. Scalar forms convert element 0 of src1 and take
//! the rest of the 128-bit result from src0.
void exec_convert(const Inst& i, Frame& fr) {
  const uint64_t active = active_mask(i, fr, fixed_operands(i));
  const ir::ValueId src = i.scalar ? i.src[1] : i.src[0];
  const int src_count = fr.function->values[src].bits / 8 / ir::elem_bytes(i.elem2);
  const int n = i.scalar ? 1 : std::min(elem_count(i), src_count);
  if (i.scalar) std::memcpy(fr.bytes(i.dst), fr.bytes(i.src[0]), 16);
  else std::memset(fr.bytes(i.dst), 0, 64);
  GuestMxcsr env(fr.state, i);
  for (int e = 0; e < n; ++e) {
    if (!((active >> e) & 1)) continue;
    switch (i.op) {
      case Op::kCvtI32F32: fr.set<float>(i.dst, e, cvt_i32_f32(fr.get<int32_t>(src, e))); break;
      case Op::kCvtF32I32: fr.set<int32_t>(i.dst, e, cvt_f32_i32(fr.get<float>(src, e))); break;
      case Op::kCvtF32I32Trunc: fr.set<int32_t>(i.dst, e, cvtt_f32_i32(fr.get<float>(src, e))); break;
      case Op::kCvtI32F64: fr.set<double>(i.dst, e, cvt_i32_f64(fr.get<int32_t>(src, e))); break;
      case Op::kCvtF32F64: fr.set<double>(i.dst, e, cvt_f32_f64(fr.get<float>(src, e))); break;
      case Op::kCvtF64F32: fr.set<float>(i.dst, e, cvt_f64_f32(fr.get<double>(src, e))); break;
      case Op::kCvtF64I32: fr.set<int32_t>(i.dst, e, cvt_f64_i32(fr.get<double>(src, e))); break;
      case Op::kCvtU32F32:  // one rounding of the exact value, as int64
        fr.set<float>(i.dst, e, cvt_i64(int64_t(fr.get<uint32_t>(src, e)), float{}));
        break;
      case Op::kCvtU32F64: fr.set<double>(i.dst, e, double(fr.get<uint32_t>(src, e))); break;
      case Op::kCvtF16F32: fr.set<float>(i.dst, e, cvt_f16_f32(fr.get<uint16_t>(src, e))); break;
      case Op::kCvtF32F16:
        fr.set<uint16_t>(i.dst, e, cvt_f32_f16(fr.get<float>(src, e), i.imm));
        break;
      default: fr.set<int32_t>(i.dst, e, cvtt_f64_i32(fr.get<double>(src, e))); break;
    }
  }
}

}  // namespace

bool exec_float(const Inst& i, Frame& fr) {
  const bool f64 = i.elem == Elem::kF64;
  switch (i.op) {
    case Op::kFAdd: case Op::kFSub: case Op::kFMul: case Op::kFDiv:
    case Op::kFMin: case Op::kFMax: case Op::kFSqrt: case Op::kFma:
      if (f64) exec_arith<double>(i, fr);
      else exec_arith<float>(i, fr);
      return true;
    case Op::kCmpF:
      if (f64) exec_compare<double>(i, fr);
      else exec_compare<float>(i, fr);
      return true;
    case Op::kCvtI32F32: case Op::kCvtF32I32: case Op::kCvtF32I32Trunc: case Op::kCvtI32F64:
    case Op::kCvtF32F64: case Op::kCvtF64F32: case Op::kCvtF64I32: case Op::kCvtF64I32Trunc:
    case Op::kCvtF16F32: case Op::kCvtF32F16: case Op::kCvtU32F32: case Op::kCvtU32F64:
      exec_convert(i, fr);
      return true;
    case Op::kGetExp:
      if (f64) exec_getexp<double>(i, fr);
      else exec_getexp<float>(i, fr);
      return true;
    case Op::kRcp14: case Op::kRsqrt14:
      if (f64) exec_approx14<double>(i, fr);
      else exec_approx14<float>(i, fr);
      return true;
    case Op::kCvtFInt:
      if (f64) exec_convert_to_int<double>(i, fr);
      else exec_convert_to_int<float>(i, fr);
      return true;
    case Op::kCvtIntF:
      if (f64) exec_convert_from_int<double>(i, fr);
      else exec_convert_from_int<float>(i, fr);
      return true;
    case Op::kRndScale:
      if (f64) exec_round_scale<double>(i, fr);
      else exec_round_scale<float>(i, fr);
      return true;
    case Op::kComiF: case Op::kUcomiF:
      if (f64) exec_compare_flags<double>(i, fr);
      else exec_compare_flags<float>(i, fr);
      return true;
    default: return false;
  }
}

}  // namespace avx512emu::interp
