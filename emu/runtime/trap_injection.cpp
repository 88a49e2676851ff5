// Owns the sweep of loaded objects, pre-translation and trap injection (see
// trap_injection.h).
#include "trap_injection.h"

#include <dlfcn.h>
#include <link.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <mutex>

#include "avx512emu.h"
#include "decoded_insn.h"
#include "elf_code_map.h"
#include "scan.h"
#include "sigill_runtime.h"
#include "site_patcher.h"
#include "vex_idioms.h"

namespace avx512emu::runtime {
namespace {

struct Segment {
  uint64_t start = 0, end = 0;
  bool writable = false;
};

struct LoadedObject {
  std::string path;
  uint64_t base = 0;
  std::vector<Segment> code;  //!< PT_LOAD segments with PF_X.
  bool self = false;          //!< The runtime's own object.
};

int collect_object(struct dl_phdr_info* info, size_t, void* data) {
  auto* out = static_cast<std::vector<LoadedObject>*>(data);
  LoadedObject o;
  o.base = info->dlpi_addr;
  const bool main_program = out->empty() && (!info->dlpi_name || !*info->dlpi_name);
  o.path = main_program ? "/proc/self/exe" : (info->dlpi_name ? info->dlpi_name : "");
  const auto marker = reinterpret_cast<uint64_t>(&collect_object);
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD) continue;
    const uint64_t start = o.base + ph.p_vaddr, end = start + ph.p_memsz;
    if (marker >= start && marker < end) o.self = true;
    if (ph.p_flags & PF_X) o.code.push_back({start, end, (ph.p_flags & PF_W) != 0});
  }
  out->push_back(std::move(o));
  return 0;
}

std::vector<LoadedObject> loaded_objects() {
  std::vector<LoadedObject> objects;
  dl_iterate_phdr(collect_object, &objects);
  return objects;
}

std::mutex g_sweep_mutex;  // constant-initialised: usable from any constructor
//! Swept objects by load bias, with their code segments. Built on first use:
//! the preload constructor may run before this file's static initialisers.
std::map<uint64_t, LoadedObject>& swept_objects() {
  static auto* swept = new std::map<uint64_t, LoadedObject>;  // leaked: used until exit
  return *swept;
}

const Segment* segment_of(const LoadedObject& o, uint64_t address, size_t length) {
  for (const Segment& s : o.code)
    if (address >= s.start && address + length <= s.end) return &s;
  return nullptr;
}

// ---- Islands for short sites --------------------------------------------------------
//
// A site shorter than 5 bytes cannot hold a jmp rel32. Its 2-byte jmp rel8
// can reach an "island": 5 bytes of the padding between two functions, where
// a jmp rel32 to the stub fits. Padding is only used when nothing can
// execute it: the bytes lie between two function ranges of the object's
// .eh_frame/symbols, decode as nothing but nop/int3, and the function before
// them ends in an unconditional transfer (ret, jmp, ud2, int3, hlt, or a
// call that does not return), so no fall-through enters them.

//! An object's ElfCodeMap, read from its file on first use (islands and
//! the idiom search both need it, most objects neither).
class LazyCodeMap {
 public:
  explicit LazyCodeMap(const std::string& path) : path_(path) {}
  const ElfCodeMap& get() {
    if (loaded_) return map_;
    loaded_ = true;
    std::ifstream in(path_, std::ios::binary);
    const std::vector<uint8_t> file((std::istreambuf_iterator<char>(in)),
                                    std::istreambuf_iterator<char>());
    std::string error;
    if (file.empty() || !read_elf_code_map(file, map_, error)) map_ = {};
    return map_;
  }

 private:
  std::string path_;
  bool loaded_ = false;
  ElfCodeMap map_;
};

class IslandFinder {
 public:
  IslandFinder(const LoadedObject& o, LazyCodeMap& code_map) : object_(o), code_map_(code_map) {}

  //! Reserves 5 padding bytes within rel8 reach of a jmp at `site` (runtime
  //! address), or returns 0.
  uint64_t reserve_near(uint64_t site) {
    if (!loaded_) load();
    const uint64_t from = site + 2;  // rel8 counts from the end of the jmp
    auto it = std::lower_bound(gaps_.begin(), gaps_.end(), from - 128 - 5,
                               [](const Gap& g, uint64_t a) { return g.end < a; });
    for (; it != gaps_.end() && it->start <= from + 127; ++it) {
      Gap& g = *it;
      const uint64_t slot = g.start + g.used;
      if (slot + 5 > g.end || slot + 128 < from || slot > from + 127) continue;
      if (g.verdict == kUnknown) g.verdict = verify(g) ? kUsable : kUnusable;
      if (g.verdict != kUsable) continue;
      g.used += 5;
      return slot;
    }
    return 0;
  }

