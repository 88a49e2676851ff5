// Owns the SIGILL handler, the per-thread shadow blocks, the state transfer
// between signal frames / stub frames and CpuState, and the runtime counters
// (see sigill_runtime.h for the state model).
#include "sigill_runtime.h"

#include <dlfcn.h>
#include <pthread.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <ucontext.h>

#include <algorithm>
#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <map>
#include <mutex>
#include <new>
#include <vector>

#include "decoded_insn.h"
#include "signal_safe.h"
#include "live_form.h"
#include "live_stub.h"
#include "site_patcher.h"
#include "vex_idioms.h"

namespace avx512emu::runtime {
namespace {

// ---- XSAVE layout -------------------------------------------------------------

// XSAVE state components (Intel SDM Vol. 1, 13.1).
constexpr int kCompSse = 1, kCompYmm = 2, kCompOpmask = 5, kCompZmmHi256 = 6, kCompHi16Zmm = 7;
constexpr uint64_t kAvx512Components =
    (1u << kCompOpmask) | (1u << kCompZmmHi256) | (1u << kCompHi16Zmm);
// Signal-frame facts (Linux, x86-64): fpx_sw_bytes in the legacy area's
// software-reserved bytes, the XSAVE header right after the legacy area.
constexpr uint32_t kFpxMagic1 = 0x46505853, kFpxMagic2 = 0x46505845;
constexpr size_t kSwBytes = 464, kXstateBv = 512, kLegacyMxcsr = 24, kLegacyXmm = 160;

struct XsaveLayout {
  uint32_t offset[8] = {};
  uint32_t size[8] = {};
  uint64_t xcr0 = 0;
};
XsaveLayout g_layout;

void cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4]) {
  __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(sub));
}

bool read_xsave_layout(XsaveLayout& l, std::string& error) {
  uint32_t r[4];
  cpuid(1, 0, r);
  if (!(r[2] & (1u << 27))) {  // OSXSAVE
    error = "the OS does not enable XSAVE";
    return false;
  }
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  l.xcr0 = (uint64_t(hi) << 32) | lo;
  if ((l.xcr0 & 6) != 6) {
    error = "the OS does not enable AVX state (XCR0)";
    return false;
  }
  for (int c = kCompYmm; c <= kCompHi16Zmm; ++c) {
    if (!(l.xcr0 >> c & 1)) continue;
    cpuid(0xd, uint32_t(c), r);
    l.size[c] = r[0];
    l.offset[c] = r[1];
  }
  if (l.size[kCompYmm] != 256) {
    error = "unexpected YMM_Hi128 size in CPUID leaf 0xD";
    return false;
  }
  return true;
}

bool host_has_avx512_state() {
  return (g_layout.xcr0 & kAvx512Components) == kAvx512Components;
}

//! The XSAVE image of a signal frame, checked before use.
struct FrameImage {
  uint8_t* base = nullptr;
  uint64_t xfeatures = 0;
  uint32_t xstate_size = 0;

  bool open(ucontext_t* uc) {
    base = reinterpret_cast<uint8_t*>(uc->uc_mcontext.fpregs);
    if (!base) return false;
    uint32_t magic1 = 0, magic2 = 0;
    sys::copy(&magic1, base + kSwBytes, 4);
    if (magic1 != kFpxMagic1) return false;  // FXSAVE-only frame: no ymm halves
    sys::copy(&xfeatures, base + kSwBytes + 8, 8);
    sys::copy(&xstate_size, base + kSwBytes + 16, 4);
    sys::copy(&magic2, base + xstate_size, 4);
    return magic2 == kFpxMagic2 && has(kCompYmm);
  }
  bool has(int c) const {
    return (xfeatures >> c & 1) && g_layout.size[c] &&
           g_layout.offset[c] + g_layout.size[c] <= xstate_size;
  }
  bool has_avx512() const { return has(kCompOpmask) && has(kCompZmmHi256) && has(kCompHi16Zmm); }
  uint64_t xstate_bv() const {
    uint64_t v;
    sys::copy(&v, base + kXstateBv, 8);
    return v;
  }
  //! XSTATE_BV := (XSTATE_BV & ~clear) | set.
  void update_xstate_bv(uint64_t clear, uint64_t set) {
    const uint64_t v = (xstate_bv() & ~clear) | set;
    sys::copy(base + kXstateBv, &v, 8);
  }
  uint8_t* component(int c) const { return base + g_layout.offset[c]; }
};

// ---- Per-thread shadow blocks ---------------------------------------------------

//! Nesting levels: the program, code run by a handler's miss or report path
//! (libc, which trap injection may have armed), and two more for traps in
//! those. Untouched levels cost address space only.
constexpr int kMaxDepth = 4;
constexpr size_t kMaxThreads = 4096;

struct alignas(64) ThreadShadow {
  //! level[0] is the program's state; level[n] the state of code that runs
  //! while level n-1 is being emulated (nested traps). Inline stubs address
  //! level[0] as the block itself (offset 0).
  CpuState level[kMaxDepth];
  //! Inline stubs: the clobbered ymm registers and the entry flags.
  alignas(32) uint8_t ymm_spill[16][32];
  uint16_t flags_save;
  //! Level 0's emulated registers while program signal handlers run
  //! (call_program_handler), one per nested handler.
  struct SavedRegisters {
    uint8_t zmm[32][64];
    uint64_t k[8];
  } saved[4];
  uint32_t saved_depth;
  uint32_t index;
  uint64_t traps, stub_runs, mismatches;
};

ThreadShadow* g_pool = nullptr;
//! Compact claim flags, one per block: never used, in use, released.
enum : uint8_t { kBlockFree = 0, kBlockInUse = 1, kBlockReleased = 2 };
std::atomic<uint8_t>* g_pool_owner = nullptr;
std::atomic<size_t> g_threads{0};
//! Counters of exited threads (their blocks are zeroed when reclaimed).
std::atomic<uint64_t> g_exited_traps{0}, g_exited_stub_runs{0}, g_exited_mismatches{0};
pthread_key_t g_release_key;
bool g_release_key_ok = false;

