// Measures the KVM trap path in one run: a hit (guest #UD, CPL3 dispatcher,
// translation, return; no VM exit) against a bare guest #UD round trip
// (ud2 -> guest kernel handler -> iretq), a miss (the hypercall, fetch,
// translate-from-process-cache and install on every execution), and native
// AVX-512 in the same guest loop. Counters are nanoseconds per execution and
// the ratios between them.
// Also measures a live migration of a 64 MiB guest from a native VMM to an
// AVX2-only one over loopback (both in this process): the downtime (vCPU
// stopped at the source until the destination acknowledged) and the total
// time. The hot-upgrade pause needs an exec, so `avx512emu vm --stats
// --upgrade-after N,...` reports it instead (one line per upgrade).
#include <arpa/inet.h>
#include <benchmark/benchmark.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "guest_abi.h"
#include "live_migration.h"
#include "mini_vmm.h"

namespace {

using avx512emu::kvm::MigrationDestinationOptions;
using avx512emu::kvm::MigrationReport;
using avx512emu::kvm::MigrationSourceOptions;
using avx512emu::kvm::MiniVmm;
using avx512emu::kvm::RunOutcome;
using avx512emu::kvm::VmOptions;

std::unique_ptr<MiniVmm> make_vm(const VmOptions& o, std::string& error) {
  auto vm = std::make_unique<MiniVmm>();
  if (!vm->create(o, error)) return nullptr;
  return vm;
}

//! Nanoseconds per loop iteration of one run of `id`.
double ns_per_iteration(MiniVmm& vm, uint64_t id, bool& ok) {
  const auto t0 = std::chrono::steady_clock::now();
  const RunOutcome r = vm.run(id);
  const auto t1 = std::chrono::steady_clock::now();
  ok = ok && r.kind == RunOutcome::Kind::kResult;
  return std::chrono::duration<double, std::nano>(t1 - t0).count() / GUEST_BENCH_ITERATIONS;
}

void BM_KvmTrapPath(benchmark::State& state) {
  std::string error;
  VmOptions native, bare_ud, hit, miss;
  native.native = true;
  bare_ud.native = true;
  bare_ud.kernel_skips_ud2 = true;
  miss.cache_translations = false;
  auto native_vm = make_vm(native, error), bare_vm = make_vm(bare_ud, error),
       hit_vm = make_vm(hit, error), miss_vm = make_vm(miss, error);
  if (!native_vm || !bare_vm || !hit_vm || !miss_vm) {
    state.SkipWithError(("KVM is not usable here: " + error).c_str());
    return;
  }
  bool ok = true;
  ns_per_iteration(*hit_vm, GUEST_BENCH_AVX512_LOOP, ok);  // install the translation
  double native_ns = 0, bare_ns = 0, hit_ns = 0, miss_ns = 0;
  for (auto _ : state) {
    native_ns += ns_per_iteration(*native_vm, GUEST_BENCH_AVX512_LOOP, ok);
    bare_ns += ns_per_iteration(*bare_vm, GUEST_BENCH_UD2_LOOP, ok);
    hit_ns += ns_per_iteration(*hit_vm, GUEST_BENCH_AVX512_LOOP, ok);
    miss_ns += ns_per_iteration(*miss_vm, GUEST_BENCH_AVX512_LOOP, ok);
  }
  if (!ok) {
    state.SkipWithError("a benchmark guest did not finish");
    return;
  }
  const double n = double(state.iterations());
  // Every run includes the VM entry and the loop itself; the native loop
  // measures both, so it is subtracted from the trapping loops.
  const double base = native_ns / n;
  state.counters["native_ns"] = base;
  state.counters["bare_ud_ns"] = bare_ns / n - base;
  state.counters["hit_ns"] = hit_ns / n - base;
  state.counters["miss_ns"] = miss_ns / n - base;
  state.counters["hit_over_bare_ud"] = (hit_ns / n - base) / (bare_ns / n - base);
  state.counters["miss_over_hit"] = (miss_ns / n - base) / (hit_ns / n - base);
}
BENCHMARK(BM_KvmTrapPath)->Unit(benchmark::kMillisecond)->Iterations(5);

//! A loopback port that was free a moment ago (the destination binds it).
uint16_t free_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  uint16_t port = 0;
  if (fd >= 0 && bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  if (fd >= 0) close(fd);
  return port;
}

void BM_KvmLiveMigration64MiB(benchmark::State& state) {
  constexpr uint64_t kMemory = 64 << 20;
  double downtime_ms = 0, total_ms = 0, mib = 0, rounds = 0;
  bool ok = true;
  std::string failure;
  for (auto _ : state) {
    VmOptions source_options;
    source_options.native = true;
    source_options.migratable_cpu = true;
    source_options.memory_bytes = kMemory;
    MiniVmm source;
    std::string error;
    if (!source.create(source_options, error)) {
      state.SkipWithError(("KVM is not usable here: " + error).c_str());
      return;
    }
    MigrationDestinationOptions d;
    d.address = "127.0.0.1:" + std::to_string(free_port());
    MiniVmm destination;
    bool received = false;
    std::string destination_error;
    std::thread listener(
        [&] { received = avx512emu::kvm::receive_migration(d, destination, destination_error); });
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // until it listens
    MigrationSourceOptions m;
    m.address = d.address;
    m.after_progress = 128;  // mid-loop
    MigrationReport report;
    avx512emu::kvm::run_and_migrate(source, GUEST_WORKLOAD_BYTE_HISTOGRAM, m, report);
    listener.join();
    const RunOutcome r = received ? destination.resume() : RunOutcome{};
    if (!report.migrated || r.kind != RunOutcome::Kind::kResult) {
      ok = false;
      failure = report.failure.empty() ? destination_error : report.failure;
      break;
    }
    downtime_ms += report.downtime_ms;
    total_ms += report.total_ms;
    mib += double(report.bytes_sent) / (1 << 20);
    rounds += double(report.rounds);
  }
  if (!ok) {
    state.SkipWithError(("the migration failed: " + failure).c_str());
    return;
  }
  const double n = double(state.iterations());
  state.counters["downtime_ms"] = downtime_ms / n;
  state.counters["total_ms"] = total_ms / n;
  state.counters["MiB_sent"] = mib / n;
  state.counters["precopy_rounds"] = rounds / n;
}
BENCHMARK(BM_KvmLiveMigration64MiB)->Unit(benchmark::kMillisecond)->Iterations(5);

}  // namespace

BENCHMARK_MAIN();