 private:
  enum Verdict { kUnknown, kUsable, kUnusable };
  struct Gap {
    uint64_t start = 0, end = 0, used = 0;
    uint64_t before = 0;  //!< Start of the function range that ends at `start`.
    Verdict verdict = kUnknown;
  };

  void load() {
    loaded_ = true;
    const ElfCodeMap& map = code_map_.get();
    for (size_t i = 0; i + 1 < map.functions.size(); ++i) {
      const uint64_t start = map.functions[i].start + map.functions[i].size;
      const uint64_t end = map.functions[i + 1].start;
      // Both ends in one executable section and one r-x segment.
      const bool same_section = std::any_of(
          map.sections.begin(), map.sections.end(),
          [&](const ElfCodeMap::Section& s) { return start >= s.addr && end <= s.addr + s.size; });
      if (end < start + 5 || !same_section) continue;
      Gap g;
      g.start = object_.base + start;
      g.end = object_.base + end;
      g.before = object_.base + map.functions[i].start;
      const Segment* seg = segment_of(object_, g.before, g.end - g.before);
      if (seg && !seg->writable) gaps_.push_back(g);
    }
  }

  static bool verify(const Gap& g) {
    DecodedInsn d;
    for (uint64_t a = g.start; a < g.end; a += d.length) {
      if (decode(reinterpret_cast<const uint8_t*>(a), g.end - a, d) != DecodeStatus::kNotAvx512 ||
          (std::strcmp(d.mnemonic, "nop") != 0 && std::strcmp(d.mnemonic, "int3") != 0))
        return false;
    }
    const char* last = "";
    for (uint64_t a = g.before; a < g.start; a += d.length) {
      const DecodeStatus st = decode(reinterpret_cast<const uint8_t*>(a), g.start - a, d);
      if (st != DecodeStatus::kOk && st != DecodeStatus::kNotAvx512) return false;
      last = d.mnemonic;
    }
    for (const char* end : {"ret", "jmp", "ud2", "int3", "hlt", "call"})
      if (!std::strcmp(last, end)) return true;
    return false;
  }

  const LoadedObject& object_;
  LazyCodeMap& code_map_;
  bool loaded_ = false;
  std::vector<Gap> gaps_;  //!< Sorted by address.
};

//! The ud2 writes a sweep has decided on for one object, not yet made.
struct PendingArming {
  std::vector<CodeEdit> edits;
  std::vector<Site*> sites;
  size_t idioms = 0;  //!< How many of `sites` are VEX idioms.
};

//! Registers a site whose bytes in memory are the original ones, and queues
//! its ud2 when `arm`. Returns null when the site table is full (the
//! instruction then runs, or traps, unregistered).
Site* register_site(uint64_t address, const uint8_t* bytes, uint8_t length,
                    const Translation* translation, const char* mnemonic, bool arm,
                    PendingArming& pending) {
  // kArmed once the ud2 is in place (arm_object).
  Site* site =
      site_table().insert(address, bytes, length, SiteState::kOriginal, translation, mnemonic);
  if (!site) return nullptr;
  // An existing record (same object reloaded at the same address) may say
  // "patched"; the memory the caller checked holds the original.
  site->state.store(SiteState::kOriginal);
  site->unpatchable.store(false);
  if (arm) {
    CodeEdit e;
    e.address = address;
    e.bytes[0] = 0x0f;  // ud2
    e.bytes[1] = 0x0b;
    e.length = 2;
    pending.edits.push_back(e);
    pending.sites.push_back(site);
  }
  return site;
}

