// Owns every write to code made by the trap runtime: arming sites with ud2,
// patching trapped sites with a jmp rel32 to a per-site entry stub, and the
// stubs themselves, together with the common entry that saves the guest's
// registers around a translation.
//
// Code is never writable and executable at once, and never non-executable
// while it may run: each write copies the affected pages into a fresh
// anonymous RW mapping, edits the copy, makes it RX and mremap()s it over the
// original in one step. Other threads either run the old page or fault on
// the mapping lock and then run the new one; the TLB shootdown that unmaps
// the old page is an interrupt on every CPU that had it, which serialises
// their instruction fetch. That is the guarantee the Intel SDM's
// cross-modifying-code procedure (Vol. 3A 8.1.3) asks for, without a window
// where a half-written instruction can be fetched.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

#include "cpu_state.h"
#include "site_table.h"

namespace avx512emu::runtime {

//! Guest registers as the common stub entry saves them (see site_patcher.cpp).
struct alignas(64) StubFrame {
  uint64_t gpr[16];  //!< CpuState order: rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi, r8..r15.
  uint64_t rflags;
  uint32_t mxcsr;
  uint32_t pad0;
  //! Set by the dispatcher on AVX-512 hosts (trap injection): after
  //! reloading ymm0-15 the entry also loads zmm0-15 bits 511:256, zmm16-31
  //! and k0-7 from this state block, so natively executed AVX-512 code sees
  //! the emulated results (the VEX ymm reload zeroes bits 511:256).
  const CpuState* hw_sync_state;
  uint64_t pad1[5];
  uint8_t ymm[16][32];
};

//! What a stub runs: the patched site and the AVX-512 sites that follow it
//! back to back (see site_patcher.cpp).
//!
//! patch_site fills `count` and `sites` under the patch lock, then stores
//! `count` into `published` with release before any code can reach the
//! stub; the dispatcher loads `published` with acquire before it reads the
//! rest. The page swap that makes the stub reachable already orders this on
//! the hardware, but the C++ memory model does not see it (ThreadSanitizer
//! reported the dispatcher's reads as racing with the patcher's writes).
struct StubPlan {
  static constexpr uint32_t kMaxSites = 64;
  uint32_t count = 0;
  Site* sites[kMaxSites] = {};
  std::atomic<uint32_t> published{0};
};

//! One edit of code bytes: up to 64 in `bytes`, or `length` bytes at
//! `long_bytes` when that is set (a whole inline stub).
struct CodeEdit {
  uint64_t address = 0;
  uint8_t bytes[64] = {};
  uint16_t length = 0;
  const uint8_t* long_bytes = nullptr;
  const uint8_t* data() const { return long_bytes ? long_bytes : bytes; }
};

//! Marks [start, end) as code of a loaded object, mapped r-x, that the
//! runtime may patch. Sites outside every live region are never patched (JIT
//! code and unknown mappings keep trapping). Not async-signal-safe.
void add_code_region(uint64_t start, uint64_t end);
//! Forgets the regions that start in [start, end) (object unloaded).
void remove_code_regions(uint64_t start, uint64_t end);
bool in_code_region(uint64_t address, size_t length);

//! Applies `edits` (sorted by address, all inside live code regions) by page
//! swaps, one per run of nearby pages. Takes the patch lock, waiting for it.
//! Returns false with nothing half-applied to any page when a system call
//! fails. Not for signal handlers (waits).
bool apply_code_edits(const CodeEdit* edits, size_t count);

//! Replaces a trapped site by a jmp to a new entry stub, which also runs the
//! AVX-512 sites (from `sites`) that follow it back to back. Async-signal-
//! safe: returns false at once when another thread holds the patch lock (the
//! site traps again later and the patch is retried), and marks the site
//! unpatchable when it can never be patched (outside a code region, too
//! short with nothing to span or jump to, no stub memory within reach).
bool patch_site(Site& site, const SiteTable& sites);

//! From now on every stub gets a line in /tmp/perf-PID.map (the format perf
//! and other profilers read for code without symbols): its address, size and
//! a name that gives the site and whether the stub runs a loop region, so
//! that profiles attribute translated code. Call before the program runs
//! (not async-signal-safe); false with `error` set when the file cannot be
//! opened.
bool open_perf_map(std::string& error);

//! Number of sites patched so far, and how many of them run inline on the
//! live registers (live_stub.h); the others use the state-block stub.
uint64_t patched_site_count();
uint64_t inline_patched_site_count();
//! Number of patched sites whose stub runs the loop around them (loop_region.h).
uint64_t loop_regions_built();
//! Number of loop regions whose object was unloaded (dlclose).
uint64_t loop_regions_dropped();

}  // namespace avx512emu::runtime

//! The C++ half of a stub run (defined by the SIGILL runtime): emulates the
//! plan's instructions against the saved registers in `frame`.
extern "C" void avx512emu_stub_dispatch(avx512emu::runtime::StubFrame* frame,
                                        const avx512emu::runtime::StubPlan* plan);