__attribute__((tls_model("initial-exec"))) thread_local ThreadShadow* t_shadow = nullptr;
//! Levels in use on this thread (the next emulation takes level[t_depth]).
//! In TLS rather than in the block, so that an inline stub can release its
//! level after it has restored every register (live_stub.cpp).
__attribute__((tls_model("initial-exec"))) thread_local uint32_t t_depth = 0;
//! The signal frame of the trap each level is emulating, and its
//! translation, while the translation runs (a fault inside it is the guest
//! instruction's fault: handle_fault).
__attribute__((tls_model("initial-exec"))) thread_local const ucontext_t* t_trap_uc[4] = {};
__attribute__((tls_model("initial-exec"))) thread_local const Translation* t_trap_translation[4] = {};
//! An inline stub's first spills, before it has a base register.
__attribute__((tls_model("initial-exec"))) thread_local LiveSpill t_live_spill = {};

void release_thread_shadow(void* p) {
  auto* ts = static_cast<ThreadShadow*>(p);
  if (t_shadow == ts) t_shadow = nullptr;
  g_exited_traps.fetch_add(ts->traps, std::memory_order_relaxed);
  g_exited_stub_runs.fetch_add(ts->stub_runs, std::memory_order_relaxed);
  g_exited_mismatches.fetch_add(ts->mismatches, std::memory_order_relaxed);
  g_pool_owner[ts->index].store(kBlockReleased, std::memory_order_release);
}

//! The thread's shadow block, claimed from the pool on first use.
//! Async-signal-safe: a CAS over the claim flags, no allocation.
ThreadShadow* thread_shadow() {
  if (ThreadShadow* ts = t_shadow) return ts;
  if (!g_pool) return nullptr;
  const size_t start = size_t(sys::gettid()) % kMaxThreads;
  for (size_t n = 0; n < kMaxThreads; ++n) {
    const size_t i = (start + n) % kMaxThreads;
    uint8_t expected = g_pool_owner[i].load(std::memory_order_relaxed);
    if (expected == kBlockInUse ||
        !g_pool_owner[i].compare_exchange_strong(expected, kBlockInUse, std::memory_order_acquire))
      continue;
    ThreadShadow* ts = &g_pool[i];
    sys::fill(ts, 0, sizeof *ts);  // a new thread starts with zeroed upper state
    ts->index = uint32_t(i);
    for (CpuState& s : ts->level) s.mxcsr = 0x1f80;
    t_shadow = ts;
    g_threads.fetch_add(1, std::memory_order_relaxed);
    // glibc's pthread_setspecific neither locks nor allocates for keys
    // below 32, which install() checked.
    if (g_release_key_ok) pthread_setspecific(g_release_key, ts);
    return ts;
  }
  return nullptr;
}

//! Enters one nesting level for the life of the object.
class LevelGuard {
 public:
  explicit LevelGuard(ThreadShadow* ts) : ts_(ts) {
    if (ts_ && t_depth < kMaxDepth) state_ = &ts_->level[t_depth++];
  }
  ~LevelGuard() {
    if (state_) --t_depth;
  }
  CpuState* state() const { return state_; }

 private:
  ThreadShadow* ts_;
  CpuState* state_ = nullptr;
};

//! Runs a program's signal handler the way the kernel would on an AVX-512
//! CPU. The kernel saves and restores the real registers around a handler;
//! this saves and restores what the runtime keeps for them: level 0's
//! emulated registers (zmm0-31 as the shadow holds them, and the snapshot
//! of ymm0-15 the VEX-write check compares against, k0-7) and an inline
//! stub's spill words. A handler that runs AVX-512 code then leaves the
//! interrupted code's registers as they were. (A handler that leaves by
//! siglongjmp keeps its slot; after four, handlers run unsaved.)
void call_program_handler(const struct sigaction* act, int sig, siginfo_t* info, void* context) {
  const LiveSpill spill = t_live_spill;
  ThreadShadow* ts = t_shadow;
  ThreadShadow::SavedRegisters* saved = nullptr;
  if (ts && ts->saved_depth < 4) {
    saved = &ts->saved[ts->saved_depth++];
    sys::copy(saved->zmm, ts->level[0].zmm, sizeof saved->zmm);
    sys::copy(saved->k, ts->level[0].k, sizeof saved->k);
  }
  if (act->sa_flags & SA_SIGINFO)
    act->sa_sigaction(sig, info, context);
  else
    act->sa_handler(sig);
  if (saved) {
    sys::copy(ts->level[0].zmm, saved->zmm, sizeof saved->zmm);
    sys::copy(ts->level[0].k, saved->k, sizeof saved->k);
    --ts->saved_depth;
  }
  t_live_spill = spill;
}

// ---- Runtime globals ----------------------------------------------------------

RuntimeOptions g_options;
bool g_installed = false;
bool g_fsgsbase = false;
SiteTable g_sites;
std::atomic<uint64_t> g_misses{0}, g_not_emulated{0};

//! The program's own SIGILL disposition (chained). Replaced outside signal
//! context by the sigaction interposer; the handler reads it lock-free.
//! Replaced copies are leaked on purpose: a handler may still read one.
std::atomic<const struct sigaction*> g_program_action{nullptr};
std::mutex g_program_action_mutex;  // serialises writers

const uint8_t kZero16[16] = {};

// ---- State transfer -------------------------------------------------------------

// CpuState.gpr order (hardware) -> ucontext gregs index.
constexpr int kGreg[16] = {REG_RAX, REG_RCX, REG_RDX, REG_RBX, REG_RSP, REG_RBP, REG_RSI, REG_RDI,
                           REG_R8,  REG_R9,  REG_R10, REG_R11, REG_R12, REG_R13, REG_R14, REG_R15};

void read_segment_bases(CpuState& s) {
  if (g_fsgsbase) {
    __asm__ volatile("rdfsbase %0" : "=r"(s.fs_base));
    __asm__ volatile("rdgsbase %0" : "=r"(s.gs_base));
  } else {
    sys::arch_prctl(0x1003 /*ARCH_GET_FS*/, &s.fs_base);
    sys::arch_prctl(0x1004 /*ARCH_GET_GS*/, &s.gs_base);
  }
}