//! Registers and arms the VEX zeroing idioms and vzeroupper/vzeroall
//! (vex_idioms.h) of every function range that holds an AVX-512 instruction
//! (`avx512`: link-time addresses). Only there: the stale upper halves they
//! cause matter to AVX-512 code, and each registered one costs a stub run
//! per execution. An idiom is registered only when it will not trap at
//! every execution: it can carry a jmp rel32 (5 bytes), or it runs in the
//! plan of the AVX-512 instruction before it, or its jmp can span into the
//! site after it (4 bytes), or it has an island. The others stay native
//! (counted).
void sweep_vex_idioms(const LoadedObject& o, std::vector<uint64_t>& avx512, LazyCodeMap& code_map,
                      IslandFinder& islands, PendingArming& pending, ObjectSweep& r) {
  if (avx512.empty()) return;
  std::sort(avx512.begin(), avx512.end());
  const ElfCodeMap& map = code_map.get();
  std::vector<CodeRange> ranges = map.functions;
  if (ranges.empty())  // the scan swept the executable sections linearly
    for (const ElfCodeMap::Section& s : map.sections) ranges.push_back({s.addr, s.size});
  struct Insn {
    uint64_t address;
    uint8_t length;
    VexIdiom idiom;
    uint64_t island;
    bool anchored;
  };
  std::vector<Insn> insns;
  for (const CodeRange& range : ranges) {
    const auto first = std::lower_bound(avx512.begin(), avx512.end(), range.start);
    if (first == avx512.end() || *first >= range.start + range.size) continue;
    const uint64_t start = o.base + range.start, end = start + range.size;
    const Segment* seg = segment_of(o, start, range.size);
    if (!seg || seg->writable) continue;
    insns.clear();
    for (uint64_t a = start; a < end;) {
      const auto* p = reinterpret_cast<const uint8_t*>(a);
      const size_t n = instruction_length(p, std::min<uint64_t>(15, end - a));
      // Bytes that do not decode (data in code): stop rather than guess where
      // the next instruction starts.
      if (!n) break;
      insns.push_back({a, uint8_t(n), match_vex_idiom(p, n), 0, false});
      a += n;
    }
    auto is_site = [&](size_t i) {
      if (insns[i].idiom.kind != VexIdiomKind::kNone) return insns[i].anchored;
      const Site* s = site_table().lookup(insns[i].address);
      return s && s->translation;
    };
    for (size_t i = 0; i < insns.size(); ++i) {
      Insn& x = insns[i];
      if (x.idiom.kind == VexIdiomKind::kNone) continue;
      if (x.length < 5) x.island = islands.reserve_near(x.address);
      x.anchored = x.length >= 5 || x.island || (i > 0 && is_site(i - 1));
    }
    for (size_t i = insns.size(); i-- > 0;) {
      Insn& x = insns[i];
      if (x.idiom.kind != VexIdiomKind::kNone && !x.anchored && x.length == 4 &&
          i + 1 < insns.size() && is_site(i + 1))
        x.anchored = true;
    }
    for (const Insn& x : insns) {
      if (x.idiom.kind == VexIdiomKind::kNone) continue;
      if (!x.anchored) {
        ++r.vex_idioms_native;
        continue;
      }
      const auto* bytes = reinterpret_cast<const uint8_t*>(x.address);
      const size_t before = pending.sites.size();
      Site* site = register_site(x.address, bytes, x.length, vex_idiom_translation(x.idiom),
                                 x.idiom.mnemonic, /*arm=*/true, pending);
      if (!site) continue;
      pending.idioms += pending.sites.size() - before;
      if (x.island && !site->island) {
        site->island = x.island;
        ++r.islands;
      }
    }
  }
}

ObjectSweep sweep_object(const LoadedObject& o, bool arm, bool arm_idioms,
                         PendingArming& pending) {
  ObjectSweep r;
  r.path = o.path;
  r.base = o.base;
  for (const Segment& s : o.code)
    if (!s.writable) add_code_region(s.start, s.end);
  LazyCodeMap code_map(o.path);
  IslandFinder islands(o, code_map);
  std::vector<uint64_t> avx512;  // link-time addresses, for the idiom sweep
  const ScanResult scan = scan_elf_file(o.path, [&](const FoundInstruction& f) {
    const uint64_t address = o.base + f.address;
    ++r.avx512;
    // Only code we can see unchanged in memory, in a segment we may rewrite
    // (an rwx segment would lose its write permission in the page swap).
    const Segment* seg = segment_of(o, address, f.length);
    if (!seg || seg->writable ||
        std::memcmp(reinterpret_cast<const void*>(address), f.bytes, f.length) != 0) {
      ++r.skipped;
      return;
    }
    avx512.push_back(f.address);
    const TranslateResult t = translate(f.bytes, f.length);
    const char* mnemonic = "";
    if (t.error == TranslateError::kNone) {
      ++r.translated;
      mnemonic = t.translation->mnemonic;
    } else {
      DecodedInsn d;
      decode(f.bytes, f.length, d);
      mnemonic = d.mnemonic;
      ++r.untranslated[mnemonic];
    }
    Site* site = register_site(address, f.bytes, f.length, t.translation, mnemonic, arm, pending);
    if (site && f.length < 5 && t.translation && !site->island) {
      site->island = islands.reserve_near(address);
      if (site->island) ++r.islands;
    }
  });
  r.error = scan.error;
  r.function_source = scan.function_source;
  if (arm_idioms) sweep_vex_idioms(o, avx512, code_map, islands, pending, r);
  return r;
}

