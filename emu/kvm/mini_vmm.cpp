// Owns the small VMM (see mini_vmm.h): VM and vCPU creation, the guest
// kernel's tables and code, CPUID/XCR0 policy, image loading and the run loop.
#include "mini_vmm.h"

#include <fcntl.h>
#include <linux/kvm.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "featuremap.h"
#include "guest_abi.h"
#include "live_migration.h"

namespace avx512emu::kvm {
namespace {

// GDT selectors of the guest kernel.
constexpr uint16_t kKernelCs = 0x08, kKernelDs = 0x10, kUserDs = 0x1b, kUserCs = 0x23,
                   kTssSel = 0x28;
constexpr uint64_t kTssIomapOffset = 0x68, kTssLimit = kTssIomapOffset + 8192;
// Each exception reporter lives in a 16-byte slot; the entry follows them.
constexpr uint64_t kReporterSlot = 16, kKernelEntry = guest_map::kKernelCode + 32 * kReporterSlot;
// XCR0 components: x87, SSE, AVX; and opmask, ZMM_Hi256, Hi16_ZMM.
constexpr uint64_t kXcr0Avx2 = 0x7;  // with kXcr0Avx512 (featuremap.h)

//! Owns a file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  Fd& operator=(Fd&& o) noexcept {
    std::swap(fd_, o.fd_);
    return *this;
  }
  int get() const { return fd_; }

 private:
  int fd_ = -1;
};

std::string errno_text(const char* what) {
  return std::string(what) + ": " + std::strerror(errno);
}

volatile std::sig_atomic_t g_run_timed_out = 0;
void on_alarm(int) {
  g_run_timed_out = 1;
}  // and KVM_RUN returns EINTR

//! Arms SIGALRM for the life of a run; KVM_RUN then returns EINTR. Other
//! signals interrupt KVM_RUN too; expired() tells the alarm apart.
class RunTimer {
 public:
  explicit RunTimer(unsigned seconds) {
    g_run_timed_out = 0;
    struct sigaction sa {};
    sa.sa_handler = on_alarm;  // no SA_RESTART: the ioctl must return
    sigaction(SIGALRM, &sa, &old_);
    itimerval t{};
    t.it_value.tv_sec = seconds;
    setitimer(ITIMER_REAL, &t, nullptr);
  }
  ~RunTimer() {
    itimerval t{};
    setitimer(ITIMER_REAL, &t, nullptr);
    sigaction(SIGALRM, &old_, nullptr);
  }
  static bool expired() { return g_run_timed_out != 0; }

 private:
  struct sigaction old_ {};
};

// struct kvm_cpuid2 ends in __DECLARE_FLEX_ARRAY, whose empty struct has
// size 1 in C++: sizeof and the entries' offset come out wrong there (and
// so do the ioctl numbers). This is its C layout.
struct CpuidList {
  uint32_t nent, padding;
  kvm_cpuid_entry2 entries[256];
};
constexpr unsigned long kKvmGetSupportedCpuid = _IOC(_IOC_READ | _IOC_WRITE, KVMIO, 0x05, 8);
constexpr unsigned long kKvmSetCpuid2 = _IOC(_IOC_WRITE, KVMIO, 0x90, 8);

//! Whether KVM would give a guest AVX512F (CPUID.7.0:EBX[16]).
bool offers_avx512f(const CpuidList& cpuid) {
  for (uint32_t i = 0; i < cpuid.nent && i < 256; ++i)
    if (cpuid.entries[i].function == 7 && cpuid.entries[i].index == 0)
      return cpuid.entries[i].ebx & (1u << 16);
  return false;
}

void clear_avx512_cpuid(CpuidList& cpuid) {
  for (uint32_t i = 0; i < cpuid.nent && i < 256; ++i) {
    kvm_cpuid_entry2& e = cpuid.entries[i];
    if (e.function == 7 && e.index == 0) {
      // F DQ IFMA PF ER CD BW VL; VBMI VBMI2 VNNI BITALG VPOPCNTDQ;
      // 4VNNIW 4FMAPS VP2INTERSECT FP16.
      e.ebx &= ~((1u << 16) | (1u << 17) | (1u << 21) | (1u << 26) | (1u << 27) | (1u << 28) |
                 (1u << 30) | (1u << 31));
      e.ecx &= ~((1u << 1) | (1u << 6) | (1u << 11) | (1u << 12) | (1u << 14));
      e.edx &= ~((1u << 2) | (1u << 3) | (1u << 8) | (1u << 23));
    } else if (e.function == 7 && e.index == 1) {
      e.eax &= ~(1u << 5);  // AVX512_BF16
    } else if (e.function == 0xd && e.index == 0) {
      e.eax &= ~uint32_t(kXcr0Avx512);
    }
  }
}

