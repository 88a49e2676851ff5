// Owns the vCPU state that migrates between VMMs: registers, sregs, XCRs,
// pending events, the MSRs the guest kernel relies on and the XSAVE image
// (with the layout it was taken in), its encoding in a kVcpuState record,
// and the move of the AVX-512 state between a natively running vCPU's XSAVE
// image and an emulating VMM's shadow block.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "cpu_state.h"
#include "xsave_state.h"

namespace avx512emu::kvm {

struct VcpuSnapshot {
  kvm_regs regs{};
  kvm_sregs sregs{};
  kvm_xcrs xcrs{};
  kvm_vcpu_events events{};
  std::vector<kvm_msr_entry> msrs;  //!< Those of the migrated set this host has.
  XsaveLayout layout;               //!< Where the image's components are.
  std::vector<uint8_t> xsave;       //!< Standard-format XSAVE image.
};

//! Reads the vCPU's state (KVM_GET_XSAVE2 where the VM supports it, else
//! KVM_GET_XSAVE). `vm_fd` answers KVM_CHECK_EXTENSION.
bool capture_vcpu(int vm_fd, int vcpu_fd, VcpuSnapshot& out, std::string& error);

//! Loads a snapshot into a vCPU, in an order KVM accepts (sregs before
//! regs, XCRs before XSAVE, events last). `xcr0` replaces the snapshot's
//! XCR0: the destination's own policy decides which state the CPU holds.
bool restore_vcpu(int vcpu_fd, const VcpuSnapshot& s, uint64_t xcr0, std::string& error);

std::vector<uint8_t> encode_vcpu(const VcpuSnapshot& s);
//! False with `error` for a payload that is truncated, has trailing bytes,
//! or describes an impossible XSAVE layout.
bool decode_vcpu(std::span<const uint8_t> payload, VcpuSnapshot& out, std::string& error);

//! The architectural vector state of an emulating VMM's vCPU: `hardware`
//! holds what the CPU has (xmm/ymm0-15, MXCSR), `shadow` the adapter's
//! block. zmm0-15[511:256], zmm16-31 and k0-7 come from the shadow, except
//! that an upper half a VEX write has zeroed since the last trap (the
//! dispatcher's rule) reads as zero.
void merge_shadow(const CpuState& shadow, CpuState& hardware);

//! The reverse for a destination that emulates: the shadow takes the whole
//! vector state, so the dispatcher's next entry sees ymm0-15 unchanged.
void load_shadow(const CpuState& arch, CpuState& shadow);

//! `layout` without the AVX-512 components, for a vCPU whose XCR0 lacks them.
XsaveLayout without_avx512(XsaveLayout layout);

}  // namespace avx512emu::kvm
