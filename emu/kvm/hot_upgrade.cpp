// Owns the hot upgrade (see hot_upgrade.h): the state memfd, the fd
// handover across exec, and the adoption on the other side.
#include "hot_upgrade.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <span>

#include "featuremap.h"
#include "migration_stream.h"
#include "state_codec.h"
#include "vcpu_snapshot.h"

namespace avx512emu::kvm {
namespace {

constexpr uint32_t kUpgradeStateVersion = 1;
constexpr uint64_t kMaxStateBytes = 64 << 20;

std::vector<uint8_t> encode(const UpgradeState& s) {
  StateWriter w;
  w.put(kUpgradeStateVersion);
  const VmOptions& o = s.options;
  w.put(uint8_t(o.native));
  w.put(uint8_t(o.cache_translations));
  w.put(o.index_slots_log2);
  w.put(o.code_area_bytes);
  w.put(o.timeout_seconds);
  w.put(o.memory_bytes);
  w.put(s.progress);
  w.put(s.entry);
  w.blob(s.adapter);
  w.put(s.events);
  w.blob(s.vcpu);
  w.put(s.pending_io);
  w.put(s.paused_at_ns);
  w.put(s.upgrades_done);
  w.put(s.misses_at_first_upgrade);
  w.blob({reinterpret_cast<const uint8_t*>(s.workload.data()), s.workload.size()});
  w.put(uint8_t(s.print_stats));
  w.put(uint64_t(s.upgrade_at_exits.size()));
  for (const uint64_t e : s.upgrade_at_exits) w.put(e);
  w.blob({reinterpret_cast<const uint8_t*>(s.binary.data()), s.binary.size()});
  return std::move(w.buffer());
}

bool decode(std::span<const uint8_t> payload, UpgradeState& s, std::string& error) {
  StateReader r(payload);
  uint32_t version = 0;
  uint8_t native = 0, cache = 0, stats = 0;
  uint64_t schedule = 0;
  std::vector<uint8_t> workload, binary;
  r.get(version);
  if (version != kUpgradeStateVersion) {
    error = "the upgrade state comes from an incompatible version";
    return false;
  }
  VmOptions& o = s.options;
  r.get(native);
  r.get(cache);
  r.get(o.index_slots_log2);
  r.get(o.code_area_bytes);
  r.get(o.timeout_seconds);
  r.get(o.memory_bytes);
  r.get(s.progress);
  r.get(s.entry);
  r.blob(s.adapter, kMaxStateBytes);
  r.get(s.events);
  r.blob(s.vcpu, kMaxStateBytes);
  r.get(s.pending_io);
  r.get(s.paused_at_ns);
  r.get(s.upgrades_done);
  r.get(s.misses_at_first_upgrade);
  r.blob(workload, 4096);
  r.get(stats);
  r.get(schedule);
  for (uint64_t i = 0; r.ok() && i < schedule && i < 4096; ++i) {
    uint64_t e = 0;
    if (r.get(e)) s.upgrade_at_exits.push_back(e);
  }
  r.blob(binary, 4096);
  if (!r.ok() || !r.at_end() || s.upgrade_at_exits.size() != schedule) {
    error = "the upgrade state is truncated or corrupt";
    return false;
  }
  o.native = native != 0;
  o.cache_translations = cache != 0;
  s.workload.assign(workload.begin(), workload.end());
  s.print_stats = stats != 0;
  s.binary.assign(binary.begin(), binary.end());
  return true;
}

//! Compares what is pending or being injected; a vector number without its
//! injected/pending flag, or an error code without has_error_code (#UD), is
//! a leftover KVM keeps, not state.
bool same_pending_events(const kvm_vcpu_events& a, const kvm_vcpu_events& b) {
  const bool a_exc = a.exception.injected || a.exception.pending;
  const bool b_exc = b.exception.injected || b.exception.pending;
  if (a.exception.injected != b.exception.injected || a.exception.pending != b.exception.pending ||
      (a_exc && b_exc &&
       (a.exception.nr != b.exception.nr ||
        a.exception.has_error_code != b.exception.has_error_code ||
        (a.exception.has_error_code && a.exception.error_code != b.exception.error_code))))
    return false;
  if (a.interrupt.injected != b.interrupt.injected || a.interrupt.shadow != b.interrupt.shadow ||
      (a.interrupt.injected && a.interrupt.nr != b.interrupt.nr))
    return false;
  return a.nmi.injected == b.nmi.injected && a.nmi.pending == b.nmi.pending &&
         a.nmi.masked == b.nmi.masked;
}

//! Pending and injected events in words, for an error message.
std::string describe_events(const kvm_vcpu_events& e) {
  std::string out;
  auto add = [&](const std::string& what) { out += (out.empty() ? "" : ", ") + what; };
  if (e.exception.injected) add("exception " + std::to_string(e.exception.nr) + " being injected");
  if (e.exception.pending) add("exception " + std::to_string(e.exception.nr) + " pending");
  if (e.interrupt.injected) add("interrupt " + std::to_string(e.interrupt.nr) + " being injected");
  if (e.interrupt.shadow) add("interrupt shadow");
  if (e.nmi.injected) add("NMI being injected");
  if (e.nmi.pending) add("NMI pending");
  if (e.nmi.masked) add("NMIs masked");
  return out.empty() ? "none" : out;
}

bool inheritable(int fd) {
  const int flags = fcntl(fd, F_GETFD);
  return flags >= 0 && fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC) == 0;
}

}  // namespace