uint64_t segment_descriptor(uint8_t access, bool long_mode) {
  return (uint64_t(access) << 40) | (long_mode ? (1ull << 53) : 0) | 0x00cf00000000ffffull;
}

kvm_segment flat_segment(uint16_t selector, uint8_t type, bool code) {
  kvm_segment s{};
  s.base = 0;
  s.limit = 0xffffffff;
  s.selector = selector;
  s.type = type;
  s.present = 1;
  s.dpl = selector & 3;
  s.s = 1;
  s.l = code;
  s.db = !code;
  s.g = 1;
  return s;
}

//! A probe image: optionally vpaddd zmm0, zmm0, zmm0; then report result 0.
//! The AVX-512 probe tells whether the CPU (or PVM's emulation) runs the
//! instruction although XCR0 hides it; the plain one tells where KVM leaves
//! RIP on a port I/O exit, which the adapter needs on every host (PVM
//! reports it after the OUT, VMX at it), so it must not depend on the
//! AVX-512 instruction getting through first.
constexpr uint8_t kProbeVpaddd[] = {0x62, 0xf1, 0x7d, 0x48, 0xfe, 0xc0};
constexpr uint8_t kProbeReport[] = {0x31, 0xff,               // xor edi, edi
                                    0xe6, GUEST_PORT_RESULT,  // out result, al
                                    0xeb, 0xfe};              // jmp $
constexpr uint64_t kProbeCode = GUEST_IMAGE_BASE + sizeof(GuestImageHeader);

std::vector<uint8_t> probe_image(bool with_avx512) {
  std::vector<uint8_t> code;
  if (with_avx512) code.assign(std::begin(kProbeVpaddd), std::end(kProbeVpaddd));
  code.insert(code.end(), std::begin(kProbeReport), std::end(kProbeReport));
  GuestImageHeader h{};
  h.magic = GUEST_IMAGE_MAGIC;
  h.entry = kProbeCode;
  h.text_start = h.entry;
  h.text_end = h.entry + code.size();
  h.image_end = h.text_end;
  std::vector<uint8_t> image(sizeof h);
  std::memcpy(image.data(), &h, sizeof h);
  image.insert(image.end(), code.begin(), code.end());
  return image;
}

//! Address of the OUT in the plain probe.
constexpr uint64_t kProbeOutAddress = kProbeCode + 2;

}  // namespace

// Defined in the generated guest_image.cpp (guest/workloads.c, linked flat).
extern const unsigned char kBundledGuestImage[];
extern const size_t kBundledGuestImageSize;

const std::vector<uint8_t>& bundled_guest_image() {
  static const std::vector<uint8_t> image(kBundledGuestImage,
                                          kBundledGuestImage + kBundledGuestImageSize);
  return image;
}

const std::vector<WorkloadInfo>& bundled_workloads() {
  static const std::vector<WorkloadInfo> list = {
      {"masked_dot", GUEST_WORKLOAD_MASKED_DOT,
       "sum of a[i]*b[i] over the lanes where a[i] > 0, 4096 int32"},
      {"byte_histogram", GUEST_WORKLOAD_BYTE_HISTOGRAM,
       "histogram of 16384 bytes by high nibble (vpcmpeqb masks + popcount)"},
      {"prefix_sum", GUEST_WORKLOAD_PREFIX_SUM,
       "inclusive prefix sum of 4096 int32 with in-register log-step shifts"},
      {"string_search", GUEST_WORKLOAD_STRING_SEARCH,
       "occurrences of \"abca\" in 16 KiB of text (byte-compare masks)"},
  };
  return list;
}

struct MiniVmm::Fds {
  Fd kvm, vm, vcpu, memory, cache;
  kvm_run* run = nullptr;
  size_t run_size = 0;
  ~Fds() {
    if (run) munmap(run, run_size);
  }
};

MiniVmm::MiniVmm() = default;

MiniVmm::~MiniVmm() {
  if (memory_.host) munmap(memory_.host, memory_.size);
}

PortIoExit MiniVmm::last_exit_io() const {
  PortIoExit io;
  const kvm_run& run = *fds_->run;
  if (run.exit_reason != KVM_EXIT_IO) return io;
  io.direction = run.io.direction;
  io.size = run.io.size;
  io.port = run.io.port;
  io.count = run.io.count;
  if (run.io.data_offset < fds_->run_size)
    io.data = reinterpret_cast<const uint8_t*>(&run)[run.io.data_offset];
  return io;
}

void MiniVmm::set_last_exit_io(const PortIoExit& io) {
  kvm_run& run = *fds_->run;
  run.exit_reason = KVM_EXIT_IO;
  run.io.direction = io.direction;
  run.io.size = io.size;
  run.io.port = io.port;
  run.io.count = io.count;
}

