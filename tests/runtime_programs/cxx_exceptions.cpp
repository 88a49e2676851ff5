// Runtime test program: C++ exceptions thrown through functions that hold
// AVX-512 code (patched sites under avx512emu) must unwind as natively: the
// unwinder sees only the program's own return addresses.
#include <immintrin.h>

#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>

namespace {

uint32_t data[256] __attribute__((aligned(64)));

__attribute__((noinline)) void maybe_throw(int i) {
  if (i % 7 == 3) throw std::runtime_error("thrown at " + std::to_string(i));
}

// AVX-512 work before and after a call that may throw.
__attribute__((noinline)) uint32_t work(int i) {
  __m512i acc = _mm512_set1_epi32(i);
  for (int k = 0; k < 256; k += 16) acc = _mm512_add_epi32(acc, _mm512_loadu_si512(data + k));
  maybe_throw(i);
  acc = _mm512_xor_si512(acc, _mm512_set1_epi32(0x5a5a5a5a));
  uint32_t lanes[16];
  _mm512_storeu_si512(lanes, acc);
  uint32_t sum = 0;
  for (uint32_t v : lanes) sum += v;
  return sum;
}

}  // namespace

int main() {
  for (int i = 0; i < 256; ++i) data[i] = uint32_t(i * 40503u);
  uint64_t sum = 0;
  int caught = 0;
  for (int i = 0; i < 200; ++i) {
    try {
      sum += work(i);
    } catch (const std::runtime_error& e) {
      ++caught;
      if (i < 20) std::printf("%s\n", e.what());
    }
  }
  std::printf("caught %d sum %llu\n", caught, static_cast<unsigned long long>(sum));
  return 0;
}
