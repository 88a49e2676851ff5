// Owns vCPU state capture, restore and encoding (see vcpu_snapshot.h).
#include "vcpu_snapshot.h"

#include <sys/ioctl.h>

#include <cerrno>
#include <cstring>

#include "state_codec.h"

namespace avx512emu::kvm {
namespace {

// The uapi structs end in flexible arrays, whose C++ size differs from C's
// and with it the ioctl numbers: these are the C sizes.
constexpr unsigned long kKvmGetMsrs = _IOC(_IOC_READ | _IOC_WRITE, KVMIO, 0x88, 8);
constexpr unsigned long kKvmSetMsrs = _IOC(_IOC_WRITE, KVMIO, 0x89, 8);
constexpr size_t kLegacyXsaveBytes = 4096;
constexpr unsigned long kKvmGetXsave = _IOC(_IOC_READ, KVMIO, 0xa4, kLegacyXsaveBytes);
constexpr unsigned long kKvmSetXsave = _IOC(_IOC_WRITE, KVMIO, 0xa5, kLegacyXsaveBytes);
constexpr unsigned long kKvmGetXsave2 = _IOC(_IOC_READ, KVMIO, 0xcf, kLegacyXsaveBytes);

struct OneMsr {
  uint32_t nmsrs, pad;
  kvm_msr_entry entry;
};

// The MSRs a 64-bit guest kernel's state lives in beyond sregs (EFER, FS and
// GS bases travel there): syscall entry, swapgs base, TSC_AUX, sysenter,
// PAT, and the TSC so guest time does not jump backwards.
constexpr uint32_t kMigratedMsrs[] = {0xc0000081, 0xc0000082, 0xc0000083, 0xc0000084,
                                      0xc0000102, 0xc0000103, 0x174,      0x175,
                                      0x176,      0x277,      0x10};

constexpr uint32_t kVcpuStateVersion = 1;
constexpr uint64_t kMaxXsaveBytes = 1 << 20;
constexpr uint32_t kMaxMsrs = 64;

std::string errno_text(const char* what) {
  return std::string(what) + ": " + std::strerror(errno);
}

void put_component(StateWriter& w, const XsaveComponent& c) {
  w.put(c.offset);
  w.put(c.size);
}
void get_component(StateReader& r, XsaveComponent& c) {
  r.get(c.offset);
  r.get(c.size);
}

}  // namespace

bool capture_vcpu(int vm_fd, int vcpu_fd, VcpuSnapshot& out, std::string& error) {
  if (ioctl(vcpu_fd, KVM_GET_REGS, &out.regs) < 0 ||
      ioctl(vcpu_fd, KVM_GET_SREGS, &out.sregs) < 0) {
    error = errno_text("KVM_GET_REGS/SREGS");
    return false;
  }
  if (ioctl(vcpu_fd, KVM_GET_XCRS, &out.xcrs) < 0) {
    error = errno_text("KVM_GET_XCRS");
    return false;
  }
  if (ioctl(vcpu_fd, KVM_GET_VCPU_EVENTS, &out.events) < 0) {
    error = errno_text("KVM_GET_VCPU_EVENTS");
    return false;
  }
  out.msrs.clear();
  for (const uint32_t index : kMigratedMsrs) {
    OneMsr m{1, 0, {index, 0, 0}};
    if (ioctl(vcpu_fd, kKvmGetMsrs, &m) == 1) out.msrs.push_back(m.entry);
  }
  const int xsave2 = ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
  out.xsave.assign(xsave2 > int(kLegacyXsaveBytes) ? size_t(xsave2) : kLegacyXsaveBytes, 0);
  if (ioctl(vcpu_fd, xsave2 > 0 ? kKvmGetXsave2 : kKvmGetXsave, out.xsave.data()) < 0) {
    error = errno_text(xsave2 > 0 ? "KVM_GET_XSAVE2" : "KVM_GET_XSAVE");
    return false;
  }
  out.layout = host_xsave_layout();
  const std::string bad = check_xsave_layout(out.layout, out.xsave.size());
  if (!bad.empty()) {
    error = "this host's XSAVE layout: " + bad;
    return false;
  }
  return true;
}

bool restore_vcpu(int vcpu_fd, const VcpuSnapshot& s, uint64_t xcr0, std::string& error) {
  if (ioctl(vcpu_fd, KVM_SET_SREGS, &s.sregs) < 0) {
    error = errno_text("KVM_SET_SREGS");
    return false;
  }
  kvm_xcrs xcrs = s.xcrs;
  for (uint32_t i = 0; i < xcrs.nr_xcrs && i < KVM_MAX_XCRS; ++i)
    if (xcrs.xcrs[i].xcr == 0) xcrs.xcrs[i].value = xcr0;
  if (ioctl(vcpu_fd, KVM_SET_XCRS, &xcrs) < 0) {
    error = errno_text("KVM_SET_XCRS");
    return false;
  }
  if (ioctl(vcpu_fd, kKvmSetXsave, s.xsave.data()) < 0) {
    error = errno_text("KVM_SET_XSAVE");
    return false;
  }
  if (ioctl(vcpu_fd, KVM_SET_REGS, &s.regs) < 0) {
    error = errno_text("KVM_SET_REGS");
    return false;
  }
  for (const kvm_msr_entry& e : s.msrs) {
    OneMsr m{1, 0, e};
    if (ioctl(vcpu_fd, kKvmSetMsrs, &m) != 1) {
      error = "KVM_SET_MSRS refused MSR " + std::to_string(e.index);
      return false;
    }
  }
  kvm_vcpu_events events = s.events;
  // Only the state the source had: no fields this VMM did not read.
  events.flags &= KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR |
                  KVM_VCPUEVENT_VALID_SHADOW | KVM_VCPUEVENT_VALID_SMM;
  if (ioctl(vcpu_fd, KVM_SET_VCPU_EVENTS, &events) < 0) {
    error = errno_text("KVM_SET_VCPU_EVENTS");
    return false;
  }
  return true;
}

std::vector<uint8_t> encode_vcpu(const VcpuSnapshot& s) {
  StateWriter w;
  w.put(kVcpuStateVersion);
  w.put(s.regs);
  w.put(s.sregs);
  w.put(s.xcrs);
  w.put(s.events);
  w.put(uint32_t(s.msrs.size()));
  for (const kvm_msr_entry& e : s.msrs) w.put(e);
  w.put(s.layout.image_size);
  for (const XsaveComponent* c :
       {&s.layout.ymm_hi128, &s.layout.opmask, &s.layout.zmm_hi256, &s.layout.hi16_zmm})
    put_component(w, *c);
  w.blob(s.xsave);
  return std::move(w.buffer());
}

bool decode_vcpu(std::span<const uint8_t> payload, VcpuSnapshot& out, std::string& error) {
  StateReader r(payload);
  uint32_t version = 0, msrs = 0;
  r.get(version);
  r.get(out.regs);
  r.get(out.sregs);
  r.get(out.xcrs);
  r.get(out.events);
  r.get(msrs);
  if (!r.ok() || version != kVcpuStateVersion || msrs > kMaxMsrs) {
    error = "the vCPU state record is truncated, of another version or corrupt";
    return false;
  }
  out.msrs.resize(msrs);
  for (kvm_msr_entry& e : out.msrs) r.get(e);
  r.get(out.layout.image_size);
  for (XsaveComponent* c :
       {&out.layout.ymm_hi128, &out.layout.opmask, &out.layout.zmm_hi256, &out.layout.hi16_zmm})
    get_component(r, *c);
  r.blob(out.xsave, kMaxXsaveBytes);
  if (!r.ok() || !r.at_end() || out.xcrs.nr_xcrs > KVM_MAX_XCRS) {
    error = "the vCPU state record is truncated or corrupt";
    return false;
  }
  const std::string bad = check_xsave_layout(out.layout, out.xsave.size());
  if (!bad.empty()) {
    error = "the source's XSAVE layout: " + bad;
    return false;
  }
  return true;
}

void merge_shadow(const CpuState& shadow, CpuState& hardware) {
  for (int i = 0; i < 16; ++i) {
    const uint8_t* now = hardware.zmm[i];
    const uint8_t* last = shadow.zmm[i];  // what the last trap's exit left
    static constexpr uint8_t kZero[16] = {};
    bool keep = std::memcmp(now, last, 32) == 0;
    if (!keep && std::memcmp(now + 16, last + 16, 16) == 0)
      keep = std::memcmp(now + 16, kZero, 16) != 0;  // legacy SSE wrote the low half
    if (keep)
      std::memcpy(hardware.zmm[i] + 32, shadow.zmm[i] + 32, 32);
    else
      std::memset(hardware.zmm[i] + 32, 0, 32);
  }
  std::memcpy(hardware.zmm[16], shadow.zmm[16], 16 * 64);
  std::memcpy(hardware.k, shadow.k, sizeof hardware.k);
}

void load_shadow(const CpuState& arch, CpuState& shadow) {
  std::memcpy(shadow.zmm, arch.zmm, sizeof shadow.zmm);
  std::memcpy(shadow.k, arch.k, sizeof shadow.k);
  shadow.mxcsr = arch.mxcsr;
}

XsaveLayout without_avx512(XsaveLayout layout) {
  layout.opmask = layout.zmm_hi256 = layout.hi16_zmm = XsaveComponent{};
  return layout;
}

}  // namespace avx512emu::kvm
