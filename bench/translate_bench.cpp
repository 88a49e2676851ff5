// Measures cold translation latency, cache lookup, and a translated
// instruction against the same instruction run natively (AVX-512 hosts).
#include <benchmark/benchmark.h>
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <vector>

#include "avx512emu.h"
#include "compile.h"
#include "isa_catalog.h"
#include "lower_to_ir.h"

namespace {

using Clock = std::chrono::steady_clock;

//! Catalogue samples that translate today.
const std::vector<avx512emu::CatalogEntry>& translatable() {
  static const std::vector<avx512emu::CatalogEntry> list = [] {
    std::vector<avx512emu::CatalogEntry> out;
    for (const auto& e : avx512emu::avx512_catalog())
      if (avx512emu::translate(e.sample, e.sample_length).error == avx512emu::TranslateError::kNone)
        out.push_back(e);
    return out;
  }();
  return list;
}

//! Decode + lower + compile, no cache: what a miss costs.
bool translate_cold(const avx512emu::CatalogEntry& e) {
  avx512emu::DecodedInsn d;
  avx512emu::ir::Function f;
  std::string error;
  avx512emu::jit::CompiledCode code;
  return avx512emu::decode(e.sample, e.sample_length, d) == avx512emu::DecodeStatus::kOk &&
         avx512emu::lower_to_ir(d, f, error) && avx512emu::jit::compile_to_avx2(f, code, error);
}

void BM_ColdTranslation(benchmark::State& state) {
  const auto& list = translatable();
  std::vector<double> per_insn_ns;
  for (auto _ : state) {
    for (const auto& e : list) {
      const auto t0 = Clock::now();
      benchmark::DoNotOptimize(translate_cold(e));
      per_insn_ns.push_back(std::chrono::duration<double, std::nano>(Clock::now() - t0).count());
    }
  }
  std::nth_element(per_insn_ns.begin(), per_insn_ns.begin() + per_insn_ns.size() / 2, per_insn_ns.end());
  state.counters["median_ns_per_insn"] = per_insn_ns[per_insn_ns.size() / 2];
  state.counters["instructions"] = double(list.size());
  state.SetItemsProcessed(int64_t(state.iterations() * list.size()));
}
BENCHMARK(BM_ColdTranslation)->Unit(benchmark::kMillisecond);

void BM_CacheLookup(benchmark::State& state) {
  const uint8_t vpaddd[] = {0x62, 0xf1, 0x7d, 0x48, 0xfe, 0xc2};  // vpaddd zmm0, zmm0, zmm2
  avx512emu::translate(vpaddd, sizeof vpaddd);
  for (auto _ : state) benchmark::DoNotOptimize(avx512emu::translate(vpaddd, sizeof vpaddd));
}
BENCHMARK(BM_CacheLookup);

//! vpaddd zmm0, zmm0, zmm2 translated, against the native instruction on the
//! same state block (load both sources, add, store), timed in one run.
void BM_VpadddZmmTranslatedVsNative(benchmark::State& state) {
  const uint8_t vpaddd[] = {0x62, 0xf1, 0x7d, 0x48, 0xfe, 0xc2};
  const auto r = avx512emu::translate(vpaddd, sizeof vpaddd);
  if (r.error != avx512emu::TranslateError::kNone) {
    state.SkipWithError(r.message.c_str());
    return;
  }
  if (!__builtin_cpu_supports("avx512f")) {
    state.SkipWithError("host lacks AVX-512F: no native leg");
    return;
  }
  static avx512emu::CpuState st{};
  constexpr int kReps = 1000;
  double emulated_ns = 0, native_ns = 0;
  for (auto _ : state) {
    auto t0 = Clock::now();
    for (int i = 0; i < kReps; ++i) avx512emu::execute(*r.translation, st);
    auto t1 = Clock::now();
    for (int i = 0; i < kReps; ++i) {
      __m512i a = _mm512_load_si512(st.zmm[0]);
      __m512i b = _mm512_load_si512(st.zmm[2]);
      _mm512_store_si512(st.zmm[0], _mm512_add_epi32(a, b));
      st.rip += 6;
      benchmark::ClobberMemory();
    }
    auto t2 = Clock::now();
    emulated_ns += std::chrono::duration<double, std::nano>(t1 - t0).count();
    native_ns += std::chrono::duration<double, std::nano>(t2 - t1).count();
  }
  const double n = double(state.iterations()) * kReps;
  state.counters["emulated_ns"] = emulated_ns / n;
  state.counters["native_ns"] = native_ns / n;
  state.counters["ratio_emulated_over_native"] = emulated_ns / native_ns;
}
BENCHMARK(BM_VpadddZmmTranslatedVsNative);

}  // namespace

BENCHMARK_MAIN();
