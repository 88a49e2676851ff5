/* Runtime test program: masked FP arithmetic at 512, 256 and 128 bits
   (zero- and merge-masked loads, masked FMA, compares into opmasks, blends,
   masked stores that must not touch masked-off bytes) and opmask logic.
   Prints one checksum per round; the runtime test compares the output of a
   native run with runs under avx512emu. */
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>

#include "checksum.h"

enum { N = 512 };

__attribute__((noinline)) static void kernel512(const float* a, const float* b, float* out,
                                                uint32_t seed) {
  __m512 acc = _mm512_loadu_ps(b);
  for (int i = 0; i + 16 <= N; i += 16) {
    const __mmask16 m = (__mmask16)(seed * (uint32_t)(i + 1) ^ (seed >> 7));
    const __m512 x = _mm512_maskz_loadu_ps(m, a + i);
    const __m512 y = _mm512_mask_loadu_ps(acc, (__mmask16)~m, b + i);
    acc = _mm512_mask_fmadd_ps(x, m, y, acc);
    const __mmask16 c = _mm512_cmp_ps_mask(acc, x, _CMP_LT_OQ);
    acc = _mm512_mask_blend_ps(c, acc, _mm512_mul_ps(acc, y));
    _mm512_mask_storeu_ps(out + i, _kor_mask16(m, c), acc);
  }
}

//! Reads a[0, n) and b[0, n), writes out[0, n).
__attribute__((noinline)) static void kernel256(const float* a, const float* b, float* out, int n,
                                                uint32_t seed) {
  for (int i = 0; i + 8 <= n; i += 8) {
    const __mmask8 m = (__mmask8)(seed >> (i & 15));
    const __m256 x = _mm256_maskz_loadu_ps(m, a + i);
    const __m256 y = _mm256_loadu_ps(b + i);
    const __m256 s = _mm256_mask_sub_ps(y, m, x, y);
    _mm256_mask_storeu_ps(out + i, (__mmask8)(m ^ 0x3c), _mm256_maskz_max_ps(0xf0, s, x));
  }
}

__attribute__((noinline)) static void kernel128_pd(const double* a, double* out, uint32_t seed) {
  for (int i = 0; i + 2 <= N / 2; i += 2) {
    const __mmask8 m = (__mmask8)((seed >> (i & 31)) & 3);  // i reaches 254
    const __m128d x = _mm_loadu_pd(a + i);
    const __m128d q = _mm_maskz_div_pd(m, x, _mm_mask_sqrt_pd(x, m, x));
    _mm_mask_storeu_pd(out + i, (__mmask8)(m | 1), q);
  }
}

int main(void) {
  static float a[N], b[N], out[N];
  static double ad[N / 2], outd[N / 2];
  uint32_t x = 12345;
  for (int i = 0; i < N; ++i) {
    x = x * 1664525u + 1013904223u;
    a[i] = (float)(x >> 8) / 16777216.0f * 4.0f - 1.0f;
    b[i] = (float)(x & 0xffff) / 65536.0f + 0.5f;
    out[i] = -7.0f;
  }
  for (int i = 0; i < N / 2; ++i) {
    ad[i] = 1.0 + a[i] * a[i];
    outd[i] = -3.0;
  }
  for (uint32_t round = 0; round < 40; ++round) {
    const uint32_t seed = round * 2654435761u + 17;
    kernel512(a, b, out, seed);
    kernel256(b, a, out + 8, N - 8, seed);  // stays inside out[N]
    kernel128_pd(ad, outd, seed);
    uint64_t h = checksum_bytes(out, sizeof out, CHECKSUM_INIT);
    h = checksum_bytes(outd, sizeof outd, h);
    printf("round %2u checksum %016llx\n", round, (unsigned long long)h);
  }
  return 0;
}