int MiniVmm::vcpu_fd() const {
  return fds_ ? fds_->vcpu.get() : -1;
}
int MiniVmm::vm_fd() const {
  return fds_ ? fds_->vm.get() : -1;
}
int MiniVmm::kvm_fd() const {
  return fds_ ? fds_->kvm.get() : -1;
}
VmmFds MiniVmm::fds() const {
  if (!fds_) return {};
  return {fds_->vm.get(), fds_->vcpu.get(), fds_->memory.get(), fds_->cache.get()};
}

bool probe_kvm_host(KvmHostTraits& traits, std::string& error) {
  static const auto probed = [] {
    struct Probe {
      bool ok = false;
      KvmHostTraits traits;
      std::string error;
    } p;
    VmOptions o;
    o.timeout_seconds = 5;
    RunOutcome plain, avx512;
    for (bool with_avx512 : {false, true}) {
      MiniVmm vm;
      const std::vector<uint8_t> image = probe_image(with_avx512);
      if (!vm.create(o, p.error, &image, /*install_adapter=*/false)) return p;
      (with_avx512 ? avx512 : plain) = vm.run(0);
    }
    if (plain.kind != RunOutcome::Kind::kResult) {
      p.error = "the probe guest failed: " + plain.message;
      return p;
    }
    p.traits.io_exit_rip_after_out = plain.exit_rip == kProbeOutAddress + 2;
    if (avx512.kind == RunOutcome::Kind::kResult) {
      p.ok = true;  // AVX-512 ran although XCR0 hides it: PVM on an AVX-512 CPU
    } else if (avx512.kind == RunOutcome::Kind::kGuestException && avx512.vector == 6) {
      p.ok = true;
      p.traits.trap_mode = TrapMode::kNaturalUd;
    } else {
      p.error = "the AVX-512 probe guest failed: " + avx512.message;
    }
    return p;
  }();
  traits = probed.traits;
  error = probed.error;
  return probed.ok;
}

bool MiniVmm::open_kvm(std::string& error) {
  fds_ = std::make_unique<Fds>();
  fds_->kvm = Fd(open("/dev/kvm", O_RDWR | O_CLOEXEC));
  if (fds_->kvm.get() < 0) {
    error = errno_text("cannot open /dev/kvm");
    return false;
  }
  if (ioctl(fds_->kvm.get(), KVM_GET_API_VERSION, 0) != KVM_API_VERSION) {
    error = "unsupported KVM API version";
    return false;
  }
  return true;
}

