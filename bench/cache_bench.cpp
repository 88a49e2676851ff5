// Measures the translation-cache file's time from open to first lookup (map,
// validate the tables, find one key, check that entry's code), against
// JIT-compiling the same instruction in the same run.
//
// The file is $AVX512EMU_BENCH_CACHE when set (for example a cache of large
// AVX-512 libraries from `avx512emu cache build`), else one built here from
// glibc. The page cache is warm after the first iteration: this is the cost
// a process pays when the file is already in memory, as for every process
// after the first that maps it.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "cache_builder.h"
#include "cache_file.h"
#include "compile.h"
#include "decoded_insn.h"
#include "lower_to_ir.h"

namespace {

using Clock = std::chrono::steady_clock;

//! The cache file measured; empty when none could be had.
const std::string& bench_cache_path() {
  static const std::string path = []() -> std::string {
    if (const char* p = std::getenv("AVX512EMU_BENCH_CACHE"); p && *p) return p;
    avx512emu::CacheBuildOptions o;
    o.paths = {"/lib/x86_64-linux-gnu/libc.so.6"};
    o.output = "/tmp/avx512emu_cache_bench." + std::to_string(getpid()) + ".a5c";
    o.jobs = 2;
    avx512emu::CacheBuildSummary summary;
    std::string error;
    if (!avx512emu::build_cache(o, summary, error)) {
      std::fprintf(stderr, "cache_bench: %s\n", error.c_str());
      return "";
    }
    std::atexit([] { std::remove(bench_cache_path().c_str()); });
    return o.output;
  }();
  return path;
}

//! Decode + lower + compile, no cache: what the file saves per instruction.
bool jit_compile(const avx512emu::jit::CacheKey& key) {
  avx512emu::DecodedInsn d;
  avx512emu::ir::Function f;
  std::string error;
  avx512emu::jit::CompiledCode code;
  return avx512emu::decode(key.bytes, key.length, d) == avx512emu::DecodeStatus::kOk &&
         avx512emu::lower_to_ir(d, f, error) && avx512emu::jit::compile_to_avx2(f, code, error);
}

void BM_OpenToFirstLookup(benchmark::State& state) {
  const std::string& path = bench_cache_path();
  std::string error;
  avx512emu::jit::CacheKey key;
  uint32_t entries = 0;
  {
    const auto file = avx512emu::jit::CacheFile::open(path, avx512emu::emu_version(), error);
    if (!file || !file->header().entry_count) {
      state.SkipWithError(("no usable cache file: " + error).c_str());
      return;
    }
    entries = file->header().entry_count;
    const auto& e = file->entry(entries / 2);
    key.length = e.key_length;
    std::memcpy(key.bytes, e.key_bytes, e.key_length);
  }
  double open_ns = 0, jit_ns = 0;
  for (auto _ : state) {
    const auto t0 = Clock::now();
    const auto file = avx512emu::jit::CacheFile::open(path, avx512emu::emu_version(), error);
    benchmark::DoNotOptimize(file->lookup(key));
    const auto t1 = Clock::now();
    benchmark::DoNotOptimize(jit_compile(key));
    const auto t2 = Clock::now();
    open_ns += std::chrono::duration<double, std::nano>(t1 - t0).count();
    jit_ns += std::chrono::duration<double, std::nano>(t2 - t1).count();
  }
  const double n = double(state.iterations());
  state.counters["open_to_first_lookup_us"] = open_ns / n / 1e3;
  state.counters["jit_compile_one_us"] = jit_ns / n / 1e3;
  state.counters["ratio_open_lookup_over_one_jit_compile"] = open_ns / jit_ns;
  state.counters["entries"] = entries;
}
BENCHMARK(BM_OpenToFirstLookup)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