//! Takes ymm i as found at entry (`lo` = bits 127:0, `hi` = bits 255:128)
//! into the shadow, applying the VEX-write detection of sigill_runtime.h.
inline void enter_ymm(CpuState& s, int i, const uint8_t* lo, const uint8_t* hi) {
  uint8_t* z = s.zmm[i];
  const __m128i new_lo = _mm_loadu_si128(reinterpret_cast<const __m128i*>(lo));
  const __m128i new_hi = _mm_loadu_si128(reinterpret_cast<const __m128i*>(hi));
  const __m128i old_lo = _mm_loadu_si128(reinterpret_cast<const __m128i*>(z));
  const __m128i old_hi = _mm_loadu_si128(reinterpret_cast<const __m128i*>(z + 16));
  const bool hi_same = _mm_movemask_epi8(_mm_cmpeq_epi8(old_hi, new_hi)) == 0xffff;
  const bool lo_same = _mm_movemask_epi8(_mm_cmpeq_epi8(old_lo, new_lo)) == 0xffff;
  if (!hi_same || (!lo_same && _mm_testz_si128(new_hi, new_hi)))
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(z + 32), _mm256_setzero_si256());
  _mm_storeu_si128(reinterpret_cast<__m128i*>(z), new_lo);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(z + 16), new_hi);
}

//! Writes k0-7, zmm0-15 bits 511:256 and zmm16-31 into a signal frame's
//! XSAVE image. Returns the XSTATE_BV bits to set: a component that is all
//! zero is left out (its initial state), which makes sigreturn cheaper.
uint64_t write_avx512_components(const CpuState& s, uint8_t* area) {
  uint64_t present = 0;
  sys::copy(area + g_layout.offset[kCompOpmask], s.k, 64);
  if (!sys::all_zero(s.k, 64)) present |= 1u << kCompOpmask;
  uint8_t* hi256 = area + g_layout.offset[kCompZmmHi256];
  for (int i = 0; i < 16; ++i) {
    sys::copy(hi256 + 32 * i, s.zmm[i] + 32, 32);
    if (!(present >> kCompZmmHi256 & 1) && !sys::all_zero(s.zmm[i] + 32, 32))
      present |= 1u << kCompZmmHi256;
  }
  sys::copy(area + g_layout.offset[kCompHi16Zmm], s.zmm[16], 16 * 64);
  if (!sys::all_zero(s.zmm[16], 16 * 64)) present |= 1u << kCompHi16Zmm;
  return present;
}

//! AVX512EMU_CHECK_SHADOW: registers whose shadow differs from the hardware.
uint64_t count_shadow_mismatches(const CpuState& s, const FrameImage& f) {
  const uint64_t bv = f.xstate_bv();
  uint64_t n = 0;
  const uint8_t* k = f.component(kCompOpmask);
  for (int i = 0; i < 8; ++i)
    n += (bv >> kCompOpmask & 1) ? !sys::equal(&s.k[i], k + 8 * i, 8) : s.k[i] != 0;
  const uint8_t* hi256 = f.component(kCompZmmHi256);
  for (int i = 0; i < 16; ++i)
    n += (bv >> kCompZmmHi256 & 1) ? !sys::equal(s.zmm[i] + 32, hi256 + 32 * i, 32)
                                   : !sys::all_zero(s.zmm[i] + 32, 32);
  const uint8_t* hi16 = f.component(kCompHi16Zmm);
  for (int i = 0; i < 16; ++i)
    n += (bv >> kCompHi16Zmm & 1) ? !sys::equal(s.zmm[16 + i], hi16 + 64 * i, 64)
                                  : !sys::all_zero(s.zmm[16 + i], 64);
  return n;
}

void load_from_frame(const ucontext_t* uc, const FrameImage& f, CpuState& s) {
  const greg_t* g = uc->uc_mcontext.gregs;
  for (int i = 0; i < 16; ++i) s.gpr[i] = uint64_t(g[kGreg[i]]);
  s.rflags = uint64_t(g[REG_EFL]);
  sys::copy(&s.mxcsr, f.base + kLegacyMxcsr, 4);
  read_segment_bases(s);
  // A component whose XSTATE_BV bit is clear is in its initial state (zero),
  // and its area in the image may hold stale bytes.
  const uint64_t bv = f.xstate_bv();
  for (int i = 0; i < 16; ++i)
    enter_ymm(s, i, (bv >> kCompSse & 1) ? f.base + kLegacyXmm + 16 * i : kZero16,
              (bv >> kCompYmm & 1) ? f.component(kCompYmm) + 16 * i : kZero16);
}

void store_to_frame(const CpuState& s, FrameImage& f, ucontext_t* uc) {
  greg_t* g = uc->uc_mcontext.gregs;
  for (int i = 0; i < 16; ++i) g[kGreg[i]] = greg_t(s.gpr[i]);
  g[REG_EFL] = greg_t(s.rflags);
  g[REG_RIP] = greg_t(s.rip);
  sys::copy(f.base + kLegacyMxcsr, &s.mxcsr, 4);
  for (int i = 0; i < 16; ++i) {
    sys::copy(f.base + kLegacyXmm + 16 * i, s.zmm[i], 16);
    sys::copy(f.component(kCompYmm) + 16 * i, s.zmm[i] + 16, 16);
  }
  // Without the bits sigreturn would load the initial state instead.
  f.update_xstate_bv(0, (1u << kCompSse) | (1u << kCompYmm));
  if (host_has_avx512_state() && f.has_avx512())
    f.update_xstate_bv(kAvx512Components, write_avx512_components(s, f.base));
}

// ---- Sites ---------------------------------------------------------------------

//! The registered site at `rip`, if the bytes there are still the ones we
//! know: ud2 (armed), jmp (patched; QEMU may run a stale copy of the page),
//! or the original instruction. Anything else is a stale site of unloaded
//! code.
Site* find_site(uint64_t rip) {
  Site* site = g_sites.lookup(rip);
  return site && code_still_holds(*site) ? site : nullptr;
}

//! Copies the instruction at `rip` without reading past its last byte: the
//! CPU fetched all of it to raise #UD, but the bytes after it may be unmapped.
size_t read_instruction(uint64_t rip, uint8_t (&bytes)[15]) {
  const size_t to_page_end = 4096 - (rip & 4095);
  size_t n = std::min<size_t>(15, to_page_end);
  sys::copy(bytes, reinterpret_cast<const void*>(rip), n);
  if (instruction_length(bytes, n)) return n;
  // It crosses into the next page: grow one byte at a time (all its bytes
  // are mapped, so reading up to its end is safe).
  while (n < 15) {
    bytes[n] = reinterpret_cast<const uint8_t*>(rip)[n];
    ++n;
    if (instruction_length(bytes, n)) return n;
  }
  return n;
}

