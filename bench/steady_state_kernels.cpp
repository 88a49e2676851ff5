// Owns the steady-state kernels (AVX-512 and hand-written AVX2 versions of
// eight kernels), their data, setup and checksums, and the kernel table.
//
// The AVX-512 versions are written with intrinsics (the zmm16+/opmask one
// with inline asm) and compiled per function for AVX-512; the file itself is
// built for the AVX2 host baseline without auto-vectorisation, so the only
// AVX-512 instructions in it are the ones the kernels ask for.
#include "steady_state_kernels.h"

// GCC 12's _mm512_undefined_* (`__m512i __Y = __Y;`) trips -Wuninitialized
// wherever an intrinsic inlines it (GCC bug 105593); only the header's own
// lines are exempted.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#else
#include <immintrin.h>
#endif

#include <algorithm>
#include <climits>
#include <cstring>

// noclone: the table's thunks call the kernels with constant arguments, and
// a specialised clone would no longer be the kernel a caller with run-time
// sizes gets (nor carry the kernel's name in a profile or a scan).
#if defined(__clang__)
#define SSK_NOINLINE noinline
#else
#define SSK_NOINLINE noinline, noclone
#endif
#define SSK_AVX512 \
  __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512cd"), SSK_NOINLINE))
#define SSK_AVX2 __attribute__((target("avx2,fma,bmi2,popcnt"), SSK_NOINLINE))

namespace avx512emu::steady_state {

DotData dot_data;
CountData count_data;
CompressData compress_data;
HashData hash_data;
SaxpyData saxpy_data;
SadData sad_data;
PermuteData permute_data;
ZmmHighData zmm_high_data;

uint64_t fnv1a(const void* data, size_t size, uint64_t h) {
  const auto* bytes = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < size; ++i) h = (h ^ bytes[i]) * 1099511628211ull;
  return h;
}

namespace {

// ---- Helpers shared by both versions ------------------------------------------------------
// Built for the file's AVX2 baseline; they inline into either version.

//! The horizontal sum of a 512-bit float accumulator given as its two
//! 256-bit halves, in one fixed order: halves, then 128-bit lanes, then
//! pairs, then the last two. Both dot versions end with it, so they round
//! the same way.
inline float sum_halves(__m256 lo, __m256 hi) {
  const __m256 s = _mm256_add_ps(lo, hi);
  __m128 q = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
  q = _mm_add_ps(q, _mm_movehl_ps(q, q));
  q = _mm_add_ss(q, _mm_movehdup_ps(q));
  return _mm_cvtss_f32(q);
}

//! Lanes 0..7 of an int32 vector, for tail masks (lane < remaining).
inline __m256i iota8() {
  return _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
}

//! xorshift64*: deterministic inputs without <random>'s per-library
//! differences.
struct Rng {
  uint64_t s;
  uint64_t next() {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 2685821657736338717ull;
  }
  //! Uniform in [-1, 1) with 24 significant bits: sums of products round.
  float unit() { return float(int32_t(next() >> 40) - (1 << 23)) * (1.0f / (1 << 23)); }
};

}  // namespace

// ---- 1. FMA dot product with a masked tail -------------------------------------------------

SSK_AVX512 float dot_avx512(const float* a, const float* b, size_t n) {
  __m512 acc = _mm512_setzero_ps();
  size_t i = 0;
  for (; i + 16 <= n; i += 16)
    acc = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc);
  if (i < n) {
    // Merge masking: lanes past the end keep their partial sums.
    const __mmask16 tail = __mmask16((1u << (n - i)) - 1);
    acc = _mm512_mask3_fmadd_ps(_mm512_maskz_loadu_ps(tail, a + i),
                                _mm512_maskz_loadu_ps(tail, b + i), acc, tail);
  }
  return sum_halves(_mm512_castps512_ps256(acc),
                    _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc), 1)));
}

