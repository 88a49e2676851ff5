// Owns the avx512emu command-line tool: argument parsing and the
// subcommands' output. All work is done by the library.
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "avx512emu.h"
#include "cache_builder.h"
#include "coverage.h"
#include "decoded_insn.h"
#include "demo.h"
#include "isa_catalog.h"
#include "kvm/featuremap_command.h"
#include "kvm/vm_command.h"
#include "run_command.h"
#include "scan.h"
#include "selfcheck/differential.h"
#include "selfcheck/native_oracle.h"
#include "semantics_table.h"

namespace {

constexpr const char* kUsage =
    "usage: avx512emu COMMAND [ARGS...]\n"
    "\n"
    "Runs AVX-512 code on AVX2-only x86-64 CPUs by translating each AVX-512\n"
    "instruction into AVX2 code.\n"
    "\n"
    "commands:\n"
    "  translate HEX...    decode, IR, AVX2 assembly and code size of instructions\n"
    "  coverage [--json]   translated and verified mnemonics per AVX-512 ISA set\n"
    "  scan [--json] PATH... AVX-512 instructions in ELF files, and what translates\n"
    "  cache build|info|verify  offline translation-cache files\n"
    "  verify [MNEMONIC...] check translations against this CPU, bit for bit\n"
    "  demo                translate and run a bundled AVX-512 sample, check it\n"
    "  run [OPTIONS] -- PROGRAM ARGS...  run a program with the trap runtime\n"
    "  vm [--native|--avx2-only] [--stats] WORKLOAD  run a guest workload on /dev/kvm\n"
    "  featuremap [OPTIONS] CPUID features a host can advertise to guests\n"
    "  --version           print the version\n"
    "\n"
    "Run 'avx512emu COMMAND --help' for a command's options.\n";

//! States per form when `coverage` verifies: a quick check that still runs
//! every form and immediate through all three legs. The test suite uses 300.
constexpr int kCoverageStates = 4;

//! The differential self-check as a coverage verifier; empty on hosts that
//! cannot execute AVX-512 natively (nothing to compare against).
avx512emu::MnemonicVerifier coverage_verifier() {
  if (!avx512emu::selfcheck::host_runs_avx512()) return {};
  return [](const std::string& m) {
    std::fprintf(stderr, "\rverifying %-24s", m.c_str());
    return avx512emu::selfcheck::verify_mnemonic(m.c_str(), kCoverageStates, 1).passed();
  };
}

bool wants_help(int argc, char** argv) {
  for (int i = 0; i < argc; ++i)
    if (!std::strcmp(argv[i], "--help") || !std::strcmp(argv[i], "-h")) return true;
  return false;
}

//! Parses "62f1744858c2" or "62 f1 74 48 58 c2" (also with 0x / commas).
bool parse_hex(const std::string& text, std::vector<uint8_t>& out, std::string& error) {
  const auto separator = [](char ch) { return ch == ' ' || ch == ',' || ch == ':'; };
  std::string digits;
  size_t i = 0;
  while (i < text.size()) {
    if (separator(text[i])) {
      ++i;
      continue;
    }
    // One token. "0x" only as its prefix ("10x2" is an error, not 0x12), and
    // then followed by whole bytes: "0x6,0x2" is an error, not 0x62.
    const bool prefixed = text.compare(i, 2, "0x") == 0 || text.compare(i, 2, "0X") == 0;
    if (prefixed) i += 2;
    const size_t token_start = digits.size();
    for (; i < text.size() && !separator(text[i]); ++i) {
      const char ch = text[i];
      if (!std::isxdigit(static_cast<unsigned char>(ch))) {
        error = std::string("not a hex digit: '") + ch + "'";
        return false;
      }
      digits += ch;
    }
    const size_t token_digits = digits.size() - token_start;
    if (prefixed && (token_digits == 0 || token_digits % 2)) {
      error = "\"0x\" must be followed by whole bytes (two hex digits each)";
      return false;
    }
  }
  if (digits.empty() || digits.size() % 2) {
    error = digits.empty() ? "no bytes given" : "odd number of hex digits";
    return false;
  }
  if (digits.size() / 2 > 15) {
    error = "more than 15 bytes (one instruction is at most 15)";
    return false;
  }
  for (size_t i = 0; i < digits.size(); i += 2)
    out.push_back(uint8_t(std::stoul(digits.substr(i, 2), nullptr, 16)));
  return true;
}

int cmd_translate(int argc, char** argv) {
  if (wants_help(argc, argv) || argc == 0) {
    std::printf(
        "usage: avx512emu translate HEX...\n\n"
        "Prints, for each instruction given as hex bytes, the decode, the IR, the\n"
        "generated AVX2 assembly and the code size. Each argument is one\n"
        "instruction; arguments that are all single bytes (as objdump prints\n"
        "them) are one instruction together. Bytes after the instruction are an\n"
        "error.\n\n"
        "examples:\n"
        "  avx512emu translate 62f1744858c2      # vaddps zmm0, zmm1, zmm2\n"
        "  avx512emu translate 62 f2 7d 48 78 18 # vpbroadcastb zmm3, [rax]\n");
    return argc == 0 ? 2 : 0;
  }
  // objdump's "62 f2 7d 48 78 18" pasted without quotes: one instruction.
  std::vector<std::string> instructions;
  const bool all_single_bytes = argc > 1 && std::all_of(argv, argv + argc, [](const char* a) {
    return std::strlen(a) == 2 && std::isxdigit(static_cast<unsigned char>(a[0])) &&
           std::isxdigit(static_cast<unsigned char>(a[1]));
  });
  if (all_single_bytes) {
    std::string joined;
    for (int i = 0; i < argc; ++i) joined += argv[i];
    instructions.push_back(joined);
  } else {
    instructions.assign(argv, argv + argc);
  }
  int status = 0;
  for (const std::string& arg : instructions) {
    std::vector<uint8_t> bytes;
    std::string error;
    if (!parse_hex(arg, bytes, error)) {
      std::fprintf(stderr, "avx512emu translate: '%s': %s\n", arg.c_str(), error.c_str());
      status = 2;
      continue;
    }
    const size_t length = avx512emu::instruction_length(bytes.data(), bytes.size());
    if (length != 0 && length < bytes.size()) {
      std::fprintf(stderr,
                   "avx512emu translate: '%s': %zu byte%s after the instruction (its length "
                   "is %zu); give one instruction per argument\n",
                   arg.c_str(), bytes.size() - length, bytes.size() - length == 1 ? "" : "s",
                   length);
      status = 2;
      continue;
    }
    std::string text;
    const bool ok = avx512emu::describe(bytes.data(), bytes.size(), text);
    std::fputs(text.c_str(), ok ? stdout : stderr);
    if (!ok) status = 1;
  }
  return status;
}

int cmd_coverage(int argc, char** argv) {
  bool json = false;
  for (int i = 0; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--help") || !std::strcmp(argv[i], "-h")) {
      std::printf(
          "usage: avx512emu coverage [--json]\n\n"
          "For each AVX-512 ISA set the decoder knows: its mnemonics, how many\n"
          "translate, and how many pass the three-way differential check\n"
          "against this CPU (run when the host has AVX-512).\n");
      return 0;
    }
    if (!std::strcmp(argv[i], "--json"))
      json = true;
    else {
      std::fprintf(stderr, "avx512emu coverage: unknown option '%s' (try --help)\n", argv[i]);
      return 2;
    }
  }
  const auto report = avx512emu::build_coverage(coverage_verifier());
  std::fprintf(stderr, "\r%-40s\r", "");  // clear the progress line
  std::fputs((json ? avx512emu::coverage_json(report) : avx512emu::coverage_text(report)).c_str(),
             stdout);
  return 0;
}

