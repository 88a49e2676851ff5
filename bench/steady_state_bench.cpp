// Measures emulated AVX-512 in steady state against hand-written AVX2 of the
// same kernel and against native AVX-512, for every kernel of
// steady_state_kernels.h: one benchmark per kernel, all figures from one run.
//
//   native_avx512_ns  the AVX-512 version in this process, on this CPU
//                     (left out, as 0, on a CPU without AVX-512: the
//                     ratio that matters, emulated over AVX2, needs only
//                     the child);
//   avx2_ns           the hand-written AVX2 version in this process;
//   emulated_ns       the AVX-512 version in the emulated child
//                     (emulated_child.h: this binary again under the preload
//                     library with trap injection, so that every AVX-512
//                     instruction traps once, its site is patched, and from
//                     then on it runs through the site's stub);
//   emulated_over_avx2    emulated over AVX2, both timed by the child in the
//                     same process, batch after batch: what running the
//                     AVX-512 build on an AVX2-only CPU costs against an
//                     AVX2 build of the same code;
//   emulated_over_native  emulated over this process's native AVX-512.
// All per call. The Time column is the emulated time per call (manual time).
//
// Each benchmark first sends warm-up requests (the first executions trap and
// patch their sites), then sizes its batches so that one request takes a few
// milliseconds of emulated time; native and AVX2 run the same batches.
// Checksums of all four runs must agree, or the benchmark fails. At exit,
// stderr gets a table of the ratios and their geometric means.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "emulated_child.h"
#include "steady_state_kernels.h"