uint64_t monotonic_ns() {
  timespec t{};
  clock_gettime(CLOCK_MONOTONIC, &t);
  return uint64_t(t.tv_sec) * 1000000000ull + uint64_t(t.tv_nsec);
}

bool exec_upgrade(MiniVmm& vm, UpgradeState state, std::string& error) {
  state.options = vm.options();
  state.progress = vm.progress();
  state.entry = vm.entry();
  state.adapter = vm.adapter() ? vm.adapter()->save_state() : std::vector<uint8_t>{};
  if (ioctl(vm.vcpu_fd(), KVM_GET_VCPU_EVENTS, &state.events) < 0) {
    error = std::string("KVM_GET_VCPU_EVENTS: ") + std::strerror(errno);
    return false;
  }
  // KVM serves a VM's ioctls only in the process (mm) that created it, so
  // the successor rebuilds the VM and vCPU from this state around the
  // inherited memory.
  if (!vm.complete_pending_exit(error)) return false;
  VcpuSnapshot snapshot;
  if (!capture_vcpu(vm.vm_fd(), vm.vcpu_fd(), snapshot, error)) return false;
  // What the successor must find: the events as they stand once the last
  // exit is complete (an exception KVM was delivering when KVM_RUN was
  // interrupted may have moved on since the first read).
  state.events = snapshot.events;
  state.vcpu = encode_vcpu(snapshot);
  state.pending_io = vm.last_exit_io();
  const int state_fd = memfd_create("avx512emu-upgrade-state", MFD_CLOEXEC);
  if (state_fd < 0) {
    error = std::string("upgrade state memfd: ") + std::strerror(errno);
    return false;
  }
  const std::vector<uint8_t> payload = encode(state);
  MigrationWriter w(state_fd);
  if (!w.write_header() ||
      !w.write_record(MigrationRecord::kVmmState, payload.data(), payload.size()) || !w.finish() ||
      lseek(state_fd, 0, SEEK_SET) != 0) {
    error = "writing the upgrade state failed: " + w.error();
    close(state_fd);
    return false;
  }
  const VmmFds fds = vm.fds();
  for (const int fd : {fds.vm, fds.vcpu, fds.memory, fds.cache, state_fd}) {
    if (!inheritable(fd)) {
      error = std::string("clearing O_CLOEXEC: ") + std::strerror(errno);
      for (const int f : {fds.vm, fds.vcpu, fds.memory, fds.cache}) fcntl(f, F_SETFD, FD_CLOEXEC);
      close(state_fd);
      return false;
    }
  }
  const std::string spec = "vm=" + std::to_string(fds.vm) + ",vcpu=" + std::to_string(fds.vcpu) +
                           ",memory=" + std::to_string(fds.memory) +
                           ",cache=" + std::to_string(fds.cache) +
                           ",state=" + std::to_string(state_fd);
  const std::string binary = state.binary.empty() ? "/proc/self/exe" : state.binary;
  std::fflush(stdout);
  std::fflush(stderr);
  // An upgrade request that arrives while the successor starts stays
  // pending (the mask survives exec) until it catches the signal.
  sigset_t usr2, saved_mask;
  sigemptyset(&usr2);
  sigaddset(&usr2, SIGUSR2);
  sigprocmask(SIG_BLOCK, &usr2, &saved_mask);
  char* argv[] = {const_cast<char*>(binary.c_str()), const_cast<char*>("vm"),
                  const_cast<char*>("--resume-upgrade"), const_cast<char*>(spec.c_str()), nullptr};
  execv(binary.c_str(), argv);
  error = "exec " + binary + ": " + std::strerror(errno);
  sigprocmask(SIG_SETMASK, &saved_mask, nullptr);
  for (const int f : {fds.vm, fds.vcpu, fds.memory, fds.cache}) fcntl(f, F_SETFD, FD_CLOEXEC);
  close(state_fd);
  return false;
}