int cmd_scan(int argc, char** argv) {
  bool json = false;
  std::vector<std::string> paths;
  for (int i = 0; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--help") || !std::strcmp(argv[i], "-h")) {
      std::printf(
          "usage: avx512emu scan [--json] PATH...\n\n"
          "Reports, for each ELF file (directories are searched recursively), the\n"
          "AVX-512 instructions per ISA set and mnemonic, how many avx512emu\n"
          "translates, and the mnemonics it does not. Function ranges come from\n"
          ".eh_frame and symbols, so data inside .text is not decoded as code.\n\n"
          "example:\n  avx512emu scan --json /lib/x86_64-linux-gnu/libc.so.6\n");
      return 0;
    }
    if (!std::strcmp(argv[i], "--json"))
      json = true;
    else if (argv[i][0] == '-' && argv[i][1]) {
      std::fprintf(stderr, "avx512emu scan: unknown option '%s' (try --help)\n", argv[i]);
      return 2;
    } else
      paths.push_back(argv[i]);
  }
  if (paths.empty()) {
    std::fprintf(stderr, "avx512emu scan: no PATH given (try --help)\n");
    return 2;
  }
  std::vector<std::string> errors;
  const auto files = avx512emu::expand_scan_paths(paths, errors);
  for (const auto& e : errors) std::fprintf(stderr, "avx512emu scan: %s\n", e.c_str());
  std::vector<avx512emu::ScanResult> results;
  int failed = int(errors.size());
  for (size_t i = 0; i < files.size(); ++i) {
    if (files.size() > 20 && isatty(2))
      std::fprintf(stderr, "\rscanning %zu/%zu", i + 1, files.size());
    results.push_back(avx512emu::scan_elf_file(files[i]));
    // Non-ELF files inside a directory are expected; only named files count as failures.
    if (!results.back().error.empty() &&
        std::find(paths.begin(), paths.end(), files[i]) != paths.end())
      ++failed;
  }
  if (files.size() > 20 && isatty(2)) std::fprintf(stderr, "\n");
  std::fputs((json ? avx512emu::scan_json(results) : avx512emu::scan_text(results)).c_str(),
             stdout);
  return failed ? 1 : 0;
}

