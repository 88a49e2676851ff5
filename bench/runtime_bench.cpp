// Measures the user-mode trap runtime against the hardware, as ratios taken
// in one run:
//   - a kernel's steady state under emulation (its sites patched, so every
//     execution runs through a stub) against the same kernel run natively;
//   - one trap round trip (sites never patched, as with --no-patch) against
//     a bare `ud2` SIGILL round trip with an empty handler; the difference
//     is the handler's own work.
//
// The emulated legs run in a child: this binary again, started with
// libavx512emu-preload.so and trap injection (AVX512EMU_SIMULATE_AVX2), so
// that the kernels' AVX-512 instructions trap as on an AVX2 CPU. The child
// times the batches the parent asks for with the same clock, and the parent
// reports them as manual time next to its own native measurements
// (emulated_child.h). AVX512EMU_PRELOAD overrides the library's path.
#include <benchmark/benchmark.h>
#include <immintrin.h>
#include <signal.h>
#include <ucontext.h>

#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "emulated_child.h"

namespace {

using Clock = std::chrono::steady_clock;

using avx512emu::bench::EmulatedChild;

constexpr const char* kServeOption = "--serve-emulated";
constexpr const char* kProgram = "runtime_bench";

// ---- Kernels (the only AVX-512 code in this program) ---------------------------------

constexpr int kFloats = 1024;  //!< 4 KiB per array: stays in L1.

struct KernelData {
  alignas(64) float x[kFloats];
  alignas(64) float y[kFloats];
};

//! y = a * x + y over the arrays, 16 lanes at a time, plus a masked pass
//! over the last 5 elements: loads, an FMA with a broadcast, stores and an
//! opmask, the staples of compiled AVX-512 loops.
__attribute__((target("avx512f"), noinline)) void saxpy_kernel(KernelData& d, float a) {
  const __m512 va = _mm512_set1_ps(a);
  for (int i = 0; i + 16 <= kFloats; i += 16)
    _mm512_storeu_ps(d.y + i,
                     _mm512_fmadd_ps(va, _mm512_loadu_ps(d.x + i), _mm512_loadu_ps(d.y + i)));
  const __mmask16 tail = 0x1f;
  const __m512 x = _mm512_maskz_loadu_ps(tail, d.x + kFloats - 5);
  const __m512 y = _mm512_maskz_loadu_ps(tail, d.y + kFloats - 5);
  _mm512_mask_storeu_ps(d.y + kFloats - 5, tail, _mm512_fmadd_ps(va, x, y));
}

//! One 512-bit add per iteration: under --no-patch-style emulation every
//! iteration is one trap round trip.
__attribute__((target("avx512f"), noinline)) void add_loop(long n) {
  __asm__ volatile(
      "vpxord %%zmm1, %%zmm1, %%zmm1\n\t"
      "1: vaddps %%zmm1, %%zmm0, %%zmm0\n\t"
      "dec %0\n\t"
      "jnz 1b"
      : "+r"(n)
      :
      : "xmm0", "xmm1", "cc");
}

void reset(KernelData& d) {
  for (int i = 0; i < kFloats; ++i) {
    d.x[i] = float(i % 97) * 0.25f;
    d.y[i] = float(i % 13) - 6.0f;
  }
}

//! FNV-1a over the bytes of y: the native and emulated results must agree.
uint64_t checksum(const KernelData& d) {
  uint64_t h = 1469598103934665603ull;
  const auto* bytes = reinterpret_cast<const unsigned char*>(d.y);
  for (size_t i = 0; i < sizeof d.y; ++i) h = (h ^ bytes[i]) * 1099511628211ull;
  return h;
}

//! Runs `batch` kernel calls on fresh data; returns nanoseconds and checksum.
std::pair<double, uint64_t> time_saxpy(long batch) {
  static KernelData d;
  reset(d);
  const auto t0 = Clock::now();
  for (long i = 0; i < batch; ++i) saxpy_kernel(d, 1.0f / 1024);
  const auto t1 = Clock::now();
  return {std::chrono::duration<double, std::nano>(t1 - t0).count(), checksum(d)};
}

double time_add_loop(long n) {
  const auto t0 = Clock::now();
  add_loop(n);
  return std::chrono::duration<double, std::nano>(Clock::now() - t0).count();
}

// ---- The emulated child --------------------------------------------------------------

//! The child's answer to one request ("saxpy N" or "add N"):
//! "NANOSECONDS CHECKSUM".
bool answer_request(const std::string& request, std::string& answer) {
  char what[16] = {};
  long n = 0;
  if (std::sscanf(request.c_str(), "%15s %ld", what, &n) != 2 || n <= 0) return false;
  char line[64];
  if (!std::strcmp(what, "saxpy")) {
    const auto [ns, sum] = time_saxpy(n);
    std::snprintf(line, sizeof line, "%.1f %" PRIu64, ns, sum);
  } else if (!std::strcmp(what, "add")) {
    std::snprintf(line, sizeof line, "%.1f 0", time_add_loop(n));
  } else {
    return false;
  }
  answer = line;
  return true;
}

EmulatedChild& patched_child() {
  static EmulatedChild child(kServeOption, kProgram, true);
  return child;
}

EmulatedChild& trapping_child() {
  static EmulatedChild child(kServeOption, kProgram, false);
  return child;
}

bool has_avx512f() {
  return __builtin_cpu_supports("avx512f");
}

// ---- Benchmarks ---------------------------------------------------------------------

//! The saxpy kernel, emulated with patched sites, against native. Manual
//! time is the emulated time of one batch; the counters give both legs per
//! call and their ratio.
void BM_SaxpyPatchedVsNative(benchmark::State& state) {
  if (!has_avx512f()) return state.SkipWithError("the native leg needs AVX-512F");
  constexpr long kBatch = 200;
  EmulatedChild& child = patched_child();
  double ns = 0, warm_ns = 0;
  uint64_t sum = 0;
  // Warm-up: first executions trap and patch their sites.
  if (!child.request("saxpy", kBatch, warm_ns, sum))
    return state.SkipWithError(child.error().c_str());
  const uint64_t native_sum = time_saxpy(kBatch).second;
  if (sum != native_sum) return state.SkipWithError("emulated result differs from native");
  double emulated_total = 0, native_total = 0;
  for (auto _ : state) {
    if (!child.request("saxpy", kBatch, ns, sum)) return state.SkipWithError(child.error().c_str());
    const double native_ns = time_saxpy(kBatch).first;
    emulated_total += ns;
    native_total += native_ns;
    state.SetIterationTime(ns * 1e-9);
  }
  const double calls = double(state.iterations()) * kBatch;
  state.counters["native_ns"] = native_total / calls;
  state.counters["emulated_ns"] = emulated_total / calls;
  state.counters["emulated_over_native"] = emulated_total / native_total;
}
BENCHMARK(BM_SaxpyPatchedVsNative)->UseManualTime()->Unit(benchmark::kNanosecond);

//! Empty SIGILL handler: skips the 2-byte ud2.
void skip_ud2(int, siginfo_t*, void* context) {
  static_cast<ucontext_t*>(context)->uc_mcontext.gregs[REG_RIP] += 2;
}

//! One ud2 per iteration with an empty handler: the kernel's and the CPU's
//! share of any trap, the floor of trap-based emulation on this machine.
double time_bare_ud2(long n) {
  struct sigaction sa = {}, old = {};
  sa.sa_sigaction = skip_ud2;
  sa.sa_flags = SA_SIGINFO;
  sigaction(SIGILL, &sa, &old);
  const auto t0 = Clock::now();
  __asm__ volatile("1: ud2\n\tdec %0\n\tjnz 1b" : "+r"(n) : : "memory", "cc");
  const double ns = std::chrono::duration<double, std::nano>(Clock::now() - t0).count();
  sigaction(SIGILL, &old, nullptr);
  return ns;
}

//! One emulated vaddps per iteration, every one a trap (sites never
//! patched), against a bare ud2 round trip. handler_ns, the difference, is
//! the runtime's own work per trap.
void BM_TrapRoundTripVsBareUd2(benchmark::State& state) {
  constexpr long kBatch = 100;
  EmulatedChild& child = trapping_child();
  double ns = 0;
  uint64_t unused = 0;
  if (!child.request("add", kBatch, ns, unused))  // warm-up: caches, shadow block, pages
    return state.SkipWithError(child.error().c_str());
  time_bare_ud2(kBatch);
  double trap_total = 0, bare_total = 0;
  for (auto _ : state) {
    if (!child.request("add", kBatch, ns, unused))
      return state.SkipWithError(child.error().c_str());
    const double bare_ns = time_bare_ud2(kBatch);
    trap_total += ns;
    bare_total += bare_ns;
    state.SetIterationTime(ns * 1e-9);
  }
  const double traps = double(state.iterations()) * kBatch;
  state.counters["trap_ns"] = trap_total / traps;
  state.counters["bare_ud2_ns"] = bare_total / traps;
  state.counters["handler_ns"] = (trap_total - bare_total) / traps;
  state.counters["trap_over_bare_ud2"] = trap_total / bare_total;
}
BENCHMARK(BM_TrapRoundTripVsBareUd2)->UseManualTime()->Unit(benchmark::kNanosecond);

//! The same add loop natively and through patched sites (no trap): what a
//! stub costs per instruction, for comparison with the trap.
void BM_AddLoopPatchedVsNative(benchmark::State& state) {
  if (!has_avx512f()) return state.SkipWithError("the native leg needs AVX-512F");
  constexpr long kBatch = 10000;
  EmulatedChild& child = patched_child();
  double ns = 0;
  uint64_t unused = 0;
  if (!child.request("add", kBatch, ns, unused)) return state.SkipWithError(child.error().c_str());
  double emulated_total = 0, native_total = 0;
  for (auto _ : state) {
    if (!child.request("add", kBatch, ns, unused))
      return state.SkipWithError(child.error().c_str());
    const double native_ns = time_add_loop(kBatch);
    emulated_total += ns;
    native_total += native_ns;
    state.SetIterationTime(ns * 1e-9);
  }
  const double adds = double(state.iterations()) * kBatch;
  state.counters["native_ns"] = native_total / adds;
  state.counters["emulated_ns"] = emulated_total / adds;
  state.counters["emulated_over_native"] = emulated_total / native_total;
}
BENCHMARK(BM_AddLoopPatchedVsNative)->UseManualTime()->Unit(benchmark::kNanosecond);

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && !std::strcmp(argv[1], kServeOption))
    return avx512emu::bench::serve_requests(kProgram, answer_request);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
