// Owns `avx512emu run`: option parsing, the up-front check of a --cache
// file, the environment handed to the program (LD_PRELOAD, AVX512EMU_*,
// GLIBC_TUNABLES) and the exec.
#include "run_command.h"

#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "cache_builder.h"
#include "cache_file.h"

namespace avx512emu {
namespace {

constexpr const char* kRunUsage =
    "usage: avx512emu run [--stats] [--no-patch] [--simulate-avx2] [--cache FILE] [--perf-map]\n"
    "                     [--help] -- PROGRAM [ARGS...]\n"
    "\n"
    "Runs PROGRAM with the avx512emu trap runtime preloaded: every AVX-512\n"
    "instruction the CPU rejects (SIGILL) runs as translated AVX2 code. After\n"
    "its first trap an instruction is patched with a jump to its translation,\n"
    "so it does not trap again.\n"
    "\n"
    "options:\n"
    "  --stats          print what was swept at start and the trap counters at exit\n"
    "  --no-patch       keep trapping at every execution (measurements, debugging)\n"
    "  --simulate-avx2  behave as on an AVX2-only CPU on this AVX-512 machine:\n"
    "                   overwrite every AVX-512 instruction of the program and its\n"
    "                   libraries with ud2 so it traps, and make glibc choose its\n"
    "                   AVX2 string functions (GLIBC_TUNABLES), as on such a CPU\n"
    "  --cache FILE     take translations from FILE (written by 'avx512emu cache\n"
    "                   build') instead of compiling them; the file is checked\n"
    "                   first, and a missing, corrupt, foreign or version-\n"
    "                   mismatched file stops here: the program is not run\n"
    "  --perf-map       name every stub of translated code in /tmp/perf-PID.map,\n"
    "                   so that 'perf report' attributes the time spent in it\n"
    "                   (\"avx512emu loop region at 0x...\": the site it serves)\n"
    "  --help           this text\n"
    "\n"
    "environment: AVX512EMU_PRELOAD (the preload library), AVX512EMU_CACHE\n"
    "(what --cache sets).\n"
    "\n"
    "example:\n  avx512emu run --stats -- ./my_avx512_program --its-args\n";

//! glibc's CPU-feature mask that makes its ifuncs pick the AVX2 variants,
//! as they would on an AVX2-only CPU.
constexpr const char* kNoAvx512Tunables =
    "glibc.cpu.hwcaps=-AVX512F,-AVX512VL,-AVX512BW,-AVX512DQ,-AVX512CD";

bool file_exists(const std::string& p) {
  return access(p.c_str(), R_OK) == 0;
}

std::string self_directory() {
  char buf[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "";
  std::string path(buf, size_t(n));
  return path.substr(0, path.rfind('/'));
}

//! Prepends `value` to the `sep`-separated list in variable `name`.
void prepend_env(const char* name, const std::string& value, char sep) {
  const char* old = std::getenv(name);
  const std::string v = old && *old ? value + sep + old : value;
  setenv(name, v.c_str(), 1);
}

//! Checks a --cache file as completely as the runtime ever will (header,
//! tables and the checksum of every translation), so that a bad file stops
//! `run` before the program starts instead of being ignored inside it.
//! Returns the absolute path to hand to the program (which may chdir).
bool check_cache_file(const std::string& path, std::string& absolute, std::string& error) {
  const auto file = jit::CacheFile::open(path, emu_version(), error);
  if (!file) return false;
  std::string first_bad;
  if (const uint32_t bad = file->verify_all_code(&first_bad)) {
    error = path + ": corrupt: " + std::to_string(bad) + " translations fail their checksum (" +
            first_bad + ")";
    return false;
  }
  char resolved[PATH_MAX];
  if (!realpath(path.c_str(), resolved)) {
    error = path + ": " + std::strerror(errno);
    return false;
  }
  absolute = resolved;
  return true;
}

}  // namespace

std::string find_preload_library() {
  if (const char* p = std::getenv("AVX512EMU_PRELOAD"); p && *p) return file_exists(p) ? p : "";
  const std::string dir = self_directory();
  for (const std::string& candidate :
       {dir + "/libavx512emu-preload.so", dir + "/../lib/avx512emu/libavx512emu-preload.so"})
    if (file_exists(candidate)) return candidate;
  return "";
}

int run_command(int argc, char** argv) {
  bool stats = false, no_patch = false, simulate = false, perf_map = false;
  const char* cache = nullptr;
  int i = 0;
  for (; i < argc; ++i) {
    const char* a = argv[i];
    if (!std::strcmp(a, "--")) {
      ++i;
      break;
    }
    if (!std::strcmp(a, "--help") || !std::strcmp(a, "-h")) {
      std::fputs(kRunUsage, stdout);
      return 0;
    }
    if (!std::strcmp(a, "--stats"))
      stats = true;
    else if (!std::strcmp(a, "--no-patch"))
      no_patch = true;
    else if (!std::strcmp(a, "--simulate-avx2"))
      simulate = true;
    else if (!std::strcmp(a, "--perf-map"))
      perf_map = true;
    else if (!std::strcmp(a, "--cache")) {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "avx512emu run: --cache needs a FILE\n\n%s", kRunUsage);
        return 2;
      }
      cache = argv[++i];
    } else if (a[0] == '-') {
      std::fprintf(stderr, "avx512emu run: unknown option '%s'\n\n%s", a, kRunUsage);
      return 2;
    } else {
      break;  // the program (the "--" is optional when it does not start with '-')
    }
  }
  if (i >= argc) {
    std::fprintf(stderr, "avx512emu run: no program given\n\n%s", kRunUsage);
    return 2;
  }
  const std::string preload = find_preload_library();
  if (preload.empty()) {
    std::fprintf(
        stderr,
        "avx512emu run: cannot find libavx512emu-preload.so (looked in $AVX512EMU_PRELOAD, "
        "next to this executable and in ../lib/avx512emu/)\n");
    return 1;
  }
  if (cache) {
    std::string absolute, error;
    if (!check_cache_file(cache, absolute, error)) {
      std::fprintf(stderr,
                   "avx512emu run: refusing the translation cache %s\n"
                   "avx512emu run: not running %s (rebuild the file with 'avx512emu cache build', "
                   "or run without --cache)\n",
                   error.c_str(), argv[i]);
      return kBadCacheExitCode;
    }
    setenv("AVX512EMU_CACHE", absolute.c_str(), 1);
  }
  prepend_env("LD_PRELOAD", preload, ':');
  if (stats) setenv("AVX512EMU_STATS", "1", 1);
  if (perf_map) setenv("AVX512EMU_PERF_MAP", "1", 1);
  if (no_patch) setenv("AVX512EMU_NO_PATCH", "1", 1);
  if (simulate) {
    setenv("AVX512EMU_SIMULATE_AVX2", "1", 1);
    // Appended: a later glibc.cpu.hwcaps would override the user's.
    const char* old = std::getenv("GLIBC_TUNABLES");
    const std::string t =
        old && *old ? std::string(old) + ":" + kNoAvx512Tunables : kNoAvx512Tunables;
    setenv("GLIBC_TUNABLES", t.c_str(), 1);
  }
  execvp(argv[i], argv + i);
  const int err = errno;
  std::fprintf(stderr, "avx512emu run: cannot execute '%s': %s\n", argv[i], std::strerror(err));
  return err == ENOENT ? 127 : 126;
}

}  // namespace avx512emu
