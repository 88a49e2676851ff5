// Owns the machine code the KVM adapter installs in the guest: the CPL0 #UD
// stub and the CPL3 dispatcher that looks translations up and runs them on
// the per-vCPU shadow block.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "guest_cache_region.h"

namespace avx512emu::kvm {

struct GuestCode {
  std::vector<uint8_t> bytes;  //!< To be copied to layout.code.
  uint64_t ud_stub = 0;        //!< Guest address of the #UD handler (IDT vector 6).
  uint64_t dispatcher = 0;     //!< Guest address of the CPL3 dispatcher.
  uint64_t miss_exit = 0;      //!< Guest address of the dispatcher's miss `out`.
};

//! Generates the stub and dispatcher for a region laid out as `layout`,
//! using `miss_port` for the miss hypercall. Returns false with `error` set
//! when the code does not fit the region's code pages.
bool generate_guest_code(const RegionLayout& layout, uint16_t miss_port, GuestCode& out,
                         std::string& error);

}  // namespace avx512emu::kvm