void arm_object(PendingArming& pending, ObjectSweep& r) {
  if (pending.edits.empty()) return;
  std::sort(pending.edits.begin(), pending.edits.end(),
            [](const CodeEdit& a, const CodeEdit& b) { return a.address < b.address; });
  if (apply_code_edits(pending.edits.data(), pending.edits.size())) {
    for (Site* s : pending.sites) s->state.store(SiteState::kArmed);
    r.armed = pending.sites.size() - pending.idioms;
    r.vex_idioms_armed = pending.idioms;
  } else {
    r.error = "cannot rewrite the code pages (mmap/mremap failed); nothing armed";
  }
}

bool is_sweepable(const LoadedObject& o) {
  // The vDSO has no file (its name has no '/'), and our own code must never
  // trap. A library dlopen()ed by a relative path keeps that path, relative
  // to the working directory it was opened from, which is still ours here.
  return !o.self && o.path.find('/') != std::string::npos;
}

}  // namespace

std::vector<ObjectSweep> sweep_loaded_objects(bool arm) {
  std::lock_guard<std::mutex> lock(g_sweep_mutex);
  std::vector<ObjectSweep> out;
  // Every object is swept before any is armed: the sweep itself calls
  // libc's string functions, which are AVX-512 code, and armed ones would
  // trap millions of times at start-up (every time with --no-patch).
  std::vector<PendingArming> pending;
  // VEX idioms never trap by themselves, on an AVX2 CPU either: they are
  // armed whenever the runtime emulates AVX-512 code, which is always except
  // on an AVX-512 host without trap injection (that runs AVX-512 natively).
  const bool arm_idioms = arm || !host_holds_avx512_state();
  for (LoadedObject& o : loaded_objects()) {
    if (!is_sweepable(o)) continue;
    auto& swept = swept_objects();
    auto it = swept.find(o.base);
    if (it != swept.end() && it->second.path == o.path) continue;
    pending.emplace_back();
    out.push_back(sweep_object(o, arm, arm_idioms, pending.back()));
    swept[o.base] = std::move(o);
  }
  for (size_t i = 0; i < out.size(); ++i) arm_object(pending[i], out[i]);
  return out;
}

void forget_unloaded_objects() {
  std::lock_guard<std::mutex> lock(g_sweep_mutex);
  const std::vector<LoadedObject> now = loaded_objects();
  auto& swept = swept_objects();
  for (auto it = swept.begin(); it != swept.end();) {
    const bool still = std::any_of(now.begin(), now.end(), [&](const LoadedObject& o) {
      return o.base == it->first && o.path == it->second.path;
    });
    if (still) {
      ++it;
      continue;
    }
    for (const Segment& s : it->second.code) remove_code_regions(s.start, s.end);
    it = swept.erase(it);
  }
}

std::string sweep_report_text(const std::vector<ObjectSweep>& sweeps, bool armed) {
  std::string out;
  char buf[512];
  for (const ObjectSweep& s : sweeps) {
    if (!s.error.empty() && !s.avx512) {
      std::snprintf(buf, sizeof buf, "avx512emu: swept %s: %s\n", s.path.c_str(), s.error.c_str());
      out += buf;
      continue;
    }
    std::snprintf(buf, sizeof buf,
                  "avx512emu: swept %s (%s): %" PRIu64 " AVX-512 instructions, %" PRIu64
                  " pre-translated",
                  s.path.c_str(), s.function_source.c_str(), s.avx512, s.translated);
    out += buf;
    if (armed) out += ", " + std::to_string(s.armed) + " armed";
    if (s.vex_idioms_armed || s.vex_idioms_native)
      out += ", vex zero idioms armed " + std::to_string(s.vex_idioms_armed);
    if (s.vex_idioms_native)
      out += " (" + std::to_string(s.vex_idioms_native) + " left native: no way to patch them)";
    if (s.islands) out += ", " + std::to_string(s.islands) + " islands";
    if (s.skipped) out += ", " + std::to_string(s.skipped) + " skipped (not as in the file)";
    if (!s.error.empty()) out += "; " + s.error;
    if (!s.untranslated.empty()) {
      out += "; untranslated:";
      for (const auto& [mnemonic, n] : s.untranslated)
        out += " " + mnemonic + "=" + std::to_string(n);
    }
    out += "\n";
  }
  return out;
}

}  // namespace avx512emu::runtime
