// Owns the reference semantics of the floating-point IR ops: every element is
// computed by one host scalar SSE/FMA operation under the guest's MXCSR, so
// rounding, DAZ/FTZ and the exception flags are the hardware's own.
#include <immintrin.h>

#include <array>
#include <cstdint>
#include <initializer_list>
#include <utility>

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

// Conversions use the packed instruction on a one-element vector: the same
// rounding, DAZ and invalid (0x80000000) behaviour as vcvt*ps*.
inline float cvt_i32_f32(int32_t x) { return _mm_cvtss_f32(_mm_cvtepi32_ps(_mm_cvtsi32_si128(x))); }
inline int32_t cvt_f32_i32(float x) { return _mm_cvtsi128_si32(_mm_cvtps_epi32(_mm_set_ss(x))); }
inline int32_t cvtt_f32_i32(float x) { return _mm_cvtsi128_si32(_mm_cvttps_epi32(_mm_set_ss(x))); }

// ---- Element loops ----------------------------------------------------------------

//! Number of fixed operands, before the optional active-element mask.
int fixed_operands(const Inst& i) {
  switch (i.op) {
    case Op::kFma: return 3;
    case Op::kFSqrt: return i.scalar ? 2 : 1;
    case Op::kCvtI32F32: case Op::kCvtF32I32: case Op::kCvtF32I32Trunc: return 1;
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
  uint8_t* const dst = fr.bytes(i.dst);
  if (i.scalar) std::memcpy(dst, fr.bytes(i.src[0]), 16);
  else std::memset(dst, 0, 64);
  GuestMxcsr env(fr.state, i);
  for (int e = 0; e < n; ++e) {
    if (!((active >> e) & 1)) continue;
    const T a = fr.get<T>(i.src[0], e);
    T r;
    if (i.op == Op::kFma) r = fma_elem(i.imm, a, fr.get<T>(i.src[1], e), fr.get<T>(i.src[2], e));
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

void exec_convert(const Inst& i, Frame& fr) {
  const uint64_t active = active_mask(i, fr, fixed_operands(i));
  const int n = elem_count(i);
  std::memset(fr.bytes(i.dst), 0, 64);
  GuestMxcsr env(fr.state, i);
  for (int e = 0; e < n; ++e) {
    if (!((active >> e) & 1)) continue;
    switch (i.op) {
      case Op::kCvtI32F32: fr.set<float>(i.dst, e, cvt_i32_f32(fr.get<int32_t>(i.src[0], e))); break;
      case Op::kCvtF32I32: fr.set<int32_t>(i.dst, e, cvt_f32_i32(fr.get<float>(i.src[0], e))); break;
      default: fr.set<int32_t>(i.dst, e, cvtt_f32_i32(fr.get<float>(i.src[0], e))); break;
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
    case Op::kCvtI32F32: case Op::kCvtF32I32: case Op::kCvtF32I32Trunc:
      exec_convert(i, fr);
      return true;
    default: return false;
  }
}

}  // namespace avx512emu::interp