int cmd_cache(int argc, char** argv) {
  constexpr const char* kCacheUsage =
      "usage: avx512emu cache build [-j N] -o FILE PATH...\n"
      "       avx512emu cache info FILE\n"
      "       avx512emu cache verify FILE\n\n"
      "build   scans ELF files or directories, translates every distinct AVX-512\n"
      "        instruction (N threads) and writes one mmap-able cache file\n"
      "info    prints the header and what the file holds\n"
      "verify  checks checksums, that every entry decodes to its instruction and\n"
      "        that no translation contains AVX-512\n\n"
      "example:\n  avx512emu cache build -j 2 -o libc.a5c /lib/x86_64-linux-gnu/libc.so.6\n";
  if (argc == 0 || wants_help(argc, argv)) {
    std::fputs(kCacheUsage, argc == 0 ? stderr : stdout);
    return argc == 0 ? 2 : 0;
  }
  const std::string sub = argv[0];
  if (sub == "info" || sub == "verify") {
    if (argc != 2) {
      std::fprintf(stderr, "avx512emu cache %s: expects one FILE\n", sub.c_str());
      return 2;
    }
    std::string out, error;
    if (sub == "info") {
      if (!avx512emu::cache_info(argv[1], out, error)) {
        std::fprintf(stderr, "avx512emu cache info: %s\n", error.c_str());
        return 1;
      }
      std::fputs(out.c_str(), stdout);
      return 0;
    }
    const bool ok = avx512emu::cache_verify(argv[1], out);
    std::fputs(out.c_str(), ok ? stdout : stderr);
    return ok ? 0 : 1;
  }
  if (sub != "build") {
    std::fprintf(stderr, "avx512emu cache: unknown subcommand '%s'\n\n%s", sub.c_str(),
                 kCacheUsage);
    return 2;
  }
  avx512emu::CacheBuildOptions o;
  o.progress = isatty(2) ? avx512emu::CacheBuildProgress::kTerminal
                         : avx512emu::CacheBuildProgress::kLines;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if ((a == "-j" || a == "-o") && i + 1 >= argc) {
      std::fprintf(stderr, "avx512emu cache build: %s needs a value\n", a.c_str());
      return 2;
    }
    if (a == "-j") {
      char* end = nullptr;
      const long n = std::strtol(argv[++i], &end, 10);
      if (!end || *end || n < 1 || n > 256) {
        std::fprintf(stderr, "avx512emu cache build: -j takes a number from 1 to 256\n");
        return 2;
      }
      o.jobs = int(n);
    } else if (a == "-o") {
      o.output = argv[++i];
    } else if (a[0] == '-') {
      std::fprintf(stderr, "avx512emu cache build: unknown option '%s'\n", a.c_str());
      return 2;
    } else {
      o.paths.push_back(a);
    }
  }
  if (o.output.empty() || o.paths.empty()) {
    std::fprintf(stderr, "avx512emu cache build: needs -o FILE and at least one PATH\n");
    return 2;
  }
  avx512emu::CacheBuildSummary sum;
  std::string error;
  if (!avx512emu::build_cache(o, sum, error)) {
    std::fprintf(stderr, "avx512emu cache build: %s\n", error.c_str());
    return 1;
  }
  std::printf(
      "%s: %d files scanned (%d skipped: not ELF or unreadable), %llu AVX-512 instructions, "
      "%llu distinct, %llu translated, %llu not translated\n"
      "scan: %.2f s; translation: %.2f s with %d threads (%.0f distinct instructions/s); "
      "%.1f code bytes per translation; file %llu bytes (%.1f per translation); total %.2f s\n",
      o.output.c_str(), sum.files_scanned, sum.files_skipped,
      (unsigned long long)sum.instructions_found, (unsigned long long)sum.distinct,
      (unsigned long long)sum.translated, (unsigned long long)sum.untranslated, sum.scan_seconds,
      sum.translate_seconds, o.jobs,
      sum.translate_seconds > 0 ? double(sum.distinct) / sum.translate_seconds : 0.0,
      sum.translated ? double(sum.code_bytes) / double(sum.translated) : 0.0,
      (unsigned long long)sum.file_bytes,
      sum.translated ? double(sum.file_bytes) / double(sum.translated) : 0.0, sum.seconds);
  if (!sum.untranslated_mnemonics.empty()) {
    std::printf("not translated (distinct encodings):");
    for (const auto& [mnemonic, n] : sum.untranslated_mnemonics)
      std::printf(" %s=%llu", mnemonic.c_str(), (unsigned long long)n);
    std::printf("\n");
  }
  return 0;
}

