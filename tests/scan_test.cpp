// avx512emu scan against an independent count (objdump) on Debian binaries,
// and its handling of files that are not ELF, truncated or corrupt.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>

#include "scan.h"

namespace {

const char* kXxhash = "/usr/lib/x86_64-linux-gnu/libxxhash.so.0";

bool exists(const char* p) { return std::ifstream(p).good(); }

//! Mnemonic counts of the instructions objdump prints with a zmm or opmask
//! register. In libxxhash every AVX-512 instruction has one, so the counts
//! must equal ours exactly.
std::map<std::string, uint64_t> objdump_counts(const std::string& path) {
  std::map<std::string, uint64_t> counts;
  const std::string cmd = "objdump -d --no-show-raw-insn " + path + " 2>/dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return counts;
  char line[1024];
  while (fgets(line, sizeof line, p)) {
    const std::string s = line;
    if (s.find("zmm") == std::string::npos && s.find("%k") == std::string::npos) continue;
    const size_t tab = s.find('\t');
    if (tab == std::string::npos) continue;
    std::istringstream in(s.substr(tab + 1));
    std::string mnemonic;
    in >> mnemonic;
    ++counts[mnemonic];
  }
  pclose(p);
  return counts;
}

std::string write_temp(const std::string& name, const std::string& bytes) {
  const std::string path = ::testing::TempDir() + name;
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

}  // namespace

TEST(Scan, MatchesObjdumpOnLibxxhash) {
  if (!exists(kXxhash)) GTEST_SKIP() << kXxhash << " not installed (Debian package libxxhash0)";
  const auto expected = objdump_counts(kXxhash);
  if (expected.empty()) GTEST_SKIP() << "objdump (binutils) not available";
  const auto r = avx512emu::scan_elf_file(kXxhash);
  ASSERT_TRUE(r.error.empty()) << r.error;
  EXPECT_EQ(r.per_mnemonic, expected);
  uint64_t total = 0;
  for (const auto& [m, n] : expected) total += n;
  EXPECT_EQ(r.avx512, total);
  EXPECT_EQ(r.function_source, "eh_frame+symbols");
}

TEST(Scan, LibcHasGlibcEvexFunctions) {
  const auto r = avx512emu::scan_elf_file("/lib/x86_64-linux-gnu/libc.so.6");
  ASSERT_TRUE(r.error.empty()) << r.error;
  EXPECT_GT(r.avx512, 1000u);
  EXPECT_GT(r.per_mnemonic.count("vpcmpeqb") + r.per_mnemonic.count("vpcmpb"), 0u);
  EXPECT_GT(r.per_mnemonic.count("kmovd"), 0u);
}

TEST(Scan, BadFilesGetClearErrors) {
  EXPECT_EQ(avx512emu::scan_elf_file(write_temp("text", "hello, world\n")).error, "not an ELF file");
  EXPECT_EQ(avx512emu::scan_elf_file(write_temp("empty", "")).error, "not an ELF file");
  EXPECT_EQ(avx512emu::scan_elf_file(write_temp("trunc", std::string("\x7f" "ELF\x02\x01", 6))).error,
            "truncated ELF header");
  EXPECT_NE(avx512emu::scan_elf_file("/nonexistent/file").error.find("cannot open"), std::string::npos);

  // Truncations and byte flips of a real library: an error or a result, never a crash.
  std::ifstream in(kXxhash, std::ios::binary);
  if (!in) GTEST_SKIP() << "libxxhash not installed";
  std::string lib((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (size_t cut : {size_t(64), size_t(1000), lib.size() / 2, lib.size() - 1}) {
    const auto r = avx512emu::scan_elf_file(write_temp("cut", lib.substr(0, cut)));
    EXPECT_TRUE(!r.error.empty() || r.avx512 <= 428) << cut;
  }
  uint64_t state = 88172645463325252ull;
  for (int round = 0; round < 50; ++round) {
    std::string bad = lib;
    for (int k = 0; k < 20; ++k) {
      state ^= state << 13, state ^= state >> 7, state ^= state << 17;
      bad[state % std::min<size_t>(bad.size(), 4096 + (round % 2) * bad.size())] ^= char(state >> 40);
    }
    avx512emu::scan_elf_file(write_temp("flip", bad));
  }
}
