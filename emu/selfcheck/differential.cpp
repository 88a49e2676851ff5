// Owns the three-way differential self-check: runs each (form, imm8, state)
// natively, through interpret() and through translate()+execute(), and
// reports every bit of CpuState or memory where a leg differs from native.
#include "selfcheck/differential.h"

#include <algorithm>
#include <cinttypes>
#include <csignal>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <set>
#include <type_traits>

#include "avx512emu.h"
#include "selfcheck/native_oracle.h"
#include "selfcheck/state_gen.h"
#include "semantics_table.h"

namespace avx512emu::selfcheck {
namespace {

constexpr const char* kGprNames[16] = {"rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
                                       "r8",  "r9",  "r10", "r11", "r12", "r13", "r14", "r15"};

bool trace_enabled() {
  static const bool on = [] {
    const char* e = std::getenv("AVX512EMU_SELFCHECK_TRACE");
    return e && *e && std::strcmp(e, "0") != 0;
  }();
  return on;
}

// run_guarded() takes a plain function pointer; this adapts any callable.
template <typename F>
bool guarded(F&& f, Fault& fault) {
  using Fn = std::remove_reference_t<F>;
  return run_guarded([](void* p) { (*static_cast<Fn*>(p))(); }, &f, fault);
}

std::string format(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
std::string format(const char* fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  return buf;
}

// 64 bytes as eight little-endian qwords, q0 first.
std::string vec_text(const uint8_t* p) {
  std::string s;
  for (int q = 0; q < 8; ++q) {
    uint64_t v;
    std::memcpy(&v, p + 8 * q, 8);
    s += format("%s%016" PRIx64, q ? " " : "", v);
  }
  return s;
}

enum class Leg { kNative, kInterpret, kTranslate };
const char* leg_name(Leg leg) {
  switch (leg) {
    case Leg::kNative: return "native";
    case Leg::kInterpret: return "interpret()";
    case Leg::kTranslate: return "translate()+execute()";
  }
  return "?";
}

// Every architectural field where `got` differs from `want`, one line each.
// scratch, host_save and reserved0 are not architectural and never compared.
std::string state_differences(const CpuState& want, const CpuState& got) {
  std::string out;
  auto scalar = [&](const char* name, uint64_t w, uint64_t g) {
    if (w != g) out += format("    %-7s native 0x%" PRIx64 ", got 0x%" PRIx64 "\n", name, w, g);
  };
  for (int i = 0; i < 16; ++i) scalar(kGprNames[i], want.gpr[i], got.gpr[i]);
  scalar("rip", want.rip, got.rip);
  scalar("rflags", want.rflags, got.rflags);
  scalar("fs_base", want.fs_base, got.fs_base);
  scalar("gs_base", want.gs_base, got.gs_base);
  scalar("mxcsr", want.mxcsr, got.mxcsr);
  for (int i = 0; i < 8; ++i) scalar(format("k%d", i).c_str(), want.k[i], got.k[i]);
  for (int i = 0; i < 32; ++i) {
    if (std::memcmp(want.zmm[i], got.zmm[i], 64) == 0) continue;
    std::string bytes;
    for (int b = 0; b < 64; ++b)
      if (want.zmm[i][b] != got.zmm[i][b]) {
        int e = b;
        while (e + 1 < 64 && want.zmm[i][e + 1] != got.zmm[i][e + 1]) ++e;
        bytes += format("%s%d..%d", bytes.empty() ? "" : ",", b, e);
        b = e;
      }
    out += format("    zmm%d differs in bytes %s (q0..q7):\n", i, bytes.c_str());
    out += "      native " + vec_text(want.zmm[i]) + "\n";
    out += "      got    " + vec_text(got.zmm[i]) + "\n";
  }
  return out;
}

// Which CPU elements a mask bit guards in memory, for placing a masked
// memory operand across a guard page.
struct StraddleModel {
  int count = 0;          // memory elements (mask bits that matter)
  int elem_bytes = 0;
  bool popcount = false;  // compress/expand: popcount(k) leading elements are accessed
};

// Masked, non-broadcast vector forms only. Aligned forms cannot straddle
// (the address would be misaligned), scalar forms have one element. If the
// model is wrong for some instruction (its memory access is not
// fault-suppressed per element), the native leg faults and the runner falls
// back to a non-straddling placement with a note.
std::optional<StraddleModel> straddle_model(const TestForm& form, const SemanticsRow* row) {
  if (!row || !form.masked || !form.has_mem || form.broadcast) return std::nullopt;
  if (row->flags & (kRowScalar | kRowAligned)) return std::nullopt;
  // The memory element: the narrow source of a widening load, else the row's element.
  const ir::Elem mem_elem = row->form == Form::kWiden ? row->elem2 : row->elem;
  StraddleModel m;
  m.elem_bytes = ir::elem_bytes(mem_elem);
  m.count = m.elem_bytes ? form.mem_bytes / m.elem_bytes : 0;
  m.popcount = row->form == Form::kCompress || row->form == Form::kExpand;
  if (m.count < 2 || m.count > 64) return std::nullopt;
  return m;
}

uint64_t low_bits(int n) { return n >= 64 ? ~0ull : (1ull << n) - 1; }

class FormRunner {
 public:
  //! `straddle_faults` is shared by all imm8 values of one form: once the
  //! CPU faults on a straddling placement, the form stops using it.
  FormRunner(const TestForm& form, const SemanticsRow* row, MemoryArena& arena,
             const VerifyOptions& options, DiffReport& report, bool& straddle_faults)
      : form_(form), row_(row), arena_(arena), options_(options), report_(report),
        straddle_faults_(straddle_faults) {
    if (!straddle_faults_) straddle_ = straddle_model(form, row);
  }

  void run(int states, uint64_t seed) {
    std::string error;
    if (native_available_ && !stub_.build(form_.bytes, form_.length, &error)) {
      fail(header() + "  cannot build the native stub: " + error + "\n");
      return;
    }
    const TranslateResult tr = translate(form_.bytes, form_.length);
    if (tr.error != TranslateError::kNone) {
      fail(header() + format("  translate() failed (%s): ", translate_error_name(tr.error)) +
           tr.message + "\n");
    } else {
      translation_ = tr.translation;
    }
    int form_failures = 0;
    for (int s = 0; s < states && form_failures < options_.max_failures_per_form; ++s) {
      if (!interpret_enabled_ && !translation_) break;  // nothing left to compare
      if (!run_state(s, seed)) ++form_failures;
    }
  }

 private:
  // One generated state through all legs; false when it failed.
  bool run_state(int s, uint64_t seed) {
    const uint64_t state_seed = seed ^ (uint64_t(s) * 0x9e3779b97f4a7c15ull) ^ (uint64_t(form_.imm) << 48);
    Rng rng(state_seed);
    const int variant = (s + form_.imm) % kStateVariants;
    const CpuState init = [&] {
      CpuState st = make_state(rng, variant);
      arena_.fill(rng, variant);
      placement_ = Placement::kMiddle;
      address_ = 0;
      if (form_.has_mem) setup_memory(st, choose_placement(s), rng);
      return st;
    }();
    const std::vector<uint8_t> initial_memory = arena_.snapshot();
    context_ = format("  state #%d (variant %d, seed 0x%" PRIx64 ")", s, variant, state_seed);
    if (form_.has_mem)
      context_ += format(", memory operand at arena+0x%" PRIx64 " (%s), %u bytes",
                         address_ - uint64_t(uintptr_t(arena_.begin())), placement_name(placement_),
                         form_.mem_bytes);
    context_ += "\n";

    // Native first: it defines the expected result, and a straddling
    // placement the CPU does not fault-suppress must be discovered before
    // any emulated leg runs on it.
    //
    // Without AVX-512 on this CPU the reference interpreter takes the
    // native leg's place, and the JIT is compared with it.
    CpuState native = init;
    Fault fault;
    trace(s, Leg::kNative);
    bool reference_ran = true;
    std::string reference_error;
    auto run_reference = [&] {
      if (native_available_)
        stub_.run(native);
      else
        reference_ran = interpret(form_.bytes, form_.length, native, &reference_error);
    };
    if (!guarded(run_reference, fault)) {
      if (placement_ == Placement::kStraddleEnd || placement_ == Placement::kStraddleStart) {
        straddle_.reset();
        straddle_faults_ = true;
        ++report_.straddle_fallbacks;
        if (int(report_.notes.size()) < options_.max_messages)
          report_.notes.push_back(form_.text + ": a straddling memory placement faults natively (" +
                                  where(fault) + "); the form uses flush placements instead");
        return run_state(s, seed);  // same state, non-straddling placement
      }
      fail(header() + context_ + "  the native leg faulted: " + where(fault) + "\n" + inputs(init, initial_memory));
      return false;
    }
    if (!reference_ran) {
      interpret_enabled_ = false;
      translation_ = nullptr;  // nothing to compare it with
      fail(header() + "  interpret() failed: " + reference_error + "\n");
      return false;
    }
    const std::vector<uint8_t> native_memory = arena_.snapshot();

    bool ok = true, compared = false;
    if (interpret_enabled_ && native_available_) {
      arena_.restore(initial_memory);
      CpuState st = init;
      std::string error;
      bool ran = false;
      trace(s, Leg::kInterpret);
      if (!guarded([&] { ran = interpret(form_.bytes, form_.length, st, &error); }, fault)) {
        ok = false;
        fail(header() + context_ + "  interpret() faulted: " + where(fault) + "\n" + inputs(init, initial_memory));
      } else if (!ran) {
        // The same refusal would repeat for every state: report it once.
        interpret_enabled_ = false;
        fail(header() + "  interpret() failed: " + error + "\n");
      } else {
        compared = true;
        ok &= compare(Leg::kInterpret, init, initial_memory, native, native_memory, st);
      }
    }
    if (translation_) {
      arena_.restore(initial_memory);
      CpuState st = init;
      trace(s, Leg::kTranslate);
      const Translation* t = translation_;
      if (!guarded([&] { execute(*t, st); }, fault)) {
        ok = false;
        fail(header() + context_ + "  translate()+execute() faulted: " + where(fault) + "\n" +
             inputs(init, initial_memory));
      } else {
        compared = true;
        ok &= compare(Leg::kTranslate, init, initial_memory, native, native_memory, st);
      }
    }
    if (compared || !ok) ++report_.states;
    arena_.restore(initial_memory);
    return ok;
  }

  // Cycles the placements so even four states cover them all: middle,
  // straddling (or flush with the end), flush with the end, flush with the start.
  Placement choose_placement(int s) const {
    switch (s % 4) {
      case 1:
        if (straddle_) return straddle_->popcount || (s / 4) % 2 == 0 ? Placement::kStraddleEnd
                                                                       : Placement::kStraddleStart;
        return (s / 4) % 2 == 0 ? Placement::kEndAtGuard : Placement::kStartAtGuard;
      case 2: return Placement::kEndAtGuard;
      case 3: return Placement::kStartAtGuard;
      default: return Placement::kMiddle;
    }
  }

  // Places the memory operand, aims the address registers at it and, when
  // straddling, clears the mask bits of the elements in the guard page.
  void setup_memory(CpuState& st, Placement p, Rng& rng) {
    const size_t bytes = form_.mem_bytes ? form_.mem_bytes : 1;
    // Aligned moves need natural alignment (else #GP); unknown instructions
    // get it too, to be safe. Others are often deliberately misaligned.
    const bool must_align = !row_ || (row_->flags & kRowAligned);
    size_t align = must_align || rng.below(2) ? std::min<size_t>(bytes, 64) : 1;
    size_t inside = 0;
    if (p == Placement::kStraddleEnd || p == Placement::kStraddleStart) {
      const StraddleModel& m = *straddle_;
      const int in_elems = 1 + int(rng.below(uint64_t(m.count - 1)));  // 1..count-1 inside
      inside = size_t(in_elems) * size_t(m.elem_bytes);
      // Mask bits past `count` are ignored by the CPU: leave them random.
      uint64_t k = rng.next();
      const uint64_t lanes = low_bits(m.count);
      if (m.popcount) {
        // Compress/expand touch the first popcount(k) elements: keep at
        // most `in_elems` bits set.
        while (__builtin_popcountll(k & lanes) > in_elems) k &= ~(1ull << (63 - __builtin_clzll(k & lanes)));
      } else if (p == Placement::kStraddleEnd) {
        k &= ~lanes | low_bits(in_elems);  // elements in_elems.. lie past the end
      } else {
        k &= ~low_bits(m.count - in_elems);  // the first count-in_elems lie before the start
      }
      st.k[form_.mask_reg] = k;
    }
    placement_ = p;
    address_ = arena_.place(p, bytes, align, rng, inside);
    aim_memory_operand(st, form_, address_, rng);
  }

  // Compares a leg with native; records a failure message when they differ.
  bool compare(Leg leg, const CpuState& init, const std::vector<uint8_t>& initial_memory,
               const CpuState& native, const std::vector<uint8_t>& native_memory,
               const CpuState& got) {
    std::string diff = state_differences(native, got);
    const long first = arena_.first_difference(native_memory);
    if (first >= 0) {
      const uint8_t* mem = arena_.begin();
      size_t count = 0;
      for (size_t i = 0; i < native_memory.size(); ++i) count += mem[i] != native_memory[i];
      const uint64_t abs = uint64_t(uintptr_t(mem)) + uint64_t(first);
      diff += format("    memory differs in %zu bytes, first at arena+0x%lx", count, first);
      if (form_.has_mem) diff += format(" (operand%+" PRId64 ")", int64_t(abs - address_));
      diff += "\n";
      const size_t from = size_t(first) & ~size_t(15);
      const size_t n = std::min<size_t>(32, native_memory.size() - from);
      diff += format("      arena+0x%zx native ", from) + hex_bytes(native_memory.data() + from, n) + "\n";
      diff += format("      arena+0x%zx got    ", from) + hex_bytes(mem + from, n) + "\n";
      diff += format("      arena+0x%zx before ", from) + hex_bytes(initial_memory.data() + from, n) + "\n";
    }
    if (diff.empty()) return true;
    fail(header() + context_ + "  " + leg_name(leg) + " differs from " +
         (native_available_ ? "native" : "the reference interpreter (no AVX-512 on this CPU)") +
         ":\n" + diff + inputs(init, initial_memory));
    return false;
  }

  // The instruction's inputs as the legs saw them.
  std::string inputs(const CpuState& init, const std::vector<uint8_t>& initial_memory) const {
    DecodedInsn d;
    if (decode(form_.bytes, form_.length, d) != DecodeStatus::kOk) return "";
    std::string s = format("  inputs: mxcsr 0x%x, rflags 0x%" PRIx64, init.mxcsr, init.rflags);
    if (form_.masked) s += format(", k%u 0x%016" PRIx64, form_.mask_reg, init.k[form_.mask_reg]);
    s += "\n";
    std::set<std::string> seen;
    for (int i = 0; i < d.operand_count; ++i) {
      const Operand& o = d.ops[i];
      std::string line;
      switch (o.kind) {
        case OperandKind::kVec: line = format("    zmm%-2u ", o.reg) + vec_text(init.zmm[o.reg]); break;
        case OperandKind::kMask: line = format("    k%u     0x%016" PRIx64, o.reg, init.k[o.reg]); break;
        case OperandKind::kGpr: line = format("    %-6s 0x%016" PRIx64, kGprNames[o.reg], init.gpr[o.reg]); break;
        case OperandKind::kMem: {
          // Only the bytes inside the arena exist; a straddling operand shows its in-arena part.
          const uint64_t begin = uint64_t(uintptr_t(arena_.begin()));
          const uint64_t lo = std::max(address_, begin);
          const uint64_t hi = std::min(address_ + form_.mem_bytes, begin + arena_.size());
          line = format("    mem[+0x%" PRIx64 "..] ", lo - address_) +
                 (hi > lo ? hex_bytes(initial_memory.data() + (lo - begin), size_t(hi - lo)) : "");
          break;
        }
        default: break;
      }
      if (!line.empty() && seen.insert(line).second) s += line + "\n";
    }
    return s;
  }

  // A fault address relative to the arena, when it is near it.
  std::string where(const Fault& fault) const {
    std::string s = fault.describe();
    const int64_t from_begin = int64_t(fault.address - uint64_t(uintptr_t(arena_.begin())));
    const int64_t from_end = int64_t(fault.address - uint64_t(uintptr_t(arena_.end())));
    if (fault.signal == SIGSEGV || fault.signal == SIGBUS) {
      if (from_end >= 0 && from_end < 4096) s += format(" (arena end+0x%" PRIx64 ": trailing guard page)", from_end);
      else if (from_begin < 0 && from_begin >= -4096) s += format(" (arena start-0x%" PRIx64 ": leading guard page)", -from_begin);
      else if (arena_.contains(fault.address)) s += format(" (arena+0x%" PRIx64 ")", from_begin);
    }
    return s;
  }

  std::string header() const {
    std::string h = form_.text + "  [" + hex_bytes(form_.bytes, form_.length) + "]";
    if (form_.has_imm) h += format(" imm8 0x%02x", form_.imm);
    return h + "\n";
  }

  void fail(std::string message) {
    ++report_.failures;
    if (int(report_.messages.size()) < options_.max_messages) report_.messages.push_back(std::move(message));
  }

  void trace(int s, Leg leg) const {
    if (!trace_enabled()) return;
    std::fprintf(stderr, "selfcheck: %s [%s] imm8 0x%02x state #%d %s%s%s\n", form_.text.c_str(),
                 hex_bytes(form_.bytes, form_.length).c_str(), form_.imm, s, leg_name(leg),
                 form_.has_mem ? ", memory " : "", form_.has_mem ? placement_name(placement_) : "");
    std::fflush(stderr);
  }

  const TestForm& form_;
  const SemanticsRow* row_;
  MemoryArena& arena_;
  const VerifyOptions& options_;
  DiffReport& report_;
  bool& straddle_faults_;
  std::optional<StraddleModel> straddle_;
  NativeStub stub_;
  const Translation* translation_ = nullptr;
  bool interpret_enabled_ = true;
  //! This CPU runs the instruction itself; else the reference interpreter
  //! is the expected result.
  const bool native_available_ = host_runs_avx512();
  Placement placement_ = Placement::kMiddle;
  uint64_t address_ = 0;
  std::string context_;
};

// Stable across compilers and runs, unlike std::hash.
uint64_t fnv1a(const char* s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (; *s; ++s) h = (h ^ uint8_t(*s)) * 0x100000001b3ull;
  return h;
}

// Forms that get the exhaustive imm8 sweep: distinct registers, plain
// addressing. The variants (aliasing, disp8, SIB) test operand handling,
// which does not depend on the immediate.
bool primary(const TestForm& f) {
  return !f.aliased && (f.addressing == Addressing::kNone || f.addressing == Addressing::kBase);
}

void run_form(const TestForm& form, const SemanticsRow* row, MemoryArena& arena, int states,
              uint64_t seed, const VerifyOptions& options, DiffReport& report,
              bool& straddle_faults) {
  FormRunner(form, row, arena, options, report, straddle_faults).run(states, seed);
}

}  // namespace

std::string DiffReport::summary() const {
  std::string s = format("%d forms, %d states, %d failures\n", forms, states, failures);
  for (const std::string& m : messages) s += m + "\n";
  for (const std::string& n : notes) s += "note: " + n + "\n";
  if (straddle_fallbacks)
    s += format("note: %d forms fell back from straddling placements\n", straddle_fallbacks);
  return s;
}

namespace {
//! False, with the failure recorded, when the arena could not be mapped.
bool arena_ready(const MemoryArena& arena, DiffReport& report) {
  if (arena.ok()) return true;
  report.failures = 1;
  report.messages.push_back("cannot map the memory arena");
  return false;
}
}  // namespace

DiffReport verify_mnemonic(const char* mnemonic, int states_per_form, uint64_t seed) {
  return verify_mnemonic(mnemonic, states_per_form, seed, VerifyOptions{});
}

DiffReport verify_mnemonic(const char* mnemonic, int states_per_form, uint64_t seed,
                           const VerifyOptions& options) {
  DiffReport report;
  // Mixing in the mnemonic keeps register choices and states from repeating
  // across mnemonics verified with the same seed.
  seed ^= fnv1a(mnemonic);
  const std::vector<TestForm> forms = enumerate_forms(mnemonic, seed, options.enumerate);
  if (forms.empty()) {
    report.failures = 1;
    report.messages.push_back(std::string(mnemonic) +
                              ": no forms enumerated (AsmJit does not know the mnemonic, or no "
                              "encoding decodes back as it)");
    return report;
  }
  MemoryArena arena;
  if (!arena_ready(arena, report)) return report;
  FaultTrapScope trap;
  const SemanticsRow* row = find_semantics(mnemonic);
  const std::vector<uint8_t> full = immediate_values(mnemonic, options.exhaustive_imm, seed);
  const std::vector<uint8_t> spread = immediate_values(mnemonic, false, seed);
  uint64_t form_seed = seed;
  for (const TestForm& form : forms) {
    ++report.forms;
    form_seed = form_seed * 6364136223846793005ull + 1442695040888963407ull;
    bool straddle_faults = false;
    if (!form.has_imm) {
      run_form(form, row, arena, states_per_form, form_seed, options, report, straddle_faults);
      continue;
    }
    // Small exhaustive sets (8 or 32 predicates) are cheap enough for every form.
    const std::vector<uint8_t>& imms = full.size() <= 32 || primary(form) ? full : spread;
    // The form's states are shared among its immediates, each getting at
    // least kMinStatesPerImm (every state variant twice), so a form still
    // sees states_per_form states or more in all.
    const int n = int(imms.size());
    const int per_imm = std::max(kMinStatesPerImm, (states_per_form + n - 1) / n);
    for (uint8_t imm : imms)
      run_form(with_imm(form, imm), row, arena, per_imm, form_seed, options, report,
               straddle_faults);
  }
  return report;
}

DiffReport verify_form(const TestForm& form, int states, uint64_t seed, const VerifyOptions& options) {
  DiffReport report;
  MemoryArena arena;
  if (!arena_ready(arena, report)) return report;
  FaultTrapScope trap;
  report.forms = 1;
  bool straddle_faults = false;
  run_form(form, find_semantics(form.mnemonic.c_str()), arena, states, seed, options, report,
           straddle_faults);
  return report;
}

std::vector<std::string> verifiable_mnemonics() {
  std::vector<std::string> out;
  std::set<std::string> seen;
  for (const SemanticsRow& r : semantics_rows())
    if (seen.insert(r.mnemonic).second) out.push_back(r.mnemonic);
  return out;
}

}  // namespace avx512emu::selfcheck