namespace {

using avx512emu::bench::EmulatedChild;
using avx512emu::steady_state::Kernel;
using Clock = std::chrono::steady_clock;

constexpr const char* kServeOption = "--serve-emulated";
constexpr const char* kProgram = "steady_state_bench";

constexpr long kWarmUpCalls = 2;       //!< Traps and patching happen here.
constexpr long kCalibrationCalls = 4;  //!< Steady state, to size the batches.
constexpr double kRequestNs = 5e6;     //!< Emulated time per timed request.
constexpr int kRequests = 20;          //!< Timed requests (benchmark iterations).

struct Leg {
  double ns = 0;
  uint64_t sum = 0;
};

//! `batch` calls of one version on fresh data; the checksum of the result.
Leg time_leg(const Kernel& kernel, void (*version)(), long batch) {
  kernel.setup();
  const auto t0 = Clock::now();
  for (long i = 0; i < batch; ++i) version();
  const auto t1 = Clock::now();
  return {std::chrono::duration<double, std::nano>(t1 - t0).count(), kernel.checksum()};
}

// ---- The emulated child ----------------------------------------------------------------

//! The child's answer to "KERNEL BATCH": "AVX2_NS EMULATED_NS AVX2_SUM
//! EMULATED_SUM". Both legs run here, one after the other, so their ratio
//! compares two runs in the same process under the same runtime.
bool answer_request(const std::string& request, std::string& answer) {
  char name[64] = {};
  long batch = 0;
  if (std::sscanf(request.c_str(), "%63s %ld", name, &batch) != 2 || batch <= 0) return false;
  const Kernel* kernel = avx512emu::steady_state::find_kernel(name);
  if (!kernel) return false;
  const Leg avx2 = time_leg(*kernel, kernel->avx2, batch);
  const Leg emulated = time_leg(*kernel, kernel->avx512, batch);
  char line[128];
  std::snprintf(line, sizeof line, "%.1f %.1f %" PRIu64 " %" PRIu64, avx2.ns, emulated.ns, avx2.sum,
                emulated.sum);
  answer = line;
  return true;
}

EmulatedChild& emulated_child() {
  static EmulatedChild child(kServeOption, kProgram, /*patch=*/true);
  return child;
}

struct ChildLegs {
  Leg avx2, emulated;
};

//! One request; false (the child's error() says why) if it failed.
bool ask_child(EmulatedChild& child, const Kernel& kernel, long batch, ChildLegs& legs) {
  std::string answer;
  if (!child.exchange(std::string(kernel.name) + " " + std::to_string(batch), answer)) return false;
  return std::sscanf(answer.c_str(), "%lf %lf %" SCNu64 " %" SCNu64, &legs.avx2.ns,
                     &legs.emulated.ns, &legs.avx2.sum, &legs.emulated.sum) == 4;
}

// ---- Benchmarks ------------------------------------------------------------------------

bool has_avx512() {
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
         __builtin_cpu_supports("avx512cd");
}

struct Ratios {
  double native_ns, avx2_ns, emulated_ns, emulated_over_avx2, emulated_over_native;
};
//! The last complete run of each kernel, in table order, for the summary
//! at exit.
std::vector<std::pair<std::string, Ratios>> results;

void record(const char* kernel, const Ratios& r) {
  for (auto& [name, last] : results) {
    if (name == kernel) {
      last = r;
      return;
    }
  }
  results.emplace_back(kernel, r);
}

void BM_SteadyState(benchmark::State& state, const Kernel* kernel) {
  const bool native_leg = has_avx512();
  EmulatedChild& child = emulated_child();
  ChildLegs legs;
  if (!ask_child(child, *kernel, kWarmUpCalls, legs) ||
      !ask_child(child, *kernel, kCalibrationCalls, legs))
    return state.SkipWithError(child.error().empty() ? "the emulated child sent a bad answer"
                                                     : child.error().c_str());
  const double emulated_call_ns = legs.emulated.ns / kCalibrationCalls;
  const long batch = std::clamp(long(kRequestNs / emulated_call_ns), 1L, 1'000'000L);

  double native_total = 0, avx2_total = 0, emulated_total = 0, child_avx2_total = 0;
  for (auto _ : state) {
    if (!ask_child(child, *kernel, batch, legs))
      return state.SkipWithError(child.error().empty() ? "the emulated child sent a bad answer"
                                                       : child.error().c_str());
    const Leg avx2 = time_leg(*kernel, kernel->avx2, batch);
    const Leg native = native_leg ? time_leg(*kernel, kernel->avx512, batch) : Leg{0, avx2.sum};
    if (legs.emulated.sum != avx2.sum || legs.avx2.sum != avx2.sum)
      return state.SkipWithError("the emulated checksum differs from the AVX2 one");
    if (native.sum != avx2.sum)
      return state.SkipWithError("the native AVX-512 checksum differs from the AVX2 one");
    native_total += native.ns;
    avx2_total += avx2.ns;
    emulated_total += legs.emulated.ns;
    child_avx2_total += legs.avx2.ns;
    state.SetIterationTime(legs.emulated.ns / double(batch) * 1e-9);
  }
  const double calls = double(state.iterations()) * double(batch);
  const Ratios r = {native_total / calls, avx2_total / calls, emulated_total / calls,
                    emulated_total / child_avx2_total,
                    native_leg ? emulated_total / native_total : 0.0};
  if (native_leg) state.counters["native_avx512_ns"] = r.native_ns;
  state.counters["avx2_ns"] = r.avx2_ns;
  state.counters["emulated_ns"] = r.emulated_ns;
  state.counters["emulated_over_avx2"] = r.emulated_over_avx2;
  if (native_leg) state.counters["emulated_over_native"] = r.emulated_over_native;
  record(kernel->name, r);
}

void register_benchmarks() {
  for (const Kernel& kernel : avx512emu::steady_state::kernels())
    benchmark::RegisterBenchmark((std::string("BM_SteadyState/") + kernel.name).c_str(),
                                 BM_SteadyState, &kernel)
        ->UseManualTime()
        ->Iterations(kRequests)
        ->Unit(benchmark::kMicrosecond);
}

//! The per-kernel ratios and their geometric means, on stderr (stdout may
//! be the JSON of --benchmark_format=json).
void print_summary() {
  if (results.empty()) return;
  std::fprintf(stderr, "\n%-22s %12s %10s %12s %10s %12s\n", "kernel", "native_ns", "avx2_ns",
               "emulated_ns", "emu/avx2", "emu/native");
  const bool native_leg = has_avx512();
  double log_over_avx2 = 0, log_over_native = 0;
  for (const auto& [name, r] : results) {
    if (native_leg)
      std::fprintf(stderr, "%-22s %12.1f %10.1f %12.1f %9.1fx %11.1fx\n", name.c_str(), r.native_ns,
                   r.avx2_ns, r.emulated_ns, r.emulated_over_avx2, r.emulated_over_native);
    else
      std::fprintf(stderr, "%-22s %12s %10.1f %12.1f %9.1fx %12s\n", name.c_str(), "-", r.avx2_ns,
                   r.emulated_ns, r.emulated_over_avx2, "-");
    log_over_avx2 += std::log(r.emulated_over_avx2);
    if (native_leg) log_over_native += std::log(r.emulated_over_native);
  }
  const double n = double(results.size());
  if (native_leg)
    std::fprintf(stderr,
                 "geomean over %zu kernels: emulated_over_avx2 %.1fx, emulated_over_native %.1fx\n",
                 results.size(), std::exp(log_over_avx2 / n), std::exp(log_over_native / n));
  else
    std::fprintf(stderr,
                 "geomean over %zu kernels: emulated_over_avx2 %.1fx (no AVX-512 on this CPU: "
                 "no native leg)\n",
                 results.size(), std::exp(log_over_avx2 / n));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && !std::strcmp(argv[1], kServeOption))
    return avx512emu::bench::serve_requests(kProgram, answer_request);
  // A child that dies early must fail its benchmarks, not kill this
  // process on the next write to its pipe.
  std::signal(SIGPIPE, SIG_IGN);
  register_benchmarks();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  print_summary();
  return 0;
}
