// Owns the inline stub of a patched plan: the machine code that runs the
// plan's translations on the live machine state (see live_stub.cpp), and the
// per-thread data it reaches through the thread pointer.
#pragma once

#include <cstddef>
#include <cstdint>

#include "site_patcher.h"

namespace avx512emu::runtime {

//! Where an inline stub finds the runtime's per-thread data. Everything is
//! addressed relative to the thread pointer (fs), so a stub needs no
//! register of the program's to find it: initial-exec TLS sits at one fixed
//! offset from the thread pointer for the life of the process.
struct LiveStubEnv {
  bool enabled = false;
  int32_t tls_shadow = 0;      //!< fs offset of the thread's shadow block pointer (null until claimed).
  int32_t tls_depth = 0;       //!< fs offset of the thread's nesting depth (uint32).
  int32_t tls_spill = 0;       //!< fs offset of the entry spill words (LiveSpill).
  int32_t ymm_spill = 0;       //!< Offset, from the shadow block, of 16 x 32 bytes of ymm spill space.
  int32_t flags_save = 0;      //!< Offset, from the shadow block, of the entry flags word.
  uint64_t hw_sync = 0;        //!< AVX-512 hosts: live_hw_sync_address(), else 0.
  bool count_runs = false;     //!< --stats: count runs per site.
  bool loop_regions = true;    //!< Build loop regions (loop_region.h).
};

//! The words a stub spills through fs before it has a base register.
struct LiveSpill {
  uint64_t rdi, rax;
  uint16_t flags;  //!< lahf in the high byte, seto in the low byte
};

void set_live_stub_env(const LiveStubEnv& env);
const LiveStubEnv& live_stub_env();

//! How many leading sites of `plan` can run inline (their translations
//! have a live form). Async-signal-safe: decodes, never allocates.
uint32_t inline_prefix(const StubPlan& plan);

//! Builds the inline stub for `plan`, to be placed at `address`, into `out`
//! (at most `capacity` bytes). The stub ends with the state-block path
//! (avx512emu_stub_entry) for threads already inside an emulation or without
//! a shadow block yet. Returns the stub's size, or 0 when a translation of the plan
//! cannot run inline (the caller uses the state-block stub alone). Async-
//! signal-safe: no allocation, no lock.
size_t build_live_stub(uint64_t address, const StubPlan& plan, uint8_t* out, size_t capacity,
                       const char** why);

struct LoopRegion;

//! Builds the inline stub of a loop region (loop_region.h) whose entry is
//! `plan`'s first site: the loop runs in it until a branch leaves the loop
//! (back to the original code). Its slow path runs `plan` alone through the
//! state-block stub, like build_live_stub's. Returns 0 with `why` when the
//! region cannot run inline (the caller builds the plan stub instead).
size_t build_region_stub(uint64_t address, const StubPlan& plan, const LoopRegion& region,
                         uint8_t* out, size_t capacity, const char** why);

//! What a fault inside an inline stub means for the guest: the instruction
//! whose translation (or copy, in a loop region) faulted, and where the
//! guest's registers are at that point (a translation faults before it
//! writes any guest register). The live ymm registers hold guest values,
//! except the spilled ones; the block's copies of them may be older.
struct LiveStubFault {
  uint64_t guest_rip = 0;
  uint16_t gprs_in_block = 0;  //!< guest GPRs whose values are in the block (CpuState.gpr)
  uint16_t ymm_spilled = 0;    //!< guest ymm whose values are in the ymm spill space
  //! Where the guest's arithmetic flags are.
  enum Flags : uint8_t {
    kFlagsEntryWord,  //!< the entry flags word (lahf/seto)
    kFlagsInBlock,    //!< the block's rflags (a translation wrote them)
    kFlagsLive,       //!< the real flags (a copied instruction)
  } flags = kFlagsEntryWord;
  bool at_start = false;  //!< rip is the first byte of the step's (or copied instruction's) code
  //! Loop regions: host ymm r holds the guest's 32 bytes at this offset in
  //! the block (0: none); their block copy is stale until written back.
  uint16_t pin_offset[16] = {};
};

//! Records the inline stub at [start, start + size) (its step table is
//! inside it, written by build_live_stub). Patch lock held.
void register_live_stub(uint64_t start, size_t size);
//! Finds the stub step that `rip` is in. Async-signal-safe, lock-free.
bool find_live_stub_fault(uint64_t rip, LiveStubFault& out);

//! Address of the routine that loads the emulated AVX-512 state (zmm0-15
//! bits 511:256, zmm16-31, k0-7) of the block at rdi into the hardware, one
//! instruction per register then ret. AVX-512 hosts' stubs run it (or copy
//! its instructions), so natively executed AVX-512 code sees the results.
uint64_t live_hw_sync_address();

}  // namespace avx512emu::runtime
