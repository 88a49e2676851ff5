// Owns `avx512emu vm` (see vm_command.h): argument parsing, the run (plain,
// migrating out, migrated in, or across hot upgrades) and its report. The
// result goes to stdout, everything else to stderr.
#include "vm_command.h"

#include <signal.h>

#include <cinttypes>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "avx512emu.h"
#include "hot_upgrade.h"
#include "live_migration.h"
#include "mini_vmm.h"

namespace avx512emu::kvm {
namespace {

constexpr const char* kVmUsage =
    "usage: avx512emu vm [--native|--avx2-only] [--stats] [--memory MIB] [--cache FILE] WORKLOAD\n"
    "       avx512emu vm [...] --migrate-to HOST:PORT --migrate-after N WORKLOAD\n"
    "       avx512emu vm [--native|--avx2-only] --listen HOST:PORT\n"
    "       avx512emu vm --list-workloads\n"
    "\n"
    "Runs a bundled guest workload (a tiny 64-bit kernel and a CPL3 program with\n"
    "AVX-512 code) in a VM on /dev/kvm and prints its result on stdout.\n"
    "\n"
    "options:\n"
    "  --avx2-only       hide AVX-512 from the guest; its AVX-512 instructions\n"
    "                    trap and run as avx512emu translations (default)\n"
    "  --native          let the guest's AVX-512 instructions run on the CPU\n"
    "  --stats           print the trap-path counters on stderr\n"
    "  --memory MIB      guest memory in MiB (16 to 1024, even; default 16)\n"
    "  --cache FILE      take translations from FILE (avx512emu cache build) before\n"
    "                    compiling; a missing, corrupt, foreign or version-mismatched\n"
    "                    file stops here and the VM is not started\n"
    "  --list-workloads  list the workloads, one per line, name first\n"
    "  --help            this text\n"
    "\n"
    "live migration:\n"
    "  --listen HOST:PORT        be the destination: accept one migration, then\n"
    "                            finish the workload and print its result (port 0:\n"
    "                            any; the port is reported on stderr)\n"
    "  --migrate-to HOST:PORT    be the source: pre-copy guest memory (KVM dirty\n"
    "                            logging, else stop-and-copy) while the guest runs,\n"
    "                            and hand the VM over at the --migrate-after point.\n"
    "                            If the destination refuses or fails, the guest\n"
    "                            keeps running here and the result is printed here\n"
    "  --migrate-after N         switch over at the guest's Nth progress event (one\n"
    "                            per iteration of a workload's main loop; default 1)\n"
    "  --source-feature-map FILE present this CPUID dump (featuremap json) to the\n"
    "                            destination instead of this host's feature map\n"
    "\n"
    "hot upgrade (the VMM execs a new binary; the guest keeps its memory, vCPU and\n"
    "translation cache):\n"
    "  SIGUSR2                   upgrade now (at the next vCPU exit or interruption)\n"
    "  --upgrade-after N,M,...   upgrade when the VMM's exit count (progress and miss\n"
    "                            exits) reaches N, then M, ... (for tests)\n"
    "  --upgrade-binary PATH     exec PATH instead of this binary\n"
    "  --resume-upgrade FDS      used by an upgrading VMM to start its successor\n";

volatile std::sig_atomic_t g_upgrade_requested = 0;
void on_upgrade_signal(int) {
  g_upgrade_requested = 1;
}

//! Catches SIGUSR2 as an upgrade request (no SA_RESTART: KVM_RUN must
//! return) and unblocks it: an upgrading VMM blocks it across exec, so a
//! request that arrives before this process is ready stays pending instead
//! of killing it.
void catch_upgrade_signal() {
  struct sigaction sa {};
  sa.sa_handler = on_upgrade_signal;
  sigaction(SIGUSR2, &sa, nullptr);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGUSR2);
  sigprocmask(SIG_UNBLOCK, &set, nullptr);
}

const WorkloadInfo* find_workload(const std::string& name) {
  for (const WorkloadInfo& w : bundled_workloads())
    if (name == w.name) return &w;
  return nullptr;
}
const WorkloadInfo* find_workload(uint64_t id) {
  for (const WorkloadInfo& w : bundled_workloads())
    if (id == w.id) return &w;
  return nullptr;
}

void print_stats(const AdapterStats& s) {
  std::fprintf(stderr,
               "avx512emu vm: traps %" PRIu64 ", misses %" PRIu64 ", hypercalls %" PRIu64
               ", installs %" PRIu64 ", hits %" PRIu64 ", flushes %" PRIu64
               ", injected exceptions %" PRIu64 "\n",
               s.traps, s.misses, s.hypercalls, s.installs, s.hits, s.flushes, s.injected);
  const TranslateStats t = translate_stats();
  std::fprintf(stderr,
               "avx512emu vm: translations: %" PRIu64 " compiled by the JIT, %" PRIu64
               " from a cache file\n",
               t.translations, t.file_hits);
}

//! Prints how a run ended; returns the exit status.
int report_outcome(const WorkloadInfo& w, const RunOutcome& r) {
  switch (r.kind) {
    case RunOutcome::Kind::kResult:
      std::printf("%s %" PRIu64 "\n", w.name, r.result);
      return 0;
    case RunOutcome::Kind::kGuestException:
      std::fprintf(stderr,
                   "avx512emu vm: the guest took exception %u at %#" PRIx64 " (error code %#" PRIx64
                   ", cr2 %#" PRIx64 ")\n",
                   r.vector, r.fault_rip, r.error_code, r.cr2);
      return 1;
    case RunOutcome::Kind::kVmmError:
    case RunOutcome::Kind::kPaused:
      std::fprintf(stderr, "avx512emu vm: %s\n", r.message.c_str());
      return 1;
  }
  return 1;
}

bool parse_u64(const char* s, uint64_t& out) {
  char* end = nullptr;
  errno = 0;
  out = std::strtoull(s, &end, 10);
  return *s && *s != '-' && end && !*end && errno == 0;
}

bool parse_list(const char* s, std::vector<uint64_t>& out) {
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) {
    uint64_t v = 0;
    if (!parse_u64(item.c_str(), v) || v == 0) return false;
    out.push_back(v);
  }
  return !out.empty();
}

