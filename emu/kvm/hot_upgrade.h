// Owns the hot upgrade of `avx512emu vm`: at a safe point (a vCPU exit, or
// KVM_RUN interrupted by the request) the VMM writes its own state as
// migration_stream records into a memfd, clears O_CLOEXEC on that memfd, the
// guest-memory and cache memfds, and execs the new binary with
// `vm --resume-upgrade FDS`. The new process maps the same memfds: no guest
// memory is copied and nothing is re-translated. KVM serves VM and vCPU
// ioctls only in the process that created the VM (others get EIO), so the
// VM fd is passed but the successor creates a new VM and vCPU over the same
// memory and loads the saved vCPU state (registers, XSAVE, pending events);
// an unserved miss hypercall is carried as its exit data and served there.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <string>
#include <vector>

#include "mini_vmm.h"

namespace avx512emu::kvm {

//! What the VMM process carries across exec besides the inherited fds.
struct UpgradeState {
  VmOptions options;
  VmmProgress progress;
  uint64_t entry = 0;
  std::vector<uint8_t> adapter;  //!< KvmAdapter::save_state(); empty when native.
  kvm_vcpu_events events{};      //!< Checked against the vCPU after exec.
  std::vector<uint8_t> vcpu;     //!< encode_vcpu() of the vCPU at the pause.
  PortIoExit pending_io;         //!< The unserved miss exit, when miss_pending.
  uint64_t paused_at_ns = 0;     //!< CLOCK_MONOTONIC when the vCPU stopped.
  uint32_t upgrades_done = 0;    //!< Including this one.
  uint64_t misses_at_first_upgrade = 0;
  std::string workload;  //!< Name, as given on the command line.
  bool print_stats = false;
  std::vector<uint64_t> upgrade_at_exits;  //!< Remaining scheduled upgrade points.
  std::string binary;                      //!< What to exec next time ("" = /proc/self/exe).
};

uint64_t monotonic_ns();

//! Saves `state` (with the VM's progress and adapter taken from `vm`) and
//! execs the binary. Returns only on failure, with `error` set; the VM is
//! then untouched and can be resumed.
bool exec_upgrade(MiniVmm& vm, UpgradeState state, std::string& error);

//! In the new process: parses "vm=N,vcpu=N,memory=N,cache=N,state=N",
//! reads the state memfd and adopts the VM. False with `error` set.
bool resume_after_upgrade(const std::string& fd_spec, MiniVmm& vm, UpgradeState& state,
                          std::string& error);

}  // namespace avx512emu::kvm
