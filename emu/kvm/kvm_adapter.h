// Owns the KVM adapter a VMM embeds: it installs the guest cache region, the
// #UD stub and the dispatcher into guest memory, arms AVX-512 instructions by
// trap injection where the CPU cannot be made to trap, and serves the miss
// hypercall: fetch through the guest page tables, translate, install, resume
// (or inject the exception real hardware would raise).
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "guest_cache_region.h"
#include "guest_code.h"
#include "guest_memory.h"

struct kvm_run;

namespace avx512emu::kvm {

//! How the guest's AVX-512 instructions come to trap.
enum class TrapMode : uint8_t {
  kNaturalUd,      //!< VMX: AVX-512 hidden through CPUID and XCR0, the CPU raises #UD.
  kTrapInjection,  //!< AVX-512 runs natively (PVM ignores XCR0): the VMM arms sites with ud2.
};
const char* trap_mode_name(TrapMode m);

struct AdapterConfig {
  uint64_t region_gva = 0;  //!< Identity-mapped, user-accessible, below 2 GiB.
  uint32_t index_slots_log2 = 12;
  uint64_t code_area_bytes = 1 << 20;
  uint16_t miss_port = 0;
  //! false: nothing is published in the index, every trap is a hypercall and
  //! runs its translation once (counts every execution VMM-side).
  bool cache_translations = true;
  //! KVM reports RIP past the `out` at port-I/O exits (see probe_kvm_host).
  bool io_exit_rip_after_out = false;
  //! How the VMM made AVX-512 trap (kept so an adopting VMM need not probe).
  TrapMode trap_mode = TrapMode::kTrapInjection;
};

struct AdapterStats {
  uint64_t traps = 0;       //!< Dispatcher entries (guest counter).
  uint64_t hits = 0;        //!< Index hits (guest counter).
  uint64_t hypercalls = 0;  //!< Miss-port exits, valid or not.
  uint64_t misses = 0;      //!< Hypercalls that translated an instruction.
  uint64_t installs = 0;    //!< Index entries written.
  uint64_t flushes = 0;     //!< Cache region resets (index or code area full).
  uint64_t injected = 0;    //!< Exceptions injected into the guest.
};

//! What the last miss hypercall turned into, for diagnostics and tests.
struct MissOutcome {
  enum class Kind : uint8_t { kNone, kInstalled, kRanOnce, kInjected } kind = Kind::kNone;
  uint8_t vector = 0;
  uint64_t rip = 0;
  std::string reason;
};

class KvmAdapter {
 public:
  //! Lays out the region, writes its header, the vCPU block, the stub and the
  //! dispatcher, and points IDT vector 6 (at guest physical `idt_gpa`) at the
  //! stub, keeping the guest's handler to chain to for real #UDs.
  bool install(const GuestMemory& mem, const AdapterConfig& config, uint64_t idt_gpa,
               std::string& error);

  //! Trap injection: overwrites the first two bytes of every AVX-512
  //! instruction in the identity-mapped code range [gva, gva + size) with ud2
  //! and keeps the original bytes for the miss path. Linear sweep (compiler
  //! output has no data in its code). Returns the number of sites armed.
  size_t arm_code_range(uint64_t gva, uint64_t size);

  //! Handles a KVM_EXIT_IO on the miss port of vCPU `vcpu_fd`. Returns false
  //! with `error` set only when the VMM itself failed (an ioctl); every guest
  //! error becomes an injected exception.
  bool handle_miss_exit(int vcpu_fd, const kvm_run& run, std::string& error);

  //! The VMM-side state a successor or a migration destination needs to
  //! take the adapter over: configuration, code addresses, the code-area
  //! bump pointer, the armed sites with their original bytes, and counters.
  //! Everything else lives in guest memory.
  std::vector<uint8_t> save_state() const;
  //! Takes over an adapter whose region is already in `mem` (nothing is
  //! written to guest memory). False with `error` on a corrupt state or one
  //! whose region does not match the header in guest memory.
  bool restore_state(const GuestMemory& mem, std::span<const uint8_t> state, std::string& error);
  //! For a destination that runs AVX-512 natively: puts the original bytes
  //! back at every armed site still holding the adapter's ud2, and points
  //! IDT vector 6 (at `idt_gpa`) back at the guest's own handler.
  void disarm_all(uint64_t idt_gpa);
  //! Index entries currently published in the guest cache region.
  uint64_t cached_translations() const;
  const AdapterConfig& config() const { return config_; }

  AdapterStats stats() const;
  const MissOutcome& last_miss() const { return last_miss_; }
  //! Guest RIP -> executions seen by the VMM (every trap when translations
  //! are not cached; the first of each site otherwise).
  const std::map<uint64_t, uint64_t>& site_executions() const { return site_executions_; }
  const RegionLayout& layout() const { return layout_; }
  const GuestCode& code() const { return code_; }
  size_t armed_sites() const { return armed_.size(); }

 private:
  struct ArmedSite {
    uint8_t original[15];
    uint8_t length;
  };
  bool inject(int vcpu_fd, uint8_t vector, bool has_error, uint32_t error_code, const uint64_t* cr2,
              const CpuState& at, std::string& error);
  bool instruction_bytes(uint64_t rip, uint64_t cr3, int cpl, InstructionFetch& f) const;
  const VcpuBlock* vcpu_block() const;
  bool install_translation(uint64_t rip, const void* code, uint32_t total_size, uint8_t length,
                           uint64_t& code_gva);
  void flush();

  GuestMemory mem_;
  AdapterConfig config_;
  RegionLayout layout_;
  GuestCode code_;
  uint64_t code_used_ = 0;  // VMM-side: the guest cannot move it
  std::unordered_map<uint64_t, ArmedSite> armed_;
  std::map<uint64_t, uint64_t> site_executions_;
  AdapterStats stats_;
  MissOutcome last_miss_;
};

}  // namespace avx512emu::kvm
