// Owns the entry points of libavx512emu-preload.so: the constructor that
// reads the AVX512EMU_* options and installs the trap runtime before the
// program runs, the --stats report at exit, and the interposed libc calls
// the runtime must see (dlopen/dlclose for the sweep, sigaction/signal for
// SIGILL chaining and for wrapping the program's other handlers).
//
// Options (set by `avx512emu run`, or by hand together with LD_PRELOAD):
//   AVX512EMU_SIMULATE_AVX2=1  trap injection: arm every AVX-512 instruction
//   AVX512EMU_NO_PATCH=1       keep trapping; never patch a site with a jmp
//   AVX512EMU_STATS=1          print the sweep at start and counters at exit
//   AVX512EMU_CHECK_SHADOW=1   count shadow/hardware differences (AVX-512 hosts)
//   AVX512EMU_STATE_BLOCK_STUBS=1  patched sites copy the register file and call
//                              the dispatcher instead of running inline
//                              (the previous steady state, for comparison)
//   AVX512EMU_CACHE=FILE       use a translation-cache file (avx512emu cache build)
//   AVX512EMU_REFERENCE=1      run every trapped instruction in the reference
//                              interpreter, never patch (the tests' reference
//                              run where the CPU has no AVX-512)
#include <dlfcn.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "avx512emu.h"
#include "sigill_runtime.h"
#include "trap_injection.h"

// Debian's libasmjit.a is PIE code: its one reference to `stderr` cannot be
// linked into a shared object. The build renames that reference in a copy of
// the archive (objcopy --redefine-sym stderr=avx512emu_asmjit_stderr); this
// is the hidden variable it now points to.
extern "C" {
__attribute__((visibility("hidden"))) FILE* avx512emu_asmjit_stderr = stderr;
}

namespace {

using namespace avx512emu::runtime;

bool env_flag(const char* name) {
  const char* v = std::getenv(name);
  return v && *v && std::strcmp(v, "0") != 0;
}

void print(const std::string& text) {
  if (!text.empty()) (void)!write(STDERR_FILENO, text.data(), text.size());
}

//! The AVX512EMU_CACHE file, when one was given and accepted.
const char* g_cache_file = nullptr;

//! Loads AVX512EMU_CACHE before the sweep, so that the sweep's
//! pre-translations come from the file. A file the loader refuses is never
//! used; the program still runs, translating at run time, and is told why
//! on stderr whatever the options (`avx512emu run --cache` refuses such a
//! file before the program starts).
void load_cache_file(bool stats) {
  const char* path = std::getenv("AVX512EMU_CACHE");
  if (!path || !*path) return;
  std::string error;
  if (!avx512emu::load_translation_cache(path, error)) {
    print("avx512emu: AVX512EMU_CACHE refused: " + error +
          "; not using it, translating at run time instead\n");
    return;
  }
  g_cache_file = path;
  if (stats) print(std::string("avx512emu: translation cache ") + path + " loaded\n");
}

//! The --stats line about the cache file: how many translations it served
//! and how many the JIT still had to compile (0 when the file covered every
//! AVX-512 instruction the process met).
std::string cache_report_text() {
  if (!g_cache_file) return "";
  const avx512emu::TranslateStats t = avx512emu::translate_stats();
  return "avx512emu stats: translation cache " + std::string(g_cache_file) + ": " +
         std::to_string(t.file_hits) + " translations from the file, " +
         std::to_string(t.translations) + " JIT compiles" +
         (t.translations == 0 ? " (the file covered every instruction)\n"
                              : " (instructions the file does not have)\n");
}

void sweep_and_report() {
  const bool arm = runtime_options().simulate_avx2;
  const auto sweeps = sweep_loaded_objects(arm);
  if (runtime_options().stats) print(sweep_report_text(sweeps, arm));
}

// The dynamic loader runs this after the constructors of the libraries we
// depend on and before the program's own: code that runs earlier than this
// meets no SIGILL handler. Everything it uses is constant-initialised or
// built on first use, since this file's initialisers may run before those of
// the runtime's other files.
__attribute__((constructor)) void avx512emu_preload_init() {
  RuntimeOptions options;
  options.patch = !env_flag("AVX512EMU_NO_PATCH");
  options.simulate_avx2 = env_flag("AVX512EMU_SIMULATE_AVX2");
  options.stats = env_flag("AVX512EMU_STATS");
  options.check_shadow = env_flag("AVX512EMU_CHECK_SHADOW");
  options.inline_stubs = !env_flag("AVX512EMU_STATE_BLOCK_STUBS");
  options.loop_regions = !env_flag("AVX512EMU_NO_LOOP_REGIONS");
  options.reference_interpreter = env_flag("AVX512EMU_REFERENCE");
  options.perf_map = env_flag("AVX512EMU_PERF_MAP");
  if (options.reference_interpreter) options.patch = false;
  load_cache_file(options.stats);
  std::string error;
  if (!install_sigill_runtime(options, error)) {
    print("avx512emu: runtime not installed: " + error + "\n");
    return;
  }
  // On an AVX2 CPU glibc picks its AVX2 string functions; trap injection
  // must see the same choice, or glibc's AVX-512 ones trap (avx512emu run
  // sets the tunable).
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  if (options.simulate_avx2 && (!tunables || !std::strstr(tunables, "-AVX512F")))
    print(
        "avx512emu: warning: AVX512EMU_SIMULATE_AVX2 without glibc.cpu.hwcaps=-AVX512F in "
        "GLIBC_TUNABLES: glibc's own AVX-512 functions will run under emulation too (use "
        "'avx512emu run --simulate-avx2')\n");
  sweep_and_report();
}

__attribute__((destructor)) void avx512emu_preload_fini() {
  if (sigill_runtime_installed() && runtime_options().stats)
    print(runtime_stats_text() + cache_report_text());
}

template <class Fn>
Fn next_symbol(const char* name) {
  return reinterpret_cast<Fn>(dlsym(RTLD_NEXT, name));
}

}  // namespace

