// Owns the user-mode trap runtime: the SIGILL handler, the per-thread shadow
// state (the guest's AVX-512 state that an AVX2 CPU does not hold), the
// transfer of state between a signal frame or a stub frame and a CpuState,
// and the runtime's counters.
//
// State model (DESIGN.md, "Architectural state"):
// - GPRs, RFLAGS and RIP come from uc_mcontext.gregs; MXCSR and ymm0-15 from
//   the signal frame's XSAVE image (legacy area + YMM_Hi128 component, offsets
//   from CPUID leaf 0xD). Those are the hardware's, always authoritative.
// - zmm0-15 bits 511:256, zmm16-31 and k0-7 come from the thread's shadow
//   block, which is authoritative: an AVX2 host has no such registers. On an
//   AVX-512 host (trap injection, or a natural trap of an unsupported subset)
//   the frame also holds the real opmask/ZMM_Hi256/Hi16_ZMM components. The
//   runtime still reads the shadow, so injection exercises exactly the AVX2
//   host's path, and writes the results to both, so natively executed
//   AVX-512 code sees them. AVX512EMU_CHECK_SHADOW=1 compares the shadow with
//   the hardware at each trap and counts the differences.
// - A natively executed VEX instruction that writes ymmN zeroes zmmN[511:256]
//   on real hardware, which the shadow cannot see. At each entry ymm0-15 are
//   compared with what the last exit left (the low halves kept in the shadow):
//     * bits 255:128 changed            -> VEX write (or vzeroupper/vzeroall):
//                                          zero the shadow's bits 511:256;
//     * only bits 127:0 changed, 255:128 nonzero and unchanged
//                                        -> legacy SSE write, which preserves
//                                          bits 511:128: keep them;
//     * only bits 127:0 changed, 255:128 zero
//                                        -> ambiguous (VEX.128 zeroes, SSE
//                                          keeps); taken as a VEX write, since
//                                          compilers emit VEX in AVX code.
//   Not detectable: a VEX write that leaves ymmN's value unchanged (say
//   vmovdqa ymm0, ymm0, or recomputing the same value), and an SSE write
//   that is misread by the ambiguous rule. zmm16-31 and k0-7 cannot be
//   written by non-AVX-512 code, so they need no detection.
// - The commonest unchanged-value VEX writes, zeroing idioms (vpxor xmm4,
//   xmm4, xmm4 on a zero ymm4) and vzeroupper/vzeroall, are not left to
//   detection in functions with AVX-512 code: the sweep registers them as
//   sites that run here (vex_idioms.h).
// - Nesting: a trap inside the handler (a miss path that calls libc code we
//   armed) or inside a stub run uses the next shadow level, so the
//   interrupted level's state is not disturbed.
//
// Async-signal-safety: the hit path (site found, translation present) calls
// no libc function, takes no lock and does not allocate. A miss (a natural
// trap at an address the start-up sweep did not see) calls translate(),
// which allocates with malloc; see README in this directory for what that
// means.
#pragma once

#include <signal.h>

#include <cstdint>
#include <string>

#include "site_table.h"

namespace avx512emu::runtime {

struct RuntimeOptions {
  bool patch = true;           //!< Patch trapped sites with a jmp to a stub.
  bool simulate_avx2 = false;  //!< Trap injection is on (for reports only).
  bool stats = false;          //!< Count stub runs too (costs an atomic add per run).
  bool check_shadow = false;   //!< Compare the shadow with the hardware per trap.
  //! Patched plans run inline on the live registers (live_stub.h); off, every
  //! stub run copies the register file into a state block and calls the
  //! dispatcher (AVX512EMU_STATE_BLOCK_STUBS=1, for comparison and bisection).
  bool inline_stubs = true;
  //! A patched site inside a loop gets a stub that runs the whole loop
  //! (loop_region.h); off, plan stubs only (AVX512EMU_NO_LOOP_REGIONS=1, for
  //! comparison and bisection).
  bool loop_regions = true;
  //! Every trapped instruction runs in the reference interpreter instead
  //! of its translation, and no site is patched (AVX512EMU_REFERENCE=1): the
  //! reference run of the tests on CPUs without AVX-512, where the program
  //! cannot run natively. Slow, and it allocates in the SIGILL handler.
  bool reference_interpreter = false;
  //! Name every stub in /tmp/perf-PID.map for profilers (AVX512EMU_PERF_MAP=1).
  bool perf_map = false;
};

//! Reserves every piece of memory the handler uses, reads the XSAVE layout
//! and installs the SIGILL handler. Call once, before the program runs.
bool install_sigill_runtime(const RuntimeOptions& options, std::string& error);

bool sigill_runtime_installed();
//! Whether the OS enables the AVX-512 state components (XCR0): false on an
//! AVX2 CPU and under QEMU's AVX2 model. Valid once installed.
bool host_holds_avx512_state();
const RuntimeOptions& runtime_options();

//! The process's trap sites (sweep, handler and patcher share it).
SiteTable& site_table();

//! Keeps the program's own SIGILL disposition while ours stays installed:
//! the handler passes on the SIGILLs it cannot emulate (chaining), exactly
//! where the kernel would have delivered them. `act` may be null (query).
void set_program_sigill_action(const struct sigaction* act, struct sigaction* old);

//! SIGSEGV, SIGBUS and SIGFPE stay the runtime's too, so that a fault inside
//! a translation reaches the program as the guest instruction's fault (RIP
//! and registers as before the instruction). Records the program's action
//! for them; false for other signals (then wrap_signal_action applies).
bool set_program_fault_action(int sig, const struct sigaction* act, struct sigaction* old);

//! Handlers the program installs for other signals are wrapped, so that the
//! emulated AVX-512 registers and an inline stub's spill words are as the
//! interrupted code left them when the handler returns, as the kernel does
//! for the real registers. `act` is the
//! program's; `installed` receives what to pass to the kernel instead (the
//! same action when nothing needs wrapping). Call `unwrap_signal_action` on
//! what the kernel reports as the old action.
void wrap_signal_action(int sig, const struct sigaction& act, struct sigaction& installed);
void unwrap_signal_action(int sig, struct sigaction& old);

struct RuntimeCounters {
  uint64_t traps = 0;              //!< SIGILLs emulated.
  uint64_t stub_runs = 0;          //!< Emulations through a patched site's stub.
  uint64_t handler_misses = 0;     //!< Traps whose site the sweep had not registered.
  uint64_t not_emulated = 0;       //!< SIGILLs passed on (no translation).
  uint64_t shadow_mismatches = 0;  //!< Registers where shadow and hardware differed.
  uint64_t threads = 0;            //!< Threads that used a shadow block.
};
RuntimeCounters runtime_counters();

//! The --stats report: counters, translation counters, patched sites and
//! the most frequent mnemonics.
std::string runtime_stats_text();

}  // namespace avx512emu::runtime