// Guest memory is one host mapping of the memory memfd with the cache
// memfd mapped over the cache window, so the VMM addresses guest physical
// memory linearly while the translation cache stays a file of its own.
bool MiniVmm::map_memory(std::string& error) {
  const uint64_t size = options_.memory_bytes;
  void* host = mmap(nullptr, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (host == MAP_FAILED) {
    error = errno_text("reserving guest memory");
    return false;
  }
  memory_ = GuestMemory{static_cast<uint8_t*>(host), size};
  if (mmap(host, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fds_->memory.get(), 0) ==
          MAP_FAILED ||
      mmap(memory_.host + guest_map::kCacheRegion, guest_map::kCacheWindow, PROT_READ | PROT_WRITE,
           MAP_SHARED | MAP_FIXED, fds_->cache.get(), 0) == MAP_FAILED) {
    error = errno_text("mmap guest memory");
    return false;
  }
  return true;
}

bool MiniVmm::set_memory_slots(uint32_t flags, std::string& error) {
  const uint64_t bounds[4] = {0, guest_map::kCacheRegion, guest_map::kImage, memory_.size};
  for (uint32_t slot = 0; slot < 3; ++slot) {
    kvm_userspace_memory_region region{};
    region.slot = slot;
    region.flags = flags;
    region.guest_phys_addr = bounds[slot];
    region.memory_size = bounds[slot + 1] - bounds[slot];
    region.userspace_addr = reinterpret_cast<uint64_t>(memory_.host + bounds[slot]);
    if (ioctl(fds_->vm.get(), KVM_SET_USER_MEMORY_REGION, &region) < 0) {
      error = errno_text("KVM_SET_USER_MEMORY_REGION");
      return false;
    }
  }
  return true;
}

bool MiniVmm::map_run_page(std::string& error) {
  const int run_size = ioctl(fds_->kvm.get(), KVM_GET_VCPU_MMAP_SIZE, 0);
  void* run = run_size > 0 ? mmap(nullptr, size_t(run_size), PROT_READ | PROT_WRITE, MAP_SHARED,
                                  fds_->vcpu.get(), 0)
                           : MAP_FAILED;
  if (run == MAP_FAILED) {
    error = errno_text("mmap kvm_run");
    return false;
  }
  fds_->run = static_cast<kvm_run*>(run);
  fds_->run_size = size_t(run_size);
  return true;
}

bool MiniVmm::open_vm(std::string& error) {
  fds_->vm = Fd(ioctl(fds_->kvm.get(), KVM_CREATE_VM, 0));
  if (fds_->vm.get() < 0) {
    error = errno_text("KVM_CREATE_VM");
    return false;
  }
  return true;
}

bool MiniVmm::create_vm(std::string& error) {
  const uint64_t size = options_.memory_bytes;
  if (size < guest_map::kMemorySize || size > guest_map::kMaxMemorySize || size % (2 << 20)) {
    error = "guest memory must be 16 MiB to 1 GiB in steps of 2 MiB";
    return false;
  }
  if (!open_vm(error)) return false;
  // Memfds, so that a successor process can map the same memory.
  fds_->memory = Fd(memfd_create("avx512emu-guest", MFD_CLOEXEC));
  fds_->cache = Fd(memfd_create("avx512emu-guest-cache", MFD_CLOEXEC));
  if (fds_->memory.get() < 0 || ftruncate(fds_->memory.get(), off_t(size)) < 0 ||
      fds_->cache.get() < 0 || ftruncate(fds_->cache.get(), guest_map::kCacheWindow) < 0) {
    error = errno_text("guest memory memfd");
    return false;
  }
  return attach_memory_and_vcpu(error);
}

bool MiniVmm::create(const VmOptions& options, std::string& error,
                     const std::vector<uint8_t>* image, bool install_adapter) {
  options_ = options;
  if (!open_kvm(error) || !create_vm(error)) return false;
  if (!setup_kernel(error)) return false;
  if (!load_image(image ? *image : bundled_guest_image(), error)) return false;
  if (options.native || !install_adapter) return true;
  if (!this->install_adapter(error)) return false;
  if (trap_mode_ == TrapMode::kTrapInjection) {
    GuestImageHeader h;
    memory_.read(guest_map::kImage, &h, sizeof h);
    adapter_->arm_code_range(h.text_start, h.text_end - h.text_start);
  }
  return true;
}

bool MiniVmm::install_adapter(std::string& error) {
  KvmHostTraits traits;
  if (!probe_kvm_host(traits, error)) return false;
  trap_mode_ = traits.trap_mode;
  adapter_ = std::make_unique<KvmAdapter>();
  AdapterConfig ac;
  ac.trap_mode = trap_mode_;
  ac.region_gva = guest_map::kCacheRegion;
  ac.index_slots_log2 = options_.index_slots_log2;
  ac.code_area_bytes = options_.code_area_bytes;
  ac.miss_port = GUEST_PORT_MISS;
  ac.cache_translations = options_.cache_translations;
  ac.io_exit_rip_after_out = traits.io_exit_rip_after_out;
  if (RegionLayout::make(ac.region_gva, ac.index_slots_log2, ac.code_area_bytes).size >
      guest_map::kCacheWindow) {
    error = "the guest cache region does not fit its window below the guest image";
    return false;
  }
  return adapter_->install(memory_, ac, guest_map::kIdt, error);
}

bool MiniVmm::create_incoming(const VmOptions& options, std::string& error) {
  options_ = options;
  return open_kvm(error) && create_vm(error);
}

bool MiniVmm::finish_incoming(const std::vector<uint8_t>& adapter_state,
                              const VmmProgress& progress, std::string& error) {
  GuestImageHeader h;
  if (!memory_.read(guest_map::kImage, &h, sizeof h) || h.magic != GUEST_IMAGE_MAGIC ||
      h.text_start > h.text_end || h.text_end > memory_.size) {
    error = "the migrated guest memory holds no valid guest image";
    return false;
  }
  entry_ = h.entry;
  progress_ = progress;
  if (progress_.miss_pending) {
    error = "the source stopped at an unserved miss hypercall";
    return false;
  }
  if (options_.native) {
    // The CPU runs AVX-512 itself: undo the source adapter's arming, so its
    // ud2s become the original instructions again.
    if (adapter_state.empty()) return true;
    KvmAdapter source;
    if (!source.restore_state(memory_, adapter_state, error)) return false;
    source.disarm_all(guest_map::kIdt);
    return true;
  }
  if (!adapter_state.empty()) {
    // Both hosts emulate: carry the source's cache over, translations and all.
    adapter_ = std::make_unique<KvmAdapter>();
    if (!adapter_->restore_state(memory_, adapter_state, error)) return false;
    trap_mode_ = adapter_->config().trap_mode;
    return true;
  }
  if (!install_adapter(error)) return false;
  if (trap_mode_ == TrapMode::kTrapInjection)
    adapter_->arm_code_range(h.text_start, h.text_end - h.text_start);
  return true;
}

bool MiniVmm::adopt(const VmOptions& options, const VmmFds& fds,
                    const std::vector<uint8_t>& adapter_state, const VmmProgress& progress,
                    uint64_t entry, std::string& error) {
  options_ = options;
  if (!open_kvm(error)) return false;
  // The predecessor's VM fd is useless here (KVM answers EIO outside the
  // creating process): close it, and build a new VM over the same memory.
  if (fds.vm >= 0) close(fds.vm);
  if (fds.vcpu >= 0) close(fds.vcpu);
  fds_->memory = Fd(fds.memory);
  fds_->cache = Fd(fds.cache);
  for (const int fd : {fds.memory, fds.cache}) {
    if (fd < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
      error = "an inherited memfd is not open";
      return false;
    }
  }
  struct stat st;
  if (fstat(fds.memory, &st) < 0 || uint64_t(st.st_size) != options.memory_bytes) {
    error = "the inherited guest memory memfd does not have the recorded size";
    return false;
  }
  if (!open_vm(error)) return false;
  if (!attach_memory_and_vcpu(error)) return false;
  entry_ = entry;
  progress_ = progress;
  if (adapter_state.empty()) return true;
  // The predecessor probed this host already: its traits are in the state.
  adapter_ = std::make_unique<KvmAdapter>();
  if (!adapter_->restore_state(memory_, adapter_state, error)) return false;
  trap_mode_ = adapter_->config().trap_mode;
  return true;
}

bool MiniVmm::attach_memory_and_vcpu(std::string& error) {
  if (!map_memory(error) || !set_memory_slots(0, error)) return false;
  fds_->vcpu = Fd(ioctl(fds_->vm.get(), KVM_CREATE_VCPU, 0));
  if (fds_->vcpu.get() < 0) {
    error = errno_text("KVM_CREATE_VCPU");
    return false;
  }
  return map_run_page(error) && setup_cpu(error);
}

bool MiniVmm::complete_pending_exit(std::string& error) {
  kvm_run& run = *fds_->run;
  run.immediate_exit = 1;
  const int rc = ioctl(fds_->vcpu.get(), KVM_RUN, 0);
  const int saved_errno = errno;
  run.immediate_exit = 0;
  if (rc == 0 || saved_errno != EINTR) {
    errno = saved_errno;
    error = rc == 0 ? "KVM_RUN with immediate_exit ran the guest"
                    : errno_text("KVM_RUN (completing the last exit)");
    return false;
  }
  return true;
}

bool MiniVmm::enable_dirty_logging(std::string& error) {
  if (!set_memory_slots(KVM_MEM_LOG_DIRTY_PAGES, error)) return false;
  std::vector<uint64_t> scratch((memory_.size / 4096 + 63) / 64);
  return collect_dirty_pages(scratch, error);
}

bool MiniVmm::collect_dirty_pages(std::vector<uint64_t>& bitmap, std::string& error) {
  const uint64_t bounds[4] = {0, guest_map::kCacheRegion, guest_map::kImage, memory_.size};
  bitmap.resize((memory_.size / 4096 + 63) / 64);
  std::vector<uint64_t> slot_bits;
  for (uint32_t slot = 0; slot < 3; ++slot) {
    const uint64_t first = bounds[slot] / 4096, pages = (bounds[slot + 1] - bounds[slot]) / 4096;
    slot_bits.assign((pages + 63) / 64, 0);
    kvm_dirty_log log{};
    log.slot = slot;
    log.dirty_bitmap = slot_bits.data();
    if (ioctl(fds_->vm.get(), KVM_GET_DIRTY_LOG, &log) < 0) {
      error = errno_text("KVM_GET_DIRTY_LOG");
      return false;
    }
    for (uint64_t p = 0; p < pages; ++p)
      if (slot_bits[p / 64] >> (p % 64) & 1) bitmap[(first + p) / 64] |= 1ull << ((first + p) % 64);
  }
  return true;
}

bool MiniVmm::setup_kernel(std::string& error) {
  using namespace guest_map;
  // GDT: null, kernel code/data, user data/code (sysret order), 64-bit TSS.
  const uint64_t gdt[7] = {0,
                           segment_descriptor(0x9a, true),
                           segment_descriptor(0x92, false),
                           segment_descriptor(0xf2, false),
                           segment_descriptor(0xfa, true),
                           (kTssLimit & 0xffff) | ((kTss & 0xffffff) << 16) | (0x89ull << 40) |
                               ((kTssLimit >> 16 & 0xf) << 48) | ((kTss >> 24 & 0xff) << 56),
                           kTss >> 32};
  memory_.write(kGdt, gdt, sizeof gdt);

  // TSS: the CPL0 stack for traps from CPL3, and an I/O bitmap that opens
  // the miss, result and progress ports to CPL3 (everything else stays closed).
  uint8_t* tss = memory_.at(kTss, kTssLimit + 1);
  const uint64_t rsp0 = kKernelStackTop;
  std::memcpy(tss + 4, &rsp0, 8);
  const uint16_t iomap = kTssIomapOffset;
  std::memcpy(tss + 0x66, &iomap, 2);
  std::memset(tss + kTssIomapOffset, 0xff, 8192 + 1);
  for (const int port : {GUEST_PORT_MISS, GUEST_PORT_RESULT, GUEST_PORT_PROGRESS})
    tss[kTssIomapOffset + port / 8] &= uint8_t(~(1u << (port % 8)));

  // Exception reporters, one per vector, CPL0 GPR code only:
  //   mov eax, vector; out exception_port, al; hlt; jmp hlt
  // The VMM reads the frame at RSP. The entry is an iretq to CPL3.
  for (uint32_t v = 0; v < 32; ++v) {
    const uint8_t reporter[] = {0xb8, uint8_t(v),           0,    0,    0,
                                0xe6, GUEST_PORT_EXCEPTION, 0xf4, 0xeb, 0xfd};
    memory_.write(kKernelCode + v * kReporterSlot, reporter, sizeof reporter);
    const uint64_t handler = kKernelCode + v * kReporterSlot;
    const uint64_t gate[2] = {(handler & 0xffff) | (uint64_t(kKernelCs) << 16) | (0x8eull << 40) |
                                  ((handler >> 16 & 0xffff) << 48),
                              handler >> 32};
    memory_.write(kIdt + 16 * v, gate, sizeof gate);
  }
  const uint8_t iretq[] = {0x48, 0xcf};
  memory_.write(kKernelEntry, iretq, sizeof iretq);
  if (options_.kernel_skips_ud2) {
    // add qword [rsp], 2; iretq
    const uint8_t skip[] = {0x48, 0x83, 0x04, 0x24, 0x02, 0x48, 0xcf};
    memory_.write(kKernelCode + 6 * kReporterSlot, skip, sizeof skip);
  }

  // Page tables: 4 KiB pages identity-mapping the first kMemorySize bytes
  // except page 0 (the kernel's pages supervisor-only, the rest user), and
  // 2 MiB user pages for any memory beyond.
  const uint64_t pdpt = kPml4 + 0x1000, pd = pdpt + 0x1000, pt = pd + 0x1000;
  const uint64_t pages = kMemorySize / 4096, tables = (pages + 511) / 512;
  if (pt + tables * 0x1000 > kIdt) {
    error = "guest page tables overflow their area";
    return false;
  }
  constexpr uint64_t kP = 1, kW = 2, kU = 4;
  const uint64_t pml4e = pdpt | kP | kW | kU, pdpte = pd | kP | kW | kU;
  memory_.write(kPml4, &pml4e, 8);
  memory_.write(pdpt, &pdpte, 8);
  for (uint64_t t = 0; t < tables; ++t) {
    const uint64_t pde = (pt + t * 0x1000) | kP | kW | kU;
    memory_.write(pd + 8 * t, &pde, 8);
  }
  for (uint64_t page = 1; page < pages; ++page) {
    const uint64_t addr = page * 4096;
    const bool kernel = addr < kCacheRegion;
    const uint64_t pte = addr | kP | kW | (kernel ? 0 : kU);
    memory_.write(pt + 8 * page, &pte, 8);
  }
  constexpr uint64_t kLargePage = 0x80;
  for (uint64_t big = kMemorySize >> 21; big < memory_.size >> 21; ++big) {
    const uint64_t pde = big << 21 | kP | kW | kU | kLargePage;
    memory_.write(pd + 8 * big, &pde, 8);
  }
  return true;
}

bool MiniVmm::setup_cpu(std::string& error) {
  const int vcpu = fds_->vcpu.get();
  // CPUID: what KVM supports, minus AVX-512 unless native.
  auto cpuid = std::make_unique<CpuidList>();
  cpuid->nent = 256;
  if (ioctl(fds_->kvm.get(), kKvmGetSupportedCpuid, cpuid.get()) < 0) {
    error = errno_text("KVM_GET_SUPPORTED_CPUID");
    return false;
  }
  if (options_.native && !offers_avx512f(*cpuid)) {
    error = "--native needs AVX-512 in the guest, but KVM offers none on this CPU (use --avx2-only)";
    return false;
  }
  if (!options_.native) clear_avx512_cpuid(*cpuid);
  if (options_.migratable_cpu) {
    for (const FeatureInfo* f : untranslatable_features())
      for (uint32_t i = 0; i < cpuid->nent && i < 256; ++i) {
        kvm_cpuid_entry2& e = cpuid->entries[i];
        uint32_t* regs[4] = {&e.eax, &e.ebx, &e.ecx, &e.edx};
        if (e.function == f->leaf && e.index == f->subleaf) *regs[int(f->reg)] &= ~(1u << f->bit);
      }
  }
  if (ioctl(vcpu, kKvmSetCpuid2, cpuid.get()) < 0) {
    error = errno_text("KVM_SET_CPUID2");
    return false;
  }
  kvm_sregs sregs;
  if (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0) {
    error = errno_text("KVM_GET_SREGS");
    return false;
  }
  sregs.cs = flat_segment(kKernelCs, 11, true);
  sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = flat_segment(kKernelDs, 3, false);
  sregs.tr = kvm_segment{};
  sregs.tr.base = guest_map::kTss;
  sregs.tr.limit = uint32_t(kTssLimit);
  sregs.tr.selector = kTssSel;
  sregs.tr.type = 11;  // busy 64-bit TSS
  sregs.tr.present = 1;
  sregs.ldt = kvm_segment{};
  sregs.ldt.type = 2;
  sregs.ldt.present = 1;
  sregs.ldt.unusable = 1;
  sregs.gdt.base = guest_map::kGdt;
  sregs.gdt.limit = 7 * 8 - 1;
  sregs.idt.base = guest_map::kIdt;
  sregs.idt.limit = 256 * 16 - 1;
  sregs.cr3 = guest_map::kPml4;
  sregs.cr4 = (1u << 5) | (1u << 9) | (1u << 10) | (1u << 18);  // PAE OSFXSR OSXMMEXCPT OSXSAVE
  sregs.cr0 = 0x80050033;                                       // PG WP NE ET MP PE
  sregs.efer = (1u << 8) | (1u << 10) | (1u << 11);             // LME LMA NXE
  if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0) {
    error = errno_text("KVM_SET_SREGS");
    return false;
  }
  kvm_xcrs xcrs{};
  xcrs.nr_xcrs = 1;
  xcrs.xcrs[0].xcr = 0;
  xcrs.xcrs[0].value = kXcr0Avx2 | (options_.native ? kXcr0Avx512 : 0);
  if (ioctl(vcpu, KVM_SET_XCRS, &xcrs) < 0) {
    error = errno_text("KVM_SET_XCRS");
    return false;
  }
  return true;
}