//! Miss path: translates the instruction at a natural trap site the sweep
//! did not register, and registers it. Allocates (translate()). Kept out of
//! line, so the handler's own code is the hit path only (runtime_test checks
//! that it calls no libc memory function).
__attribute__((noinline)) Site* translate_natural_site(uint64_t rip) {
  g_misses.fetch_add(1, std::memory_order_relaxed);
  uint8_t bytes[15];
  const size_t n = read_instruction(rip, bytes);
  const TranslateResult r = translate(bytes, n);
  if (r.error != TranslateError::kNone) return nullptr;
  return g_sites.insert(rip, bytes, r.translation->key.length, SiteState::kOriginal, r.translation,
                        r.translation->mnemonic);
}

// ---- Passing a SIGILL on ---------------------------------------------------------

//! Prints the one-line reason why the instruction at `rip` is not emulated.
//! `nested`: we are inside another emulation, so the report must not run
//! the decoder or the translator (they call libc, which may trap again).
__attribute__((noinline)) void report_not_emulated(uint64_t rip, const Site* site,
                                                   const char* extra, bool nested) {
  uint8_t bytes[15];
  size_t n;
  if (site) {
    n = site->length;
    sys::copy(bytes, site->original, n);
  } else if (nested) {
    n = std::min<size_t>(15, 4096 - (rip & 4095));  // undecoded: up to the page end
    sys::copy(bytes, reinterpret_cast<const void*>(rip), n);
  } else {
    n = read_instruction(rip, bytes);
  }
  DecodedInsn d;
  const bool decoded = !nested && [&] {
    const DecodeStatus st = decode(bytes, n, d);
    return st == DecodeStatus::kOk || st == DecodeStatus::kNotAvx512;
  }();
  const char* mnemonic = decoded ? d.mnemonic : site ? site->mnemonic : "instruction";
  sys::Line line;
  line.str("avx512emu: cannot emulate ")
      .str(*mnemonic ? mnemonic : "instruction")
      .str(" at ")
      .hex(rip)
      .str(" (bytes ")
      .bytes(bytes, decoded ? d.length : n)
      .str("): ");
  if (extra) {
    line.str(extra);
  } else if (nested) {
    line.str("no translation");
  } else {
    // This is the last thing the process does before its SIGILL; translate()
    // allocating here is acceptable (it already failed in the sweep or miss).
    const TranslateResult r = translate(bytes, n);
    line.str(translate_error_name(r.error)).str(": ").str(r.message.c_str());
  }
  line.str("; passing SIGILL on");
  line.emit();
}

//! Returns false when it chose the default action (the caller reports first).
bool program_handles_sigill() {
  const struct sigaction* act = g_program_action.load(std::memory_order_acquire);
  // SIG_IGN counts as default: the kernel does not ignore a synchronous SIGILL.
  return act && act->sa_handler != SIG_DFL && act->sa_handler != SIG_IGN;
}

//! Puts `sig` back at its default action (the kernel's, not libc's
//! wrapper: async-signal-safe).
void reset_to_default_action(int sig) {
  sys::KernelSigaction dfl = {};
  dfl.handler = reinterpret_cast<void*>(SIG_DFL);
  sys::rt_sigaction(sig, &dfl, nullptr);
}

//! One line "avx512emu: WHAT MNEMONIC at ADDRESS: WHY; terminating with
//! SIGILL", then SIGILL at its default action (not through our handler
//! again) and ud2.
[[noreturn]] void terminate_with_sigill(const char* what, const Site& site, const char* why) {
  sys::Line line;
  line.str("avx512emu: ").str(what).str(" ").str(site.mnemonic).str(" at ").hex(site.address);
  line.str(": ").str(why).str("; terminating with SIGILL");
  line.emit();
  reset_to_default_action(SIGILL);
  __builtin_trap();
}

void pass_sigill_on(int sig, siginfo_t* info, void* context) {
  if (program_handles_sigill()) {
    const struct sigaction* act = g_program_action.load(std::memory_order_acquire);
    if (act->sa_flags & SA_SIGINFO)
      act->sa_sigaction(sig, info, context);
    else
      act->sa_handler(sig);
    return;
  }
  reset_to_default_action(SIGILL);
}

// ---- The handler ---------------------------------------------------------------

//! AVX512EMU_REFERENCE: the instruction through interpret() instead of its
//! translation. Kept out of the hit path: it allocates (lowering).
__attribute__((noinline)) void run_in_reference_interpreter(const Site& site, CpuState& s) {
  std::string error;
  if (!interpret(site.original, site.length, s, &error))
    terminate_with_sigill("the reference interpreter cannot run", site, error.c_str());
}

//! QEMU 7.2 enters handlers with rsp misaligned by 8: realign.
__attribute__((force_align_arg_pointer)) void handle_sigill(int sig, siginfo_t* info,
                                                            void* context) {
  auto* uc = static_cast<ucontext_t*>(context);
  const uint64_t rip = uint64_t(uc->uc_mcontext.gregs[REG_RIP]);
  ThreadShadow* ts = thread_shadow();
  LevelGuard level(ts);
  const char* why = nullptr;
  Site* site = nullptr;
  FrameImage frame;
  if (!level.state()) {
    why = ts ? "traps nested too deeply" : "no free thread state block";
    site = g_sites.lookup(rip);
  } else {
    site = find_site(rip);
    if (!site) site = translate_natural_site(rip);
    if (site && site->translation && !frame.open(uc))
      why = "the signal frame has no XSAVE image with AVX state";
  }
  if (why || !site || !site->translation) {
    // The program's own SIGILL handler expects its SIGILLs: no report then.
    g_not_emulated.fetch_add(1, std::memory_order_relaxed);
    if (!program_handles_sigill())
      report_not_emulated(rip, site, why, /*nested=*/!ts || t_depth != 1);
    pass_sigill_on(sig, info, context);
    return;
  }
  CpuState& s = *level.state();
  load_from_frame(uc, frame, s);
  if (g_options.check_shadow && host_has_avx512_state() && frame.has_avx512())
    ts->mismatches += count_shadow_mismatches(s, frame);
  s.rip = rip;
  t_trap_uc[t_depth - 1] = uc;
  t_trap_translation[t_depth - 1] = site->translation;
  // The VEX idioms are not AVX-512: the interpreter does not take them, and
  // their translations are a few stores of zeros.
  if (g_options.reference_interpreter && !is_vex_idiom_translation(site->translation))
    run_in_reference_interpreter(*site, s);
  else
    execute(*site->translation, s);
  t_trap_uc[t_depth - 1] = nullptr;
  store_to_frame(s, frame, uc);
  site->traps.fetch_add(1, std::memory_order_relaxed);
  ++ts->traps;
  if (g_options.patch && site->state.load(std::memory_order_relaxed) != SiteState::kPatched &&
      !site->unpatchable.load(std::memory_order_relaxed))
    patch_site(*site, g_sites);
}