//! Parses a whole non-negative decimal number; false on anything else.
bool parse_count(const char* text, long long& out) {
  char* end = nullptr;
  errno = 0;
  out = std::strtoll(text, &end, 10);
  return *text && *end == 0 && errno == 0 && out >= 0;
}

int cmd_verify(int argc, char** argv) {
  long long states = 300, seed = 1;
  std::vector<std::string> mnemonics;
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::printf(
          "usage: avx512emu verify [--states N] [--seed S] [MNEMONIC...]\n\n"
          "Runs the three-way differential check for each mnemonic (all table\n"
          "mnemonics when none is given): every form (register and memory operands,\n"
          "{k} and {z}, {1toN}, rounding and {sae}, each vector length, zmm16-31)\n"
          "with N generated states (default 300) natively on this CPU, in the\n"
          "reference interpreter and as a translation, comparing the whole state\n"
          "and all memory bit for bit. On a CPU without AVX-512 the native leg is\n"
          "left out and the translation is compared with the interpreter.\n\n"
          "example:\n  avx512emu verify --states 50 vpaddd vpternlogd vcmpps\n");
      return 0;
    }
    if ((a == "--states" || a == "--seed") && i + 1 < argc) {
      long long& target = a == "--states" ? states : seed;
      if (!parse_count(argv[++i], target) || (a == "--states" && target == 0)) {
        std::fprintf(stderr, "avx512emu verify: %s needs a positive number, not '%s'\n", a.c_str(),
                     argv[i]);
        return 2;
      }
    } else if (!a.empty() && a[0] == '-') {
      std::fprintf(stderr, "avx512emu verify: unknown option '%s' (try --help)\n", a.c_str());
      return 2;
    } else {
      // Mnemonics as the SDM prints them (VPADDD) are the table's too.
      std::string m = a;
      for (char& ch : m) ch = char(std::tolower(static_cast<unsigned char>(ch)));
      mnemonics.push_back(m);
    }
  }
  if (!avx512emu::selfcheck::host_runs_avx512())
    std::fprintf(stderr,
                 "avx512emu verify: this CPU does not run AVX-512 (F/BW/DQ/VL): the\n"
                 "translations are compared with the reference interpreter, not with the CPU\n");
  if (mnemonics.empty()) mnemonics = avx512emu::selfcheck::verifiable_mnemonics();
  int failed = 0, untranslated = 0, unknown = 0;
  long long runs = 0;
  const auto start = std::chrono::steady_clock::now();
  for (size_t n = 0; n < mnemonics.size(); ++n) {
    if (!avx512emu::find_semantics(mnemonics[n].c_str())) {
      // Not in the semantics table: an AVX-512 mnemonic without a
      // translation, or no AVX-512 mnemonic at all.
      std::string isa_set;
      for (const auto& e : avx512emu::avx512_catalog())
        if (e.mnemonic == mnemonics[n]) {
          isa_set = e.isa_set;
          break;
        }
      ++(isa_set.empty() ? unknown : untranslated);
      if (isa_set.empty())
        std::printf("[%zu/%zu] %-18s not an AVX-512 mnemonic\n", n + 1, mnemonics.size(),
                    mnemonics[n].c_str());
      else
        std::printf("[%zu/%zu] %-18s not translated (%s; 'avx512emu coverage' lists what is)\n",
                    n + 1, mnemonics.size(), mnemonics[n].c_str(), isa_set.c_str());
      continue;
    }
    const auto t0 = std::chrono::steady_clock::now();
    const auto report =
        avx512emu::selfcheck::verify_mnemonic(mnemonics[n].c_str(), int(states), uint64_t(seed));
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    runs += report.states;
    std::printf("[%zu/%zu] %-4s %-18s %4d forms %8d runs %6.1f s\n", n + 1, mnemonics.size(),
                report.passed() ? "ok" : "FAIL", mnemonics[n].c_str(), report.forms, report.states,
                secs);
    if (!report.passed()) {
      ++failed;
      std::fputs(report.summary().c_str(), stdout);
    }
    std::fflush(stdout);
  }
  const double total =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%zu mnemonics, %d failed, %d not translated, %d unknown, %lld runs, %.1f s\n",
              mnemonics.size(), failed, untranslated, unknown, runs, total);
  return failed || untranslated || unknown ? 1 : 0;
}

