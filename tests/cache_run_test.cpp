// `avx512emu run --cache FILE`: a program whose AVX-512 instructions the
// cache covers runs with zero JIT translations and the native output; a
// missing, truncated, corrupt, foreign or version-mismatched file is refused
// before the program starts; a bad AVX512EMU_CACHE is reported and not used.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <regex>
#include <string>
#include <vector>

#include "cache_builder.h"
#include "cache_file.h"
#include "run_command.h"
#include "subprocess.h"

namespace {

using avx512emu::testing::Outcome;
using avx512emu::testing::reference_run;
using avx512emu::testing::run;

using avx512emu::jit::CacheFileEntry;
using avx512emu::jit::CacheFileHeader;

const std::string kProgram = AVX512EMU_MASKED_FP;

//! A path in the test's temporary directory, unique to this process: ctest
//! runs the tests of this file as parallel processes.
std::string temp_path(const std::string& name) {
  return ::testing::TempDir() + "cache_run." + std::to_string(getpid()) + "." + name;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}
void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

Outcome run_with_cache(const std::string& cache) {
  return run(
      {AVX512EMU_CLI, "run", "--simulate-avx2", "--stats", "--cache", cache, "--", kProgram});
}

//! JIT compiles and cache-file hits from the --stats report.
uint64_t jit_translations(const std::string& report) {
  return avx512emu::testing::stat(report, "translations");
}
uint64_t file_hits(const std::string& report) {
  std::smatch m;
  if (!std::regex_search(report, m, std::regex("\\+ ([0-9]+) \\(file\\)"))) return ~uint64_t(0);
  return std::stoull(m[1]);
}

//! The objects the runtime sweeps when it runs kProgram: the program, its
//! libraries and the preload library's own dependencies.
std::vector<std::string> swept_objects() {
  const Outcome f = run({AVX512EMU_CLI, "run", "--stats", "--", kProgram});
  std::vector<std::string> objects;
  const std::regex line("avx512emu: swept (/[^ ]+) ");
  for (auto it = std::sregex_iterator(f.err.begin(), f.err.end(), line);
       it != std::sregex_iterator(); ++it) {
    const std::string path = (*it)[1];
    objects.push_back(path == "/proc/self/exe" ? kProgram : path);
  }
  return objects;
}

std::string build_cache(const std::string& name, const std::vector<std::string>& objects) {
  const std::string path = temp_path(name);
  std::vector<std::string> argv = {AVX512EMU_CLI, "cache", "build", "-j", "2", "-o", path};
  argv.insert(argv.end(), objects.begin(), objects.end());
  const Outcome f = run(argv);
  EXPECT_EQ(f.exit_code, 0) << f.err;
  return path;
}

//! A cache covering every AVX-512 instruction the program's process holds.
const std::string& covering_cache() {
  static const std::string path = [] {
    const std::vector<std::string> objects = swept_objects();
    EXPECT_GE(objects.size(), 2u);  // at least the program and libc
    return build_cache("covering.a5c", objects);
  }();
  return path;
}

//! Recomputes the header checksum after a deliberate header edit.
void reseal_header(std::string& file) {
  CacheFileHeader h;
  std::memcpy(&h, file.data(), sizeof h);
  h.header_checksum = 0;
  h.header_checksum = avx512emu::jit::checksum64(&h, sizeof h);
  std::memcpy(file.data(), &h, sizeof h);
}

TEST(CacheRun, CoveredProgramRunsWithZeroJitTranslations) {
  const Outcome native = reference_run({kProgram}, AVX512EMU_PRELOAD_LIBRARY);
  ASSERT_EQ(native.exit_code, 0) << native.err;
  ASSERT_FALSE(native.out.empty());
  const Outcome cached = run_with_cache(covering_cache());
  ASSERT_EQ(cached.exit_code, 0) << cached.err;
  EXPECT_EQ(cached.out, native.out);
  EXPECT_EQ(jit_translations(cached.err), 0u) << cached.err;
  EXPECT_GT(file_hits(cached.err), 0u) << cached.err;
  EXPECT_NE(cached.err.find("0 JIT compiles (the file covered every instruction)"),
            std::string::npos)
      << cached.err;
}

// The control: a cache of the program alone leaves libc's AVX-512 code to
// the JIT, so the counters above really distinguish covered from not.
TEST(CacheRun, PartialCacheLeavesTheRestToTheJit) {
  const Outcome native = reference_run({kProgram}, AVX512EMU_PRELOAD_LIBRARY);
  const Outcome partial = run_with_cache(build_cache("partial.a5c", {kProgram}));
  ASSERT_EQ(partial.exit_code, 0) << partial.err;
  EXPECT_EQ(partial.out, native.out);
  EXPECT_GT(jit_translations(partial.err), 0u) << partial.err;
  EXPECT_GT(file_hits(partial.err), 0u) << partial.err;
}

TEST(CacheRun, BadCacheFilesAreRefusedAndTheProgramDoesNotRun) {
  const std::string good = read_file(covering_cache());
  ASSERT_GT(good.size(), sizeof(CacheFileHeader));
  CacheFileHeader h;
  std::memcpy(&h, good.data(), sizeof h);
  struct Case {
    const char* name;
    std::string bytes;
    const char* reason;  //!< Part of the message that says what is wrong.
  };
  std::vector<Case> cases;
  cases.push_back({"truncated", good.substr(0, good.size() / 2), "truncated"});
  cases.push_back({"header only", good.substr(0, sizeof h), "truncated"});
  std::string s = good;
  s[sizeof h + 3] ^= 0x10;  // an entry byte
  cases.push_back({"flipped table bit", s, "checksum"});
  s = good;
  s[h.code_offset + 2] ^= 0x01;  // a byte of the first translation's code
  cases.push_back({"flipped code bit", s, "checksum"});
  s = good;
  s[1] = 'Z';
  cases.push_back({"wrong magic", s, "not an avx512emu translation cache"});
  cases.push_back({"foreign file", read_file(kProgram), "not an avx512emu translation cache"});
  s = good;
  CacheFileHeader v = h;
  v.format_version = avx512emu::jit::kCacheFormatVersion + 1;
  std::memcpy(s.data(), &v, sizeof v);
  reseal_header(s);
  cases.push_back({"next format version", s, "format version"});
  s = good;
  v = h;
  std::memcpy(v.emu_version, "0.0.0-old", 10);
  std::memcpy(s.data(), &v, sizeof v);
  reseal_header(s);
  cases.push_back({"older avx512emu", s, "rebuild the cache"});

  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string path = temp_path("bad.a5c");
    write_file(path, c.bytes);
    const Outcome f = run_with_cache(path);
    EXPECT_EQ(f.exit_code, avx512emu::kBadCacheExitCode) << f.err;
    EXPECT_TRUE(f.out.empty()) << "the program ran: " << f.out.substr(0, 200);
    EXPECT_NE(f.err.find("refusing the translation cache " + path), std::string::npos) << f.err;
    EXPECT_NE(f.err.find(c.reason), std::string::npos) << f.err;
    EXPECT_NE(f.err.find("not running " + kProgram), std::string::npos) << f.err;
  }
  const Outcome missing = run_with_cache(temp_path("no-such.a5c"));
  EXPECT_EQ(missing.exit_code, avx512emu::kBadCacheExitCode);
  EXPECT_TRUE(missing.out.empty());
  EXPECT_NE(missing.err.find("No such file"), std::string::npos) << missing.err;
}