[[noreturn]] void stub_fatal(const Site* site, const char* why) {
  terminate_with_sigill("cannot run the stub of", *site, why);
}

}  // namespace

// ---- The stub path (called by avx512emu_stub_entry) --------------------------------

}  // namespace avx512emu::runtime

extern "C" __attribute__((visibility("hidden"))) void avx512emu_stub_dispatch(
    avx512emu::runtime::StubFrame* f, const avx512emu::runtime::StubPlan* plan) {
  using namespace avx512emu::runtime;
  // Pairs with patch_site's release (see StubPlan); a lock-free load, so
  // still async-signal-safe.
  const uint32_t count = plan->published.load(std::memory_order_acquire);
  ThreadShadow* ts = thread_shadow();
  LevelGuard level(ts);
  if (!level.state())
    stub_fatal(plan->sites[0], ts ? "emulation nested too deeply" : "no free thread state block");
  avx512emu::CpuState& s = *level.state();
  for (int i = 0; i < 16; ++i) s.gpr[i] = f->gpr[i];
  s.rflags = f->rflags;
  s.mxcsr = f->mxcsr;
  read_segment_bases(s);
  for (int i = 0; i < 16; ++i) enter_ymm(s, i, f->ymm[i], f->ymm[i] + 16);
  for (uint32_t i = 0; i < count; ++i) {
    Site* site = plan->sites[i];
    s.rip = site->address;
    avx512emu::execute(*site->translation, s);
    // AVX-512 instructions do not branch: anything else is a translation bug
    // that must not resume at a wrong address silently.
    if (s.rip != site->address + site->length)
      stub_fatal(site, "translation moved RIP unexpectedly");
    if (g_options.stats) site->stub_runs.fetch_add(1, std::memory_order_relaxed);
  }
  for (int i = 0; i < 16; ++i) f->gpr[i] = s.gpr[i];
  f->rflags = s.rflags;
  f->mxcsr = s.mxcsr;
  for (int i = 0; i < 16; ++i) sys::copy(f->ymm[i], s.zmm[i], 32);
  // Read by the entry after this returns; the level stays untouched until
  // the next emulation on this thread.
  if (host_has_avx512_state()) f->hw_sync_state = &s;
  if (g_options.stats) ++ts->stub_runs;
}