//! Runs (or continues) the workload with upgrades at the scheduled exits
//! and on SIGUSR2, until it ends. Upgrades that fail are reported and the
//! run goes on in this process.
RunOutcome run_with_upgrades(MiniVmm& vm, UpgradeState& upgrade, bool fresh, uint64_t id) {
  catch_upgrade_signal();
  RunLimits limits;
  limits.pause_request = &g_upgrade_requested;
  for (;;) {
    while (!upgrade.upgrade_at_exits.empty() &&
           upgrade.upgrade_at_exits.front() <= vm.progress().exits)
      upgrade.upgrade_at_exits.erase(upgrade.upgrade_at_exits.begin());
    limits.pause_at_exit =
        upgrade.upgrade_at_exits.empty() ? UINT64_MAX : upgrade.upgrade_at_exits.front();
    const RunOutcome r = fresh ? vm.start(id, limits) : vm.resume(limits);
    fresh = false;
    if (r.kind != RunOutcome::Kind::kPaused) return r;
    g_upgrade_requested = 0;
    upgrade.paused_at_ns = monotonic_ns();
    if (upgrade.upgrades_done++ == 0 && vm.adapter())
      upgrade.misses_at_first_upgrade = vm.adapter()->stats().misses;
    std::string error;
    exec_upgrade(vm, upgrade, error);  // returns only on failure
    std::fprintf(stderr, "avx512emu vm: upgrade failed: %s; continuing in this process\n",
                 error.c_str());
    --upgrade.upgrades_done;
  }
}

bool read_text_file(const char* path, std::string& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::stringstream s;
  s << in.rdbuf();
  out = s.str();
  return out.size() < (16 << 20);
}

}  // namespace

