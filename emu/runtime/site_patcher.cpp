// Owns code writes by page swap, the stub arenas near patched code, the
// per-site stub bytes and the common stub entry (see site_patcher.h).
#include "site_patcher.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <mutex>

#include "live_stub.h"
#include "loop_region.h"
#include "signal_safe.h"

namespace avx512emu::runtime {

// ---- The common stub entry --------------------------------------------------
//
// A patched site jumps to its stub, which steps over the red zone, saves rax,
// loads its StubPlan* into rax and calls this entry through an absolute
// pointer:
//
//   stub:  lea rsp, [rsp-128]      ; the interrupted function may use its red zone
//          push rax
//          movabs rax, <StubPlan*>
//          call [rip+entry_ptr]
//          pop rax                 ; (rax as the translations left it)
//          lea rsp, [rsp+128]
//          jmp <end of the plan's last instruction>
//
// The entry saves the flags and every register into a 64-byte aligned
// StubFrame, calls avx512emu_stub_dispatch(frame, plan), reloads everything
// from the frame (the translation's results) and returns to the stub. Only
// what a SysV call may clobber and what AVX-512 instructions can change is
// saved: GPRs, RFLAGS, MXCSR and ymm0-15. The x87 state, zmm16-31 and k0-7
// are untouched by the runtime and the translations (AVX2 code), so they
// are not saved. On AVX-512 hosts the dispatcher asks the entry to load the
// emulated AVX-512 state into the real registers as well; that path, and
// only that path, uses AVX-512 instructions (EVEX loads, about 40 cycles,
// where XRSTOR costs about 300 on the AMD machine this was measured on).

static_assert(offsetof(StubFrame, rflags) == 128);
static_assert(offsetof(StubFrame, mxcsr) == 136);
static_assert(offsetof(StubFrame, hw_sync_state) == 144);
static_assert(offsetof(StubFrame, ymm) == 192);
static_assert(sizeof(StubFrame) == 704);

extern "C" void avx512emu_stub_entry();

__asm__(R"(
  .text
  .globl avx512emu_stub_entry
  .hidden avx512emu_stub_entry
  .type avx512emu_stub_entry, @function
  .p2align 4
avx512emu_stub_entry:
  .intel_syntax noprefix
  pushfq
  push rbp
  mov rbp, rsp                 # [rbp]=guest rbp, +8 rflags, +16 return into stub, +24 guest rax
  and rsp, -64
  sub rsp, 704
  mov [rsp+8], rcx
  mov [rsp+16], rdx
  mov [rsp+24], rbx
  mov [rsp+48], rsi
  mov [rsp+56], rdi
  mov [rsp+64], r8
  mov [rsp+72], r9
  mov [rsp+80], r10
  mov [rsp+88], r11
  mov [rsp+96], r12
  mov [rsp+104], r13
  mov [rsp+112], r14
  mov [rsp+120], r15
  mov rcx, [rbp+24]
  mov [rsp], rcx
  lea rcx, [rbp+160]           # guest rsp: above the 4 saved words and the red zone
  mov [rsp+32], rcx
  mov rcx, [rbp]
  mov [rsp+40], rcx
  mov rcx, [rbp+8]
  mov [rsp+128], rcx
  cld                          # the ABI wants DF clear; popfq restores the guest's
  vstmxcsr [rsp+136]
  mov qword ptr [rsp+144], 0
  vmovdqa [rsp+192], ymm0
  vmovdqa [rsp+224], ymm1
  vmovdqa [rsp+256], ymm2
  vmovdqa [rsp+288], ymm3
  vmovdqa [rsp+320], ymm4
  vmovdqa [rsp+352], ymm5
  vmovdqa [rsp+384], ymm6
  vmovdqa [rsp+416], ymm7
  vmovdqa [rsp+448], ymm8
  vmovdqa [rsp+480], ymm9
  vmovdqa [rsp+512], ymm10
  vmovdqa [rsp+544], ymm11
  vmovdqa [rsp+576], ymm12
  vmovdqa [rsp+608], ymm13
  vmovdqa [rsp+640], ymm14
  vmovdqa [rsp+672], ymm15
  mov rdi, rsp
  mov rsi, rax
  call avx512emu_stub_dispatch
  vmovdqa ymm0, [rsp+192]
  vmovdqa ymm1, [rsp+224]
  vmovdqa ymm2, [rsp+256]
  vmovdqa ymm3, [rsp+288]
  vmovdqa ymm4, [rsp+320]
  vmovdqa ymm5, [rsp+352]
  vmovdqa ymm6, [rsp+384]
  vmovdqa ymm7, [rsp+416]
  vmovdqa ymm8, [rsp+448]
  vmovdqa ymm9, [rsp+480]
  vmovdqa ymm10, [rsp+512]
  vmovdqa ymm11, [rsp+544]
  vmovdqa ymm12, [rsp+576]
  vmovdqa ymm13, [rsp+608]
  vmovdqa ymm14, [rsp+640]
  vmovdqa ymm15, [rsp+672]
  vldmxcsr [rsp+136]
  mov rcx, [rsp+144]             # hw_sync_state
  test rcx, rcx
  jz 1f
  mov rdi, rcx                 # (rdi is reloaded from the frame below)
  call avx512emu_live_hw_sync  # zmm0-15 bits 511:256, zmm16-31, k0-7 from the block
1:
  mov rcx, [rsp+128]
  mov [rbp+8], rcx
  mov rcx, [rsp+40]
  mov [rbp], rcx
  mov rcx, [rsp]
  mov [rbp+24], rcx
  mov rdx, [rsp+16]
  mov rbx, [rsp+24]
  mov rsi, [rsp+48]
  mov rdi, [rsp+56]
  mov r8, [rsp+64]
  mov r9, [rsp+72]
  mov r10, [rsp+80]
  mov r11, [rsp+88]
  mov r12, [rsp+96]
  mov r13, [rsp+104]
  mov r14, [rsp+112]
  mov r15, [rsp+120]
  mov rcx, [rsp+8]
  mov rsp, rbp
  pop rbp
  popfq
  ret
  .att_syntax prefix
  .size avx512emu_stub_entry, .-avx512emu_stub_entry
)");

namespace {

constexpr uint64_t kPage = 4096;
constexpr uint64_t kStubSize = 64;
//! Largest inline stub: a loop region's may hold a few hundred
//! translations (CodeEdit lengths and arenas stay below 64 KiB).
constexpr size_t kMaxLiveStub = 60 * 1024;
constexpr uint64_t kArenaSize = 64 * 1024;
//! Edits closer than this many pages share one swap (fewer mappings).
constexpr uint64_t kMaxGapPages = 16;
//! rel32 reach, less a margin for the stub and instruction lengths.
constexpr uint64_t kReach = (uint64_t(1) << 31) - 2 * kArenaSize;

uint64_t page_of(uint64_t a) {
  return a & ~(kPage - 1);
}

// ---- Code regions -------------------------------------------------------------

constexpr size_t kMaxRegions = 4096;
struct Region {
  std::atomic<uint64_t> start{0}, end{0};
};
Region g_regions[kMaxRegions];
std::atomic<size_t> g_region_count{0};
std::mutex g_region_mutex;  // writers only; readers are lock-free

// ---- Patch lock and stub arenas -----------------------------------------------

//! Serialises page swaps: two swaps of one page would lose an edit. Signal
//! handlers only try it, so a handler never waits for its own thread.
std::atomic<bool> g_patch_lock{false};

struct PatchLock {
  bool owned = false;
  explicit PatchLock(bool wait) {
    while (!(owned = !g_patch_lock.exchange(true, std::memory_order_acquire)) && wait)
      __builtin_ia32_pause();
  }
  ~PatchLock() {
    if (owned) g_patch_lock.store(false, std::memory_order_release);
  }
};

struct Arena {
  uint64_t base = 0, used = 0;
};
constexpr size_t kMaxArenas = 256;
Arena g_arenas[kMaxArenas];  // guarded by the patch lock
size_t g_arena_count = 0;
std::atomic<uint64_t> g_patched{0}, g_patched_inline{0}, g_regions_built{0}, g_regions_dropped{0};

//! Copies the pages [first, first + pages * kPage), applies the edits that
//! fall inside, and swaps the copy in (see the file comment of the header).
bool swap_pages(uint64_t first, uint64_t pages, const CodeEdit* edits, size_t count) {
  const size_t len = pages * kPage;
  const long copy = sys::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  if (copy < 0) return false;
  auto* bytes = reinterpret_cast<uint8_t*>(copy);
  sys::copy(bytes, reinterpret_cast<const void*>(first), len);
  for (size_t i = 0; i < count; ++i)
    sys::copy(bytes + (edits[i].address - first), edits[i].data(), edits[i].length);
  if (sys::mprotect(bytes, len, PROT_READ | PROT_EXEC) < 0 ||
      sys::mremap(bytes, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, reinterpret_cast<void*>(first)) !=
          long(first)) {
    sys::munmap(bytes, len);
    return false;
  }
  return true;
}

//! Applies sorted edits, one swap per run of nearby pages. Patch lock held.
bool apply_locked(const CodeEdit* edits, size_t count) {
  size_t i = 0;
  while (i < count) {
    const uint64_t first = page_of(edits[i].address);
    uint64_t last = page_of(edits[i].address + edits[i].length - 1);
    size_t j = i + 1;
    while (j < count && page_of(edits[j].address) <= last + kMaxGapPages * kPage &&
           in_code_region(first, edits[j].address + edits[j].length - first)) {
      last = std::max(last, page_of(edits[j].address + edits[j].length - 1));
      ++j;
    }
    if (!swap_pages(first, (last - first) / kPage + 1, edits + i, j - i)) return false;
    i = j;
  }
  return true;
}

//! Maps a new RX arena, filled with int3, somewhere in [lo, hi) (the whole
//! arena), trying addresses near `target` first. Returns 0 when none is free.
uint64_t map_arena(uint64_t lo, uint64_t hi, uint64_t target) {
  auto try_at = [](uint64_t hint) -> uint64_t {
    const long p = sys::mmap(reinterpret_cast<void*>(hint), kArenaSize, PROT_READ | PROT_WRITE,
                             MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE);
    if (p < 0) return 0;
    if (uint64_t(p) != hint) {  // an old kernel may take MAP_FIXED_NOREPLACE as a hint
      sys::munmap(reinterpret_cast<void*>(p), kArenaSize);
      return 0;
    }
    sys::fill(reinterpret_cast<void*>(p), 0xcc, kArenaSize);
    if (sys::mprotect(reinterpret_cast<void*>(p), kArenaSize, PROT_READ | PROT_EXEC) != 0) {
      sys::munmap(reinterpret_cast<void*>(p), kArenaSize);
      return 0;
    }
    return hint;
  };
  // Outward from the target in steps that grow with the distance: a few
  // hundred system calls at most, and only when a new arena is needed.
  const uint64_t first = (lo + kArenaSize - 1) & ~(kArenaSize - 1);
  const uint64_t last = ((hi & ~(kArenaSize - 1)) - kArenaSize);
  if (hi < 2 * kArenaSize || first > last) return 0;
  const uint64_t center = std::clamp(target & ~(kArenaSize - 1), first, last);
  for (uint64_t step = kArenaSize, k = 0; k < 400; ++k, step += step / 8) {
    const uint64_t offset = (step * (k / 2 + 1)) & ~(kArenaSize - 1);
    for (const uint64_t hint : {center - offset, center + offset - kArenaSize * (k == 0)}) {
      if (hint < first || hint > last || hint < (uint64_t(1) << 16)) continue;
      if (const uint64_t base = try_at(hint)) return base;
    }
  }
  return 0;
}

//! A free stub slot of `size` bytes (rounded up to 64) inside [lo, hi), or
//! 0. Patch lock held.
uint64_t alloc_stub(uint64_t lo, uint64_t hi, uint64_t target, uint64_t size) {
  size = (size + 63) & ~uint64_t(63);
  if (size > kArenaSize) return 0;
  for (size_t i = 0; i < g_arena_count; ++i) {
    Arena& a = g_arenas[i];
    const uint64_t slot = a.base + a.used;
    if (a.used + size <= kArenaSize && slot >= lo && slot + size <= hi) {
      a.used += size;
      return slot;
    }
  }
  if (g_arena_count == kMaxArenas) return 0;
  const uint64_t base = map_arena(lo, hi, target);
  if (!base) return 0;
  g_arenas[g_arena_count++] = {base, size};
  return base;
}

void put32(uint8_t* p, uint32_t v) {
  sys::copy(p, &v, 4);
}
void put64(uint8_t* p, uint64_t v) {
  sys::copy(p, &v, 8);
}

// ---- Stub plans ---------------------------------------------------------------
// A stub runs a plan: the patched site and the AVX-512 sites that follow it
// back to back. AVX-512 instructions never branch, so execution that enters
// the first one always falls through the rest; one stub entry then serves
// the whole run. The followers' own bytes stay (or trap), so code that jumps
// to one of them directly still works. Plans are immutable once published.

constexpr size_t kMaxPlans = size_t(1) << 16;
StubPlan* g_plans = nullptr;  // guarded by the patch lock
size_t g_plan_count = 0;

StubPlan* new_plan() {
  if (!g_plans) {
    const long p = sys::mmap(nullptr, kMaxPlans * sizeof(StubPlan), PROT_READ | PROT_WRITE,
                             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE);
    if (p < 0) return nullptr;
    g_plans = reinterpret_cast<StubPlan*>(p);
  }
  return g_plan_count < kMaxPlans ? &g_plans[g_plan_count++] : nullptr;
}

//! The per-site stub (layout in the comment at the top of this file).
CodeEdit make_stub(uint64_t stub, const StubPlan& plan) {
  const Site& last = *plan.sites[plan.count - 1];
  CodeEdit e;
  e.address = stub;
  e.length = kStubSize;
  uint8_t* p = e.bytes;
  sys::fill(p, 0xcc, kStubSize);
  const uint8_t lea_down[] = {0x48, 0x8d, 0x64, 0x24, 0x80};  // lea rsp, [rsp-0x80]
  sys::copy(p, lea_down, 5);
  p[5] = 0x50;  // push rax
  p[6] = 0x48;  // movabs rax, imm64
  p[7] = 0xb8;
  put64(p + 8, reinterpret_cast<uint64_t>(&plan));
  p[16] = 0xff;  // call [rip+disp32] -> the entry pointer at offset 40
  p[17] = 0x15;
  put32(p + 18, 40 - 22);
  p[22] = 0x58;                                                               // pop rax
  const uint8_t lea_up[] = {0x48, 0x8d, 0xa4, 0x24, 0x80, 0x00, 0x00, 0x00};  // lea rsp, [rsp+0x80]
  sys::copy(p + 23, lea_up, 8);
  p[31] = 0xe9;  // jmp rel32 back behind the last instruction of the plan
  put32(p + 32, uint32_t(last.address + last.length - (stub + 36)));
  put64(p + 40, reinterpret_cast<uint64_t>(&avx512emu_stub_entry));
  return e;
}

}  // namespace

void add_code_region(uint64_t start, uint64_t end) {
  std::lock_guard<std::mutex> lock(g_region_mutex);
  const size_t n = g_region_count.load(std::memory_order_relaxed);
  for (size_t i = 0; i < n; ++i) {
    // Reuse an emptied entry.
    if (g_regions[i].start.load() == g_regions[i].end.load()) {
      g_regions[i].end.store(0);
      g_regions[i].start.store(start);
      g_regions[i].end.store(end, std::memory_order_release);
      return;
    }
  }
  if (n == kMaxRegions) return;  // the sites just stay unpatched
  g_regions[n].start.store(start);
  g_regions[n].end.store(end);
  g_region_count.store(n + 1, std::memory_order_release);
}

void remove_code_regions(uint64_t start, uint64_t end) {
  std::lock_guard<std::mutex> lock(g_region_mutex);
  const size_t n = g_region_count.load(std::memory_order_relaxed);
  for (size_t i = 0; i < n; ++i) {
    const uint64_t s = g_regions[i].start.load();
    if (s >= start && s < end) g_regions[i].end.store(s, std::memory_order_release);
  }
  g_regions_dropped.fetch_add(forget_loop_regions(start, end), std::memory_order_relaxed);
}

bool in_code_region(uint64_t address, size_t length) {
  const size_t n = g_region_count.load(std::memory_order_acquire);
  for (size_t i = 0; i < n; ++i) {
    const uint64_t s = g_regions[i].start.load(std::memory_order_relaxed);
    const uint64_t e = g_regions[i].end.load(std::memory_order_acquire);
    if (address >= s && address + length <= e) return true;
  }
  return false;
}

bool apply_code_edits(const CodeEdit* edits, size_t count) {
  PatchLock lock(/*wait=*/true);
  return apply_locked(edits, count);
}

namespace {
int g_perf_map_fd = -1;

//! One perf map line per stub (see open_perf_map); the write is one
//! syscall on an O_APPEND file, so lines of concurrent patches never mix.
void name_stub_for_profilers(uint64_t stub, size_t size, const Site& site, bool region) {
  if (g_perf_map_fd < 0) return;
  sys::Line line;
  line.hex(stub, false).str(" ").hex(size, false).str(" avx512emu ");
  line.str(region ? "loop region" : "stub").str(" at ").hex(site.address);
  line.emit(g_perf_map_fd);
}
}  // namespace

bool open_perf_map(std::string& error) {
  const std::string path = "/tmp/perf-" + std::to_string(getpid()) + ".map";
  g_perf_map_fd = open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (g_perf_map_fd < 0) error = "cannot open " + path + ": " + std::strerror(errno);
  return g_perf_map_fd >= 0;
}

bool patch_site(Site& site, const SiteTable& sites) {
  PatchLock lock(/*wait=*/false);
  if (!lock.owned) return false;
  if (site.state.load() == SiteState::kPatched) return true;
  if (site.unpatchable.load()) return false;
  auto give_up = [&site] {
    site.unpatchable.store(true);
    return false;
  };
  if (!in_code_region(site.address, site.length)) return give_up();
  StubPlan* plan = new_plan();
  if (!plan) return give_up();
  plan->count = 0;
  plan->sites[plan->count++] = &site;
  while (plan->count < StubPlan::kMaxSites) {
    const Site* last = plan->sites[plan->count - 1];
    Site* next = sites.lookup(last->address + last->length);
    if (!next || !next->translation || !in_code_region(next->address, next->length)) break;
    // A patched site inside a loop region's loop may be the region's entry:
    // the plan ends there, so that execution reaches the region.
    if (next->state.load() == SiteState::kPatched && inside_loop_region(next->address)) break;
    plan->sites[plan->count++] = next;
  }
  // A follower whose translation cannot run inline ends the plan, so the
  // sites before it still can (decided before the way in, which depends on
  // the plan's length).
  if (live_stub_env().enabled)
    if (const uint32_t n = inline_prefix(*plan)) plan->count = n;

  // Three ways in, by what fits at the site:
  //  - 5 bytes or more: jmp rel32 to the stub (within rel32 reach).
  //  - 4 bytes (VEX opmask instructions) followed by another AVX-512 site L:
  //    the jmp rel32 spans the site and L's first byte. Its displacement is
  //    chosen in [0x0f000000, 0x0fffffff] (stub 240-256 MiB above), so that
  //    byte is 0F, and L's second byte becomes 0B: code that enters L
  //    directly (a thread stopped there, a branch target) meets ud2 and
  //    takes the trap path, which knows L's original bytes.
  //  - shorter, with an island: jmp rel8 to the island, jmp rel32 there.
  enum class Way { kDirect, kSpanNext, kIsland } way;
  uint64_t lo, hi, target;
  if (site.length >= 5) {
    way = Way::kDirect;
    target = site.address;
    lo = site.address > kReach ? site.address - kReach : 0;
    hi = site.address + kReach;
  } else if (plan->count > 1 && site.length == 4 && plan->sites[1]->length >= 2) {
    way = Way::kSpanNext;
    lo = site.address + 5 + 0x0f000000;
    hi = site.address + 5 + 0x10000000;
    target = lo;
  } else if (site.island && in_code_region(site.island, 5)) {
    way = Way::kIsland;
    target = site.island;
    lo = site.island > kReach ? site.island - kReach : 0;
    hi = site.island + kReach;
  } else {
    return give_up();
  }
  // The inline stub when every translation of the plan can run on the live
  // registers (live_stub.h): a loop region's when the plan sits in a loop
  // that can run whole in the stub (loop_region.h), else the plan's; else
  // the state-block stub. The inline stub's size depends a little on its
  // address (constant alignment): measure it at address 0, allocate with
  // room for the padding, then build it where it goes.
  static uint8_t live_bytes[kMaxLiveStub];  // guarded by the patch lock
  static LoopRegion region;
  const char* why = nullptr;
  bool in_region = live_stub_env().enabled && live_stub_env().loop_regions &&
                   !inside_loop_region(site.address) &&
                   find_loop_region(*plan, sites, region, &why);
  size_t measured = 0;
  if (in_region)
    measured = build_region_stub(0, *plan, region, live_bytes, sizeof live_bytes, &why);
  in_region = measured != 0;
  if (!in_region) measured = build_live_stub(0, *plan, live_bytes, sizeof live_bytes, nullptr);
  const uint64_t want =
      measured ? measured + 32 * (in_region ? region.site_count : plan->count) : kStubSize;
  uint64_t stub = alloc_stub(lo, hi, target, want);
  size_t live_size = 0;
  if (stub && measured) {
    if (in_region)
      live_size = build_region_stub(stub, *plan, region, live_bytes, sizeof live_bytes, &why);
    // The same code as measured, but a copied RIP-relative operand may be
    // out of reach from where the stub landed: the plan's stub then.
    if (!live_size) {
      in_region = false;
      live_size = build_live_stub(stub, *plan, live_bytes, sizeof live_bytes, nullptr);
    }
    if (live_size == 0 || live_size > want) return give_up();
  }
  if (!stub) return give_up();
  plan->published.store(plan->count, std::memory_order_release);  // see StubPlan

  // Each jump must be in place before a jump to it can be fetched: the stub,
  // then the island, then the site. Separate swaps keep that order even when
  // they touch different pages.
  CodeEdit stub_edit = make_stub(stub, *plan);
  if (live_size) {
    stub_edit.long_bytes = live_bytes;
    stub_edit.length = uint16_t(live_size);
  }
  CodeEdit far_jmp;  // jmp rel32 to the stub, at the site or in its island
  far_jmp.address = way == Way::kIsland ? site.island : site.address;
  far_jmp.length = 5;
  far_jmp.bytes[0] = 0xe9;
  put32(far_jmp.bytes + 1, uint32_t(stub - (far_jmp.address + 5)));
  if (way == Way::kSpanNext) {
    far_jmp.bytes[5] = 0x0b;  // with the displacement's top byte 0F: ud2 at L
    far_jmp.length = 6;
  }
  CodeEdit near_jmp;  // jmp rel8 from the site to its island
  near_jmp.address = site.address;
  near_jmp.length = 2;
  near_jmp.bytes[0] = 0xeb;
  near_jmp.bytes[1] = uint8_t(site.island - (site.address + 2));
  // L's first two bytes now belong to the site's jmp: L must never get a
  // jmp of its own (it would change the displacement's top byte).
  if (way == Way::kSpanNext) plan->sites[1]->unpatchable.store(true);
  // A fault in the stub can be mapped back as soon as anything can run it.
  if (!apply_locked(&stub_edit, 1)) return give_up();
  if (live_size) register_live_stub(stub, live_size);
  if (!apply_locked(&far_jmp, 1) ||
      (way == Way::kIsland && !apply_locked(&near_jmp, 1)))
    return give_up();
  name_stub_for_profilers(stub, live_size ? live_size : kStubSize, site, in_region);
  site.stub = reinterpret_cast<void*>(stub);
  site.state.store(SiteState::kPatched, std::memory_order_release);
  g_patched.fetch_add(1, std::memory_order_relaxed);
  if (live_size) g_patched_inline.fetch_add(1, std::memory_order_relaxed);
  if (in_region) {
    note_loop_region(region);
    g_regions_built.fetch_add(1, std::memory_order_relaxed);
  }
  return true;
}

uint64_t patched_site_count() {
  return g_patched.load(std::memory_order_relaxed);
}
uint64_t inline_patched_site_count() {
  return g_patched_inline.load(std::memory_order_relaxed);
}
uint64_t loop_regions_built() {
  return g_regions_built.load(std::memory_order_relaxed);
}
uint64_t loop_regions_dropped() {
  return g_regions_dropped.load(std::memory_order_relaxed);
}

}  // namespace avx512emu::runtime
