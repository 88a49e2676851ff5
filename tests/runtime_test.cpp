// The user-mode trap runtime end to end: programs with unconditional AVX-512
// code (tests/runtime_programs) run natively, under `avx512emu run
// --simulate-avx2` (trap injection on an AVX-512 machine, natural traps on
// an AVX2-only one; with and without patching) and under `qemu-x86_64 -cpu
// max` (an AVX2-only CPU model, where the traps are natural) with the
// preload library. Their output must be the reference output byte for byte:
// the native run on a CPU with AVX-512, else the reference interpreter's
// run (reference_run() in subprocess.h). Plus: `avx512emu run` argument handling,
// VEX/EVEX mixing, and an instruction this CPU really rejects and avx512emu
// does not translate, which must end the program as it would without us.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <ostream>
#include <regex>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "scan.h"
#include "subprocess.h"

namespace {

const std::string kPrograms = AVX512EMU_RUNTIME_PROGRAMS;

using avx512emu::selfcheck::host_runs_avx512;
using avx512emu::testing::describe;
using avx512emu::testing::Env;
using avx512emu::testing::Outcome;
using avx512emu::testing::run;
using avx512emu::testing::stat;

//! `avx512emu run`: the CLI once it dispatches `run`, else the standalone
//! avx512emu-run built from the same source.
std::vector<std::string> run_tool() {
  static const std::vector<std::string> tool =
      avx512emu::testing::run_tool(AVX512EMU_CLI, AVX512EMU_RUN_STANDALONE);
  return tool;
}

std::vector<std::string> under_avx512emu(const std::vector<std::string>& options,
                                         const std::vector<std::string>& program) {
  std::vector<std::string> argv = run_tool();
  argv.insert(argv.end(), options.begin(), options.end());
  argv.push_back("--");
  argv.insert(argv.end(), program.begin(), program.end());
  return argv;
}

//! The program's reference run (native where the CPU has AVX-512).
Outcome reference(const std::vector<std::string>& program) {
  return avx512emu::testing::reference_run(program, AVX512EMU_PRELOAD_LIBRARY);
}

const char* const kNoQemu = "qemu-x86_64 is not installed, or the programs are sanitized";

//! Whether the programs can run under qemu-x86_64: installed, and the programs
//! are not built with ASan or TSan (scripts/sanitize.sh): those did not
//! finish under qemu-user (killed at the test's timeout, with no output).
bool have_qemu() {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  return false;
#else
  return run({"qemu-x86_64", "--version"}).exit_code == 0;
#endif
}

std::vector<std::string> under_qemu(const std::vector<std::string>& program, const Env& env = {}) {
  std::vector<std::string> argv = {"qemu-x86_64", "-cpu", "max", "-E",
                                   std::string("LD_PRELOAD=") + AVX512EMU_PRELOAD_LIBRARY};
  for (const auto& [name, value] : env) {
    argv.push_back("-E");
    argv.push_back(name + "=" + value.value_or(""));
  }
  argv.insert(argv.end(), program.begin(), program.end());
  return argv;
}

//! The last `n` space-separated words of `text`.
std::vector<std::string> last_words(const std::string& text, size_t n) {
  std::vector<std::string> words;
  std::istringstream in(text);
  for (std::string w; in >> w;) words.push_back(w);
  if (words.size() > n) words.erase(words.begin(), words.end() - long(n));
  return words;
}

// ---- avx512emu run: arguments ---------------------------------------------------------

TEST(RunCommand, HelpPrintsUsage) {
  // Which `run` the suite exercises: the CLI once it dispatches `run`.
  ::testing::Test::RecordProperty("run_tool", run_tool()[0]);
  const Outcome o = run(under_avx512emu({"--help"}, {}));
  EXPECT_EQ(o.exit_code, 0) << describe(o);
  EXPECT_NE(o.out.find("usage: avx512emu run"), std::string::npos);
  EXPECT_NE(o.out.find("--simulate-avx2"), std::string::npos);
}

TEST(RunCommand, UnknownOptionIsAnError) {
  std::vector<std::string> argv = run_tool();
  argv.insert(argv.end(), {"--bogus", "--", "true"});
  const Outcome o = run(argv);
  EXPECT_EQ(o.exit_code, 2) << describe(o);
  EXPECT_NE(o.err.find("unknown option '--bogus'"), std::string::npos) << o.err;
}

TEST(RunCommand, MissingProgramIsAnError) {
  std::vector<std::string> argv = run_tool();
  argv.push_back("--stats");
  const Outcome o = run(argv);
  EXPECT_EQ(o.exit_code, 2) << describe(o);
  EXPECT_NE(o.err.find("no program given"), std::string::npos) << o.err;
}

TEST(RunCommand, ProgramThatDoesNotExist) {
  const Outcome o = run(under_avx512emu({}, {"/nonexistent/program"}));
  EXPECT_EQ(o.exit_code, 127) << describe(o);
  EXPECT_NE(o.err.find("cannot execute '/nonexistent/program'"), std::string::npos) << o.err;
}

TEST(RunCommand, MissingPreloadLibrary) {
  const Outcome o =
      run(under_avx512emu({}, {"true"}), {{"AVX512EMU_PRELOAD", "/nonexistent/lib.so"}});
  EXPECT_EQ(o.exit_code, 1) << describe(o);
  EXPECT_NE(o.err.find("cannot find libavx512emu-preload.so"), std::string::npos) << o.err;
}

TEST(RunCommand, HandsOptionsToTheProgramsEnvironment) {
  const Outcome o = run(under_avx512emu({"--no-patch", "--simulate-avx2"}, {"env"}),
                        {{"GLIBC_TUNABLES", "glibc.malloc.check=0"}});
  ASSERT_EQ(o.exit_code, 0) << describe(o);
  EXPECT_NE(o.out.find("LD_PRELOAD=" + std::string(AVX512EMU_PRELOAD_LIBRARY)), std::string::npos)
      << o.out;
  EXPECT_NE(o.out.find("AVX512EMU_NO_PATCH=1"), std::string::npos);
  EXPECT_NE(o.out.find("AVX512EMU_SIMULATE_AVX2=1"), std::string::npos);
  // The user's tunables stay; glibc is told to pick its AVX2 functions.
  EXPECT_NE(o.out.find("GLIBC_TUNABLES=glibc.malloc.check=0:glibc.cpu.hwcaps=-AVX512F"),
            std::string::npos)
      << o.out;
  EXPECT_EQ(o.out.find("AVX512EMU_STATS"), std::string::npos);
}

// ---- The programs ----------------------------------------------------------------------

struct Program {
  const char* name;
  std::vector<std::string> argv;
};

void PrintTo(const Program& p, std::ostream* os) {
  *os << p.name;
}

std::vector<Program> programs() {
  return {
      {"masked_fp", {kPrograms + "/masked_fp"}},
      {"masked_int", {kPrograms + "/masked_int"}},
      {"threads8", {kPrograms + "/threads8"}},
      {"vex_mix", {kPrograms + "/vex_mix"}},
      {"dlopen", {kPrograms + "/dlopen_main", AVX512EMU_RUNTIME_DLOPEN_LIB}},
      {"own_sigill_handler", {kPrograms + "/natural_trap", "handler"}},
      {"timer_signals", {kPrograms + "/timer_signals"}},
      {"cxx_exceptions", {kPrograms + "/cxx_exceptions"}},
      {"loop_regions", {kPrograms + "/loop_regions"}},
  };
}

class RuntimeProgram : public ::testing::TestWithParam<Program> {
 protected:
  static Outcome native(const Program& p) {
    const Outcome o = reference(p.argv);
    EXPECT_EQ(o.exit_code, 0) << describe(o);
    EXPECT_FALSE(o.out.empty());
    return o;
  }
};

TEST_P(RuntimeProgram, EveryAvx512InstructionTranslates) {
  // The programs are meant to use only what the pipeline translates; a
  // failure here names the instruction that became part of them.
  uint64_t avx512 = 0;
  for (const std::string& file : GetParam().argv) {
    if (file.find('/') == std::string::npos) continue;  // an argument, not a file
    const avx512emu::ScanResult r = avx512emu::scan_elf_file(file);
    ASSERT_TRUE(r.error.empty()) << file << ": " << r.error;
    avx512 += r.avx512;
    std::string untranslated;
    for (const auto& [mnemonic, n] : r.untranslated)
      if (mnemonic != "vexp2ps") untranslated += mnemonic + " ";  // natural_trap's, on purpose
    EXPECT_TRUE(untranslated.empty()) << file << ": untranslated " << untranslated;
  }
  EXPECT_GT(avx512, 0u);
}

TEST_P(RuntimeProgram, SimulatedAvx2MatchesNative) {
  const Outcome n = native(GetParam());
  const Outcome e = run(under_avx512emu({"--simulate-avx2", "--stats"}, GetParam().argv));
  ASSERT_EQ(e.exit_code, 0) << describe(e);
  EXPECT_EQ(e.out, n.out);
  // The AVX-512 code really trapped and ran translated, and steady state
  // went through patched sites.
  EXPECT_GT(stat(e.err, "traps"), 0u) << e.err;
  EXPECT_NE(stat(e.err, "traps"), ~uint64_t(0)) << e.err;
  EXPECT_GT(stat(e.err, "patched sites"), 0u) << e.err;
  EXPECT_GT(stat(e.err, "stub runs"), 0u) << e.err;
  EXPECT_NE(e.err.find("swept /proc/self/exe"), std::string::npos) << e.err;
  EXPECT_EQ(e.err.find("cannot emulate"), std::string::npos) << e.err;
}

TEST_P(RuntimeProgram, SteadyStateDoesNotTrap) {
  // After the first trap a site is patched (jmp rel32 to a stub; a 4-byte
  // opmask instruction followed by another AVX-512 instruction spans into
  // it), so nearly every execution runs through a stub. The few traps left
  // are first executions and 4-byte sites with nothing to span.
  const std::string name = GetParam().name;
  if (name == "own_sigill_handler" || name == "vex_mix")
    GTEST_SKIP() << "runs its AVX-512 code too few times for a ratio";
  const Outcome e = run(under_avx512emu({"--simulate-avx2", "--stats"}, GetParam().argv));
  ASSERT_EQ(e.exit_code, 0) << describe(e);
  EXPECT_GT(stat(e.err, "stub runs"), 10 * stat(e.err, "traps")) << e.err;
}

TEST_P(RuntimeProgram, SimulatedAvx2WithoutPatchingMatchesNative) {
  const Outcome n = native(GetParam());
  const Outcome e =
      run(under_avx512emu({"--simulate-avx2", "--no-patch", "--stats"}, GetParam().argv));
  ASSERT_EQ(e.exit_code, 0) << describe(e);
  EXPECT_EQ(e.out, n.out);
  EXPECT_GT(stat(e.err, "traps"), 0u) << e.err;
  EXPECT_EQ(stat(e.err, "patched sites"), 0u) << e.err;
  EXPECT_EQ(stat(e.err, "stub runs"), 0u) << e.err;
}

TEST_P(RuntimeProgram, QemuAvx2CpuWithPreloadMatchesNative) {
  if (!have_qemu()) GTEST_SKIP() << kNoQemu;
  const Outcome n = native(GetParam());
  const Outcome e = run(under_qemu(GetParam().argv, {{"AVX512EMU_STATS", "1"}}));
  ASSERT_EQ(e.exit_code, 0) << describe(e);
  EXPECT_EQ(e.out, n.out);
  EXPECT_GT(stat(e.err, "traps"), 0u) << e.err;
}

INSTANTIATE_TEST_SUITE_P(Programs, RuntimeProgram, ::testing::ValuesIn(programs()),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(Qemu, IsAnAvx2OnlyCpuModel) {
  // Without the preload the programs die there: the traps in the QEMU tests
  // above are natural ones.
  if (!have_qemu()) GTEST_SKIP() << kNoQemu;
  const Outcome o = run({"qemu-x86_64", "-cpu", "max", kPrograms + "/masked_fp"});
  EXPECT_EQ(o.signal, SIGILL) << describe(o);
}

TEST(TrapInjection, ArmsLibrariesLoadedByDlopen) {
  const Outcome e = run(under_avx512emu(
      {"--simulate-avx2", "--stats"}, {kPrograms + "/dlopen_main", AVX512EMU_RUNTIME_DLOPEN_LIB}));
  ASSERT_EQ(e.exit_code, 0) << describe(e);
  std::smatch m;
  ASSERT_TRUE(std::regex_search(
      e.err, m,
      std::regex(std::string("swept ") + AVX512EMU_RUNTIME_DLOPEN_LIB +
                 " \\([a-z_+]+\\): ([0-9]+) AVX-512 instructions, ([0-9]+) pre-translated, "
                 "([0-9]+) armed")))
      << e.err;
  EXPECT_GT(std::stoull(m[1]), 0u);
  EXPECT_EQ(m[1], m[2]);  // every one translated ...
  EXPECT_EQ(m[1], m[3]);  // ... and armed
}

TEST(TrapInjection, HitPathCallsNoLibcFunction) {
  // The SIGILL handler's hit path, the stub path and the patcher run with
  // armed libc code around them and may interrupt libc itself: they must not
  // call into libc (memcpy and friends are AVX-512 code on this machine).
  // The only call allowed is pthread_setspecific, on a thread's first trap
  // (no lock, no allocation for the runtime's key; see sigill_runtime.cpp).
  const Outcome d = run({"objdump", "-d", "-C", "--no-show-raw-insn", AVX512EMU_PRELOAD_LIBRARY});
  if (d.exit_code != 0) GTEST_SKIP() << "objdump is not available";
  const std::vector<std::string> hit_path = {"handle_sigill(",
                                             "avx512emu_stub_dispatch",
                                             "patch_site(",
                                             "find_site(",
                                             "thread_shadow(",
                                             "enter_ymm(",
                                             "load_from_frame(",
                                             "store_to_frame(",
                                             "apply_locked(",
                                             "swap_pages(",
                                             "alloc_stub(",
                                             "map_arena(",
                                             "make_stub(",
                                             "SiteTable::lookup(",
                                             "in_code_region(",
                                             "new_plan(",
                                             "write_avx512_components("};
  std::istringstream in(d.out);
  std::string line, function;
  std::vector<std::string> checked;
  for (bool inside = false; std::getline(in, line);) {
    if (!line.empty() && line.back() == ':' && line.find(" <") != std::string::npos) {
      function = line;
      inside = std::any_of(hit_path.begin(), hit_path.end(), [&](const std::string& f) {
        return function.find(f) != std::string::npos && function.find(".cold") == std::string::npos;
      });
      if (inside) checked.push_back(function);
      continue;
    }
    if (!inside || line.find("@plt>") == std::string::npos) continue;
    EXPECT_NE(line.find("pthread_setspecific@plt"), std::string::npos)
        << function << "\n  " << line;
  }
  // The inliner decides which helpers remain functions; these always do.
  for (const char* must : {"handle_sigill(", "avx512emu_stub_dispatch", "patch_site("})
    EXPECT_TRUE(
        std::any_of(checked.begin(), checked.end(),
                    [&](const std::string& f) { return f.find(must) != std::string::npos; }))
        << must << " not found in the disassembly";
}

// ---- VEX/EVEX mixing -------------------------------------------------------------------

TEST(VexEvexMixing, UndetectableCaseBehavesAsDocumented) {
  // A VEX write that leaves ymm1 unchanged still zeroes zmm1[511:256] in
  // hardware; the runtime cannot see it (sigill_runtime.h), so the emulated
  // upper half keeps its old value, and AVX512EMU_CHECK_SHADOW (comparing
  // the shadow with this AVX-512 CPU's registers) reports the difference.
  // Should this start to match native, update the documentation.
  if (!host_runs_avx512()) GTEST_SKIP() << "compares with this CPU's AVX-512 registers";
  const std::vector<std::string> prog = {kPrograms + "/vex_mix", "undetectable"};
  const Outcome n = run(prog);
  ASSERT_EQ(n.exit_code, 0) << describe(n);
  const Outcome e =
      run(under_avx512emu({"--simulate-avx2", "--stats"}, prog), {{"AVX512EMU_CHECK_SHADOW", "1"}});
  ASSERT_EQ(e.exit_code, 0) << describe(e);
  // The line ends with four 16-byte groups of zmm1 as stored: native has
  // bits 511:256 zero, the emulation the stale pattern.
  const std::vector<std::string> hw = last_words(n.out, 4), emu = last_words(e.out, 4);
  ASSERT_EQ(hw.size(), 4u) << n.out;
  ASSERT_EQ(emu.size(), 4u) << e.out;
  EXPECT_EQ(emu[0], hw[0]);
  EXPECT_EQ(emu[1], hw[1]);
  EXPECT_EQ(hw[2] + hw[3], std::string(64, '0'));
  EXPECT_NE(emu[2] + emu[3], std::string(64, '0'));
  EXPECT_EQ(stat(e.err, "shadow mismatches"), 1u) << e.err;
}

TEST(VexEvexMixing, DetectableWritesLeaveNoStaleUpperBits) {
  // Already compared with native in RuntimeProgram/*vex_mix*; here the shadow
  // check confirms the shadow equals the hardware at every trap.
  if (!host_runs_avx512()) GTEST_SKIP() << "compares the shadow with this CPU's AVX-512 registers";
  const std::vector<std::string> prog = {kPrograms + "/vex_mix"};
  const Outcome e = run(under_avx512emu({"--simulate-avx2", "--no-patch", "--stats"}, prog),
                        {{"AVX512EMU_CHECK_SHADOW", "1"}});
  ASSERT_EQ(e.exit_code, 0) << describe(e);
  EXPECT_EQ(e.out, run(prog).out);
  EXPECT_EQ(stat(e.err, "shadow mismatches"), 0u) << e.err;
}

TEST(VexEvexMixing, ZeroingIdiomsBetweenEvexInstructionsMatchNative) {
  // vex_mix's idiom cases zero a register whose bits 255:0 were already zero
  // (a change the entry comparison cannot see), as simdjson's icelake
  // validate_utf8 does. They match native only because the sweep armed the
  // idioms; each ran once trapping and once in a stub (the output is also
  // compared with native, under --no-patch and QEMU, in RuntimeProgram).
  const std::vector<std::string> prog = {kPrograms + "/vex_mix"};
  const Outcome n = reference(prog);
  ASSERT_EQ(n.exit_code, 0) << describe(n);
  // Native: after the idiom the EVEX or with `other` leaves other's bytes
  // (a0..df) in all 512 bits; a stale upper half would show other bits.
  std::string other;
  for (int i = 0; i < 64; ++i) {
    char byte[3];
    std::snprintf(byte, sizeof byte, "%02x", 0xa0 + i);
    other += byte;
    if (i % 16 == 15 && i != 63) other += ' ';
  }
  ASSERT_TRUE(std::regex_search(n.out, std::regex("vpxor-xmm4 +" + other + "\n"))) << n.out;
  const Outcome e =
      run(under_avx512emu({"--simulate-avx2", "--stats"}, prog), {{"AVX512EMU_CHECK_SHADOW", "1"}});
  ASSERT_EQ(e.exit_code, 0) << describe(e);
  EXPECT_EQ(e.out, n.out);
  EXPECT_EQ(stat(e.err, "shadow mismatches"), 0u) << e.err;
  // vpxor xmm4, vxorps ymm4, vpsubd xmm4, vpxor xmm12 and the vzeroupper
  // between EVEX instructions, at least.
  const std::regex line("vex zero idioms armed ([0-9]+) \\(traps ([0-9]+), stub runs ([0-9]+)\\)");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(e.err, m, line)) << e.err;
  EXPECT_GE(std::stoull(m[1]), 5u) << e.err;
  EXPECT_GE(std::stoull(m[2]), 5u) << e.err;
  EXPECT_GE(std::stoull(m[3]), 5u) << e.err;
}

// ---- Memory faults ----------------------------------------------------------------------

TEST(Faults, MaskedLoadsAtAGuardPageEndAsNatively) {
  // masked-off: the elements in the guard page are masked off, no fault.
  // fault: one is enabled, SIGSEGV kills the program.
  // handler: the program's SIGSEGV handler sees the guard page's address.
  for (const char* mode : {"masked-off", "fault", "handler"}) {
    SCOPED_TRACE(mode);
    const std::vector<std::string> prog = {kPrograms + "/fault", mode};
    const Outcome n = reference(prog);
    ASSERT_TRUE(n.exit_code == 0 || n.signal == SIGSEGV) << describe(n);
    std::vector<Outcome> emulated = {run(under_avx512emu({"--simulate-avx2"}, prog)),
                                     run(under_avx512emu({"--simulate-avx2", "--no-patch"}, prog))};
    if (have_qemu()) emulated.push_back(run(under_qemu(prog)));
    for (const Outcome& e : emulated) {
      EXPECT_EQ(e.out, n.out) << describe(e);
      EXPECT_EQ(e.exit_code, n.exit_code) << describe(e);
      EXPECT_EQ(e.signal, n.signal) << describe(e);
    }
  }
}

TEST(Faults, FaultsInsideTranslatedCodeLookLikeTheInstructionsOwn) {
  // The program's handler checks RIP (the instruction's address), si_addr or
  // si_code, and a GPR and an xmm register set before the instruction; the
  // instruction ran 20 times first, so with patching the fault comes from
  // inside an inline stub, and with --no-patch from the SIGILL handler.
  // segv-return: the handler maps the page and returns, and the instruction
  // completes. QEMU raises no SIGFPE for unmasked SIMD exceptions: fpe is
  // checked on the hardware only.
  // The reference interpreter raises no SIGFPE either: without AVX-512 on
  // this CPU, fpe is held to the program's own checks (its handler prints
  // "rip at-instruction" and the registers it found).
  for (const char* mode : {"segv-rip", "segv-return", "fpe"}) {
    SCOPED_TRACE(mode);
    const std::vector<std::string> prog = {kPrograms + "/translated_faults", mode};
    if (std::string(mode) == "fpe" && !host_runs_avx512()) {
      for (const Outcome& e : {run(under_avx512emu({"--simulate-avx2"}, prog)),
                               run(under_avx512emu({"--simulate-avx2", "--no-patch"}, prog))}) {
        EXPECT_EQ(e.exit_code, 0) << describe(e);
        EXPECT_NE(e.out.find("rip at-instruction"), std::string::npos) << e.out;
      }
      continue;
    }
    const Outcome n = reference(prog);
    ASSERT_EQ(n.exit_code, 0) << describe(n);
    ASSERT_NE(n.out.find("rip at-instruction"), std::string::npos) << n.out;
    std::vector<Outcome> emulated = {run(under_avx512emu({"--simulate-avx2"}, prog)),
                                     run(under_avx512emu({"--simulate-avx2", "--no-patch"}, prog))};
    if (have_qemu() && std::string(mode) != "fpe") emulated.push_back(run(under_qemu(prog)));
    for (const Outcome& e : emulated) {
      EXPECT_EQ(e.out, n.out) << describe(e);
      EXPECT_EQ(e.exit_code, n.exit_code) << describe(e);
      EXPECT_EQ(e.signal, n.signal) << describe(e);
    }
  }
}

// ---- Loop regions ------------------------------------------------------------------------

//! `prog` under `avx512emu run --simulate-avx2 --stats` (with `env`), after
//! checking that it prints what its reference run prints.
Outcome emulated_like_reference(const std::vector<std::string>& prog, const Env& env = {}) {
  const Outcome n = reference(prog);
  EXPECT_EQ(n.exit_code, 0) << describe(n);
  const Outcome e = run(under_avx512emu({"--simulate-avx2", "--stats"}, prog), env);
  EXPECT_EQ(e.exit_code, 0) << describe(e);
  EXPECT_EQ(e.out, n.out);
  return e;
}

TEST(LoopRegions, LoopsRunInsideRegionsWithTheProgramsResults) {
  // loop_regions' loops (side exits and entries, an indirect jump into a
  // loop, VEX and SSE writes, flags live across translated instructions,
  // faults in copied and in translated loads with the program's handler
  // resuming) are all region-shaped: the stats must show regions built and
  // most AVX-512 work done inside them, and the output must be the
  // reference's (RuntimeProgram covers QEMU and --no-patch).
  const Outcome e = emulated_like_reference({kPrograms + "/loop_regions"});
  // One region per loop (side, jump table, vex, two flags loops, faults):
  // the other sites of a loop trap once in its first iteration and must not
  // copy it again.
  EXPECT_EQ(stat(e.err, "loop regions built"), 6u) << e.err;
  EXPECT_GT(stat(e.err, "inside loop regions"), 10 * stat(e.err, "at patched sites")) << e.err;
  // Both faults reached the handler at the instruction's own address, with
  // the markers the loop set (values from the program's source).
  const std::string seen =
      "signal 11 code 2 addr guard rip at-instruction r12 5555666677778888 xmm2 "
      "0fffffffffffffff0fffffffffffffff";
  const size_t first = e.out.find(seen);
  ASSERT_NE(first, std::string::npos) << e.out;
  EXPECT_NE(e.out.find(seen, first + 1), std::string::npos) << e.out;
}

TEST(LoopRegions, SwitchedOffEveryLoopRunsThroughPlanStubs) {
  // AVX512EMU_NO_LOOP_REGIONS=1: the same program, the same output, no
  // region built and nothing run inside one.
  const Outcome e =
      emulated_like_reference({kPrograms + "/loop_regions"}, {{"AVX512EMU_NO_LOOP_REGIONS", "1"}});
  EXPECT_EQ(stat(e.err, "loop regions built"), 0u) << e.err;
  EXPECT_EQ(stat(e.err, "inside loop regions"), 0u) << e.err;
  EXPECT_GT(stat(e.err, "at patched sites"), 100'000u) << e.err;
  EXPECT_NE(stat(e.err, "at patched sites"), ~uint64_t(0)) << e.err;
}

TEST(LoopRegions, UnmaskedExceptionInsideARegionReachesTheHandlerAtTheInstruction) {
  // QEMU and the reference interpreter raise no SIMD exceptions: the output
  // is compared with native runs on AVX-512 hardware only; everywhere the
  // handler must have seen the exception at vdivps with the loop's markers.
  const std::vector<std::string> prog = {kPrograms + "/loop_regions", "fpe"};
  const Outcome e = run(under_avx512emu({"--simulate-avx2", "--stats"}, prog));
  ASSERT_EQ(e.exit_code, 0) << describe(e);
  EXPECT_NE(e.out.find("signal 8 code 3 addr - rip at-instruction r12 5555666677778888 xmm2 "
                       "0fffffffffffffff0fffffffffffffff"),
            std::string::npos)
      << e.out;
  EXPECT_GE(stat(e.err, "loop regions built"), 1u) << e.err;
  EXPECT_NE(stat(e.err, "loop regions built"), ~uint64_t(0)) << e.err;
  if (host_runs_avx512()) {
    const Outcome n = reference(prog);
    EXPECT_EQ(e.out, n.out);
  }
}

TEST(LoopRegions, DlcloseDropsTheRegionAndTheNextLoadGetsItsOwn) {
  // dlopen_main loads its library twice (dlclose in between, usually at the
  // same address): each load's loop becomes a region, each dlclose drops it,
  // and the second load's results are still the reference's.
  const Outcome e =
      emulated_like_reference({kPrograms + "/dlopen_main", AVX512EMU_RUNTIME_DLOPEN_LIB});
  EXPECT_NE(e.out.find("load 1 round 19"), std::string::npos) << e.out;
  EXPECT_EQ(stat(e.err, "loop regions built"), 2u) << e.err;
  EXPECT_EQ(stat(e.err, "invalidated"), 2u) << e.err;
}

TEST(LoopRegions, EightThreadsRunOneRegionAtOnce) {
  // threads8's second asm block is a loop that all eight threads run at
  // once; whichever site of it traps first, the loop ends up in one region
  // (a plan stub must not run past the region's entry), and the threads'
  // results are the reference's.
  const Outcome e = emulated_like_reference({kPrograms + "/threads8"});
  EXPECT_EQ(stat(e.err, "loop regions built"), 1u) << e.err;
  // 8 threads x 2000 calls x 11 of 12 iterations x 3 instructions.
  EXPECT_GT(stat(e.err, "inside loop regions"), 500'000u) << e.err;
  EXPECT_NE(stat(e.err, "inside loop regions"), ~uint64_t(0)) << e.err;
}

// ---- A natural #UD that avx512emu does not translate -------------------------------------

TEST(NaturalTrap, UntranslatedInstructionEndsTheProgramAsWithoutAvx512emu) {
  // vexp2ps (AVX512ER) raises #UD on this CPU and has no translation.
  const std::vector<std::string> prog = {kPrograms + "/natural_trap"};
  const Outcome n = run(prog);
  ASSERT_EQ(n.signal, SIGILL) << describe(n);
  ASSERT_EQ(n.out, "before\n");
  for (const auto& options :
       {std::vector<std::string>{}, std::vector<std::string>{"--simulate-avx2"}}) {
    const Outcome e = run(under_avx512emu(options, prog));
    EXPECT_EQ(e.signal, SIGILL) << describe(e);
    EXPECT_EQ(e.out, n.out);
    // Exactly one line: address, bytes, mnemonic, reason.
    EXPECT_TRUE(std::regex_match(
        e.err, std::regex("avx512emu: cannot emulate vexp2ps at 0x[0-9a-f]+ \\(bytes 62 f2 7d 48 "
                          "c8 c1\\): unsupported: [^\n]+\n")))
        << e.err;
  }
}

TEST(NaturalTrap, SameEndUnderQemu) {
  if (!have_qemu()) GTEST_SKIP() << kNoQemu;
  const std::vector<std::string> prog = {kPrograms + "/natural_trap"};
  const Outcome plain = run({"qemu-x86_64", "-cpu", "max", prog[0]});
  const Outcome e = run(under_qemu(prog));
  EXPECT_EQ(e.signal, plain.signal) << describe(e);
  EXPECT_EQ(e.signal, SIGILL);
  EXPECT_EQ(e.out, "before\n");
  EXPECT_NE(e.err.find("avx512emu: cannot emulate vexp2ps at 0x"), std::string::npos) << e.err;
}

TEST(NaturalTrap, ProgramsOwnHandlerStillReceivesIt) {
  // natural_trap "handler" installs a SIGILL handler that skips the
  // instruction; the runtime chains to it silently and keeps emulating.
  const std::vector<std::string> prog = {kPrograms + "/natural_trap", "handler"};
  const Outcome n = reference(prog);
  ASSERT_EQ(n.exit_code, 0) << describe(n);
  EXPECT_NE(n.out.find("handler called"), std::string::npos);
  const Outcome e = run(under_avx512emu({"--stats"}, prog));
  EXPECT_EQ(e.exit_code, 0) << describe(e);
  EXPECT_EQ(e.out, n.out);
  EXPECT_EQ(e.err.find("cannot emulate"), std::string::npos) << e.err;
  EXPECT_EQ(stat(e.err, "not emulated"), 1u) << e.err;
}

}  // namespace