SSK_AVX2 float dot_avx2(const float* a, const float* b, size_t n) {
  // lo and hi are the two halves of the AVX-512 version's accumulator.
  __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    lo = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), lo);
    hi = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), hi);
  }
  if (i < n) {
    const __m256i left = _mm256_set1_epi32(int(n - i));
    const __m256i m_lo = _mm256_cmpgt_epi32(left, iota8());
    const __m256i m_hi = _mm256_cmpgt_epi32(left, _mm256_add_epi32(iota8(), _mm256_set1_epi32(8)));
    const __m256 f_lo =
        _mm256_fmadd_ps(_mm256_maskload_ps(a + i, m_lo), _mm256_maskload_ps(b + i, m_lo), lo);
    const __m256 f_hi = _mm256_fmadd_ps(_mm256_maskload_ps(a + i + 8, m_hi),
                                        _mm256_maskload_ps(b + i + 8, m_hi), hi);
    lo = _mm256_blendv_ps(lo, f_lo, _mm256_castsi256_ps(m_lo));
    hi = _mm256_blendv_ps(hi, f_hi, _mm256_castsi256_ps(m_hi));
  }
  return sum_halves(lo, hi);
}

// ---- 2. Byte compare into a mask, popcount --------------------------------------------------

SSK_AVX512 uint64_t count_eq_avx512(const uint8_t* p, size_t n, uint8_t value) {
  const __m512i v = _mm512_set1_epi8(char(value));
  uint64_t count = 0;
  size_t i = 0;
  for (; i + 64 <= n; i += 64)
    count += _mm_popcnt_u64(_mm512_cmpeq_epi8_mask(_mm512_loadu_si512(p + i), v));
  if (i < n) {
    const __mmask64 tail = (uint64_t(1) << (n - i)) - 1;
    count +=
        _mm_popcnt_u64(_mm512_mask_cmpeq_epi8_mask(tail, _mm512_maskz_loadu_epi8(tail, p + i), v));
  }
  return count;
}

SSK_AVX2 uint64_t count_eq_avx2(const uint8_t* p, size_t n, uint8_t value) {
  const __m256i v = _mm256_set1_epi8(char(value));
  uint64_t count = 0;
  size_t i = 0;
  for (; i + 64 <= n; i += 64) {
    const uint32_t lo = uint32_t(_mm256_movemask_epi8(
        _mm256_cmpeq_epi8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i)), v)));
    const uint32_t hi = uint32_t(_mm256_movemask_epi8(
        _mm256_cmpeq_epi8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 32)), v)));
    count += _mm_popcnt_u64(lo | uint64_t(hi) << 32);
  }
  // AVX2 has no byte-masked load: the tail is scalar.
  for (; i < n; ++i) count += p[i] == value;
  return count;
}

// ---- 3. Compress-store of the elements above a threshold ------------------------------------

namespace {

//! For each 8-bit mask, the vpermd indices that move the selected lanes to
//! the front, in order.
struct CompressTable {
  alignas(32) int32_t idx[256][8] = {};
};
constexpr CompressTable make_compress_table() {
  CompressTable t;
  for (int m = 0; m < 256; ++m) {
    int k = 0;
    for (int j = 0; j < 8; ++j)
      if (m >> j & 1) t.idx[m][k++] = j;
  }
  return t;
}
constexpr CompressTable kCompressTable = make_compress_table();

}  // namespace

SSK_AVX512 size_t compress_gt_avx512(const int32_t* in, size_t n, int32_t threshold, int32_t* out) {
  const __m512i t = _mm512_set1_epi32(threshold);
  size_t kept = 0, i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512i v = _mm512_loadu_si512(in + i);
    const __mmask16 k = _mm512_cmpgt_epi32_mask(v, t);
    _mm512_mask_compressstoreu_epi32(out + kept, k, v);
    kept += _mm_popcnt_u32(k);
  }
  if (i < n) {
    const __mmask16 tail = __mmask16((1u << (n - i)) - 1);
    const __m512i v = _mm512_maskz_loadu_epi32(tail, in + i);
    const __mmask16 k = _mm512_mask_cmpgt_epi32_mask(tail, v, t);
    _mm512_mask_compressstoreu_epi32(out + kept, k, v);
    kept += _mm_popcnt_u32(k);
  }
  return kept;
}

