// Owns the self-check's inputs: edge-case-rich random CpuStates, the guarded
// memory arena, and aiming a form's address registers into it.
#include "selfcheck/state_gen.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

namespace avx512emu::selfcheck {
namespace {

// How one vector register (or 64-byte arena chunk) is filled.
enum class Flavor : uint8_t { kRandom, kF32Edge, kF64Edge, kIntEdge, kSmallInt, kOrdinaryFp, kCount };

uint32_t f32_special(Rng& rng) {
  static constexpr uint32_t kValues[] = {
      0x00000000, 0x80000000,              // +-0
      0x7f800000, 0xff800000,              // +-inf
      0x7fc00000, 0xffc00000,              // default quiet NaNs
      0x3f800000, 0xbf800000,              // +-1.0
      0x7f7fffff, 0xff7fffff,              // +-FLT_MAX
      0x00800000, 0x80800000,              // +-FLT_MIN (smallest normal)
      0x00000001, 0x807fffff, 0x00400000,  // denormals: smallest, largest, middle
      0x3f000000, 0x3fc00000, 0x40200000, 0xbfc00000,  // 0.5, 1.5, 2.5, -1.5: rounding ties
      0x4f000000, 0xcf000000, 0x4f800000, 0xcf000001,  // 2^31, -2^31, 2^32, just below -2^31
      0x5f000000, 0x3effffff, 0x3f7fffff,  // 2^63, just below 0.5 and 1.0
  };
  const uint32_t sign = uint32_t(rng.below(2)) << 31;
  switch (rng.below(6)) {
    case 0: return sign | 0x7fc00000u | uint32_t(rng.next() & 0x3fffff);  // quiet NaN, payload
    case 1: return sign | 0x7f800000u | uint32_t(1 + rng.below(0x3fffff));  // signaling NaN
    case 2: return sign | uint32_t(1 + rng.below(0x7fffff));  // denormal
    default: return rng.pick(kValues);
  }
}

uint64_t f64_special(Rng& rng) {
  static constexpr uint64_t kValues[] = {
      0x0000000000000000, 0x8000000000000000,  // +-0
      0x7ff0000000000000, 0xfff0000000000000,  // +-inf
      0x7ff8000000000000, 0xfff8000000000000,  // default quiet NaNs
      0x3ff0000000000000, 0xbff0000000000000,  // +-1.0
      0x7fefffffffffffff, 0xffefffffffffffff,  // +-DBL_MAX
      0x0010000000000000, 0x8010000000000000,  // +-DBL_MIN
      0x0000000000000001, 0x800fffffffffffff,  // denormals
      0x3fe0000000000000, 0x3ff8000000000000, 0x4004000000000000,  // 0.5, 1.5, 2.5
      0x41e0000000000000, 0xc1e0000000000000, 0x41f0000000000000,  // 2^31, -2^31, 2^32
      0x43e0000000000000, 0xc3e0000000000000,  // +-2^63
      0x47efffffe0000000, 0x3810000000000000,  // FLT_MAX, FLT_MIN as doubles
      0x36a0000000000000,                      // FLT denormal min as double
  };
  const uint64_t sign = rng.below(2) << 63;
  switch (rng.below(6)) {
    case 0: return sign | 0x7ff8000000000000ull | (rng.next() & 0x7ffffffffffffull);
    case 1: return sign | 0x7ff0000000000000ull | (1 + rng.below(0x7ffffffffffffull));
    case 2: return sign | (1 + rng.below(0xfffffffffffffull));
    default: return rng.pick(kValues);
  }
}

// A normal number of moderate magnitude: what arithmetic mostly sees.
uint32_t f32_ordinary(Rng& rng) {
  const uint32_t exp = uint32_t(127 - 20 + rng.below(41));
  return (uint32_t(rng.below(2)) << 31) | (exp << 23) | uint32_t(rng.next() & 0x7fffff);
}
uint64_t f64_ordinary(Rng& rng) {
  const uint64_t exp = 1023 - 40 + rng.below(81);
  return (rng.below(2) << 63) | (exp << 52) | (rng.next() & 0xfffffffffffffull);
}

// Integer edge values of a `bytes`-wide element (1, 2, 4, 8).
uint64_t int_special(Rng& rng, int bytes) {
  const int bits = bytes * 8;
  const uint64_t all = bits == 64 ? ~0ull : (1ull << bits) - 1;
  const uint64_t min = 1ull << (bits - 1);
  switch (rng.below(12)) {
    case 0: return 0;
    case 1: return all;              // -1
    case 2: return min;              // INT_MIN
    case 3: return min - 1;          // INT_MAX
    case 4: return 1;
    case 5: return min + 1;
    case 6: return all - 1;          // -2
    case 7: return 0x8080808080808080ull & all;
    case 8: return 0x7f7f7f7f7f7f7f7full & all;
    case 9: return rng.below(uint64_t(bits) + 3);  // shift counts around the width
    case 10: return (all >> 1) & ~rng.below(4);    // just below INT_MAX
    default: return rng.next() & all;
  }
}

void store(uint8_t* p, uint64_t v, int bytes) { std::memcpy(p, &v, size_t(bytes)); }

// Fills 64 bytes in the given flavour. Each element is an edge case or an
// ordinary value with equal odds, so every vector mixes both.
void fill_vector(Rng& rng, Flavor flavor, uint8_t* out) {
  static constexpr int kWidths[] = {1, 2, 4, 8};
  switch (flavor) {
    case Flavor::kRandom:
      for (int i = 0; i < 64; i += 8) store(out + i, rng.next(), 8);
      return;
    case Flavor::kF32Edge:
      for (int i = 0; i < 64; i += 4)
        store(out + i, rng.below(2) ? f32_special(rng) : f32_ordinary(rng), 4);
      return;
    case Flavor::kF64Edge:
      for (int i = 0; i < 64; i += 8)
        store(out + i, rng.below(2) ? f64_special(rng) : f64_ordinary(rng), 8);
      return;
    case Flavor::kIntEdge: {
      const int w = rng.pick(kWidths);
      for (int i = 0; i < 64; i += w)
        store(out + i, rng.below(2) ? int_special(rng, w) : rng.next(), w);
      return;
    }
    case Flavor::kSmallInt: {
      // Shift counts and permute indices: 0..70 covers every width and the
      // "count >= width" cases; an occasional huge value too.
      const int w = rng.pick(kWidths);
      for (int i = 0; i < 64; i += w)
        store(out + i, rng.one_in(8) ? rng.next() : rng.below(71), w);
      return;
    }
    case Flavor::kOrdinaryFp:
      if (rng.below(2)) {
        for (int i = 0; i < 64; i += 4)
          store(out + i, rng.one_in(8) ? f32_special(rng) : f32_ordinary(rng), 4);
      } else {
        for (int i = 0; i < 64; i += 8)
          store(out + i, rng.one_in(8) ? f64_special(rng) : f64_ordinary(rng), 8);
      }
      return;
    case Flavor::kCount: break;
  }
}

// The flavour of one register for a state variant (see make_state()).
Flavor flavor_for(Rng& rng, int variant) {
  switch (((variant % kStateVariants) + kStateVariants) % kStateVariants) {
    case 0: return Flavor::kRandom;
    case 1: return Flavor::kF32Edge;
    case 2: return Flavor::kF64Edge;
    case 3: return Flavor::kIntEdge;
    case 4: return Flavor::kSmallInt;
    case 5: return Flavor::kOrdinaryFp;
    default: return Flavor(rng.below(uint64_t(Flavor::kCount)));
  }
}

uint64_t random_mask(Rng& rng) {
  switch (rng.below(9)) {
    case 0: return 0;
    case 1: return ~0ull;
    case 2: return 0x5555555555555555ull;
    case 3: return 0xaaaaaaaaaaaaaaaaull;
    case 4: return 1ull << rng.below(64);                   // single bit
    case 5: return (1ull << rng.below(64)) - 1;             // low run
    case 6: return ~((1ull << rng.below(64)) - 1);          // high run
    default: return rng.next();
  }
}

uint64_t random_gpr(Rng& rng) {
  switch (rng.below(8)) {
    case 0: return rng.below(256);
    case 1: return int_special(rng, 8);
    case 2: return int_special(rng, 4);  // upper half zero: 32-bit values
    default: return rng.next();
  }
}

}  // namespace

const char* placement_name(Placement p) {
  switch (p) {
    case Placement::kMiddle: return "middle";
    case Placement::kEndAtGuard: return "ends at guard page";
    case Placement::kStartAtGuard: return "starts at guard page";
    case Placement::kStraddleEnd: return "straddles trailing guard page";
    case Placement::kStraddleStart: return "straddles leading guard page";
  }
  return "?";
}

// ---- MemoryArena --------------------------------------------------------------

MemoryArena::MemoryArena(size_t data_pages) {
  const size_t page = size_t(sysconf(_SC_PAGESIZE));
  if (data_pages == 0) data_pages = 1;
  mapping_size_ = (data_pages + 2) * page;
  void* p = mmap(nullptr, mapping_size_, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return;
  mapping_ = static_cast<uint8_t*>(p);
  if (mprotect(mapping_ + page, data_pages * page, PROT_READ | PROT_WRITE) != 0) {
    munmap(mapping_, mapping_size_);
    mapping_ = nullptr;
    return;
  }
  data_ = mapping_ + page;
  size_ = data_pages * page;
}

MemoryArena::~MemoryArena() {
  if (mapping_) munmap(mapping_, mapping_size_);
}

void MemoryArena::fill(Rng& rng, int variant) {
  for (size_t off = 0; off + 64 <= size_; off += 64) fill_vector(rng, flavor_for(rng, variant), data_ + off);
}

std::vector<uint8_t> MemoryArena::snapshot() const { return {data_, data_ + size_}; }

void MemoryArena::restore(const std::vector<uint8_t>& snap) {
  std::memcpy(data_, snap.data(), std::min(snap.size(), size_));
}

long MemoryArena::first_difference(const std::vector<uint8_t>& snap) const {
  const size_t n = std::min(snap.size(), size_);
  if (std::memcmp(data_, snap.data(), n) == 0) return -1;
  for (size_t i = 0; i < n; ++i)
    if (data_[i] != snap[i]) return long(i);
  return -1;
}

uint64_t MemoryArena::place(Placement p, size_t bytes, size_t align, Rng& rng, size_t inside) const {
  const uint64_t begin = uint64_t(uintptr_t(data_)), end = begin + size_;
  switch (p) {
    case Placement::kMiddle: {
      // Keep a cache line of slack on both sides, so "middle" never touches
      // the guard pages even with the displacement of a broken emulation.
      const uint64_t room = size_ - bytes - 128;
      uint64_t off = 64 + rng.below(room + 1);
      if (align > 1) off = std::max<uint64_t>(64, off / align * align);
      return begin + off;
    }
    case Placement::kEndAtGuard: return end - bytes;
    case Placement::kStartAtGuard: return begin;
    case Placement::kStraddleEnd: return end - inside;
    case Placement::kStraddleStart: return begin - (bytes - inside);
  }
  return begin;
}

// ---- States -------------------------------------------------------------------

CpuState make_state(Rng& rng, int variant) {
  CpuState s;
  std::memset(&s, 0, sizeof s);
  for (auto& reg : s.zmm) fill_vector(rng, flavor_for(rng, variant), reg);
  for (uint64_t& k : s.k) k = random_mask(rng);
  for (uint64_t& g : s.gpr) g = random_gpr(rng);
  s.rip = 0x0000'5555'0000'0000ull + (rng.next() & 0xffff'fff0ull);
  // IF and bit 1 are always set in user mode; the arithmetic flags vary so
  // instructions that must preserve them are checked.
  s.rflags = 0x202;
  for (uint64_t f : {kFlagCF, kFlagPF, kFlagAF, kFlagZF, kFlagSF, kFlagOF})
    if (rng.below(2)) s.rflags |= f;
  // Every exception stays masked (a native unmasked FP exception would be a
  // real SIGFPE); rounding mode, DAZ, FTZ and the sticky flags vary.
  s.mxcsr = 0x1f80;
  if (rng.below(2)) s.mxcsr |= uint32_t(rng.below(4)) << 13;
  if (rng.one_in(4)) s.mxcsr |= 1u << 6;    // DAZ
  if (rng.one_in(4)) s.mxcsr |= 1u << 15;   // FTZ
  if (rng.one_in(4)) s.mxcsr |= uint32_t(rng.below(64));  // preset sticky flags
  return s;
}

void aim_memory_operand(CpuState& state, const TestForm& form, uint64_t address, Rng& rng) {
  if (!form.has_mem || form.mem_base < 0) return;
  uint64_t base = address - uint64_t(form.mem_disp);
  if (form.mem_index >= 0) {
    // A small index, sometimes negative, so base and index both matter.
    const int64_t index = int64_t(rng.below(17)) - 8;
    state.gpr[form.mem_index] = uint64_t(index);
    base -= uint64_t(index) * form.mem_scale;
  }
  state.gpr[form.mem_base] = base;
}

}  // namespace avx512emu::selfcheck
