/* Runtime test program: masked integer arithmetic at 512 and 256 bits
   (vpaddd/vpsubd, vpcmpd/vpcmpud into opmasks, vpternlogd, vpminud/vpmaxsd,
   shifts, broadcasts, masked moves). Prints one checksum per round; the
   runtime test compares the output of a native run with runs under avx512emu. */
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>

#include "checksum.h"

enum { N = 1024 };

__attribute__((noinline)) static void kernel512(const uint32_t* a, const uint32_t* b, uint32_t* out,
                                                uint32_t seed) {
  const __m512i k = _mm512_set1_epi32((int)seed);
  __m512i acc = _mm512_loadu_si512(b);
  for (int i = 0; i + 16 <= N; i += 16) {
    const __m512i x = _mm512_loadu_si512(a + i);
    const __m512i y = _mm512_loadu_si512(b + i);
    const __mmask16 lt = _mm512_cmplt_epu32_mask(x, y);
    const __mmask16 gt = _mm512_cmpgt_epi32_mask(_mm512_xor_si512(x, k), acc);
    acc = _mm512_mask_add_epi32(acc, lt, acc, x);
    acc = _mm512_mask_sub_epi32(acc, gt, acc, _mm512_srli_epi32(y, 3));
    acc = _mm512_ternarylogic_epi32(acc, x, y, 0x96);
    acc = _mm512_mask_min_epu32(acc, (__mmask16)(lt ^ gt), acc, _mm512_slli_epi32(x, 1));
    _mm512_mask_storeu_epi32(out + i, (__mmask16)~gt, acc);
  }
}

__attribute__((noinline)) static void kernel256(const uint32_t* a, uint32_t* out, uint32_t seed) {
  for (int i = 0; i + 8 <= N; i += 8) {
    const __m256i x = _mm256_loadu_si256((const __m256i*)(a + i));
    const __mmask8 m = _mm256_cmpeq_epi32_mask(_mm256_and_si256(x, _mm256_set1_epi32(3)),
                                               _mm256_set1_epi32((int)(seed & 3)));
    const __m256i r = _mm256_maskz_max_epi32(m, x, _mm256_set1_epi32((int)seed));
    _mm256_mask_storeu_epi32(out + i, (__mmask8)(m | 0x81), r);
  }
}

int main(void) {
  static uint32_t a[N], b[N], out[N];
  uint32_t x = 2463534242u;
  for (int i = 0; i < N; ++i) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    a[i] = x;
    b[i] = x * 2654435761u;
    out[i] = 0xdeadbeef;
  }
  for (uint32_t round = 0; round < 40; ++round) {
    const uint32_t seed = round * 0x9e3779b9u + 1;
    kernel512(a, b, out, seed);
    kernel256(b, out, seed);
    printf("round %2u checksum %016llx\n", round,
           (unsigned long long)checksum_bytes(out, sizeof out, CHECKSUM_INIT));
  }
  return 0;
}