// AVX512EMU_CACHE reaches the runtime without `run`'s check: the runtime
// refuses the file itself, says so, and the program runs on the JIT.
TEST(CacheRun, BadEnvironmentCacheIsReportedAndNotUsed) {
  const std::string good = read_file(covering_cache());
  const std::string path = temp_path("env-bad.a5c");
  write_file(path, good.substr(0, good.size() - 4096));
  const Outcome native = reference_run({kProgram}, AVX512EMU_PRELOAD_LIBRARY);
  const Outcome f = run({AVX512EMU_CLI, "run", "--simulate-avx2", "--stats", "--", kProgram},
                        {{"AVX512EMU_CACHE", path}});
  ASSERT_EQ(f.exit_code, 0) << f.err;
  EXPECT_EQ(f.out, native.out);
  EXPECT_NE(f.err.find("AVX512EMU_CACHE refused: " + path + ": truncated"), std::string::npos)
      << f.err;
  EXPECT_EQ(file_hits(f.err), 0u) << f.err;
  EXPECT_GT(jit_translations(f.err), 0u) << f.err;
}

// The same good file through the environment works like --cache.
TEST(CacheRun, EnvironmentCacheServesTheRuntime) {
  const Outcome f = run({AVX512EMU_CLI, "run", "--simulate-avx2", "--stats", "--", kProgram},
                        {{"AVX512EMU_CACHE", covering_cache()}});
  ASSERT_EQ(f.exit_code, 0) << f.err;
  EXPECT_EQ(jit_translations(f.err), 0u) << f.err;
  EXPECT_GT(file_hits(f.err), 0u) << f.err;
}

}  // namespace
