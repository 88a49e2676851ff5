// Owns the small VMM behind `avx512emu vm`: one VM with one vCPU on
// /dev/kvm, guest memory in a memfd, a tiny 64-bit guest kernel (GDT, IDT,
// TSS, page tables, exception reporters) and the bundled CPL3 guest image,
// with the KVM adapter installed when AVX-512 is to be emulated.
//
// The VMM's state is two memfds (guest memory, and the guest cache region
// that overlays it), the KVM fds and a few plain values (VmmProgress and the
// adapter's own state), so a later VMM process can adopt it (hot upgrade) and
// another host can rebuild it from a migration stream.
#pragma once

#include <csignal>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kvm_adapter.h"

namespace avx512emu::kvm {

struct VmOptions {
  bool native = false;  //!< AVX-512 runs on the CPU; no adapter.
  bool cache_translations = true;
  uint32_t index_slots_log2 = 12;
  uint64_t code_area_bytes = 1 << 20;
  unsigned timeout_seconds = 30;  //!< A guest that neither exits nor finishes is stopped.
  //! The guest kernel's #UD handler skips a 2-byte ud2 instead of reporting
  //! (for measuring a bare #UD round trip).
  bool kernel_skips_ud2 = false;
  //! Guest memory; at least guest_map::kMemorySize. Beyond it, memory is
  //! mapped with 2 MiB pages and left to the guest (and to migration).
  uint64_t memory_bytes = 16 << 20;
  //! Native mode: hide the AVX-512 features avx512emu cannot translate at
  //! all, so the VM can migrate to an emulating host (a migratable model).
  bool migratable_cpu = false;
};

//! Where a run stands: what a migration or an upgrade must carry besides
//! guest memory and the vCPU.
struct VmmProgress {
  uint64_t workload_id = 0;
  uint64_t progress_events = 0;  //!< Progress-port exits so far.
  uint64_t exits = 0;            //!< Progress and miss exits so far.
  //! The vCPU stopped at a miss hypercall the VMM has not served yet (its
  //! exit data is in the vCPU's kvm_run page).
  bool miss_pending = false;
};

//! When resume() hands control back before the guest finishes.
struct RunLimits {
  //! Pause at the progress exit with this number (1-based).
  uint64_t pause_at_progress = UINT64_MAX;
  //! Pause when the exit count reaches this, before serving that exit (a
  //! miss exit then stays pending).
  uint64_t pause_at_exit = UINT64_MAX;
  //! Set asynchronously (a signal handler): pause at the next exit or
  //! interruption of KVM_RUN.
  const volatile std::sig_atomic_t* pause_request = nullptr;
  //! Called at every progress and miss exit (migration pre-copy work).
  std::function<void()> at_exit;
};

//! How a run ended.
struct RunOutcome {
  enum class Kind : uint8_t {
    kResult,          //!< The guest reported `result`.
    kGuestException,  //!< The guest kernel reported an exception it took.
    kVmmError,        //!< KVM failed, the guest misbehaved beyond repair, or timed out.
    kPaused,          //!< A RunLimits point was reached; resume() continues.
  } kind = Kind::kVmmError;
  uint64_t result = 0;
  uint8_t vector = 0;
  uint64_t error_code = 0;
  uint64_t fault_rip = 0;  //!< RIP in the exception frame.
  uint64_t cr2 = 0;
  uint64_t exit_rip = 0;  //!< RIP KVM reported at the result or exception port exit.
  std::string message;
};

//! Guest memory map (identity mapped; guest virtual == guest physical).
namespace guest_map {
inline constexpr uint64_t kMemorySize = 16 << 20;       //!< Minimum (and default) guest memory.
inline constexpr uint64_t kMaxMemorySize = 1ull << 30;  //!< One page directory.
inline constexpr uint64_t kGdt = 0x1000;
inline constexpr uint64_t kPml4 = 0x2000;  //!< Then PDPT, PD and the page tables.
inline constexpr uint64_t kIdt = 0x10000;
inline constexpr uint64_t kTss = 0x11000;
inline constexpr uint64_t kKernelCode = 0x14000;
inline constexpr uint64_t kKernelStackTop = 0x20000;
inline constexpr uint64_t kCacheRegion = 0x100000;
inline constexpr uint64_t kImage = 0x400000;
//! The cache region's window [kCacheRegion, kImage) is its own memslot,
//! backed by its own memfd.
inline constexpr uint64_t kCacheWindow = kImage - kCacheRegion;
inline constexpr uint64_t kUserStackTop = kMemorySize - 0x1000;
}  // namespace guest_map

//! What a tiny probe guest found out about this host's KVM.
struct KvmHostTraits {
  //! VMX raises #UD for AVX-512 when the guest's CPUID and XCR0 hide it;
  //! PVM runs it anyway.
  TrapMode trap_mode = TrapMode::kTrapInjection;
  //! At a port-I/O exit, RIP is already past the `out` (PVM) rather than at
  //! it (VMX KVM).
  bool io_exit_rip_after_out = false;
};

//! Probes once per process; false with `error` set when KVM is unusable.
bool probe_kvm_host(KvmHostTraits& traits, std::string& error);

//! A port-I/O exit as kvm_run reports it (what serving it needs).
struct PortIoExit {
  uint8_t direction = 0, size = 0;
  uint16_t port = 0;
  uint32_t count = 0;
  uint8_t data = 0;
};

//! The file descriptors a VMM process hands to its successor.
struct VmmFds {
  int vm = -1, vcpu = -1, memory = -1, cache = -1;
};

class MiniVmm {
 public:
  MiniVmm();
  ~MiniVmm();
  MiniVmm(const MiniVmm&) = delete;
  MiniVmm& operator=(const MiniVmm&) = delete;