// ---- Interposed libc functions ------------------------------------------------
// Known limit: glibc finds a dlopen caller's RUNPATH from the return address,
// which is now ours; a program that dlopens a bare name found only through
// its own DT_RUNPATH does not find it under avx512emu (see README.md).

extern "C" __attribute__((visibility("default"))) void* dlopen(const char* file, int mode) {
  static const auto real = next_symbol<void* (*)(const char*, int)>("dlopen");
  void* handle = real(file, mode);
  if (handle && sigill_runtime_installed()) sweep_and_report();
  return handle;
}

extern "C" __attribute__((visibility("default"))) int dlclose(void* handle) {
  static const auto real = next_symbol<int (*)(void*)>("dlclose");
  const int rc = real(handle);
  if (rc == 0 && sigill_runtime_installed()) forget_unloaded_objects();
  return rc;
}

// SIGILL stays ours: the program's disposition is recorded and used for the
// SIGILLs the runtime does not emulate, and reported back on queries.
extern "C" __attribute__((visibility("default"))) int sigaction(int sig,
                                                                const struct sigaction* act,
                                                                struct sigaction* old) {
  static const auto real =
      next_symbol<int (*)(int, const struct sigaction*, struct sigaction*)>("sigaction");
  if (sig == SIGILL && sigill_runtime_installed()) {
    set_program_sigill_action(act, old);
    return 0;
  }
  if (!sigill_runtime_installed()) return real(sig, act, old);
  if (set_program_fault_action(sig, act, old)) return 0;
  // Other handlers run through the runtime's wrapper (emulated registers
  // saved around them, sigill_runtime.h).
  struct sigaction installed;
  if (act) wrap_signal_action(sig, *act, installed);
  const int rc = real(sig, act ? &installed : nullptr, old);
  if (rc == 0 && old) unwrap_signal_action(sig, *old);
  return rc;
}

extern "C" __attribute__((visibility("default"))) sighandler_t signal(int sig,
                                                                      sighandler_t handler) {
  static const auto real = next_symbol<sighandler_t (*)(int, sighandler_t)>("signal");
  if (sig == SIGILL && sigill_runtime_installed()) {
    struct sigaction act = {}, old = {};
    act.sa_handler = handler;
    act.sa_flags = SA_RESTART;  // glibc's signal() has BSD semantics
    set_program_sigill_action(&act, &old);
    return old.sa_handler;
  }
  if (!sigill_runtime_installed()) return real(sig, handler);
  // glibc's signal() calls its internal sigaction, which this library does
  // not see: go through ours, with signal()'s BSD semantics.
  struct sigaction act = {}, old = {};
  act.sa_handler = handler;
  act.sa_flags = SA_RESTART;
  sigemptyset(&act.sa_mask);
  sigaddset(&act.sa_mask, sig);
  if (sigaction(sig, &act, &old) != 0) return SIG_ERR;
  return old.sa_handler;
}
