// Translation-cache files: round trip, lookups that execute like fresh
// translations, and refusal of truncated, flipped, foreign and
// version-mismatched files.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <random>

#include "avx512emu.h"
#include "cache_builder.h"
#include "cache_file.h"
#include "compile.h"
#include "decoded_insn.h"
#include "lower_to_ir.h"

namespace {

using avx512emu::jit::CacheFile;
using avx512emu::jit::CacheFileHeader;
using avx512emu::jit::CacheKey;

// Instructions the pipeline translates: moves, broadcasts and opmask ops.
const std::vector<std::vector<uint8_t>> kInstructions = {
    {0x62, 0xf1, 0x7e, 0x48, 0x6f, 0x06},  // vmovdqu32 zmm0, [rsi]
    {0x62, 0xe1, 0xfe, 0x48, 0x6f, 0xc1},  // vmovdqu64 zmm16, zmm1
    {0x62, 0xf2, 0x7d, 0x48, 0x7c, 0xc0},  // vpbroadcastd zmm0, eax
    {0xc5, 0xf8, 0x92, 0xc8},              // kmovw k1, eax
    {0xc5, 0xf8, 0x92, 0xd9},              // kmovw k3, ecx: only ever served from a file
};

CacheKey key_of(const std::vector<uint8_t>& b) {
  CacheKey k;
  k.length = uint8_t(b.size());
  std::memcpy(k.bytes, b.data(), b.size());
  return k;
}

std::string build_file(const std::string& name) {
  std::vector<avx512emu::jit::CacheFileInput> inputs;
  for (const auto& b : kInstructions) {
    avx512emu::DecodedInsn d;
    avx512emu::ir::Function f;
    std::string error;
    avx512emu::jit::CompiledCode code;
    EXPECT_EQ(avx512emu::decode(b.data(), b.size(), d), avx512emu::DecodeStatus::kOk);
    EXPECT_TRUE(avx512emu::lower_to_ir(d, f, error)) << error;
    EXPECT_TRUE(avx512emu::jit::compile_to_avx2(f, code, error)) << error;
    inputs.push_back({key_of(b), code.bytes, uint32_t(code.code_size)});
  }
  inputs.push_back(inputs.front());  // a duplicate key must be stored once
  const std::string path = ::testing::TempDir() + name;
  std::string error;
  EXPECT_TRUE(avx512emu::jit::write_cache_file(path, inputs, avx512emu::emu_version(), error)) << error;
  return path;
}

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}
void write_all(const std::string& path, const std::string& s) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << s;
}
std::string open_error(const std::string& path) {
  std::string error;
  auto f = CacheFile::open(path, avx512emu::emu_version(), error);
  return f ? "" : error;
}
//! Rewrites the header checksum after a deliberate header change.
void reseal_header(std::string& file) {
  CacheFileHeader h;
  std::memcpy(&h, file.data(), sizeof h);
  h.header_checksum = 0;
  h.header_checksum = avx512emu::jit::checksum64(&h, sizeof h);
  std::memcpy(file.data(), &h, sizeof h);
}

}  // namespace

TEST(CacheFile, RoundTripExecutesLikeAFreshTranslation) {
  const std::string path = build_file("round.a5c");
  std::string error;
  auto file = CacheFile::open(path, avx512emu::emu_version(), error);
  ASSERT_TRUE(file) << error;
  EXPECT_EQ(file->header().entry_count, kInstructions.size());
  alignas(64) static uint8_t memory[64];
  for (int i = 0; i < 64; ++i) memory[i] = uint8_t(i * 7 + 1);
  for (size_t n = 0; n + 1 < kInstructions.size(); ++n) {
    const auto& b = kInstructions[n];
    const void* code = file->lookup(key_of(b));
    ASSERT_NE(code, nullptr);
    avx512emu::CpuState a{}, fresh{};
    for (int r = 0; r < 32; ++r)
      for (int j = 0; j < 64; ++j) a.zmm[r][j] = uint8_t(r * 64 + j);
    a.gpr[0] = 0x1234abcd;
    a.gpr[6] = reinterpret_cast<uint64_t>(memory);
    a.mxcsr = 0x1f80;
    fresh = a;
    reinterpret_cast<avx512emu::TranslationFn>(const_cast<void*>(code))(&a);
    const auto r = avx512emu::translate(b.data(), b.size());
    ASSERT_EQ(r.error, avx512emu::TranslateError::kNone) << r.message;
    avx512emu::execute(*r.translation, fresh);
    EXPECT_EQ(std::memcmp(a.zmm, fresh.zmm, sizeof a.zmm), 0);
    EXPECT_EQ(std::memcmp(a.k, fresh.k, sizeof a.k), 0);
    EXPECT_EQ(a.rip, fresh.rip);
  }
  EXPECT_EQ(file->lookup(key_of({0x62, 0xf1, 0x7d, 0x48, 0xfe, 0xc2})), nullptr);
  std::string report;
  EXPECT_TRUE(avx512emu::cache_verify(path, report)) << report;
}

