// Owns the VMM's view of guest memory: bounds-checked access to guest
// physical memory and the 4-level page walk of guest virtual addresses, with
// the #PF/#GP a real CPU would raise. Everything read here is guest data and
// treated as hostile.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace avx512emu::kvm {

//! Guest physical memory mapped in the VMM at `host` (GPA 0 .. size).
struct GuestMemory {
  uint8_t* host = nullptr;
  uint64_t size = 0;

  //! Host pointer to [gpa, gpa + len), or nullptr when any byte lies outside.
  uint8_t* at(uint64_t gpa, uint64_t len) const {
    if (gpa > size || len > size - gpa) return nullptr;
    return host + gpa;
  }
  bool read(uint64_t gpa, void* dst, uint64_t len) const {
    const uint8_t* p = at(gpa, len);
    if (p) std::memcpy(dst, p, len);
    return p != nullptr;
  }
  bool write(uint64_t gpa, const void* src, uint64_t len) const {
    uint8_t* p = at(gpa, len);
    if (p) std::memcpy(p, src, len);
    return p != nullptr;
  }
};

//! Page-fault error code bits (Intel SDM Vol. 3, 4.7).
inline constexpr uint32_t kPfPresent = 1, kPfWrite = 2, kPfUser = 4, kPfReserved = 8, kPfFetch = 16;

//! Result of translating one guest virtual address for an instruction fetch.
struct FetchTranslation {
  enum class Status : uint8_t {
    kOk,           //!< gpa is valid; it may still lie outside guest memory.
    kPageFault,    //!< #PF with `pf_error`, CR2 = the address.
    kNonCanonical  //!< #GP(0).
  } status = Status::kOk;
  uint64_t gpa = 0;
  uint32_t pf_error = 0;
};

//! Walks the guest's 4-level page tables from `cr3` for a fetch of `gva` at
//! CPL `cpl`. Bounded by the four levels, so self-referencing tables cannot
//! loop. A table outside guest memory reads as all ones, as unbacked
//! physical memory does on real hardware: the entry then has reserved bits
//! set and the walk faults with the RSVD bit.
FetchTranslation walk_for_fetch(const GuestMemory& mem, uint64_t cr3, uint64_t gva, int cpl);

//! Result of fetching the instruction at a guest RIP.
struct InstructionFetch {
  FetchTranslation::Status status = FetchTranslation::Status::kOk;
  uint32_t pf_error = 0;
  uint64_t fault_address = 0;  //!< CR2 for #PF.
  uint8_t bytes[15] = {};
  size_t size = 0;  //!< Bytes fetched (the instruction may be shorter).
};

//! Fetches the instruction at `rip` as the CPU would: the bytes of the first
//! page, and those of the next page only when the instruction continues
//! there (its fault, with CR2 = the page's first byte, wins then). Bytes from
//! physical addresses outside guest memory read as 0xff.
InstructionFetch fetch_instruction(const GuestMemory& mem, uint64_t cr3, uint64_t rip, int cpl);

}  // namespace avx512emu::kvm
