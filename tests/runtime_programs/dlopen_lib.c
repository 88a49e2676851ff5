/* Runtime test library, loaded by dlopen_main with dlopen(): its AVX-512
   code exists only after the program started, so trap injection must find
   it when dlopen() returns. */
#include <immintrin.h>
#include <stdint.h>

__attribute__((visibility("default"))) void masked_scale(const float* in, float* out, int n,
                                                         uint32_t mask_seed) {
  for (int i = 0; i + 16 <= n; i += 16) {
    const __mmask16 m = (__mmask16)(mask_seed ^ (uint32_t)i * 0x2545u);
    const __m512 v = _mm512_maskz_loadu_ps(m, in + i);
    _mm512_mask_storeu_ps(out + i, (__mmask16)~m, _mm512_mul_ps(v, v));
  }
}