SSK_AVX2 size_t compress_gt_avx2(const int32_t* in, size_t n, int32_t threshold, int32_t* out) {
  const __m256i t = _mm256_set1_epi32(threshold);
  size_t kept = 0, i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(in + i));
    const unsigned m = unsigned(_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(v, t))));
    const __m256i perm = _mm256_load_si256(reinterpret_cast<const __m256i*>(kCompressTable.idx[m]));
    // A whole vector is stored; the lanes past the kept ones are
    // overwritten by the next store or lie beyond the result.
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + kept),
                        _mm256_permutevar8x32_epi32(v, perm));
    kept += unsigned(_mm_popcnt_u32(m));
  }
  for (; i < n; ++i)
    if (in[i] > threshold) out[kept++] = in[i];
  return kept;
}

// ---- 4. 64-bit hash mix: vpternlogq, vprolq, vpmullq, vpermq ---------------------------------

namespace {

template <int R>
inline __m256i rol64(__m256i x) {
  return _mm256_or_si256(_mm256_slli_epi64(x, R), _mm256_srli_epi64(x, 64 - R));
}

//! The low 64 bits of a * b per lane from 32-bit products (vpmullq's
//! result): lo*lo + ((hi*lo + lo*hi) << 32).
inline __m256i mullo64(__m256i a, __m256i b) {
  const __m256i cross = _mm256_add_epi64(_mm256_mul_epu32(_mm256_srli_epi64(a, 32), b),
                                         _mm256_mul_epu32(a, _mm256_srli_epi64(b, 32)));
  return _mm256_add_epi64(_mm256_mul_epu32(a, b), _mm256_slli_epi64(cross, 32));
}

}  // namespace

SSK_AVX512 void hash_mix_avx512(const uint64_t* keys, size_t n, uint64_t seed, uint64_t* out) {
  const __m512i s = _mm512_set1_epi64(int64_t(seed));
  const __m512i p1 = _mm512_set1_epi64(int64_t(kHashP1)), p2 = _mm512_set1_epi64(int64_t(kHashP2)),
                p3 = _mm512_set1_epi64(int64_t(kHashP3));
  const __m512i reverse = _mm512_set_epi64(0, 1, 2, 3, 4, 5, 6, 7);
  const __m512i step = _mm512_set1_epi64(8);
  __m512i salt = _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0);  // the key's index
  for (size_t i = 0; i < n; i += 8) {
    __m512i x = _mm512_loadu_si512(keys + i);
    x = _mm512_ternarylogic_epi64(x, s, salt, 0x96);  // x ^ seed ^ index
    x = _mm512_rol_epi64(x, 23);
    x = _mm512_mullo_epi64(x, p1);
    // Reverse the lanes: each output depends on a key from the other half.
    x = _mm512_permutexvar_epi64(reverse, x);
    x = _mm512_ternarylogic_epi64(x, _mm512_rol_epi64(x, 41), p2, 0x78);  // x ^ (rol & p2)
    x = _mm512_mullo_epi64(x, p3);
    _mm512_storeu_si512(out + i, x);
    salt = _mm512_add_epi64(salt, step);
  }
}

SSK_AVX2 void hash_mix_avx2(const uint64_t* keys, size_t n, uint64_t seed, uint64_t* out) {
  const __m256i s = _mm256_set1_epi64x(int64_t(seed));
  const __m256i p1 = _mm256_set1_epi64x(int64_t(kHashP1)),
                p2 = _mm256_set1_epi64x(int64_t(kHashP2)),
                p3 = _mm256_set1_epi64x(int64_t(kHashP3));
  const __m256i step = _mm256_set1_epi64x(8);
  __m256i salt_lo = _mm256_setr_epi64x(0, 1, 2, 3), salt_hi = _mm256_setr_epi64x(4, 5, 6, 7);
  for (size_t i = 0; i < n; i += 8) {
    __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(keys + i));
    __m256i hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(keys + i + 4));
    lo = mullo64(rol64<23>(_mm256_xor_si256(_mm256_xor_si256(lo, s), salt_lo)), p1);
    hi = mullo64(rol64<23>(_mm256_xor_si256(_mm256_xor_si256(hi, s), salt_hi)), p1);
    // The 8-lane reversal: each half is the other half reversed.
    const __m256i r_lo = _mm256_permute4x64_epi64(hi, 0x1b);
    const __m256i r_hi = _mm256_permute4x64_epi64(lo, 0x1b);
    lo = mullo64(_mm256_xor_si256(r_lo, _mm256_and_si256(rol64<41>(r_lo), p2)), p3);
    hi = mullo64(_mm256_xor_si256(r_hi, _mm256_and_si256(rol64<41>(r_hi), p2)), p3);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), lo);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i + 4), hi);
    salt_lo = _mm256_add_epi64(salt_lo, step);
    salt_hi = _mm256_add_epi64(salt_hi, step);
  }
}

