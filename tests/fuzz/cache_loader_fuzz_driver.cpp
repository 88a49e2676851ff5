// Owns the standalone driver of the cache-loader fuzz target, for compilers
// without libFuzzer: it feeds LLVMFuzzerTestOneInput a deterministic corpus
// of mutations of a valid cache file (bit flips, truncations, extensions,
// foreign bytes, and header and table edits whose checksums are recomputed
// so that the checks behind the checksums are reached). With file arguments
// it runs those inputs instead (reproducing a libFuzzer finding).
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "avx512emu.h"
#include "cache_builder.h"
#include "cache_file.h"
#include "cache_loader_fuzz.h"

namespace {

using avx512emu::jit::CacheFileEntry;
using avx512emu::jit::CacheFileHeader;

// AVX-512 instructions of several families, so the file has a real index.
const std::vector<std::vector<uint8_t>> kSeedInstructions = {
    {0x62, 0xf1, 0x75, 0x48, 0xfe, 0xc2},        // vpaddd zmm0, zmm1, zmm2
    {0x62, 0xf1, 0x74, 0x48, 0x58, 0xc2},        // vaddps zmm0, zmm1, zmm2
    {0x62, 0xf1, 0xfe, 0x48, 0x6f, 0x06},        // vmovdqu64 zmm0, [rsi]
    {0x62, 0xf2, 0x7d, 0x48, 0x58, 0xc0},        // vpbroadcastd zmm0, xmm0
    {0x62, 0xf1, 0x7c, 0x49, 0x28, 0xc1},        // vmovaps zmm0{k1}, zmm1
    {0x62, 0xf3, 0x75, 0x48, 0x25, 0xc2, 0x96},  // vpternlogd zmm0, zmm1, zmm2, 0x96
    {0xc5, 0xf8, 0x92, 0xc8},                    // kmovw k1, eax
    {0xc5, 0xf8, 0x93, 0xc1},                    // kmovw eax, k1
};

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

//! A valid cache file of kSeedInstructions, as bytes.
std::string valid_file() {
  std::vector<avx512emu::jit::CacheFileInput> inputs;
  for (const auto& bytes : kSeedInstructions) {
    const auto r = avx512emu::translate(bytes.data(), bytes.size());
    if (r.error != avx512emu::TranslateError::kNone) {
      std::fprintf(stderr, "cache_loader_fuzz_driver: seed does not translate: %s\n",
                   r.message.c_str());
      std::exit(1);
    }
    const auto* code = static_cast<const uint8_t*>(r.translation->code);
    inputs.push_back({r.translation->key,
                      std::vector<uint8_t>(code, code + r.translation->total_size),
                      r.translation->code_size});
  }
  const std::string path = "/tmp/cache_loader_fuzz_seed." + std::to_string(getpid());
  std::string error;
  if (!avx512emu::jit::write_cache_file(path, inputs, avx512emu::emu_version(), error)) {
    std::fprintf(stderr, "cache_loader_fuzz_driver: %s\n", error.c_str());
    std::exit(1);
  }
  std::string bytes = read_file(path);
  std::remove(path.c_str());
  return bytes;
}

//! Recomputes the table and header checksums after a deliberate edit.
void reseal(std::string& file) {
  if (file.size() < sizeof(CacheFileHeader)) return;
  CacheFileHeader h;
  std::memcpy(&h, file.data(), sizeof h);
  const uint64_t tables =
      uint64_t(h.entry_count) * sizeof(CacheFileEntry) + uint64_t(h.index_slots) * 4;
  if (tables <= file.size() - sizeof h)
    h.table_checksum = avx512emu::jit::checksum64(file.data() + sizeof h, tables);
  h.header_checksum = 0;
  h.header_checksum = avx512emu::jit::checksum64(&h, sizeof h);
  std::memcpy(file.data(), &h, sizeof h);
}

//! Values that sit on the edges of the loader's bounds checks.
uint32_t edge_value(std::mt19937_64& rng, size_t file_size) {
  const uint32_t edges[] = {0,
                            1,
                            15,
                            16,
                            0x7fffffffu,
                            0x80000000u,
                            0xffffffffu,
                            uint32_t(file_size),
                            uint32_t(file_size - 1),
                            uint32_t(file_size + 1),
                            4096,
                            4095};
  return rng() % 3 ? edges[rng() % std::size(edges)] : uint32_t(rng());
}

std::string mutate(const std::string& good, std::mt19937_64& rng) {
  std::string s = good;
  CacheFileHeader h;
  std::memcpy(&h, good.data(), sizeof h);
  const size_t tables_end =
      sizeof h + h.entry_count * sizeof(CacheFileEntry) + size_t(h.index_slots) * 4;
  switch (rng() % 7) {
    case 0:  // bit flips anywhere
      for (int k = 1 + int(rng() % 4); k > 0; --k) s[rng() % s.size()] ^= char(1u << (rng() % 8));
      break;
    case 1:  // truncation
      s.resize(rng() % s.size());
      break;
    case 2:  // extension
      for (int k = 1 + int(rng() % 64); k > 0; --k) s.push_back(char(rng()));
      break;
    case 3: {  // a header field set to an edge value, checksums made valid
      const size_t field = 8 + 4 * (rng() % ((sizeof h - 8) / 4));
      const uint32_t v = edge_value(rng, s.size());
      std::memcpy(s.data() + field, &v, 4);
      reseal(s);
      break;
    }
    case 4: {  // an entry or index word set to an edge value, checksums made valid
      const size_t word = sizeof h + 4 * (rng() % ((tables_end - sizeof h) / 4));
      const uint32_t v = edge_value(rng, s.size());
      std::memcpy(s.data() + word, &v, 4);
      reseal(s);
      break;
    }
    case 5:  // random bytes in the tables, checksums made valid
      for (int k = 1 + int(rng() % 8); k > 0; --k)
        s[sizeof h + rng() % (tables_end - sizeof h)] = char(rng());
      reseal(s);
      break;
    case 6:  // foreign bytes of a random length, sometimes behind the right magic
      s.assign(rng() % (2 * good.size()), '\0');
      for (char& c : s) c = char(rng());
      if (rng() % 2 && s.size() >= 8) std::memcpy(s.data(), good.data(), 8);
      break;
  }
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1) {  // reproduce: run the given inputs
    for (int i = 1; i < argc; ++i) {
      const std::string input = read_file(argv[i]);
      LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(input.data()), input.size());
    }
    std::printf("ran %d inputs\n", argc - 1);
    return 0;
  }
  const std::string good = valid_file();
  LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(good.data()), good.size());
  if (cache_loader_fuzz_outcomes().accepted != 1) {
    // Every mutation would then stop at the first check, exercising nothing deeper.
    std::fprintf(stderr, "cache_loader_fuzz_driver: the unmutated file was refused\n");
    return 1;
  }
  std::mt19937_64 rng(20240611);
  constexpr int kRuns = 20000;
  for (int run = 0; run < kRuns; ++run) {
    const std::string input = mutate(good, rng);
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(input.data()), input.size());
  }
  const CacheLoaderFuzzOutcomes o = cache_loader_fuzz_outcomes();
  std::printf(
      "cache_loader_fuzz_driver: %d mutations of a %zu-byte file: %llu accepted, %llu refused\n",
      kRuns, good.size(), (unsigned long long)(o.accepted - 1), (unsigned long long)o.refused);
  // Code-area flips load (their entries are refused at lookup); table and
  // header damage does not. A corpus reaching only one outcome is broken.
  return o.accepted > 1 && o.refused > 0 ? 0 : 1;
}
