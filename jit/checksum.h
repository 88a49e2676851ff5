// Owns the 64-bit checksum every file and stream format of the project uses
// (translation-cache files, migration streams).
//
// It is FNV-1a taken over 64-bit little-endian words instead of bytes, with
// the last partial word folded in byte by byte: eight times fewer multiplies,
// so checking a multi-megabyte cache index or a guest's memory stays cheap.
// Each step h = (h ^ word) * prime is a bijection of h for a given word, so a
// change confined to one word always changes the result. The value depends
// only on the byte sequence, not on how add() calls split it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace avx512emu::jit {

inline constexpr uint64_t kChecksumSeed = 0xcbf29ce484222325ull;

class Checksum64 {
 public:
  explicit Checksum64(uint64_t seed = kChecksumSeed) : h_(seed) {}

  Checksum64& add(const void* data, size_t size) {
    const uint8_t* p = static_cast<const uint8_t*>(data);
    // First complete a word the previous call left partial.
    while (pending_ != 0 && size > 0) {
      word_[pending_++] = *p++;
      --size;
      if (pending_ == 8) {
        mix_word(word_);
        pending_ = 0;
      }
    }
    for (; size >= 8; p += 8, size -= 8) mix_word(p);
    // Either nothing is pending or nothing is left: at most 7 bytes to keep.
    if (size > 0) std::memcpy(word_, p, size), pending_ = size;
    return *this;
  }

  uint64_t value() const {
    uint64_t h = h_;
    for (size_t i = 0; i < pending_; ++i) h = (h ^ word_[i]) * kPrime;
    return h;
  }

 private:
  static constexpr uint64_t kPrime = 0x100000001b3ull;
  void mix_word(const uint8_t* p) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    h_ = (h_ ^ w) * kPrime;
  }
  uint64_t h_;
  uint8_t word_[8] = {};
  size_t pending_ = 0;
};

//! The checksum of one buffer; `seed` chains a previous value(), which is
//! only split-invariant when the previous part was a multiple of 8 bytes
//! (use Checksum64 to hash a sequence of parts).
inline uint64_t checksum64(const void* data, size_t size, uint64_t seed = kChecksumSeed) {
  return Checksum64(seed).add(data, size).value();
}

}  // namespace avx512emu::jit
