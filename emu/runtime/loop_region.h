// Owns the discovery of loop regions: from a patched site, the loop around
// it (its instructions, AVX-512 or not, and where each branch goes), so that
// its inline stub can run whole iterations in translated code instead of
// leaving and re-entering at every AVX-512 run (live_stub.h builds it).
//
// A loop region is the contiguous code [head, end) of a loop whose back edge
// (a relative jmp/jcc at its end) goes back to head, at or before the site:
//
//   head:  ...                 copied instructions (non-AVX-512)
//   site:  vpcmpeqb k0, ...    AVX-512 sites: their translations
//          kmovq rdx, k0
//          popcnt rdx, rdx     copied
//          ...
//          jae head            the back edge, chained inside the stub
//   end:                       the loop's exit: back to the original code
//
// Everything in it must be something the stub can copy or translate:
// AVX-512 instructions are sites with translations; every other instruction
// is copied, with RIP-relative operands and branches fixed up. Calls,
// returns, indirect jumps, system instructions, MXCSR loads, jrcxz/loop
// (rel8 only) and branches into the middle of an instruction refuse the
// region: the site then gets the plan stub alone, as before.
//
// Flags: translated runs clobber the host flags. flags_live_after tells the
// stub builder where the guest's flags must survive a run (it saves them on
// the way in and restores them on the way out) or be the result of the run
// (kortest and the like write them into the block).
//
// Async-signal-safe: no allocation, no lock (the caller holds the patch lock).
#pragma once

#include <cstdint>

#include "host_insn.h"
#include "site_patcher.h"
#include "site_table.h"

namespace avx512emu::runtime {

struct LoopRegion {
  static constexpr uint32_t kMaxInsns = 256;
  static constexpr uint64_t kMaxBytes = 2048;  //!< head..end, and the back edge's reach
  struct Insn {
    uint64_t address = 0;
    uint8_t length = 0;
    uint8_t bytes[15] = {};  //!< The instruction's original bytes (a site's, not its patch).
    Site* site = nullptr;    //!< An AVX-512 site (translated), else a copied instruction.
    HostInsn host;           //!< Copied instructions: what they are.
    //! Branches: the target, and the index of the instruction there when it
    //! is inside the region (else -1: the branch leaves the region).
    uint64_t target = 0;
    int32_t target_index = -1;
    //! Some arithmetic flag may be read, before it is written, on a path
    //! that starts after this instruction (leaving the region counts as a
    //! read). Set for every instruction.
    bool flags_live_after = false;
  };
  uint32_t count = 0;
  Insn insn[kMaxInsns];
  uint32_t entry = 0;  //!< Index of the patched site: where the stub enters.
  uint64_t end = 0;    //!< Address after the back edge: the fall-through exit.
  uint32_t site_count = 0;
};

//! Records the loop of a region whose stub is in place. The other sites of
//! that loop then get plan stubs (each trapping once in the loop's first
//! iteration would otherwise build a copy of the loop each); the loop runs
//! in the region from the next time it reaches its entry. Patch lock held.
void note_loop_region(const LoopRegion& region);
//! Whether `address` is inside a recorded loop. Patch lock held.
bool inside_loop_region(uint64_t address);
//! Forgets the recorded loops in [start, end) (their object is unloaded:
//! their regions can no longer be entered). Returns how many.
size_t forget_loop_regions(uint64_t start, uint64_t end);

//! Finds the loop region that contains `plan` (the plan's first site is the
//! entry). Returns false with `why` when there is none or it cannot be
//! copied.
bool find_loop_region(const StubPlan& plan, const SiteTable& sites, LoopRegion& out,
                      const char** why);

}  // namespace avx512emu::runtime
