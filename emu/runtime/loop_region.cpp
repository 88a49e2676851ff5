// Owns find_loop_region() (see loop_region.h).
#include "loop_region.h"

#include <atomic>

#include "signal_safe.h"

namespace avx512emu::runtime {
namespace {

//! The instruction at `address` as the program wrote it: a site's original
//! bytes (its code may be patched or armed), else the code itself.
bool decode_original(uint64_t address, const SiteTable& sites, LoopRegion::Insn& out,
                     const char** why) {
  out = LoopRegion::Insn{};
  out.address = address;
  // A site counts while the code there still holds its instruction, as
  // for the SIGILL handler.
  Site* site = sites.lookup(address);
  if (site) {
    if (!in_code_region(address, site->length)) {
      *why = "the loop leaves the object's code";
      return false;
    }
    if (!code_still_holds(*site)) site = nullptr;
  }
  if (site) {
    if (!site->translation) {
      *why = "an untranslated AVX-512 instruction in the loop";
      return false;
    }
    out.site = site;
    out.length = site->length;
    sys::copy(out.bytes, site->original, site->length);
    return true;
  }
  size_t avail = 15;
  while (avail && !in_code_region(address, avail)) --avail;
  if (!avail) {
    *why = "the loop leaves the object's code";
    return false;
  }
  sys::copy(out.bytes, reinterpret_cast<const void*>(address), avail);
  if (!decode_host_insn(out.bytes, avail, out.host)) {
    *why = "bytes in the loop do not decode";
    return false;
  }
  out.length = out.host.length;
  return true;
}

//! Why a copied instruction cannot be in a region, or nullptr.
const char* why_not_copyable(const LoopRegion::Insn& in) {
  const HostInsn& h = in.host;
  if (h.evex || h.high_vec) return "an AVX-512 instruction in the loop that is not a site";
  switch (h.kind) {
    case HostInsnKind::kRet:
    case HostInsnKind::kOther:
      return "a call, return, indirect jump, system or XSAVE-family instruction in the loop";
    case HostInsnKind::kLdmxcsr:
      return "an MXCSR load in the loop";
    case HostInsnKind::kVzeroupper:
      return "vzeroupper/vzeroall copied in the loop";
    default:
      break;
  }
  // jrcxz and loop have no rel32 form to re-encode them with.
  const uint8_t* b = in.bytes[0] == 0x67 ? in.bytes + 1 : in.bytes;
  if (h.kind == HostInsnKind::kCondJump && (b[0] & 0xfc) == 0xe0)
    return "jrcxz or loop in the loop";
  return nullptr;
}

bool is_branch(const LoopRegion::Insn& in) {
  return !in.site &&
         (in.host.kind == HostInsnKind::kJump || in.host.kind == HostInsnKind::kCondJump);
}

//! Whether an arithmetic flag may be read before it is written on some path
//! starting at instruction `from` (r.count: the fall-through exit). Leaving
//! the region counts as a read. Sites are transparent here:
//! whether a translated run writes the guest's flags is the stub builder's
//! to check.
bool flags_live_from(const LoopRegion& r, uint32_t from) {
  // Depth-first over (instruction, flags still unwritten) pairs.
  struct Item {
    uint32_t index;
    uint8_t pending;
  };
  static Item stack[LoopRegion::kMaxInsns * 2];  // the patch lock serialises callers
  static uint64_t seen[LoopRegion::kMaxInsns];   // bit `pending` per instruction
  for (uint32_t i = 0; i < r.count; ++i) seen[i] = 0;
  size_t top = 0;
  stack[top++] = {from, kHostArithFlags};
  while (top) {
    Item it = stack[--top];
    for (;;) {
      if (it.index >= r.count) return true;  // falls out of the region
      if (seen[it.index] >> it.pending & 1) break;
      seen[it.index] |= uint64_t(1) << it.pending;
      const LoopRegion::Insn& in = r.insn[it.index];
      if (!in.site) {
        if (in.host.flags_tested & it.pending) return true;
        it.pending = uint8_t(it.pending & ~in.host.flags_replaced);
        if (!it.pending) break;
      }
      if (is_branch(in)) {
        if (in.target_index < 0) return true;  // leaves the region
        if (in.host.kind == HostInsnKind::kJump) {
          it.index = uint32_t(in.target_index);
          continue;
        }
        if (top == sizeof stack / sizeof stack[0]) return true;  // be conservative
        stack[top++] = {uint32_t(in.target_index), it.pending};
      }
      ++it.index;
    }
  }
  return false;
}

//! The recorded loops, [head, end); an emptied entry has head == end.
struct RecordedLoop {
  std::atomic<uint64_t> head{0}, end{0};
};
constexpr size_t kMaxRecordedLoops = 4096;
RecordedLoop g_loops[kMaxRecordedLoops];
std::atomic<size_t> g_loop_count{0};

}  // namespace

void note_loop_region(const LoopRegion& r) {
  const uint64_t head = r.insn[0].address;
  size_t n = g_loop_count.load(std::memory_order_relaxed);
  for (size_t i = 0; i < n; ++i) {
    if (g_loops[i].head.load() != g_loops[i].end.load()) continue;
    g_loops[i].end.store(head);
    g_loops[i].head.store(head);
    g_loops[i].end.store(r.end, std::memory_order_release);
    return;
  }
  if (n == kMaxRecordedLoops) return;  // more copies of loops, no harm
  g_loops[n].head.store(head);
  g_loops[n].end.store(r.end);
  g_loop_count.store(n + 1, std::memory_order_release);
}

bool inside_loop_region(uint64_t address) {
  const size_t n = g_loop_count.load(std::memory_order_acquire);
  for (size_t i = 0; i < n; ++i)
    if (address >= g_loops[i].head.load() &&
        address < g_loops[i].end.load(std::memory_order_acquire))
      return true;
  return false;
}

size_t forget_loop_regions(uint64_t start, uint64_t end) {
  const size_t n = g_loop_count.load(std::memory_order_acquire);
  size_t forgotten = 0;
  for (size_t i = 0; i < n; ++i) {
    const uint64_t head = g_loops[i].head.load();
    if (head >= start && head < end && head != g_loops[i].end.load()) {
      g_loops[i].end.store(head, std::memory_order_release);
      ++forgotten;
    }
  }
  return forgotten;
}

bool find_loop_region(const StubPlan& plan, const SiteTable& sites, LoopRegion& r,
                      const char** why) {
  r.count = 0;
  r.site_count = 0;
  const uint64_t start = plan.sites[0]->address;
  static LoopRegion::Insn in;  // the patch lock serialises callers

  // The back edge: the first relative branch after the site that goes back
  // to the site or before it, within reach.
  uint64_t head = 0, end = 0;
  for (uint64_t a = start; a < start + LoopRegion::kMaxBytes;) {
    if (!decode_original(a, sites, in, why)) return false;
    if (!in.site) {
      if (why_not_copyable(in)) {
        *why = "no loop around the site";
        return false;
      }
      if (is_branch(in)) {
        const uint64_t target = a + uint64_t(in.host.rel_target);
        if (target <= start && start - target < LoopRegion::kMaxBytes) {
          head = target;
          end = a + in.length;
          break;
        }
      }
    }
    a += in.length;
  }
  if (!end) {
    *why = "no loop around the site";
    return false;
  }
  if (end - head > LoopRegion::kMaxBytes) {
    *why = "the loop is too large";
    return false;
  }

  // Its instructions, from the head (which must lead to the site on an
  // instruction boundary).
  for (uint64_t a = head; a < end;) {
    if (r.count == LoopRegion::kMaxInsns) {
      *why = "the loop has too many instructions";
      return false;
    }
    LoopRegion::Insn& x = r.insn[r.count];
    if (!decode_original(a, sites, x, why)) return false;
    if (x.site) {
      ++r.site_count;
    } else if (const char* no = why_not_copyable(x)) {
      *why = no;
      return false;
    }
    if (a == start) r.entry = r.count;
    if (a < start && a + x.length > start) {
      *why = "the loop's head does not decode onto the site";
      return false;
    }
    ++r.count;
    a += x.length;
  }
  r.end = end;

  // Branch targets: an instruction of the region, or outside it.
  for (uint32_t i = 0; i < r.count; ++i) {
    LoopRegion::Insn& x = r.insn[i];
    if (!is_branch(x)) continue;
    x.target = x.address + uint64_t(x.host.rel_target);
    x.target_index = -1;
    if (x.target < head || x.target >= end) continue;
    for (uint32_t j = 0; j < r.count; ++j)
      if (r.insn[j].address == x.target) x.target_index = int32_t(j);
    if (x.target_index < 0) {
      *why = "a branch into the middle of an instruction";
      return false;
    }
  }
  for (uint32_t i = 0; i < r.count; ++i) r.insn[i].flags_live_after = flags_live_from(r, i + 1);
  return true;
}

}  // namespace avx512emu::runtime