// ---- 5. Masked SAXPY with merge masking -----------------------------------------------------

SSK_AVX512 void masked_saxpy_avx512(float a, const float* x, float* y, size_t n) {
  const __m512 va = _mm512_set1_ps(a), zero = _mm512_setzero_ps();
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 vx = _mm512_loadu_ps(x + i);
    const __mmask16 positive = _mm512_cmp_ps_mask(vx, zero, _CMP_GT_OQ);
    // vfmadd231ps y{positive}: the other lanes keep y.
    _mm512_storeu_ps(y + i, _mm512_mask3_fmadd_ps(va, vx, _mm512_loadu_ps(y + i), positive));
  }
  if (i < n) {
    const __mmask16 tail = __mmask16((1u << (n - i)) - 1);
    const __m512 vx = _mm512_maskz_loadu_ps(tail, x + i);
    const __mmask16 positive = _mm512_mask_cmp_ps_mask(tail, vx, zero, _CMP_GT_OQ);
    _mm512_mask_storeu_ps(
        y + i, tail, _mm512_mask3_fmadd_ps(va, vx, _mm512_maskz_loadu_ps(tail, y + i), positive));
  }
}

SSK_AVX2 void masked_saxpy_avx2(float a, const float* x, float* y, size_t n) {
  const __m256 va = _mm256_set1_ps(a), zero = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 vx = _mm256_loadu_ps(x + i), vy = _mm256_loadu_ps(y + i);
    const __m256 positive = _mm256_cmp_ps(vx, zero, _CMP_GT_OQ);
    _mm256_storeu_ps(y + i, _mm256_blendv_ps(vy, _mm256_fmadd_ps(va, vx, vy), positive));
  }
  if (i < n) {
    const __m256i tail = _mm256_cmpgt_epi32(_mm256_set1_epi32(int(n - i)), iota8());
    const __m256 vx = _mm256_maskload_ps(x + i, tail), vy = _mm256_maskload_ps(y + i, tail);
    const __m256 positive = _mm256_cmp_ps(vx, zero, _CMP_GT_OQ);
    _mm256_maskstore_ps(y + i, tail, _mm256_blendv_ps(vy, _mm256_fmadd_ps(va, vx, vy), positive));
  }
}

// ---- 6. Saturating narrowing and vpsadbw ----------------------------------------------------

SSK_AVX512 uint64_t sat_sad_avx512(const uint32_t* a, const int16_t* b, size_t n) {
  const __m512i bias = _mm512_set1_epi8(char(0x80));
  __m512i acc = _mm512_setzero_si512();
  for (size_t i = 0; i < n; i += 64) {
    // 64 uint32 -> 64 uint8 (vpmovusdb: above 255 becomes 255).
    __m512i av = _mm512_castsi128_si512(_mm512_cvtusepi32_epi8(_mm512_loadu_si512(a + i)));
    av = _mm512_inserti32x4(av, _mm512_cvtusepi32_epi8(_mm512_loadu_si512(a + i + 16)), 1);
    av = _mm512_inserti32x4(av, _mm512_cvtusepi32_epi8(_mm512_loadu_si512(a + i + 32)), 2);
    av = _mm512_inserti32x4(av, _mm512_cvtusepi32_epi8(_mm512_loadu_si512(a + i + 48)), 3);
    // 64 int16 -> 64 int8 (vpmovswb), biased to uint8 for the unsigned SAD.
    __m512i bv = _mm512_castsi256_si512(_mm512_cvtsepi16_epi8(_mm512_loadu_si512(b + i)));
    bv = _mm512_inserti64x4(bv, _mm512_cvtsepi16_epi8(_mm512_loadu_si512(b + i + 32)), 1);
    bv = _mm512_xor_si512(bv, bias);
    acc = _mm512_add_epi64(acc, _mm512_sad_epu8(av, bv));
  }
  return uint64_t(_mm512_reduce_add_epi64(acc));
}

