// Owns the layout of the guest cache region: the part of guest memory the
// KVM adapter reserves for its header, the per-vCPU shadow block, the #UD
// stub and dispatcher code, the dispatcher's stack, the translation index
// and the translation code area. Everything here lives in guest memory
// (a memfd in the VMM), so a later VMM process can adopt it unchanged.
#pragma once

#include <cstddef>
#include <cstdint>

#include "cpu_state.h"

namespace avx512emu::kvm {

inline constexpr uint64_t kRegionMagic = 0x4e47455235313258ull;  // "X2515REGN"
inline constexpr uint32_t kRegionVersion = 1;

//! One index slot. The dispatcher reads `key` first and trusts `code_offset`
//! only when the key matches, so the VMM writes the key last.
struct IndexSlot {
  uint64_t key;          //!< ~guest RIP; 0 = empty (no site lives at RIP ~0).
  uint32_t code_offset;  //!< From the start of the code area.
  uint32_t length;       //!< Instruction length (informational).
};
static_assert(sizeof(IndexSlot) == 16);

//! Linear probing gives up after this many slots: a lookup stays bounded even
//! when a guest fills the index with garbage.
inline constexpr uint32_t kMaxProbes = 16;

//! Hash of a guest RIP into a slot number (Fibonacci hashing). The
//! dispatcher computes the same function in machine code.
inline constexpr uint64_t kIndexHashMultiplier = 0x9e3779b97f4a7c15ull;
inline uint32_t index_home_slot(uint64_t rip, uint32_t slots_log2) {
  return uint32_t((rip * kIndexHashMultiplier) >> (64 - slots_log2));
}

//! The per-vCPU block. The shadow CpuState is what translations run on
//! (pointer in rdi): it holds the guest's zmm upper halves, zmm16-31, k0-7
//! and, while a trap is handled, its GPRs, RFLAGS, RIP and MXCSR.
struct alignas(64) VcpuBlock {
  CpuState shadow;
  alignas(64) uint8_t ymm_at_entry[16][32];  //!< Dispatcher scratch.
  uint64_t saved_rip;                        //!< Written by the CPL0 stub: the trapping RIP.
  uint64_t pass_to_guest;     //!< Nonzero: the next #UD goes to the guest's own handler.
  uint64_t guest_ud_handler;  //!< The guest kernel's #UD handler the stub chains to.
  uint64_t traps;             //!< Dispatcher entries (maintained by guest code).
  uint64_t hits;              //!< Index hits (maintained by guest code).
};

//! The first page of the region; the VMM writes it, the guest never reads it.
struct RegionHeader {
  uint64_t magic;
  uint32_t version;
  uint32_t index_slots_log2;
  uint64_t region_gva, region_size;
  uint64_t vcpu_gva, code_gva, stack_top_gva, index_gva, code_area_gva, code_area_size;
  uint64_t code_area_used;  //!< Bump pointer of the code area.
};

//! Addresses of the region's parts, computed from its base and sizes.
struct RegionLayout {
  uint64_t base = 0;  //!< Guest virtual == guest physical (identity mapped).
  uint64_t size = 0;
  uint32_t index_slots_log2 = 0;
  uint64_t vcpu = 0, code = 0, stack_top = 0, index = 0, code_area = 0, code_area_size = 0;

  static constexpr uint64_t kPage = 4096;
  static constexpr uint64_t kCodeBytes = 3 * kPage;   //!< Stub + dispatcher.
  static constexpr uint64_t kStackBytes = 4 * kPage;  //!< Dispatcher + translation stack.

  //! Lays out a region of `code_area_bytes` of translations and 2^log2 index
  //! slots at `base` (page aligned).
  static RegionLayout make(uint64_t base, uint32_t index_slots_log2, uint64_t code_area_bytes) {
    RegionLayout l;
    l.base = base;
    l.index_slots_log2 = index_slots_log2;
    uint64_t at = base + kPage;  // header page
    l.vcpu = at;
    at += (sizeof(VcpuBlock) + kPage - 1) / kPage * kPage;
    l.code = at;
    at += kCodeBytes;
    at += kStackBytes;
    l.stack_top = at;
    l.index = at;
    at += ((uint64_t(1) << index_slots_log2) * sizeof(IndexSlot) + kPage - 1) / kPage * kPage;
    l.code_area = at;
    l.code_area_size = code_area_bytes;
    at += (code_area_bytes + kPage - 1) / kPage * kPage;
    l.size = at - base;
    return l;
  }
};

}  // namespace avx512emu::kvm