int vm_command(int argc, char** argv) {
  VmOptions options;
  bool stats = false, list = false, mode_given = false;
  const char* workload = nullptr;
  const char *listen = nullptr, *migrate_to = nullptr, *resume_spec = nullptr;
  const char *upgrade_binary = nullptr, *source_map = nullptr;
  uint64_t migrate_after = 1;
  bool migrate_after_given = false;
  std::vector<uint64_t> upgrade_points;
  for (int i = 0; i < argc; ++i) {
    const char* a = argv[i];
    // Options with a value take the next argument.
    auto value = [&](const char*& out) {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "avx512emu vm: %s needs a value\n%s", a, kVmUsage);
        return false;
      }
      out = argv[++i];
      return true;
    };
    const char* v = nullptr;
    if (!std::strcmp(a, "--help") || !std::strcmp(a, "-h")) {
      std::fputs(kVmUsage, stdout);
      return 0;
    }
    if (!std::strcmp(a, "--native") || !std::strcmp(a, "--avx2-only")) {
      const bool native = !std::strcmp(a, "--native");
      if (mode_given && options.native != native) {
        std::fputs("avx512emu vm: --native and --avx2-only exclude each other\n", stderr);
        return 2;
      }
      options.native = native;
      mode_given = true;
    } else if (!std::strcmp(a, "--stats")) {
      stats = true;
    } else if (!std::strcmp(a, "--list-workloads")) {
      list = true;
    } else if (!std::strcmp(a, "--memory")) {
      uint64_t mib = 0;
      if (!value(v)) return 2;
      if (!parse_u64(v, mib) || mib < 16 || mib > 1024 || mib % 2) {
        std::fprintf(stderr, "avx512emu vm: --memory wants an even number of MiB, 16 to 1024\n");
        return 2;
      }
      options.memory_bytes = mib << 20;
    } else if (!std::strcmp(a, "--cache")) {
      if (!value(v)) return 2;
      std::string cache_error;
      if (!load_translation_cache(v, cache_error)) {
        std::fprintf(stderr, "avx512emu vm: cache file refused: %s; not starting the VM\n",
                     cache_error.c_str());
        return 3;
      }
    } else if (!std::strcmp(a, "--listen")) {
      if (!value(listen)) return 2;
    } else if (!std::strcmp(a, "--migrate-to")) {
      if (!value(migrate_to)) return 2;
    } else if (!std::strcmp(a, "--migrate-after")) {
      if (!value(v)) return 2;
      if (!parse_u64(v, migrate_after) || migrate_after == 0) {
        std::fprintf(stderr, "avx512emu vm: --migrate-after wants a progress event number >= 1\n");
        return 2;
      }
      migrate_after_given = true;
    } else if (!std::strcmp(a, "--source-feature-map")) {
      if (!value(source_map)) return 2;
    } else if (!std::strcmp(a, "--upgrade-after")) {
      if (!value(v)) return 2;
      if (!parse_list(v, upgrade_points)) {
        std::fprintf(stderr, "avx512emu vm: --upgrade-after wants exit counts N,M,... (>= 1)\n");
        return 2;
      }
    } else if (!std::strcmp(a, "--upgrade-binary")) {
      if (!value(upgrade_binary)) return 2;
    } else if (!std::strcmp(a, "--resume-upgrade")) {
      if (!value(resume_spec)) return 2;
    } else if (a[0] == '-') {
      std::fprintf(stderr, "avx512emu vm: unknown option '%s'\n%s", a, kVmUsage);
      return 2;
    } else if (workload) {
      std::fprintf(stderr, "avx512emu vm: one workload at a time ('%s' and '%s')\n", workload, a);
      return 2;
    } else {
      workload = a;
    }
  }
  if (list) {
    for (const WorkloadInfo& w : bundled_workloads())
      std::printf("%s  %s\n", w.name, w.description);
    return 0;
  }
  std::string error;

  if (resume_spec) {  // the successor of an upgrading VMM
    catch_upgrade_signal();
    MiniVmm vm;
    UpgradeState upgrade;
    if (!resume_after_upgrade(resume_spec, vm, upgrade, error)) {
      std::fprintf(stderr, "avx512emu vm: cannot resume after the upgrade: %s\n", error.c_str());
      return 1;
    }
    const WorkloadInfo* w = find_workload(upgrade.workload);
    if (!w) {
      std::fprintf(stderr, "avx512emu vm: the upgraded VM runs an unknown workload\n");
      return 1;
    }
    const uint64_t carried = vm.adapter() ? vm.adapter()->cached_translations() : 0;
    std::fprintf(stderr,
                 "avx512emu vm: upgrade %u: pause %.1f us, %" PRIu64
                 " translations carried, %s, at exit %" PRIu64 "\n",
                 upgrade.upgrades_done, double(monotonic_ns() - upgrade.paused_at_ns) / 1000.0,
                 carried,
                 upgrade.progress.miss_pending ? "miss hypercall in flight" : "no miss in flight",
                 upgrade.progress.exits);
    const RunOutcome r = run_with_upgrades(vm, upgrade, false, w->id);
    if (upgrade.print_stats && vm.adapter()) {
      print_stats(vm.adapter()->stats());
      std::fprintf(
          stderr, "avx512emu vm: upgrades %u, misses after the first upgrade %" PRIu64 "\n",
          upgrade.upgrades_done, vm.adapter()->stats().misses - upgrade.misses_at_first_upgrade);
    }
    return report_outcome(*w, r);
  }

  if (listen) {
    if (workload || migrate_to) {
      std::fputs("avx512emu vm: --listen takes no workload and no --migrate-to\n", stderr);
      return 2;
    }
    MiniVmm vm;
    MigrationDestinationOptions d;
    d.address = listen;
    d.vm = options;
    if (!receive_migration(d, vm, error)) {
      std::fprintf(stderr, "avx512emu vm: %s\n", error.c_str());
      return 1;
    }
    const WorkloadInfo* w = find_workload(vm.progress().workload_id);
    if (!w) {
      std::fputs("avx512emu vm: the migrated VM runs an unknown workload\n", stderr);
      return 1;
    }
    const RunOutcome r = vm.resume();
    if (stats) print_stats(vm.adapter() ? vm.adapter()->stats() : AdapterStats{});
    return report_outcome(*w, r);
  }

  if (!workload) {
    std::fprintf(stderr, "avx512emu vm: no workload given\n%s", kVmUsage);
    return 2;
  }
  const WorkloadInfo* w = find_workload(workload);
  if (!w) {
    std::fprintf(stderr,
                 "avx512emu vm: unknown workload '%s' (see avx512emu vm --list-workloads)\n",
                 workload);
    return 2;
  }
  if ((migrate_after_given || source_map) && !migrate_to) {
    std::fputs("avx512emu vm: --migrate-after and --source-feature-map need --migrate-to\n",
               stderr);
    return 2;
  }
  if (migrate_to && !upgrade_points.empty()) {
    std::fputs("avx512emu vm: --migrate-to and --upgrade-after exclude each other\n", stderr);
    return 2;
  }
  MigrationSourceOptions m;
  if (source_map && !read_text_file(source_map, m.feature_map_json)) {
    std::fprintf(stderr, "avx512emu vm: cannot read '%s'\n", source_map);
    return 2;
  }
  options.migratable_cpu = migrate_to != nullptr;
  if (!migrate_to) catch_upgrade_signal();
  MiniVmm vm;
  if (!vm.create(options, error)) {
    std::fprintf(stderr, "avx512emu vm: %s\n", error.c_str());
    return 1;
  }
  if (options.native)
    std::fputs("avx512emu vm: native: the guest's AVX-512 runs on the CPU\n", stderr);
  else
    std::fprintf(stderr, "avx512emu vm: avx2-only, %s, %zu sites armed\n",
                 trap_mode_name(vm.trap_mode()), vm.adapter()->armed_sites());

  RunOutcome r;
  if (migrate_to) {
    m.address = migrate_to;
    m.after_progress = migrate_after;
    MigrationReport report;
    r = run_and_migrate(vm, w->id, m, report);
    if (report.migrated) {
      std::fprintf(
          stderr,
          "avx512emu vm: migrated at progress event %" PRIu64 " (%s): %" PRIu64
          " pre-copy rounds, %" PRIu64 " pages sent (%" PRIu64
          " at switchover), %.1f MiB, downtime %.2f ms, total %.2f ms; live at "
          "switchover: %d of zmm16-31, %d of k0-7\n",
          migrate_after,
          report.dirty_logging
              ? "pre-copy with KVM dirty logging"
              : ("stop-and-copy: dirty logging unavailable: " + report.dirty_logging_note).c_str(),
          report.rounds, report.pages_sent, report.final_pages,
          double(report.bytes_sent) / (1 << 20), report.downtime_ms, report.total_ms,
          report.live_zmm16_31, report.live_k);
      return 0;
    }
  } else {
    UpgradeState upgrade;
    upgrade.workload = w->name;
    upgrade.print_stats = stats;
    upgrade.upgrade_at_exits = upgrade_points;
    upgrade.binary = upgrade_binary ? upgrade_binary : "";
    r = run_with_upgrades(vm, upgrade, true, w->id);
  }
  if (stats) print_stats(vm.adapter() ? vm.adapter()->stats() : AdapterStats{});
  return report_outcome(*w, r);
}

}  // namespace avx512emu::kvm
