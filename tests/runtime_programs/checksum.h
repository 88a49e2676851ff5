/* Owns the checksum the runtime test programs print: FNV-1a over bytes, in
   plain C without vector code of its own (the programs' AVX-512 code is only
   what they write on purpose). */
#pragma once

#include <stddef.h>
#include <stdint.h>

static inline uint64_t checksum_bytes(const void* p, size_t n, uint64_t h) {
  const volatile uint8_t* b = (const volatile uint8_t*)p; /* volatile: no vectorised loop */
  for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 1099511628211ull;
  return h;
}
#define CHECKSUM_INIT 1469598103934665603ull
