// Measures the KVM trap path in one run: a hit (guest #UD, CPL3 dispatcher,
// translation, return; no VM exit) against a bare guest #UD round trip
// (ud2 -> guest kernel handler -> iretq), a miss (the hypercall, fetch,
// translate-from-process-cache and install on every execution), and native
// AVX-512 in the same guest loop. Counters are nanoseconds per execution and
// the ratios between them.
#include <benchmark/benchmark.h>

#include <chrono>
#include <memory>
#include <string>

#include "guest_abi.h"
#include "mini_vmm.h"

namespace {

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

}  // namespace

BENCHMARK_MAIN();