bool MiniVmm::load_image(const std::vector<uint8_t>& image, std::string& error) {
  GuestImageHeader h;
  if (image.size() < sizeof h) {
    error = "guest image truncated";
    return false;
  }
  std::memcpy(&h, image.data(), sizeof h);
  const uint64_t end = guest_map::kImage + image.size();
  if (h.magic != GUEST_IMAGE_MAGIC || h.entry < guest_map::kImage || h.entry >= end ||
      h.text_start > h.text_end || h.text_start < guest_map::kImage || h.text_end > end ||
      h.image_end < end || h.image_end > guest_map::kUserStackTop - 0x100000) {
    error = "not a valid guest image (bad header)";
    return false;
  }
  memory_.write(guest_map::kImage, image.data(), image.size());
  entry_ = h.entry;
  return true;
}

RunOutcome MiniVmm::run(uint64_t id) {
  return start(id);
}

RunOutcome MiniVmm::start(uint64_t id, const RunLimits& limits) {
  RunOutcome out;
  const int vcpu = fds_->vcpu.get();
  // Start in the kernel at an iretq whose frame drops to the entry at CPL3.
  const uint64_t frame[5] = {entry_, kUserCs, 0x2, guest_map::kUserStackTop - 8, kUserDs};
  const uint64_t frame_at = guest_map::kKernelStackTop - sizeof frame;
  memory_.write(frame_at, frame, sizeof frame);
  kvm_regs regs{};
  regs.rip = kKernelEntry;
  regs.rsp = frame_at;
  regs.rflags = 0x2;
  regs.rdi = id;
  if (adapter_) {
    regs.rsi = adapter_->layout().vcpu + offsetof(VcpuBlock, saved_rip);
    regs.rdx = adapter_->code().dispatcher;
  }
  kvm_sregs sregs;
  if (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0 || ioctl(vcpu, KVM_SET_REGS, &regs) < 0) {
    out.message = errno_text("setting the vCPU registers");
    return out;
  }
  sregs.cs = flat_segment(kKernelCs, 11, true);
  sregs.ss = flat_segment(kKernelDs, 3, false);
  if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0) {
    out.message = errno_text("KVM_SET_SREGS");
    return out;
  }
  progress_ = VmmProgress{};
  progress_.workload_id = id;
  return resume(limits);
}