  //! Creates the VM, loads the kernel and `image` (a flat guest image, see
  //! guest_abi.h; nullptr = the bundled one), and installs the adapter
  //! unless native (`install_adapter` = false only for probing the CPU).
  bool create(const VmOptions& options, std::string& error,
              const std::vector<uint8_t>* image = nullptr, bool install_adapter = true);

  //! Runs the image's entry with `id` (workload or probe) from a fresh vCPU
  //! state. Guest memory, and so the translation cache, persist across runs.
  RunOutcome run(uint64_t id);

  //! run() in steps: start() sets up the vCPU for workload `id` and runs it
  //! until it finishes or `limits` pause it; resume() continues a paused
  //! (or adopted, or migrated-in) run.
  RunOutcome start(uint64_t id, const RunLimits& limits = {});
  RunOutcome resume(const RunLimits& limits = {});

  //! Creates an empty VM for a migration to fill: VM, vCPU (CPUID and XCR0
  //! per `options`), guest memory all zeros; no kernel, image or adapter.
  bool create_incoming(const VmOptions& options, std::string& error);
  //! After the guest memory and vCPU state of a migrated-in VM are in
  //! place: takes the image entry from guest memory and sets up the adapter
  //! for this VMM's mode. `adapter_state` is the source's adapter
  //! (KvmAdapter::save_state), empty when the source ran natively.
  bool finish_incoming(const std::vector<uint8_t>& adapter_state, const VmmProgress& progress,
                       std::string& error);

  //! Adopts a predecessor's VM (hot upgrade): maps the memfds, maps the
  //! vCPU's kvm_run page and restores the adapter from `adapter_state`. No
  //! guest memory is copied and nothing is translated.
  bool adopt(const VmOptions& options, const VmmFds& fds, const std::vector<uint8_t>& adapter_state,
             const VmmProgress& progress, uint64_t entry, std::string& error);

  //! Lets KVM finish the instruction of the last exit (VMX completes a port
  //! write only at the next KVM_RUN), so the vCPU state is final.
  bool complete_pending_exit(std::string& error);

  //! KVM dirty-page logging on every memslot. False (with the reason) when
  //! the host does not support it.
  bool enable_dirty_logging(std::string& error);
  //! ORs the pages dirtied since the last call (or since enabling) into
  //! `bitmap` (one bit per 4 KiB page of guest memory).
  bool collect_dirty_pages(std::vector<uint64_t>& bitmap, std::string& error);

  TrapMode trap_mode() const { return trap_mode_; }
  KvmAdapter* adapter() { return adapter_.get(); }
  const GuestMemory& memory() const { return memory_; }
  const VmOptions& options() const { return options_; }
  const VmmProgress& progress() const { return progress_; }
  uint64_t entry() const { return entry_; }
  //! The port-I/O exit in the kvm_run page, and writing one back (for a
  //! successor that serves its predecessor's pending miss).
  PortIoExit last_exit_io() const;
  void set_last_exit_io(const PortIoExit& io);
  int vcpu_fd() const;
  int vm_fd() const;
  int kvm_fd() const;
  VmmFds fds() const;

 private:
  struct Fds;
  bool open_kvm(std::string& error);
  bool map_memory(std::string& error);
  //! Maps the guest memory memfd, registers its slots, creates the vCPU and
  //! sets it up: shared by a fresh start and a successor adopting the memfds.
  bool attach_memory_and_vcpu(std::string& error);
  bool open_vm(std::string& error);
  //! A new VM: its guest-memory and cache memfds, its memory slots and vCPU.
  bool create_vm(std::string& error);
  bool map_run_page(std::string& error);
  bool set_memory_slots(uint32_t flags, std::string& error);
  bool setup_kernel(std::string& error);
  bool setup_cpu(std::string& error);
  bool load_image(const std::vector<uint8_t>& image, std::string& error);
  bool install_adapter(std::string& error);
  //! Serves the exit in the kvm_run page. Returns false when the run ends
  //! (`out` set), true to continue.
  bool serve_exit(const RunLimits& limits, RunOutcome& out);

  VmOptions options_;
  std::unique_ptr<Fds> fds_;
  GuestMemory memory_;
  TrapMode trap_mode_ = TrapMode::kTrapInjection;
  uint64_t entry_ = 0;
  VmmProgress progress_;
  std::unique_ptr<KvmAdapter> adapter_;
};

//! The bundled guest image (built from guest/workloads.c).
const std::vector<uint8_t>& bundled_guest_image();

//! A workload of the bundled image.
struct WorkloadInfo {
  const char* name;
  uint64_t id;  //!< Passed to the image's entry (guest_abi.h).
  const char* description;
};
const std::vector<WorkloadInfo>& bundled_workloads();

}  // namespace avx512emu::kvm
