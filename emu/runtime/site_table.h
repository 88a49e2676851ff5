// Owns the table of trap sites: every address where an AVX-512 instruction
// traps or was armed to trap, with its original bytes, its translation and
// its patch state. Lookups and inserts are lock-free and async-signal-safe:
// records come from memory reserved at start-up and are never freed, so a
// pointer to a Site stays valid for the life of the process.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "avx512emu.h"

namespace avx512emu::runtime {

//! What is at a site's address right now.
enum class SiteState : uint8_t {
  kOriginal,  //!< The original instruction (a natural trap site).
  kArmed,     //!< ud2 (0F 0B) over the first two bytes (trap injection).
  kPatched,   //!< jmp rel32 to the site's entry stub (or jmp rel8 to its island).
};

struct Site {
  uint64_t address = 0;
  uint8_t original[15] = {};
  uint8_t length = 0;
  std::atomic<SiteState> state{SiteState::kOriginal};
  //! Set when patching failed for good (no stub memory in reach): the site
  //! keeps trapping, and nobody retries.
  std::atomic<bool> unpatchable{false};
  //! Null when the instruction has no translation: a trap here reports and
  //! delivers SIGILL as if avx512emu were absent.
  const Translation* translation = nullptr;
  const char* mnemonic = "";           //!< Static string (decoder or translation).
  std::atomic<uint64_t> traps{0};      //!< SIGILLs taken here.
  std::atomic<uint64_t> stub_runs{0};  //!< Runs through the stub (counted with --stats only).
  std::atomic<uint64_t> region_runs{0};  //!< Runs inside loop regions (--stats only).
  void* stub = nullptr;                //!< Entry stub once patched.
  //! For sites shorter than a jmp rel32 (VEX opmask instructions such as
  //! kmovw k1, eax are 4 bytes): 5 bytes of inter-function padding within
  //! rel8 reach, reserved by the sweep. Patching puts "jmp rel32 stub" there
  //! and "jmp rel8 island" over the site. 0: none found, the site keeps
  //! trapping.
  uint64_t island = 0;
};

//! Whether the code at the site's address still holds its instruction: the
//! original bytes, or them armed (ud2) or patched (jmp rel32/rel8). A site
//! left from an unloaded object whose address now holds other code does
//! not. Reads the code there (the caller knows it is mapped).
//! Async-signal-safe.
bool code_still_holds(const Site& site);

//! Fixed-capacity open-addressing table keyed by address.
class SiteTable {
 public:
  //! Reserves memory for `capacity` sites (virtual, committed on first touch).
  bool init(size_t capacity);

  //! The live site at `address`, or nullptr. Async-signal-safe.
  Site* lookup(uint64_t address) const;

  //! Registers a site. An existing site with the same address and bytes is
  //! returned as is; one with different bytes (code unmapped and replaced, as
  //! after dlclose/dlopen) is replaced. Returns nullptr when the table is
  //! full. Async-signal-safe.
  Site* insert(uint64_t address, const uint8_t* bytes, uint8_t length, SiteState state,
               const Translation* translation, const char* mnemonic);

  //! Calls `fn(const Site&)` for every live site (for statistics; racy but
  //! safe against concurrent inserts).
  template <class Fn>
  void for_each(Fn&& fn) const {
    for (size_t i = 0; i <= mask_; ++i)
      if (const Site* s = slots_[i].load(std::memory_order_acquire)) fn(*s);
  }

  size_t size() const { return used_.load(std::memory_order_relaxed); }

 private:
  std::atomic<Site*>* slots_ = nullptr;
  size_t mask_ = 0;
  Site* records_ = nullptr;
  size_t capacity_ = 0;
  std::atomic<size_t> used_{0};
};

}  // namespace avx512emu::runtime
