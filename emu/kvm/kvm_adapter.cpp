// Owns the KVM adapter (see kvm_adapter.h): region installation, trap
// injection and the VMM side of the miss hypercall.
#include "kvm_adapter.h"

#include <linux/kvm.h>
#include <sys/ioctl.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "avx512emu.h"
#include "decoded_insn.h"
#include "state_codec.h"

namespace avx512emu::kvm {
namespace {

constexpr uint8_t kVectorUd = 6, kVectorGp = 13, kVectorPf = 14;
constexpr uint8_t kUd2[2] = {0x0f, 0x0b};
// RFLAGS bits CPL3 code can set with popfq: CF PF AF ZF SF TF DF OF AC ID.
// A guest-written shadow cannot smuggle IOPL, VM or IF changes in.
constexpr uint64_t kUserFlags = 0x244dd5;

struct IdtGate {
  uint16_t offset_low, selector;
  uint8_t ist, type_attr;
  uint16_t offset_mid;
  uint32_t offset_high, zero;
};
static_assert(sizeof(IdtGate) == 16);

uint64_t gate_offset(const IdtGate& g) {
  return uint64_t(g.offset_low) | uint64_t(g.offset_mid) << 16 | uint64_t(g.offset_high) << 32;
}

void set_gate_offset(IdtGate& g, uint64_t offset) {
  g.offset_low = uint16_t(offset);
  g.offset_mid = uint16_t(offset >> 16);
  g.offset_high = uint32_t(offset >> 32);
}

// kvm_regs field order differs from the hardware register numbering.
void set_gprs(kvm_regs& r, const CpuState& s) {
  r.rax = s.gpr[0], r.rcx = s.gpr[1], r.rdx = s.gpr[2], r.rbx = s.gpr[3];
  r.rsp = s.gpr[4], r.rbp = s.gpr[5], r.rsi = s.gpr[6], r.rdi = s.gpr[7];
  r.r8 = s.gpr[8], r.r9 = s.gpr[9], r.r10 = s.gpr[10], r.r11 = s.gpr[11];
  r.r12 = s.gpr[12], r.r13 = s.gpr[13], r.r14 = s.gpr[14], r.r15 = s.gpr[15];
}

}  // namespace

const char* trap_mode_name(TrapMode m) {
  return m == TrapMode::kNaturalUd ? "natural #UD (AVX-512 hidden by CPUID/XCR0)"
                                   : "trap injection (AVX-512 sites armed with ud2)";
}

bool KvmAdapter::install(const GuestMemory& mem, const AdapterConfig& config, uint64_t idt_gpa,
                         std::string& error) {
  mem_ = mem;
  armed_.clear();
  config_ = config;
  if (config.index_slots_log2 < 4 || config.index_slots_log2 > 20) {
    error = "index size out of range (2^4 .. 2^20 slots)";
    return false;
  }
  layout_ = RegionLayout::make(config.region_gva, config.index_slots_log2, config.code_area_bytes);
  uint8_t* region = mem_.at(layout_.base, layout_.size);
  if (!region || (layout_.base & 4095)) {
    error = "the guest cache region does not fit guest memory";
    return false;
  }
  if (!generate_guest_code(layout_, config.miss_port, code_, error)) return false;
  std::memset(region, 0, layout_.size);

  RegionHeader h{};
  h.magic = kRegionMagic;
  h.version = kRegionVersion;
  h.index_slots_log2 = layout_.index_slots_log2;
  h.region_gva = layout_.base;
  h.region_size = layout_.size;
  h.vcpu_gva = layout_.vcpu;
  h.code_gva = layout_.code;
  h.stack_top_gva = layout_.stack_top;
  h.index_gva = layout_.index;
  h.code_area_gva = layout_.code_area;
  h.code_area_size = layout_.code_area_size;
  mem_.write(layout_.base, &h, sizeof h);
  mem_.write(layout_.code, code_.bytes.data(), code_.bytes.size());

  IdtGate gate;
  if (!mem_.read(idt_gpa + 16 * kVectorUd, &gate, sizeof gate)) {
    error = "the guest IDT is outside guest memory";
    return false;
  }
  auto* vcpu = reinterpret_cast<VcpuBlock*>(mem_.at(layout_.vcpu, sizeof(VcpuBlock)));
  vcpu->guest_ud_handler = gate_offset(gate);
  vcpu->shadow.mxcsr = 0x1f80;
  set_gate_offset(gate, code_.ud_stub);
  mem_.write(idt_gpa + 16 * kVectorUd, &gate, sizeof gate);
  return true;
}

size_t KvmAdapter::arm_code_range(uint64_t gva, uint64_t size) {
  uint8_t* code = mem_.at(gva, size);
  if (!code) return 0;
  size_t armed = 0;
  for (uint64_t off = 0; off < size;) {
    DecodedInsn d;
    const DecodeStatus st = decode(code + off, std::min<uint64_t>(15, size - off), d);
    if (st != DecodeStatus::kOk && st != DecodeStatus::kNotAvx512) {
      ++off;  // not code (or truncated at the end): resynchronise
      continue;
    }
    if (st == DecodeStatus::kOk) {
      ArmedSite site{};
      std::memcpy(site.original, code + off, d.length);
      site.length = d.length;
      armed_[gva + off] = site;
      std::memcpy(code + off, kUd2, 2);
      ++armed;
    }
    off += d.length;
  }
  return armed;
}

const VcpuBlock* KvmAdapter::vcpu_block() const {
  return reinterpret_cast<const VcpuBlock*>(mem_.at(layout_.vcpu, sizeof(VcpuBlock)));
}

AdapterStats KvmAdapter::stats() const {
  AdapterStats s = stats_;
  if (const VcpuBlock* v = vcpu_block()) {
    s.traps = v->traps;
    s.hits = v->hits;
  }
  return s;
}

bool KvmAdapter::instruction_bytes(uint64_t rip, uint64_t cr3, int cpl, InstructionFetch& f) const {
  f = fetch_instruction(mem_, cr3, rip, cpl);
  if (f.status != FetchTranslation::Status::kOk) return false;
  // An armed site still holding our ud2 stands for its original bytes; one
  // the guest rewrote since is taken as it is now.
  const auto it = armed_.find(rip);
  if (it != armed_.end() && f.size >= 2 && std::memcmp(f.bytes, kUd2, 2) == 0 &&
      std::memcmp(f.bytes + 2, it->second.original + 2,
                  std::min<size_t>(f.size, it->second.length) - 2) == 0) {
    std::memcpy(f.bytes, it->second.original, it->second.length);
    f.size = it->second.length;
  }
  return true;
}

void KvmAdapter::flush() {
  ++stats_.flushes;
  std::memset(mem_.at(layout_.index, sizeof(IndexSlot) << layout_.index_slots_log2), 0,
              sizeof(IndexSlot) << layout_.index_slots_log2);
  code_used_ = 0;
}

bool KvmAdapter::install_translation(uint64_t rip, const void* code, uint32_t total_size,
                                     uint8_t length, uint64_t& code_gva) {
  if (total_size > layout_.code_area_size) return false;
  if (!config_.cache_translations) {
    // One-shot: the code runs once from the start of the code area.
    mem_.write(layout_.code_area, code, total_size);
    code_gva = layout_.code_area;
    return true;
  }
  auto* index = reinterpret_cast<IndexSlot*>(
      mem_.at(layout_.index, sizeof(IndexSlot) << layout_.index_slots_log2));
  const uint32_t mask = (1u << layout_.index_slots_log2) - 1;
  auto find_slot = [&]() -> IndexSlot* {
    const uint32_t home = index_home_slot(rip, layout_.index_slots_log2);
    for (uint32_t n = 0; n < kMaxProbes; ++n) {
      IndexSlot& s = index[(home + n) & mask];
      if (s.key == 0 || s.key == ~rip) return &s;
    }
    return nullptr;
  };
  uint64_t offset = (code_used_ + 63) & ~uint64_t(63);
  IndexSlot* slot = find_slot();
  if (!slot || offset + total_size > layout_.code_area_size) {
    flush();
    offset = 0;
    slot = find_slot();
  }
  mem_.write(layout_.code_area + offset, code, total_size);
  code_used_ = offset + total_size;
  slot->code_offset = uint32_t(offset);
  slot->length = length;
  // Key last: a concurrent dispatcher on another vCPU sees either no entry
  // or a complete one. The release store alone orders the code and the
  // slot's fields before the key (a separate fence added nothing, and gcc
  // refuses fences under -fsanitize=thread).
  __atomic_store_n(&slot->key, ~rip, __ATOMIC_RELEASE);
  ++stats_.installs;
  auto* header = reinterpret_cast<RegionHeader*>(mem_.at(layout_.base, sizeof(RegionHeader)));
  header->code_area_used = code_used_;
  code_gva = layout_.code_area + offset;
  return true;
}

bool KvmAdapter::inject(int vcpu_fd, uint8_t vector, bool has_error, uint32_t error_code,
                        const uint64_t* cr2, const CpuState& at, std::string& error) {
  kvm_regs regs;
  if (ioctl(vcpu_fd, KVM_GET_REGS, &regs) < 0) {
    error = "KVM_GET_REGS failed";
    return false;
  }
  // The exception is raised at the trapping instruction, in the state the
  // dispatcher saved on entry.
  set_gprs(regs, at);
  regs.rip = at.rip;
  regs.rflags = (regs.rflags & ~kUserFlags) | (at.rflags & kUserFlags);
  if (ioctl(vcpu_fd, KVM_SET_REGS, &regs) < 0) {
    error = "KVM_SET_REGS failed";
    return false;
  }
  if (cr2) {
    kvm_sregs sregs;
    if (ioctl(vcpu_fd, KVM_GET_SREGS, &sregs) < 0) {
      error = "KVM_GET_SREGS failed";
      return false;
    }
    sregs.cr2 = *cr2;
    if (ioctl(vcpu_fd, KVM_SET_SREGS, &sregs) < 0) {
      error = "KVM_SET_SREGS failed";
      return false;
    }
  }
  if (vector == kVectorUd) {
    // The adapter's stub owns vector 6: let this one through to the guest.
    auto* v = reinterpret_cast<VcpuBlock*>(mem_.at(layout_.vcpu, sizeof(VcpuBlock)));
    v->pass_to_guest = 1;
  }
  kvm_vcpu_events ev;
  if (ioctl(vcpu_fd, KVM_GET_VCPU_EVENTS, &ev) < 0) {
    error = "KVM_GET_VCPU_EVENTS failed";
    return false;
  }
  ev.exception.injected = 1;
  ev.exception.nr = vector;
  ev.exception.has_error_code = has_error;
  ev.exception.error_code = error_code;
  ev.flags = 0;
  if (ioctl(vcpu_fd, KVM_SET_VCPU_EVENTS, &ev) < 0) {
    error = "KVM_SET_VCPU_EVENTS failed";
    return false;
  }
  ++stats_.injected;
  last_miss_.kind = MissOutcome::Kind::kInjected;
  last_miss_.vector = vector;
  last_miss_.rip = at.rip;
  return true;
}

bool KvmAdapter::handle_miss_exit(int vcpu_fd, const kvm_run& run, std::string& error) {
  ++stats_.hypercalls;
  last_miss_ = MissOutcome{};
  kvm_regs regs;
  if (ioctl(vcpu_fd, KVM_GET_REGS, &regs) < 0) {
    error = "KVM_GET_REGS failed";
    return false;
  }
  // Only the dispatcher's `out` is the hypercall. From anywhere else it is
  // what the port would be without a VMM behind it: an I/O instruction CPL3
  // may not execute, #GP(0) at that instruction.
  const bool from_dispatcher =
      regs.rip == code_.miss_exit + (config_.io_exit_rip_after_out ? 2 : 0);
  if (!from_dispatcher || run.io.direction != KVM_EXIT_IO_OUT || run.io.size != 1 ||
      run.io.count != 1) {
    CpuState at{};
    const kvm_regs& r = regs;
    const uint64_t g[16] = {r.rax, r.rcx, r.rdx, r.rbx, r.rsp, r.rbp, r.rsi, r.rdi,
                            r.r8,  r.r9,  r.r10, r.r11, r.r12, r.r13, r.r14, r.r15};
    std::memcpy(at.gpr, g, sizeof g);
    at.rip = regs.rip;
    if (config_.io_exit_rip_after_out) {
      // Back to the `out` itself: `out imm8, al` (e6 ib) or `out dx, al` (ee).
      uint8_t before[2] = {};
      kvm_sregs sregs;
      if (ioctl(vcpu_fd, KVM_GET_SREGS, &sregs) == 0) {
        const FetchTranslation t = walk_for_fetch(mem_, sregs.cr3, regs.rip - 2, 3);
        if (t.status == FetchTranslation::Status::kOk) mem_.read(t.gpa, before, 2);
      }
      at.rip -= before[0] == 0xe6 && before[1] == run.io.port ? 2 : 1;
    }
    at.rflags = regs.rflags;
    last_miss_.reason = "miss hypercall from outside the dispatcher";
    return inject(vcpu_fd, kVectorGp, true, 0, nullptr, at, error);
  }
  // The guest can write its vCPU block: copy what we use once, then check it.
  const CpuState at = vcpu_block()->shadow;
  kvm_sregs sregs;
  if (ioctl(vcpu_fd, KVM_GET_SREGS, &sregs) < 0) {
    error = "KVM_GET_SREGS failed";
    return false;
  }
  const int cpl = sregs.cs.selector & 3;
  InstructionFetch f;
  if (!instruction_bytes(at.rip, sregs.cr3, cpl, f)) {
    if (f.status == FetchTranslation::Status::kNonCanonical) {
      last_miss_.reason = "non-canonical RIP";
      return inject(vcpu_fd, kVectorGp, true, 0, nullptr, at, error);
    }
    last_miss_.reason = "instruction fetch faults";
    return inject(vcpu_fd, kVectorPf, true, f.pf_error, &f.fault_address, at, error);
  }
  const TranslateResult t = translate(f.bytes, f.size);
  if (t.error != TranslateError::kNone) {
    // Invalid or not AVX-512: real hardware raised #UD for these too. An
    // AVX-512 instruction we cannot translate also gets #UD, reported.
    last_miss_.reason = std::string(translate_error_name(t.error)) + ": " + t.message;
    if (t.error == TranslateError::kUnsupported)
      std::fprintf(stderr, "avx512emu vm: cannot emulate the instruction at %#llx (%s)\n",
                   static_cast<unsigned long long>(at.rip), t.message.c_str());
    return inject(vcpu_fd, kVectorUd, false, 0, nullptr, at, error);
  }
  ++stats_.misses;
  ++site_executions_[at.rip];
  const Translation& tr = *t.translation;
  uint64_t code_gva = 0;
  if (!install_translation(at.rip, tr.code, tr.total_size, tr.key.length, code_gva)) {
    last_miss_.reason = "translation larger than the code area";
    std::fprintf(stderr, "avx512emu vm: %s at %#llx\n", last_miss_.reason.c_str(),
                 static_cast<unsigned long long>(at.rip));
    return inject(vcpu_fd, kVectorUd, false, 0, nullptr, at, error);
  }
  // The dispatcher runs the code at rax (without counting a hit).
  regs.rax = code_gva;
  if (ioctl(vcpu_fd, KVM_SET_REGS, &regs) < 0) {
    error = "KVM_SET_REGS failed";
    return false;
  }
  last_miss_.kind =
      config_.cache_translations ? MissOutcome::Kind::kInstalled : MissOutcome::Kind::kRanOnce;
  last_miss_.rip = at.rip;
  return true;
}

// ---- State handover ------------------------------------------------------------------

namespace {
constexpr uint32_t kAdapterStateVersion = 1;
// Bounds a corrupt state cannot push a reader past.
constexpr uint64_t kMaxStateEntries = 1 << 20;
}  // namespace

std::vector<uint8_t> KvmAdapter::save_state() const {
  StateWriter w;
  w.put(kAdapterStateVersion);
  w.put(config_.region_gva);
  w.put(config_.index_slots_log2);
  w.put(config_.code_area_bytes);
  w.put(config_.miss_port);
  w.put(uint8_t(config_.cache_translations));
  w.put(uint8_t(config_.io_exit_rip_after_out));
  w.put(uint8_t(config_.trap_mode));
  w.put(code_.ud_stub);
  w.put(code_.dispatcher);
  w.put(code_.miss_exit);
  w.put(code_used_);
  w.put(stats_);
  w.put(uint64_t(armed_.size()));
  for (const auto& [rip, site] : armed_) {
    w.put(rip);
    w.put(site);
  }
  w.put(uint64_t(site_executions_.size()));
  for (const auto& [rip, count] : site_executions_) {
    w.put(rip);
    w.put(count);
  }
  return std::move(w.buffer());
}

bool KvmAdapter::restore_state(const GuestMemory& mem, std::span<const uint8_t> state,
                               std::string& error) {
  StateReader r(state);
  uint32_t version = 0;
  AdapterConfig c;
  uint8_t cache = 0, rip_after = 0, trap = 0;
  GuestCode code;
  uint64_t used = 0, armed_count = 0, executions_count = 0;
  AdapterStats stats;
  r.get(version);
  r.get(c.region_gva);
  r.get(c.index_slots_log2);
  r.get(c.code_area_bytes);
  r.get(c.miss_port);
  r.get(cache);
  r.get(rip_after);
  r.get(trap);
  r.get(code.ud_stub);
  r.get(code.dispatcher);
  r.get(code.miss_exit);
  r.get(used);
  r.get(stats);
  if (!r.ok() || version != kAdapterStateVersion) {
    error = "the adapter state is truncated or of another version";
    return false;
  }
  c.cache_translations = cache != 0;
  c.io_exit_rip_after_out = rip_after != 0;
  c.trap_mode = trap ? TrapMode::kTrapInjection : TrapMode::kNaturalUd;
  if (c.index_slots_log2 < 4 || c.index_slots_log2 > 20 || c.code_area_bytes > mem.size) {
    error = "the adapter state describes an impossible cache region";
    return false;
  }
  const RegionLayout layout =
      RegionLayout::make(c.region_gva, c.index_slots_log2, c.code_area_bytes);
  RegionHeader h;
  if (!mem.read(layout.base, &h, sizeof h) || h.magic != kRegionMagic ||
      h.version != kRegionVersion || h.index_gva != layout.index ||
      h.code_area_size != layout.code_area_size || used > layout.code_area_size) {
    error = "the guest cache region in guest memory does not match the adapter state";
    return false;
  }
  std::unordered_map<uint64_t, ArmedSite> armed;
  std::map<uint64_t, uint64_t> executions;
  r.get(armed_count);
  for (uint64_t i = 0; r.ok() && i < armed_count && i < kMaxStateEntries; ++i) {
    uint64_t rip = 0;
    ArmedSite site{};
    if (r.get(rip) && r.get(site) && site.length <= sizeof site.original) armed[rip] = site;
  }
  r.get(executions_count);
  for (uint64_t i = 0; r.ok() && i < executions_count && i < kMaxStateEntries; ++i) {
    uint64_t rip = 0, count = 0;
    if (r.get(rip) && r.get(count)) executions[rip] = count;
  }
  if (!r.ok() || !r.at_end() || armed.size() != armed_count ||
      executions.size() != executions_count) {
    error = "the adapter state is corrupt";
    return false;
  }
  mem_ = mem;
  config_ = c;
  layout_ = layout;
  code_ = code;
  code_used_ = used;
  armed_ = std::move(armed);
  site_executions_ = std::move(executions);
  stats_ = stats;
  last_miss_ = MissOutcome{};
  return true;
}

void KvmAdapter::disarm_all(uint64_t idt_gpa) {
  for (const auto& [rip, site] : armed_) {
    uint8_t* at = mem_.at(rip, site.length);
    if (at && std::memcmp(at, kUd2, 2) == 0) std::memcpy(at, site.original, 2);
  }
  armed_.clear();
  IdtGate gate;
  const VcpuBlock* v = vcpu_block();
  if (v && mem_.read(idt_gpa + 16 * kVectorUd, &gate, sizeof gate)) {
    set_gate_offset(gate, v->guest_ud_handler);
    mem_.write(idt_gpa + 16 * kVectorUd, &gate, sizeof gate);
  }
}

uint64_t KvmAdapter::cached_translations() const {
  const auto* index = reinterpret_cast<const IndexSlot*>(
      mem_.at(layout_.index, sizeof(IndexSlot) << layout_.index_slots_log2));
  uint64_t n = 0;
  if (index)
    for (uint64_t i = 0; i < (uint64_t(1) << layout_.index_slots_log2); ++i) n += index[i].key != 0;
  return n;
}

}  // namespace avx512emu::kvm
