// Owns the plain C++ versions of the bundled guest workloads
// (emu/kvm/guest/workloads.c): the same xorshift64 data and the same
// arithmetic without any SIMD, so every KVM test compares the guest's result
// against a computation that shares no code with the guest or the emulator.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "guest_abi.h"

namespace avx512emu::kvm::workload_reference {

struct Xorshift64 {
  uint64_t s = GUEST_SEED;
  uint64_t next() {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  }
};

inline uint64_t reference_masked_dot() {
  Xorshift64 r;
  uint32_t sum = 0;
  for (int i = 0; i < 4096; ++i) {
    const int32_t a = int32_t(r.next() % 2001) - 1000;
    const int32_t b = int32_t(r.next() % 2001) - 1000;
    if (a > 0) sum += uint32_t(a) * uint32_t(b);
  }
  return sum;
}

inline uint64_t reference_byte_histogram() {
  Xorshift64 r;
  uint64_t counts[16] = {};
  for (int i = 0; i < 16384; ++i) ++counts[uint8_t(r.next() >> 24) >> 4];
  uint64_t h = 0;
  for (uint64_t c : counts) h = h * 1000003u + c;
  return h;
}

inline uint64_t reference_prefix_sum() {
  Xorshift64 r;
  uint32_t running = 0;
  uint64_t sum = 0;
  for (int i = 0; i < 4096; ++i) {
    running += uint32_t(r.next() % 100);
    sum += uint64_t(running) * uint64_t(i + 1);
  }
  return sum;
}

inline uint64_t reference_string_search() {
  Xorshift64 r;
  std::string text(16384, '\0');
  for (char& c : text) c = char('a' + (r.next() >> 30) % 4);
  uint64_t count = 0, positions = 0;
  for (size_t i = 0; i + 4 <= text.size(); ++i)
    if (text.compare(i, 4, "abca") == 0) ++count, positions += i;
  return count << 32 ^ positions;
}

inline uint64_t reference(uint64_t id) {
  switch (id) {
    case GUEST_WORKLOAD_MASKED_DOT:
      return reference_masked_dot();
    case GUEST_WORKLOAD_BYTE_HISTOGRAM:
      return reference_byte_histogram();
    case GUEST_WORKLOAD_PREFIX_SUM:
      return reference_prefix_sum();
    case GUEST_WORKLOAD_STRING_SEARCH:
      return reference_string_search();
  }
  ADD_FAILURE() << "no reference for workload " << id;
  return 0;
}

}  // namespace avx512emu::kvm::workload_reference