namespace {

//! 32 uint32 -> 32 uint8 saturated, in order: vpmovusdb's result.
inline __m256i narrow_u32_u8(const uint32_t* p) {
  const __m256i max = _mm256_set1_epi32(255);
  __m256i m[4];
  for (int k = 0; k < 4; ++k)
    m[k] = _mm256_min_epu32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 8 * k)), max);
  // Both packs work per 128-bit lane; the dword permute puts the four
  // 4-byte groups of each source back in order.
  const __m256i bytes =
      _mm256_packus_epi16(_mm256_packus_epi32(m[0], m[1]), _mm256_packus_epi32(m[2], m[3]));
  return _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

//! 32 int16 -> 32 int8 saturated (vpmovswb), in order, biased by 128.
inline __m256i narrow_s16_u8_biased(const int16_t* p) {
  const __m256i packed =
      _mm256_packs_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)),
                         _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 16)));
  return _mm256_xor_si256(_mm256_permute4x64_epi64(packed, 0xd8), _mm256_set1_epi8(char(0x80)));
}

}  // namespace

SSK_AVX2 uint64_t sat_sad_avx2(const uint32_t* a, const int16_t* b, size_t n) {
  __m256i acc_lo = _mm256_setzero_si256(), acc_hi = _mm256_setzero_si256();
  for (size_t i = 0; i < n; i += 64) {
    acc_lo = _mm256_add_epi64(acc_lo,
                              _mm256_sad_epu8(narrow_u32_u8(a + i), narrow_s16_u8_biased(b + i)));
    acc_hi = _mm256_add_epi64(
        acc_hi, _mm256_sad_epu8(narrow_u32_u8(a + i + 32), narrow_s16_u8_biased(b + i + 32)));
  }
  alignas(32) uint64_t lanes[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), acc_lo);
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes + 4), acc_hi);
  uint64_t sum = 0;
  for (uint64_t lane : lanes) sum += lane;
  return sum;
}

// ---- 7. Two-table permute lookup (vpermi2d / vpermt2d) --------------------------------------

SSK_AVX512 void permute_lookup_avx512(const int32_t* table, const uint32_t* idx, size_t n,
                                      int32_t* out) {
  const __m512i t_lo = _mm512_loadu_si512(table), t_hi = _mm512_loadu_si512(table + 16);
  for (size_t i = 0; i < n; i += 16) {
    const __m512i x = _mm512_loadu_si512(idx + i);
    // Index bits 4:0 select one of the 32 entries of t_lo:t_hi.
    const __m512i first = _mm512_permutex2var_epi32(t_lo, x, t_hi);
    const __m512i second = _mm512_permutex2var_epi32(t_lo, _mm512_srli_epi32(x, 5), t_hi);
    _mm512_storeu_si512(out + i, _mm512_xor_si512(first, _mm512_slli_epi32(second, 1)));
  }
}

namespace {

//! t[idx & 31] per lane from four 8-entry vpermd lookups: index bit 3
//! chooses within a pair of tables, bit 4 between pairs (blendv looks at
//! the sign bit, hence the shifts; no FP operation touches the values).
inline __m256i lookup32(const __m256i t[4], __m256i idx) {
  const __m256 bit3 = _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28));
  const __m256 bit4 = _mm256_castsi256_ps(_mm256_slli_epi32(idx, 27));
  const __m256 r01 =
      _mm256_blendv_ps(_mm256_castsi256_ps(_mm256_permutevar8x32_epi32(t[0], idx)),
                       _mm256_castsi256_ps(_mm256_permutevar8x32_epi32(t[1], idx)), bit3);
  const __m256 r23 =
      _mm256_blendv_ps(_mm256_castsi256_ps(_mm256_permutevar8x32_epi32(t[2], idx)),
                       _mm256_castsi256_ps(_mm256_permutevar8x32_epi32(t[3], idx)), bit3);
  return _mm256_castps_si256(_mm256_blendv_ps(r01, r23, bit4));
}

}  // namespace