RunOutcome MiniVmm::resume(const RunLimits& limits) {
  RunOutcome out;
  const int vcpu = fds_->vcpu.get();
  kvm_run& run = *fds_->run;
  const auto pause_requested = [&] { return limits.pause_request && *limits.pause_request; };
  if (progress_.miss_pending) {
    // Paused (or handed over) at a miss hypercall: serve it from the exit
    // data KVM left in the kvm_run page.
    progress_.miss_pending = false;
    std::string error;
    if (!adapter_) {
      out.message = "a miss hypercall is pending, but this VMM has no adapter";
      return out;
    }
    if (!adapter_->handle_miss_exit(vcpu, run, error)) {
      out.message = error;
      return out;
    }
  }
  RunTimer timer(options_.timeout_seconds);
  for (;;) {
    if (pause_requested()) {
      out.kind = RunOutcome::Kind::kPaused;
      return out;
    }
    if (ioctl(vcpu, KVM_RUN, 0) < 0) {
      if (errno == EINTR && !RunTimer::expired()) continue;  // pause check above
      out.message = errno == EINTR ? "the guest ran past the time limit" : errno_text("KVM_RUN");
      return out;
    }
    if (!serve_exit(limits, out)) return out;
  }
}

bool MiniVmm::serve_exit(const RunLimits& limits, RunOutcome& out) {
  const int vcpu = fds_->vcpu.get();
  kvm_run& run = *fds_->run;
  kvm_regs regs;
  kvm_sregs sregs;
  switch (run.exit_reason) {
    case KVM_EXIT_IO: {
      const uint16_t port = run.io.port;
      const bool miss = port == GUEST_PORT_MISS && adapter_;
      if (miss || port == GUEST_PORT_PROGRESS) {
        ++progress_.exits;
        if (!miss) ++progress_.progress_events;
        if (limits.at_exit) limits.at_exit();
        const bool pause = progress_.exits == limits.pause_at_exit ||
                           (!miss && progress_.progress_events == limits.pause_at_progress) ||
                           (limits.pause_request && *limits.pause_request);
        if (pause) {
          progress_.miss_pending = miss;
          out.kind = RunOutcome::Kind::kPaused;
          return false;
        }
        if (!miss) return true;
        std::string error;
        if (!adapter_->handle_miss_exit(vcpu, run, error)) {
          out.message = error;
          return false;
        }
        return true;
      }
      if (ioctl(vcpu, KVM_GET_REGS, &regs) < 0) {
        out.message = errno_text("KVM_GET_REGS");
        return false;
      }
      out.exit_rip = regs.rip;
      if (port == GUEST_PORT_RESULT) {
        out.kind = RunOutcome::Kind::kResult;
        out.result = regs.rdi;
        return false;
      }
      if (port == GUEST_PORT_EXCEPTION) {
        out.kind = RunOutcome::Kind::kGuestException;
        out.vector = uint8_t(regs.rax);
        // Vectors that push an error code: #DF #TS #NP #SS #GP #PF #AC #CP.
        const bool has_error = (0x227d00u >> out.vector) & 1;
        uint64_t f[2] = {};
        if (!memory_.read(regs.rsp, f, sizeof f)) {
          out.kind = RunOutcome::Kind::kVmmError;
          out.message = "the guest kernel's exception frame is outside guest memory";
          return false;
        }
        out.error_code = has_error ? f[0] : 0;
        out.fault_rip = has_error ? f[1] : f[0];
        if (ioctl(vcpu, KVM_GET_SREGS, &sregs) == 0) out.cr2 = sregs.cr2;
        return false;
      }
      out.message = "the guest used an unknown I/O port " + std::to_string(port);
      return false;
    }
    case KVM_EXIT_HLT:
      out.message = "the guest halted";
      return false;
    case KVM_EXIT_SHUTDOWN:
      out.message = "the guest shut down (triple fault)";
      return false;
    case KVM_EXIT_INTERNAL_ERROR:
      out.message = "KVM internal error " + std::to_string(run.internal.suberror);
      return false;
    case KVM_EXIT_FAIL_ENTRY:
      out.message = "KVM entry failed";
      return false;
    case KVM_EXIT_INTR:
      return true;
    default:
      out.message = "unexpected KVM exit " + std::to_string(run.exit_reason);
      return false;
  }
}

}  // namespace avx512emu::kvm
