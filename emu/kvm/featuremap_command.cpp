// Owns the `avx512emu featuremap` subcommand.
#include "kvm/featuremap_command.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "coverage.h"
#include "kvm/featuremap.h"
#include "selfcheck/differential.h"
#include "selfcheck/native_oracle.h"

namespace avx512emu::kvm {

namespace {

constexpr const char* kHelp =
    "usage: avx512emu featuremap [--format text|json|qemu|libvirt] [--no-verify]\n"
    "                            [--as-avx2-host] [--check-source FILE]\n"
    "\n"
    "Prints the CPUID feature bits (and XCR0 bits) this host can honestly\n"
    "advertise to guests: its native features, plus each AVX-512 subset whose\n"
    "ISA sets avx512emu fully translates and verifies against this CPU\n"
    "(verification runs the differential check; it takes about half a minute\n"
    "and shows progress on stderr).\n"
    "\n"
    "options:\n"
    "  --format text      a table: feature, CPUID leaf.subleaf.reg[bit], source\n"
    "                     (native, emulated, hidden, absent) and why (default)\n"
    "  --format json      the advertised CPUID leaves and XCR0, and every feature\n"
    "                     with its leaf, register, bit and source\n"
    "  --format qemu      a -cpu option: host, +emulated features, -hidden ones\n"
    "  --format libvirt   a <cpu> element: policy='force' for emulated features,\n"
    "                     policy='disable' for hidden ones\n"
    "  --no-verify        count translated ISA sets as covered without running the\n"
    "                     differential check (the output says so loudly)\n"
    "  --as-avx2-host     compute the map as if this CPU had no AVX-512 (its native\n"
    "                     AVX-512 bits and XCR0 bits 5-7 cleared): what an AVX2-only\n"
    "                     host with the same other features would advertise\n"
    "  --check-source FILE  check a source host's CPUID dump against this map:\n"
    "                     each feature the source has is native, emulated or\n"
    "                     missing (blocks migration); exit status 1 if any blocks\n"
    "\n"
    "source dump format (JSON; `featuremap --format json` output is one):\n"
    "  {\"cpuid\": [{\"leaf\": \"0x7\", \"subleaf\": 0, \"eax\": \"0x0\",\n"
    "              \"ebx\": \"0xd19f4fbb\", \"ecx\": 0, \"edx\": 0}, ...],\n"
    "   \"xcr0\": \"0xe7\"}\n"
    "  Values are JSON integers or strings (decimal or 0x hex). subleaf, any\n"
    "  register and xcr0 may be left out; other keys are ignored. Leaves 0x1,\n"
    "  0x7.0, 0x7.1, 0xd.1 and 0x80000001 are the ones checked.\n"
    "\n"
    "QEMU and libvirt drop features the host CPU lacks unless the hypervisor\n"
    "provides them: emulated features need a VMM that embeds avx512emu.\n"
    "On a host without AVX-512 nothing can be verified here, so without\n"
    "--no-verify no AVX-512 feature is emulated.\n";

// The differential check as a coverage verifier, with a progress line.
MnemonicVerifier progress_verifier() {
  if (!selfcheck::host_runs_avx512()) return {};
  // States per form: enough to run every form and immediate through all
  // three legs quickly; the test suite runs many more.
  constexpr int kStatesPerForm = 4;
  auto done = std::make_shared<int>(0);
  const int total = int(selfcheck::verifiable_mnemonics().size());
  return [done, total](const std::string& m) {
    std::fprintf(stderr, "\rfeaturemap: verifying %d/%d %-24s", ++*done, total, m.c_str());
    std::fflush(stderr);
    return selfcheck::verify_mnemonic(m.c_str(), kStatesPerForm, 1).passed();
  };
}

// Clears the host's native AVX-512 bits and AVX-512 XCR0 bits.

bool read_file(const char* path, std::string& out, std::string& error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = std::string("cannot open '") + path + "': " + std::strerror(errno);
    return false;
  }
  // A CPUID dump is a few kilobytes; refuse anything absurd before reading it.
  constexpr std::streamoff kMaxBytes = 16 << 20;
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  if (size > kMaxBytes) {
    error = std::string("'") + path + "' is larger than 16 MiB: not a CPUID dump";
    return false;
  }
  in.seekg(0);
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) {
    error = std::string("cannot read '") + path + "'";
    return false;
  }
  out = text.str();
  return true;
}

}  // namespace

int featuremap_command(int argc, char** argv) {
  std::string format = "text";
  bool verify = true, as_avx2_host = false, format_given = false;
  const char* source_path = nullptr;
  for (int i = 0; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(kHelp, stdout);
      return 0;
    }
    if (arg == "--no-verify") {
      verify = false;
    } else if (arg == "--as-avx2-host") {
      as_avx2_host = true;
    } else if (arg == "--format" || arg == "--check-source") {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "avx512emu featuremap: %s needs a value (try --help)\n", arg.c_str());
        return 2;
      }
      if (arg == "--format") {
        format = argv[++i];
        format_given = true;
      } else {
        source_path = argv[++i];
      }
    } else {
      std::fprintf(stderr, "avx512emu featuremap: unknown option '%s' (try --help)\n", arg.c_str());
      return 2;
    }
  }
  if (format != "text" && format != "json" && format != "qemu" && format != "libvirt") {
    std::fprintf(stderr,
                 "avx512emu featuremap: unknown format '%s' (text, json, qemu or libvirt)\n",
                 format.c_str());
    return 2;
  }
  if (source_path && format_given) {
    std::fprintf(stderr,
                 "avx512emu featuremap: --check-source prints a text report; "
                 "--format does not apply to it\n");
    return 2;
  }

  // Read the source dump before the slow part, so a bad file fails at once.
  CpuidSnapshot source;
  if (source_path) {
    std::string text, error;
    if (!read_file(source_path, text, error) || !parse_cpuid_dump(text, source, error)) {
      std::fprintf(stderr, "avx512emu featuremap: %s: %s\n", source_path, error.c_str());
      return 2;
    }
  }

  CpuidSnapshot host = read_host_cpuid();
  if (as_avx2_host) drop_native_avx512(host);
  const CoverageBasis basis = verify ? CoverageBasis::kVerified : CoverageBasis::kTranslatedOnly;
  const CoverageReport report = build_coverage(verify ? progress_verifier() : MnemonicVerifier{});
  if (verify) std::fprintf(stderr, "\r%-60s\r", "");  // clear the progress line
  const FeatureMap map = build_feature_map(host, report, basis);

  if (!verify)
    std::fputs(
        "avx512emu featuremap: WARNING: --no-verify: emulated features are only "
        "TRANSLATED, NOT VERIFIED\n",
        stderr);
  if (as_avx2_host)
    std::fputs(
        "avx512emu featuremap: computed for this CPU without its native AVX-512 "
        "(--as-avx2-host)\n",
        stderr);

  if (source_path) {
    const SourceCheck check = check_source(source, map);
    std::fputs(source_check_text(check).c_str(), stdout);
    return check.missing ? 1 : 0;
  }
  const std::string out = format == "json"      ? feature_map_json(map)
                          : format == "qemu"    ? feature_map_qemu(map)
                          : format == "libvirt" ? feature_map_libvirt(map)
                                                : feature_map_text(map);
  std::fputs(out.c_str(), stdout);
  return 0;
}

}  // namespace avx512emu::kvm