int cmd_demo(int argc, char** argv) {
  if (argc > 0) {
    const bool help = wants_help(argc, argv);
    if (!help) std::fprintf(stderr, "avx512emu demo: takes no arguments, got '%s'\n", argv[0]);
    std::fprintf(help ? stdout : stderr,
                 "usage: avx512emu demo\n\n"
                 "Translates a bundled AVX-512 kernel (a masked SAXPY with a checksum),\n"
                 "runs it, and checks the result against plain C++ and, on a CPU with\n"
                 "AVX-512, against native execution of the same bytes.\n");
    return help ? 0 : 2;
  }
  const avx512emu::DemoResult d = avx512emu::run_demo(4096);
  std::fputs(d.report.c_str(), stdout);
  if (!d.ok) {
    std::fprintf(stderr, "avx512emu demo: FAILED: %s\n", d.error.c_str());
    return 1;
  }
  std::puts("demo passed");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  const std::string cmd = argv[1];
  if (cmd == "--help" || cmd == "-h" || cmd == "help") {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (cmd == "--version") {
    std::printf("avx512emu %s\n", AVX512EMU_VERSION);
    return 0;
  }
  if (cmd == "translate") return cmd_translate(argc - 2, argv + 2);
  if (cmd == "coverage") return cmd_coverage(argc - 2, argv + 2);
  if (cmd == "scan") return cmd_scan(argc - 2, argv + 2);
  if (cmd == "cache") return cmd_cache(argc - 2, argv + 2);
  if (cmd == "verify") return cmd_verify(argc - 2, argv + 2);
  if (cmd == "demo") return cmd_demo(argc - 2, argv + 2);
  if (cmd == "run") return avx512emu::run_command(argc - 2, argv + 2);
  if (cmd == "vm") return avx512emu::kvm::vm_command(argc - 2, argv + 2);
  if (cmd == "featuremap") return avx512emu::kvm::featuremap_command(argc - 2, argv + 2);
  std::fprintf(stderr, "avx512emu: unknown command '%s'\n\n%s", cmd.c_str(), kUsage);
  return 2;
}
