// Owns the inputs of the differential self-check: a seeded RNG, random and
// edge-case CpuStates, and the guarded memory arena memory operands live in.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "cpu_state.h"
#include "selfcheck/form_enumerator.h"

namespace avx512emu::selfcheck {

//! Small, fast, reproducible RNG (xoshiro256**, seeded through splitmix64).
//! Self-check runs must be replayable from a seed, so nothing here may use
//! std::random_device or global state.
class Rng {
 public:
  explicit Rng(uint64_t seed) {
    for (uint64_t& s : s_) {
      seed += 0x9e3779b97f4a7c15ull;
      uint64_t z = seed;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
      s = z ^ (z >> 31);
    }
  }
  //! 64 uniformly random bits.
  uint64_t next() {
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }
  //! Uniform in [0, n); n must be > 0.
  uint64_t below(uint64_t n) { return next() % n; }
  //! True with probability 1/n.
  bool one_in(uint64_t n) { return below(n) == 0; }
  //! One element of a non-empty array.
  template <typename T, size_t N>
  const T& pick(const T (&items)[N]) { return items[below(N)]; }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

//! Where a memory operand sits inside the arena.
enum class Placement : uint8_t {
  kMiddle,         //!< Well inside the arena (aligned as requested).
  kEndAtGuard,     //!< Last byte is the last arena byte: one byte more would fault.
  kStartAtGuard,   //!< First byte is the first arena byte: one byte less would fault.
  kStraddleEnd,    //!< The operand's tail lies in the trailing guard page.
  kStraddleStart,  //!< The operand's head lies in the leading guard page.
};
const char* placement_name(Placement p);

//! An mmap'ed region of data pages between two PROT_NONE guard pages, so an
//! access one byte outside it faults. Memory operands of the instruction
//! under test point into it; all legs see identical contents.
class MemoryArena {
 public:
  explicit MemoryArena(size_t data_pages = 4);
  ~MemoryArena();
  MemoryArena(const MemoryArena&) = delete;
  MemoryArena& operator=(const MemoryArena&) = delete;

  //! False when mmap/mprotect failed (then nothing else may be used).
  bool ok() const { return data_ != nullptr; }
  uint8_t* begin() const { return data_; }
  uint8_t* end() const { return data_ + size_; }
  size_t size() const { return size_; }
  bool contains(uint64_t address) const {
    return address >= uint64_t(uintptr_t(data_)) && address < uint64_t(uintptr_t(data_ + size_));
  }

  //! Fills every byte with random data mixed with the same FP/integer edge
  //! values make_state() puts into registers (broadcast and memory sources
  //! need NaNs and denormals too). `variant` as for make_state().
  void fill(Rng& rng, int variant);
  std::vector<uint8_t> snapshot() const;
  void restore(const std::vector<uint8_t>& snap);
  //! Offset of the first byte that differs from `snap`, or -1.
  long first_difference(const std::vector<uint8_t>& snap) const;

  //! Address of a `bytes`-long operand placed as `p`. For kMiddle the
  //! address is a multiple of `align` (1 = any, chosen randomly). For the
  //! straddling placements `inside` is how many of the operand's bytes lie
  //! within the arena (the rest lie in the guard page); ignored otherwise.
  uint64_t place(Placement p, size_t bytes, size_t align, Rng& rng, size_t inside = 0) const;

 private:
  uint8_t* mapping_ = nullptr;
  size_t mapping_size_ = 0;
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

//! Number of distinct make_state() variants; variant numbers wrap.
inline constexpr int kStateVariants = 8;

//! A random architectural state. `variant` selects the flavour of the vector
//! data: 0 random bits, 1 float edge cases, 2 double edge cases, 3 integer
//! edge cases of mixed widths, 4 small integers (shift counts, indices),
//! 5 "ordinary" floats and doubles, 6-7 a per-register mix of all. Masks mix
//! all-zero/all-one/alternating/random/single-bit patterns; MXCSR has every
//! exception masked (0x1F80) with a random rounding mode, sometimes DAZ/FTZ
//! and preset sticky flags; RFLAGS is 0x202 plus random arithmetic flags.
//! GPRs are random; aim_memory_operand() then fixes the address registers.
CpuState make_state(Rng& rng, int variant);

//! Sets the form's memory base (and index) register so its memory operand
//! addresses `address`. The index register, if any, gets a small random value.
void aim_memory_operand(CpuState& state, const TestForm& form, uint64_t address, Rng& rng);

}  // namespace avx512emu::selfcheck