SSK_AVX2 void permute_lookup_avx2(const int32_t* table, const uint32_t* idx, size_t n,
                                  int32_t* out) {
  __m256i t[4];
  for (int k = 0; k < 4; ++k)
    t[k] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(table + 8 * k));
  for (size_t i = 0; i < n; i += 8) {
    const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(idx + i));
    const __m256i first = lookup32(t, x);
    const __m256i second = lookup32(t, _mm256_srli_epi32(x, 5));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i),
                        _mm256_xor_si256(first, _mm256_slli_epi32(second, 1)));
  }
}

// ---- 8. State kept in zmm16-20 and k1-k3 across iterations ----------------------------------

SSK_AVX512 void zmm_high_avx512(const int32_t* v, size_t n, int32_t threshold, ZmmHighResult* r) {
  // Inline asm, so that the loop's state really lives in registers the
  // AVX2 register file does not have (zmm16+, opmasks) from one iteration
  // to the next: the emulator has to carry it across stub entries.
  //
  // kxorw comes first: the runtime patches a 4-byte site such as kxorw with
  // a jmp rel32 that spans into the next instruction and leaves that one's
  // second byte a ud2. Were the next instruction the loop head, every
  // back-edge would trap (about 8 us each), which measures that corner,
  // not the steady state.
  size_t blocks = n / 16;
  uint32_t parity;
  __asm__ volatile(
      "kxorw %%k2, %%k2, %%k2\n\t"
      "vpbroadcastd %[threshold], %%zmm18\n\t"
      "vpbroadcastd %[int_min], %%zmm17\n\t"
      "vpxord %%zmm16, %%zmm16, %%zmm16\n\t"
      "vpxord %%zmm20, %%zmm20, %%zmm20\n\t"
      "1:\n\t"
      "vmovdqu32 (%[p]), %%zmm19\n\t"
      "vpcmpgtd %%zmm18, %%zmm19, %%k1\n\t"           // k1 = v > threshold
      "kxorw %%k1, %%k2, %%k2\n\t"                    // k2 ^= k1 (parity)
      "kandw %%k2, %%k1, %%k3\n\t"                    // k3 = k1 & k2
      "vpaddd %%zmm19, %%zmm16, %%zmm16\n\t"          // sum
      "vpmaxsd %%zmm19, %%zmm17, %%zmm17\n\t"         // max
      "vpaddd %%zmm19, %%zmm20, %%zmm20%{%%k3%}\n\t"  // masked sum, merge masking
      "add $64, %[p]\n\t"
      "dec %[blocks]\n\t"
      "jnz 1b\n\t"
      "vmovdqu32 %%zmm16, (%[sum])\n\t"
      "vmovdqu32 %%zmm17, (%[max])\n\t"
      "vmovdqu32 %%zmm20, (%[masked])\n\t"
      "kmovw %%k2, %[parity]"
      : [p] "+r"(v), [blocks] "+r"(blocks), [parity] "=r"(parity)
      : [threshold] "r"(threshold), [int_min] "r"(INT32_MIN), [sum] "r"(r->sum), [max] "r"(r->max),
        [masked] "r"(r->masked_sum)
      : "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "k1", "k2", "k3", "memory", "cc");
  r->parity = parity;
}

SSK_AVX2 void zmm_high_avx2(const int32_t* v, size_t n, int32_t threshold, ZmmHighResult* r) {
  // The same state as vectors: each 16-lane value is a lo/hi pair, each
  // opmask a pair of all-ones/all-zeros lane masks.
  const __m256i t = _mm256_set1_epi32(threshold);
  __m256i sum[2] = {}, masked[2] = {}, parity[2] = {};
  __m256i max[2] = {_mm256_set1_epi32(INT32_MIN), _mm256_set1_epi32(INT32_MIN)};
  for (size_t i = 0; i < n; i += 16) {
    for (int h = 0; h < 2; ++h) {
      const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(v + i + 8 * h));
      const __m256i above = _mm256_cmpgt_epi32(x, t);
      parity[h] = _mm256_xor_si256(parity[h], above);
      sum[h] = _mm256_add_epi32(sum[h], x);
      max[h] = _mm256_max_epi32(max[h], x);
      masked[h] =
          _mm256_add_epi32(masked[h], _mm256_and_si256(x, _mm256_and_si256(above, parity[h])));
    }
  }
  for (int h = 0; h < 2; ++h) {
    _mm256_store_si256(reinterpret_cast<__m256i*>(r->sum + 8 * h), sum[h]);
    _mm256_store_si256(reinterpret_cast<__m256i*>(r->max + 8 * h), max[h]);
    _mm256_store_si256(reinterpret_cast<__m256i*>(r->masked_sum + 8 * h), masked[h]);
  }
  r->parity = uint32_t(_mm256_movemask_ps(_mm256_castsi256_ps(parity[0]))) |
              uint32_t(_mm256_movemask_ps(_mm256_castsi256_ps(parity[1]))) << 8;
}