TEST(CacheFile, LoadedFileServesTranslateWithoutCompiling) {
  const std::string path = build_file("load.a5c");
  std::string error;
  ASSERT_TRUE(avx512emu::load_translation_cache(path, error)) << error;
  const auto before = avx512emu::translate_stats();
  const auto& b = kInstructions.back();
  ASSERT_EQ(avx512emu::translate(b.data(), b.size()).error, avx512emu::TranslateError::kNone);
  const auto after = avx512emu::translate_stats();
  EXPECT_EQ(after.translations, before.translations);
  EXPECT_EQ(after.file_hits, before.file_hits + 1);
}

TEST(CacheFile, RefusesBadFiles) {
  const std::string good_path = build_file("good.a5c");
  const std::string good = read_all(good_path);
  const std::string bad = ::testing::TempDir() + "bad.a5c";

  write_all(bad, good.substr(0, good.size() - 1));
  EXPECT_NE(open_error(bad).find("truncated"), std::string::npos) << open_error(bad);
  write_all(bad, good.substr(0, 10));
  EXPECT_NE(open_error(bad).find("truncated"), std::string::npos) << open_error(bad);

  std::string s = good;
  s[0] = 'X';
  write_all(bad, s);
  EXPECT_NE(open_error(bad).find("not an avx512emu translation cache"), std::string::npos);

  s = good;
  s[20] ^= 1;  // inside the header, checksum not updated
  write_all(bad, s);
  EXPECT_NE(open_error(bad).find("checksum"), std::string::npos) << open_error(bad);

  s = good;
  CacheFileHeader h;
  std::memcpy(&h, s.data(), sizeof h);
  h.format_version = 99;
  std::memcpy(s.data(), &h, sizeof h);
  reseal_header(s);
  write_all(bad, s);
  EXPECT_NE(open_error(bad).find("format version 99"), std::string::npos) << open_error(bad);

  s = good;
  std::memcpy(&h, s.data(), sizeof h);
  std::memcpy(h.emu_version, "9.9.9", 6);
  std::memcpy(s.data(), &h, sizeof h);
  reseal_header(s);
  write_all(bad, s);
  EXPECT_NE(open_error(bad).find("rebuild the cache"), std::string::npos) << open_error(bad);

  // An entry pointing outside the file, with the table checksum made valid.
  s = good;
  std::memcpy(&h, s.data(), sizeof h);
  avx512emu::jit::CacheFileEntry e;
  std::memcpy(&e, s.data() + sizeof h, sizeof e);
  e.code_offset = uint32_t(s.size() + 4096);
  std::memcpy(s.data() + sizeof h, &e, sizeof e);
  const size_t tables = h.entry_count * sizeof e + h.index_slots * 4;
  h.table_checksum = avx512emu::jit::checksum64(s.data() + sizeof h, tables);
  std::memcpy(s.data(), &h, sizeof h);
  reseal_header(s);
  write_all(bad, s);
  EXPECT_NE(open_error(bad).find("outside the file"), std::string::npos) << open_error(bad);

  // A flipped code byte: the file opens, but that translation is never handed out.
  s = good;
  std::memcpy(&e, s.data() + sizeof h, sizeof e);
  s[e.code_offset + 1] ^= 0x40;
  write_all(bad, s);
  std::string error;
  auto f = CacheFile::open(bad, avx512emu::emu_version(), error);
  ASSERT_TRUE(f) << error;
  CacheKey k;
  k.length = e.key_length;
  std::memcpy(k.bytes, e.key_bytes, e.key_length);
  EXPECT_EQ(f->lookup(k), nullptr);
  std::string report;
  EXPECT_FALSE(avx512emu::cache_verify(bad, report));
  EXPECT_NE(report.find("checksum"), std::string::npos) << report;
}

// Fuzzes the loader: random byte flips in the header, entries and index must
// all be refused with a message; flips in code must never hand out that code.
TEST(CacheFile, LoaderFuzz) {
  const std::string good = read_all(build_file("fuzz.a5c"));
  CacheFileHeader h;
  std::memcpy(&h, good.data(), sizeof h);
  const size_t tables = sizeof h + h.entry_count * sizeof(avx512emu::jit::CacheFileEntry) + h.index_slots * 4;
  const std::string path = ::testing::TempDir() + "fuzzed.a5c";
  std::mt19937_64 rng(7);
  for (int round = 0; round < 400; ++round) {
    std::string s = good;
    const bool in_tables = round % 4 != 0;
    const size_t from = in_tables ? 0 : h.code_offset;
    const size_t to = in_tables ? tables : s.size();
    for (int k = 1 + int(rng() % 4); k > 0; --k) s[from + rng() % (to - from)] ^= char(1 + rng() % 255);
    write_all(path, s);
    std::string error;
    auto f = CacheFile::open(path, avx512emu::emu_version(), error);
    if (in_tables) {
      EXPECT_EQ(f, nullptr) << "round " << round << ": corrupt tables accepted";
      EXPECT_FALSE(error.empty());
      continue;
    }
    ASSERT_TRUE(f) << error;
    for (const auto& b : kInstructions) {
      const void* code = f->lookup(key_of(b));
      if (!code) continue;
      // Whatever is handed out must be byte-identical to the original file.
      const size_t off = static_cast<const uint8_t*>(code) - f->base();
      for (uint32_t i = 0; i < h.entry_count; ++i) {
        if (f->entry(i).code_offset == off) {
          EXPECT_EQ(std::memcmp(code, good.data() + off, f->entry(i).total_size), 0);
        }
      }
    }
  }
}
