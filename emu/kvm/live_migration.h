// Owns live migration between two `avx512emu vm` processes over TCP: the
// source's pre-copy of guest memory (KVM dirty-page logging where the host
// supports it, else stop-and-copy), the switchover at a chosen progress
// point, and the destination's feature check and VM rebuild, including the
// move of AVX-512 state between an XSAVE image and the adapter's shadow.
//
// Conversation (migration_stream records; each side writes one stream):
//   source -> destination: kFeatureMap, kVmConfig
//   destination -> source: kVerdict (accepted, or refused with the reason)
//   source -> destination: kMemoryPages..., kRoundDone per pre-copy round,
//                          then at switchover the last pages, kVcpuState,
//                          kVmmState, kEnd
//   destination -> source: kVerdict once the VM is rebuilt, kEnd
// The source keeps its VM until that last verdict: on any failure it resumes
// the guest itself and loses nothing.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "mini_vmm.h"

namespace avx512emu::kvm {

struct FeatureInfo;

//! AVX-512 features (and EVEX extensions) of which avx512emu translates
//! nothing. A VM that may migrate to an emulating host is not shown them
//! (a migratable CPU model), and a source that shows them is refused.
const std::vector<const FeatureInfo*>& untranslatable_features();

struct MigrationSourceOptions {
  std::string address;  //!< HOST:PORT of the destination.
  //! Switch over at this progress event (1-based), inside a workload loop.
  uint64_t after_progress = 1;
  //! A CPUID dump (featuremap json) to present instead of this host's
  //! feature map (describing a different source CPU model).
  std::string feature_map_json;
};

struct MigrationReport {
  bool migrated = false;
  std::string failure;  //!< Why not, when not migrated.
  bool dirty_logging = false;
  std::string dirty_logging_note;  //!< Why stop-and-copy, when so.
  uint64_t rounds = 0;             //!< Pre-copy rounds completed before switchover.
  uint64_t pages_sent = 0, final_pages = 0, bytes_sent = 0;
  double downtime_ms = 0, total_ms = 0;
  int live_zmm16_31 = 0, live_k = 0;  //!< Non-zero registers at switchover.
};

//! Runs workload `id` on `vm`, migrating at the switchover point. Returns the
//! local outcome when the guest did not migrate (kind kResult etc.), or a
//! kPaused outcome when it migrated (the destination now runs it).
RunOutcome run_and_migrate(MiniVmm& vm, uint64_t id, const MigrationSourceOptions& options,
                           MigrationReport& report);

struct MigrationDestinationOptions {
  std::string address;  //!< HOST:PORT to listen on (port 0: any).
  VmOptions vm;         //!< native or avx2-only, timeouts.
};

//! Listens, accepts one source, checks its feature map, rebuilds its VM in
//! `vm` and acknowledges. False with `error` when the migration was refused
//! or the stream was bad (the source is told, where the socket still works).
bool receive_migration(const MigrationDestinationOptions& options, MiniVmm& vm, std::string& error);

}  // namespace avx512emu::kvm