// ---- Setup and checksums --------------------------------------------------------------------

namespace {

void setup_dot() {
  Rng rng{0x1234};
  for (size_t i = 0; i < std::size(dot_data.a); ++i) {
    dot_data.a[i] = rng.unit();
    dot_data.b[i] = rng.unit();
  }
  dot_data.result = 0;
}

void setup_count() {
  Rng rng{0x2345};
  // A 16-letter alphabet: about one byte in 16 matches.
  for (uint8_t& c : count_data.bytes) c = uint8_t('a' + rng.next() % 16);
  count_data.value = 'e';
  count_data.result = 0;
}

void setup_compress() {
  Rng rng{0x3456};
  for (int32_t& x : compress_data.in) x = int32_t(rng.next() >> 32);
  compress_data.threshold = 1 << 29;  // keeps about 3/8
  std::fill(std::begin(compress_data.out), std::end(compress_data.out), 0);
  compress_data.kept = 0;
}

void setup_hash() {
  Rng rng{0x4567};
  for (uint64_t& k : hash_data.keys) k = rng.next();
  std::fill(std::begin(hash_data.out), std::end(hash_data.out), 0);
  hash_data.seed = 0x243f6a8885a308d3ull;
}

void setup_saxpy() {
  Rng rng{0x5678};
  for (size_t i = 0; i < std::size(saxpy_data.x); ++i) {
    saxpy_data.x[i] = 8 * rng.unit();
    saxpy_data.y[i] = 4 * rng.unit();
  }
  saxpy_data.a = 0.3f;
}

void setup_sad() {
  Rng rng{0x6789};
  // Mostly in range, some beyond it (and "negative" as int32, which
  // vpmovusdb treats as large unsigned values): saturation matters.
  for (uint32_t& x : sad_data.a) {
    const uint64_t r = rng.next();
    x = r % 8 == 0 ? uint32_t(r >> 32) : uint32_t(r >> 32) % 320;
  }
  for (int16_t& x : sad_data.b) {
    const uint64_t r = rng.next();
    x = r % 8 == 0 ? int16_t(r >> 48) : int16_t(int((r >> 32) % 300) - 150);
  }
  sad_data.result = 0;
}

void setup_permute() {
  Rng rng{0x789a};
  for (int32_t& x : permute_data.table) x = int32_t(rng.next() >> 32);
  for (uint32_t& x : permute_data.idx) x = uint32_t(rng.next() >> 32);
  std::fill(std::begin(permute_data.out), std::end(permute_data.out), 0);
}

void setup_zmm_high() {
  Rng rng{0x89ab};
  for (int32_t& x : zmm_high_data.v) {
    const uint64_t r = rng.next();
    x = r % 16 == 0 ? int32_t(r >> 32) : int32_t((r >> 32) % 2001) - 1000;
  }
  zmm_high_data.threshold = 100;
  zmm_high_data.result = {};
}

uint64_t checksum_zmm_high() {
  const ZmmHighResult& r = zmm_high_data.result;
  uint64_t h = fnv1a(r.sum, sizeof r.sum);
  h = fnv1a(r.max, sizeof r.max, h);
  h = fnv1a(r.masked_sum, sizeof r.masked_sum, h);
  return fnv1a(&r.parity, sizeof r.parity, h);
}

// The thunks run a kernel on its global block: one signature for the table.
constexpr Kernel kKernels[] = {
    {"dot_fma_masked_tail", setup_dot,
     [] { dot_data.result = dot_avx512(dot_data.a, dot_data.b, kDotN); },
     [] { dot_data.result = dot_avx2(dot_data.a, dot_data.b, kDotN); },
     [] { return fnv1a(&dot_data.result, sizeof dot_data.result); }},
    {"count_eq_bytes", setup_count,
     [] { count_data.result = count_eq_avx512(count_data.bytes, kCountN, count_data.value); },
     [] { count_data.result = count_eq_avx2(count_data.bytes, kCountN, count_data.value); },
     [] { return fnv1a(&count_data.result, sizeof count_data.result); }},
    {"compress_gt", setup_compress,
     [] {
       compress_data.kept = compress_gt_avx512(compress_data.in, kCompressN,
                                               compress_data.threshold, compress_data.out);
     },
     [] {
       compress_data.kept = compress_gt_avx2(compress_data.in, kCompressN, compress_data.threshold,
                                             compress_data.out);
     },
     [] {
       const uint64_t h = fnv1a(&compress_data.kept, sizeof compress_data.kept);
       return fnv1a(compress_data.out, compress_data.kept * sizeof(int32_t), h);
     }},
    {"hash_mix64", setup_hash,
     [] { hash_mix_avx512(hash_data.keys, kHashN, hash_data.seed, hash_data.out); },
     [] { hash_mix_avx2(hash_data.keys, kHashN, hash_data.seed, hash_data.out); },
     [] { return fnv1a(hash_data.out, sizeof hash_data.out); }},
    {"masked_saxpy", setup_saxpy,
     [] { masked_saxpy_avx512(saxpy_data.a, saxpy_data.x, saxpy_data.y, kSaxpyN); },
     [] { masked_saxpy_avx2(saxpy_data.a, saxpy_data.x, saxpy_data.y, kSaxpyN); },
     [] { return fnv1a(saxpy_data.y, kSaxpyN * sizeof(float)); }},
    {"sat_narrow_sad", setup_sad,
     [] { sad_data.result = sat_sad_avx512(sad_data.a, sad_data.b, kSadN); },
     [] { sad_data.result = sat_sad_avx2(sad_data.a, sad_data.b, kSadN); },
     [] { return fnv1a(&sad_data.result, sizeof sad_data.result); }},
    {"permute2_lookup", setup_permute,
     [] {
       permute_lookup_avx512(permute_data.table, permute_data.idx, kPermuteN, permute_data.out);
     },
     [] { permute_lookup_avx2(permute_data.table, permute_data.idx, kPermuteN, permute_data.out); },
     [] { return fnv1a(permute_data.out, sizeof permute_data.out); }},
    {"zmm16_kregs_asm", setup_zmm_high,
     [] {
       zmm_high_avx512(zmm_high_data.v, kZmmHighN, zmm_high_data.threshold, &zmm_high_data.result);
     },
     [] {
       zmm_high_avx2(zmm_high_data.v, kZmmHighN, zmm_high_data.threshold, &zmm_high_data.result);
     },
     checksum_zmm_high},
};

}  // namespace

std::span<const Kernel> kernels() {
  return kKernels;
}

const Kernel* find_kernel(std::string_view name) {
  for (const Kernel& k : kKernels)
    if (name == k.name) return &k;
  return nullptr;
}

}  // namespace avx512emu::steady_state