namespace avx512emu::runtime {

// ---- Faults inside translations ----------------------------------------------------
//
// SIGSEGV, SIGBUS and SIGFPE stay ours, like SIGILL: a fault raised by a
// translation must reach the program as the guest instruction's own fault,
// with RIP at that instruction and the registers as they were before it
// (si_addr is already right: the translation makes the same access). Two
// places run translations:
//   - an inline stub: its step table names the instruction, and says where
//     the guest's GPRs, flags and clobbered ymm registers are at that point
//     (the block, the entry flags word, the ymm spill space);
//   - the SIGILL handler: the trap's own signal frame holds the guest state
//     before the instruction; the fault's frame becomes a copy of it, and
//     the handler's frame below it is abandoned.
// The program's own handler then runs on the mapped frame; returning from it
// re-executes the instruction. Without one, the default action applies, as
// the kernel does for a synchronous fault.

namespace {

std::atomic<const struct sigaction*> g_fault_action[NSIG];  // the program's, per fault signal
std::mutex g_fault_action_mutex;  // serialises writers
bool g_fault_handler = false;

bool is_fault_signal(int sig) {
  return sig == SIGSEGV || sig == SIGBUS || sig == SIGFPE;
}

bool has_handler(const struct sigaction* act) {
  return act && ((act->sa_flags & SA_SIGINFO) ||
                 (act->sa_handler != SIG_DFL && act->sa_handler != SIG_IGN));
}

//! What a stub's exit would have done, for a stub left through a signal
//! frame at `f`: a loop region's pinned slots back into the block, the
//! spilled ymm back into the frame, the block's copy of every ymm made
//! current (the next entry's VEX-write check compares against them), and on
//! AVX-512 hosts the frame's AVX-512 state made the
//! emulated one (the hardware's upper halves are stale inside a stub).
void leave_stub_state(ThreadShadow& ts, const LiveStubFault& f, FrameImage& frame) {
  // Pinned slots first: their host ymm still hold the guest's values, which
  // the spilled ones' guest values then replace in the frame.
  const uint64_t held = frame.xstate_bv();
  for (int r = 0; r < 16; ++r) {
    if (!f.pin_offset[r]) continue;
    auto* slot = reinterpret_cast<uint8_t*>(&ts.level[0]) + f.pin_offset[r];
    sys::copy(slot, (held >> kCompSse & 1) ? frame.base + kLegacyXmm + 16 * r : kZero16, 16);
    sys::copy(slot + 16, (held >> kCompYmm & 1) ? frame.component(kCompYmm) + 16 * r : kZero16, 16);
  }
  for (int r = 0; r < 16; ++r) {
    if (!(f.ymm_spilled >> r & 1)) continue;
    sys::copy(frame.base + kLegacyXmm + 16 * r, ts.ymm_spill[r], 16);
    sys::copy(frame.component(kCompYmm) + 16 * r, ts.ymm_spill[r] + 16, 16);
  }
  if (f.ymm_spilled) frame.update_xstate_bv(0, (1u << kCompSse) | (1u << kCompYmm));
  CpuState& s = ts.level[0];
  const uint64_t bv = frame.xstate_bv();
  for (int r = 0; r < 16; ++r) {
    sys::copy(s.zmm[r], (bv >> kCompSse & 1) ? frame.base + kLegacyXmm + 16 * r : kZero16, 16);
    sys::copy(s.zmm[r] + 16, (bv >> kCompYmm & 1) ? frame.component(kCompYmm) + 16 * r : kZero16,
              16);
  }
  if (host_has_avx512_state() && frame.has_avx512())
    frame.update_xstate_bv(kAvx512Components, write_avx512_components(s, frame.base));
}

//! Writes the guest's registers as of `f` into the frame of a fault in an
//! inline stub.
bool map_stub_fault(ucontext_t* uc) {
  LiveStubFault f;
  ThreadShadow* ts = t_shadow;
  if (!ts || !find_live_stub_fault(uint64_t(uc->uc_mcontext.gregs[REG_RIP]), f)) return false;
  CpuState& s = ts->level[0];
  greg_t* g = uc->uc_mcontext.gregs;
  for (int r = 0; r < 16; ++r)
    if (f.gprs_in_block >> r & 1) g[kGreg[r]] = greg_t(s.gpr[r]);
  constexpr uint64_t kArith = kFlagCF | kFlagPF | kFlagAF | kFlagZF | kFlagSF | kFlagOF;
  if (f.flags != LiveStubFault::kFlagsLive) {
    uint64_t flags;
    if (f.flags == LiveStubFault::kFlagsInBlock) {
      flags = s.rflags;
    } else {  // lahf in the high byte (SF ZF - AF - PF - CF), seto in the low one
      flags = (ts->flags_save >> 8 & 0xd5) | ((ts->flags_save & 0xff) ? kFlagOF : 0);
    }
    g[REG_EFL] = greg_t((uint64_t(g[REG_EFL]) & ~kArith) | (flags & kArith));
  }
  FrameImage frame;
  if (frame.open(uc)) leave_stub_state(*ts, f, frame);
  g[REG_RIP] = greg_t(f.guest_rip);
  t_depth = 0;  // the stub's claim on level 0 ends here
  return true;
}

//! An asynchronous signal that lands on an instruction a loop region
//! copied: every guest register is live there or in the block (the GPRs
//! no copied instruction uses, and pinned vector halves), so the interrupted context
//! becomes the original instruction's, as if the region had exited just
//! before it. The program's handler sees its own RIP, and may leave by
//! siglongjmp; returning resumes the original code, which enters the region
//! again at its next patched site. Elsewhere in a stub (a translation's
//! steps, whose guest state is partly in the block) the context stays the
//! stub's.
void leave_stub_at_copied_instruction(ucontext_t* uc) {
  LiveStubFault f;
  ThreadShadow* ts = t_shadow;
  const uint64_t rip = uint64_t(uc->uc_mcontext.gregs[REG_RIP]);
  if (!ts || t_depth != 1 || !find_live_stub_fault(rip, f) ||
      f.flags != LiveStubFault::kFlagsLive || !f.at_start)
    return;
  FrameImage frame;
  if (!frame.open(uc)) return;
  leave_stub_state(*ts, f, frame);
  // The GPRs that no copied instruction uses stay in the block.
  for (int r = 0; r < 16; ++r)
    if (f.gprs_in_block >> r & 1) uc->uc_mcontext.gregs[kGreg[r]] = greg_t(ts->level[0].gpr[r]);
  uc->uc_mcontext.gregs[REG_RIP] = greg_t(f.guest_rip);
  t_depth = 0;
}

//! Makes the frame of a fault in a translation run by the SIGILL handler
//! the trap's frame.
bool map_trap_fault(ucontext_t* uc) {
  if (t_depth == 0 || t_depth > kMaxDepth) return false;
  const int level = int(t_depth) - 1;
  const ucontext_t* trap = t_trap_uc[level];
  const Translation* t = t_trap_translation[level];
  const uint64_t rip = uint64_t(uc->uc_mcontext.gregs[REG_RIP]);
  const auto code = reinterpret_cast<uint64_t>(t ? t->code : nullptr);
  // Under AVX512EMU_REFERENCE the instruction's accesses come from the
  // interpreter's C++ code: any fault while the trap runs is the
  // instruction's (the lowered IR it abandons is leaked; a test mode).
  const bool in_emulation =
      g_options.reference_interpreter || (rip >= code && code && rip < code + t->total_size);
  if (!trap || !in_emulation) return false;
  FrameImage to, from;
  if (!to.open(uc) || !from.open(const_cast<ucontext_t*>(trap)) || to.xstate_size != from.xstate_size)
    return false;
  sys::copy(uc->uc_mcontext.gregs, trap->uc_mcontext.gregs, sizeof uc->uc_mcontext.gregs);
  sys::copy(to.base, from.base, from.xstate_size);
  // The kernel's frame holds 8 bytes of signal mask, not glibc's 128: the
  // siginfo follows them.
  sys::copy(&uc->uc_sigmask, &trap->uc_sigmask, 8);
  t_trap_uc[level] = nullptr;
  t_depth = uint32_t(level);  // the SIGILL handler's level is abandoned with its frame
  return true;
}

//! QEMU 7.2 enters handlers with rsp misaligned by 8: realign.
__attribute__((force_align_arg_pointer)) void handle_fault(int sig, siginfo_t* info,
                                                           void* context) {
  auto* uc = static_cast<ucontext_t*>(context);
  if (!map_stub_fault(uc)) map_trap_fault(uc);
  const struct sigaction* act = g_fault_action[sig].load(std::memory_order_acquire);
  if (has_handler(act)) {
    call_program_handler(act, sig, info, context);
    return;
  }
  // Default action: returning re-executes the faulting access, which now
  // meets it.
  reset_to_default_action(sig);
}

//! libc's sigaction: this library's own `sigaction` is the interposer
//! (preload.cpp), which would record our handler as the program's.
int libc_sigaction(int sig, const struct sigaction* act, struct sigaction* old) {
  using Fn = int (*)(int, const struct sigaction*, struct sigaction*);
  static const Fn real = reinterpret_cast<Fn>(dlsym(RTLD_NEXT, "sigaction"));
  return real ? real(sig, act, old) : -1;
}

//! Installs handle_fault for `sig` with the program's flags and mask (its
//! SA_ONSTACK above all: a stack-overflow handler needs the alternate stack).
bool install_fault_handler(int sig, const struct sigaction* program) {
  struct sigaction sa = {};
  sa.sa_sigaction = handle_fault;
  sa.sa_flags = SA_SIGINFO | (program ? program->sa_flags & (SA_ONSTACK | SA_NODEFER | SA_RESTART) : 0);
  if (program) sa.sa_mask = program->sa_mask;
  else sigemptyset(&sa.sa_mask);
  return libc_sigaction(sig, &sa, nullptr) == 0;
}

//! Takes over the fault signals, keeping what the program (or a library
//! loaded before us) set as the program's action.
void install_fault_handlers() {
  for (int sig : {SIGSEGV, SIGBUS, SIGFPE}) {
    struct sigaction current = {};
    if (libc_sigaction(sig, nullptr, &current) != 0) continue;
    if (has_handler(&current) || current.sa_handler == SIG_IGN)
      g_fault_action[sig].store(new struct sigaction(current), std::memory_order_release);
    install_fault_handler(sig, has_handler(&current) ? &current : nullptr);
  }
  g_fault_handler = true;
}

}  // namespace

bool set_program_fault_action(int sig, const struct sigaction* act, struct sigaction* old) {
  if (!g_fault_handler || !is_fault_signal(sig)) return false;
  std::lock_guard<std::mutex> lock(g_fault_action_mutex);
  const struct sigaction* current = g_fault_action[sig].load(std::memory_order_relaxed);
  if (old) {
    if (current) {
      *old = *current;
    } else {
      *old = {};
      old->sa_handler = SIG_DFL;
    }
  }
  if (act) {
    g_fault_action[sig].store(new struct sigaction(*act), std::memory_order_release);
    install_fault_handler(sig, act);
  }
  return true;
}

// ---- Installation -------------------------------------------------------------

namespace {

//! fs-relative offset of a TLS variable of this thread (the same for every
//! thread: initial-exec TLS of a library loaded at start-up).
template <class T>
int64_t tls_offset(const T* var) {
  return reinterpret_cast<intptr_t>(var) - reinterpret_cast<intptr_t>(__builtin_thread_pointer());
}

//! Tells the stub builder where the per-thread data is. Inline stubs stay
//! off when an offset does not fit a 32-bit displacement.
void install_live_stubs() {
  static_assert(offsetof(ThreadShadow, level) == 0, "inline stubs address level[0] as the block");
  LiveStubEnv env;
  const int64_t shadow = tls_offset(&t_shadow), depth = tls_offset(&t_depth),
                spill = tls_offset(&t_live_spill);
  auto fits = [](int64_t v) { return v >= INT32_MIN && v <= INT32_MAX; };
  env.enabled = g_options.patch && g_options.inline_stubs && fits(shadow) && fits(depth) &&
                fits(spill);
  env.tls_shadow = int32_t(shadow);
  env.tls_depth = int32_t(depth);
  env.tls_spill = int32_t(spill);
  env.ymm_spill = int32_t(offsetof(ThreadShadow, ymm_spill));
  env.flags_save = int32_t(offsetof(ThreadShadow, flags_save));
  env.hw_sync = host_has_avx512_state() ? live_hw_sync_address() : 0;
  env.count_runs = g_options.stats;
  env.loop_regions = g_options.loop_regions;
  // Zydis' decoder tables are set up by a function-local static: do it now,
  // not in the first signal handler that builds a stub.
  jit::LiveForm unused;
  const uint8_t ret[] = {0xc5, 0xf8, 0x77, 0xc3};
  jit::make_live_form(ret, sizeof ret, sizeof ret, unused, nullptr);
  set_live_stub_env(env);
}

}  // namespace

bool install_sigill_runtime(const RuntimeOptions& options, std::string& error) {
  if (g_installed) return true;
  g_options = options;
  if (!read_xsave_layout(g_layout, error)) return false;
  g_fsgsbase = getauxval(AT_HWCAP2) & 2;  // HWCAP2_FSGSBASE: rdfsbase works in user mode
  if (!g_sites.init(size_t(1) << 18)) {
    error = "cannot reserve the trap-site table";
    return false;
  }
  const long pool = sys::mmap(nullptr, kMaxThreads * sizeof(ThreadShadow), PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE);
  const long owners =
      sys::mmap(nullptr, kMaxThreads, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  if (pool < 0 || owners < 0) {
    error = "cannot reserve the thread state pool";
    return false;
  }
  if (options.perf_map && !open_perf_map(error)) return false;
  g_pool = reinterpret_cast<ThreadShadow*>(pool);
  g_pool_owner = reinterpret_cast<std::atomic<uint8_t>*>(owners);
  g_release_key_ok =
      pthread_key_create(&g_release_key, release_thread_shadow) == 0 && g_release_key < 32;

  struct sigaction sa = {};
  sa.sa_sigaction = handle_sigill;
  // SA_NODEFER: a miss may run libc code that trap injection armed; that
  // nested SIGILL is emulated on the next shadow level.
  sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_RESTART;
  // Asynchronous signals wait until the emulation is done: a program
  // handler must see the program's registers, not the runtime's. The
  // synchronous ones stay open (faults in a translation, nested traps).
  sigfillset(&sa.sa_mask);
  for (int sync : {SIGILL, SIGSEGV, SIGBUS, SIGFPE, SIGTRAP, SIGSYS}) sigdelset(&sa.sa_mask, sync);
  struct sigaction old = {};
  if (sigaction(SIGILL, &sa, &old) != 0) {
    error = "cannot install the SIGILL handler";
    return false;
  }
  set_program_sigill_action(&old, nullptr);
  install_live_stubs();
  install_fault_handlers();
  g_installed = true;
  return true;
}

bool sigill_runtime_installed() {
  return g_installed;
}
bool host_holds_avx512_state() {
  return host_has_avx512_state();
}
const RuntimeOptions& runtime_options() {
  return g_options;
}
SiteTable& site_table() {
  return g_sites;
}

void set_program_sigill_action(const struct sigaction* act, struct sigaction* old) {
  std::lock_guard<std::mutex> lock(g_program_action_mutex);
  const struct sigaction* current = g_program_action.load(std::memory_order_relaxed);
  if (old) {
    if (current) {
      *old = *current;
    } else {
      *old = {};
      old->sa_handler = SIG_DFL;
    }
  }
  if (act) g_program_action.store(new struct sigaction(*act), std::memory_order_release);
}

// ---- Wrapped program signal handlers ------------------------------------------------

namespace {

//! The program's handler per signal, as it gave it (handler or sigaction,
//! and whether SA_SIGINFO). Replaced copies are leaked on purpose: a
//! handler may still read one.
std::atomic<const struct sigaction*> g_wrapped[NSIG];

//! QEMU 7.2 enters handlers with rsp misaligned by 8: realign (as
//! handle_sigill does).
__attribute__((force_align_arg_pointer)) void run_wrapped_handler(int sig, siginfo_t* info,
                                                                  void* context) {
  const struct sigaction* act =
      sig > 0 && sig < NSIG ? g_wrapped[sig].load(std::memory_order_acquire) : nullptr;
  if (!act) return;
  leave_stub_at_copied_instruction(static_cast<ucontext_t*>(context));
  call_program_handler(act, sig, info, context);
}

}  // namespace

void wrap_signal_action(int sig, const struct sigaction& act, struct sigaction& installed) {
  installed = act;
  const bool handler = (act.sa_flags & SA_SIGINFO) ||
                       (act.sa_handler != SIG_DFL && act.sa_handler != SIG_IGN);
  if (sig <= 0 || sig >= NSIG || !handler) return;
  g_wrapped[sig].store(new struct sigaction(act), std::memory_order_release);
  installed.sa_sigaction = run_wrapped_handler;
  installed.sa_flags |= SA_SIGINFO;
}

void unwrap_signal_action(int sig, struct sigaction& old) {
  if (sig <= 0 || sig >= NSIG || !(old.sa_flags & SA_SIGINFO) ||
      old.sa_sigaction != run_wrapped_handler)
    return;
  if (const struct sigaction* act = g_wrapped[sig].load(std::memory_order_acquire)) {
    const sigset_t mask = old.sa_mask;
    old = *act;
    old.sa_mask = mask;
  }
}

RuntimeCounters runtime_counters() {
  RuntimeCounters c;
  c.handler_misses = g_misses.load();
  c.not_emulated = g_not_emulated.load();
  c.threads = g_threads.load();
  c.traps = g_exited_traps.load();
  c.stub_runs = g_exited_stub_runs.load();
  c.shadow_mismatches = g_exited_mismatches.load();
  for (size_t i = 0; g_pool && i < kMaxThreads; ++i) {
    if (g_pool_owner[i].load() != kBlockInUse) continue;  // racy snapshot: fine for stats
    const ThreadShadow& ts = g_pool[i];
    c.traps += ts.traps;
    c.stub_runs += ts.stub_runs;
    c.shadow_mismatches += ts.mismatches;
  }
  return c;
}

std::string runtime_stats_text() {
  const RuntimeCounters c = runtime_counters();
  const TranslateStats t = translate_stats();
  std::map<std::string, std::pair<uint64_t, uint64_t>> per_mnemonic;  // traps, stub runs
  uint64_t idioms = 0, idiom_traps = 0, idiom_runs = 0, site_runs = 0, region_runs = 0;
  g_sites.for_each([&](const Site& s) {
    const uint64_t stub = s.stub_runs.load(), region = s.region_runs.load();
    const uint64_t traps = s.traps.load(), runs = stub + region;
    site_runs += stub;
    region_runs += region;
    if (is_vex_idiom_translation(s.translation) && s.state.load() != SiteState::kOriginal) {
      ++idioms;
      idiom_traps += traps;
      idiom_runs += runs;
    }
    if (!traps && !runs) return;
    auto& e = per_mnemonic[s.mnemonic];
    e.first += traps;
    e.second += runs;
  });
  std::vector<std::pair<std::string, std::pair<uint64_t, uint64_t>>> top(per_mnemonic.begin(),
                                                                         per_mnemonic.end());
  std::sort(top.begin(), top.end(), [](const auto& a, const auto& b) {
    return a.second.first + a.second.second > b.second.first + b.second.second;
  });
  char buf[512];
  std::string out;
  std::snprintf(buf, sizeof buf,
                "avx512emu stats (pid %d): traps %" PRIu64 ", stub runs %" PRIu64
                ", sites %zu, patched sites %" PRIu64 ", threads %" PRIu64 "\n",
                int(sys::syscall6(39, 0, 0, 0, 0, 0, 0)), c.traps, site_runs + region_runs,
                g_sites.size(), patched_site_count(), c.threads);
  out += buf;
  // Stub runs count AVX-512 instructions run at patched sites, whichever
  // stub ran them; the state-block entries are the slow path's share.
  std::snprintf(buf, sizeof buf,
                "avx512emu stats: AVX-512 instructions run through traps %" PRIu64
                ", at patched sites %" PRIu64 ", inside loop regions %" PRIu64
                "; patched sites inline %" PRIu64 " of %" PRIu64
                ", state-block stub entries %" PRIu64 "; loop regions built %" PRIu64
                ", invalidated %" PRIu64 "\n",
                c.traps, site_runs, region_runs, inline_patched_site_count(), patched_site_count(),
                c.stub_runs, loop_regions_built(), loop_regions_dropped());
  out += buf;
  std::snprintf(buf, sizeof buf,
                "avx512emu stats: translations %" PRIu64 ", cache hits %" PRIu64
                " (memory) + %" PRIu64 " (file), translate failures %" PRIu64
                ", handler misses %" PRIu64 ", not emulated %" PRIu64 "\n",
                t.translations, t.memory_hits, t.file_hits, t.failures, c.handler_misses,
                c.not_emulated);
  out += buf;
  std::snprintf(buf, sizeof buf,
                "avx512emu stats: vex zero idioms armed %" PRIu64 " (traps %" PRIu64
                ", stub runs %" PRIu64 ")\n",
                idioms, idiom_traps, idiom_runs);
  out += buf;
  if (g_options.check_shadow) {
    std::snprintf(buf, sizeof buf, "avx512emu stats: shadow mismatches %" PRIu64 "\n",
                  c.shadow_mismatches);
    out += buf;
  }
  out += "avx512emu stats: top mnemonics (traps + stub runs):";
  for (size_t i = 0; i < top.size() && i < 10; ++i) {
    std::snprintf(buf, sizeof buf, " %s=%" PRIu64 "+%" PRIu64, top[i].first.c_str(),
                  top[i].second.first, top[i].second.second);
    out += buf;
  }
  if (top.empty()) out += " none";
  out += "\n";
  return out;
}

}  // namespace avx512emu::runtime