bool resume_after_upgrade(const std::string& fd_spec, MiniVmm& vm, UpgradeState& state,
                          std::string& error) {
  VmmFds fds;
  int state_fd = -1;
  int seen = 0;
  const char* p = fd_spec.c_str();
  while (*p) {
    const char* eq = std::strchr(p, '=');
    if (!eq) break;
    const std::string name(p, eq);
    char* end = nullptr;
    const long fd = std::strtol(eq + 1, &end, 10);
    if (end == eq + 1 || fd < 0 || fd > 1 << 20) break;
    int* slot = name == "vm"       ? &fds.vm
                : name == "vcpu"   ? &fds.vcpu
                : name == "memory" ? &fds.memory
                : name == "cache"  ? &fds.cache
                : name == "state"  ? &state_fd
                                   : nullptr;
    if (!slot) break;
    *slot = int(fd);
    ++seen;
    p = *end == ',' ? end + 1 : end;
    if (*end != ',' && *end) break;
  }
  if (seen != 5 || *p || fds.vm < 0 || fds.vcpu < 0 || fds.memory < 0 || fds.cache < 0 ||
      state_fd < 0) {
    error = "--resume-upgrade wants vm=FD,vcpu=FD,memory=FD,cache=FD,state=FD";
    return false;
  }
  MigrationReader r(state_fd, kMaxStateBytes);
  MigrationRecord type;
  std::vector<uint8_t> payload, end_payload;
  const bool read = r.read_header() && r.next(type, payload) == MigrationReader::Next::kRecord &&
                    type == MigrationRecord::kVmmState &&
                    r.next(type, end_payload) == MigrationReader::Next::kEnd;
  close(state_fd);
  if (!read) {
    error = "the upgrade state is unreadable: " +
            (r.error().empty() ? std::string("unexpected records") : r.error());
    return false;
  }
  if (!decode(payload, state, error)) return false;
  VcpuSnapshot snapshot;
  if (!decode_vcpu(state.vcpu, snapshot, error)) return false;
  if (!vm.adopt(state.options, fds, state.adapter, state.progress, state.entry, error))
    return false;
  if (!restore_vcpu(vm.vcpu_fd(), snapshot, state.options.native ? kXcr0Avx512 | 0x7 : 0x7, error))
    return false;
  if (state.progress.miss_pending) vm.set_last_exit_io(state.pending_io);
  kvm_vcpu_events now{};
  if (ioctl(vm.vcpu_fd(), KVM_GET_VCPU_EVENTS, &now) < 0) {
    error = std::string("KVM_GET_VCPU_EVENTS: ") + std::strerror(errno);
    return false;
  }
  if (!same_pending_events(now, state.events)) {
    error =
        "KVM did not take the vCPU's pending interrupt and exception state over (before the "
        "upgrade: " +
        describe_events(state.events) + "; after: " + describe_events(now) +
        "); the guest would lose or repeat an event, so it is not resumed";
    return false;
  }
  return true;
}

}  // namespace avx512emu::kvm
