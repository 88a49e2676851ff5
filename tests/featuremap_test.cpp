// Tests the destination feature map: the advertising rules on synthetic hosts
// and coverage reports (bit positions taken from the Intel SDM, vol. 2,
// CPUID), the CPUID-dump reader against valid, malformed, truncated and
// random input, the check of a source against a destination, and the
// `avx512emu featuremap` command.
#include "kvm/featuremap.h"

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>

namespace avx512emu::kvm {
namespace {

// ---------------------------------------------------------------------------
// Synthetic hosts and coverage reports
// ---------------------------------------------------------------------------

// CPUID bit positions (SDM vol. 2, CPUID, tables 3-8 and 3-10).
constexpr int kEcx1Fma = 12, kEcx1Xsave = 26, kEcx1Osxsave = 27, kEcx1Avx = 28;
constexpr int kEbx7Bmi1 = 3, kEbx7Avx2 = 5, kEbx7Bmi2 = 8, kEbx7Avx512f = 16, kEbx7Avx512bw = 30,
              kEbx7Avx512vl = 31;
constexpr int kEcx7Gfni = 8;
constexpr int kEdx7Avx5124fmaps = 3, kEdx7Vp2intersect = 8;

using R = CpuidReg;

// An AVX2 machine (Haswell level) whose OS enabled x87, SSE and AVX state.
CpuidSnapshot avx2_host() {
  CpuidSnapshot s;
  for (int bit : {kEcx1Fma, kEcx1Xsave, kEcx1Osxsave, kEcx1Avx})
    s.set_bit(1, 0, R::kEcx, bit, true);
  for (int bit : {kEbx7Bmi1, kEbx7Avx2, kEbx7Bmi2}) s.set_bit(7, 0, R::kEbx, bit, true);
  s.xcr0 = 0x7;
  s.has_xcr0 = true;
  return s;
}

// An AVX2 host plus AVX512F/BW/VL with AVX-512 state enabled.
CpuidSnapshot avx512_host() {
  CpuidSnapshot s = avx2_host();
  for (int bit : {kEbx7Avx512f, kEbx7Avx512bw, kEbx7Avx512vl}) s.set_bit(7, 0, R::kEbx, bit, true);
  s.xcr0 = 0xE7;
  return s;
}

// One ISA set with `known` mnemonics of which `translated` translate and
// `verified` pass the differential check.
CoverageRow row(const std::string& isa_set, int known, int translated, int verified) {
  CoverageRow r;
  r.isa_set = isa_set;
  for (int i = 0; i < known; ++i) r.known.push_back("m" + std::to_string(i));
  for (int i = 0; i < translated; ++i) r.translated.push_back("m" + std::to_string(i));
  for (int i = 0; i < verified; ++i) r.verified.push_back("m" + std::to_string(i));
  return r;
}

// Every ISA set of a subset with the suffixes given, all fully verified.
void add_full(CoverageReport& r, const std::string& prefix,
              std::initializer_list<const char*> suffixes) {
  for (const char* s : suffixes) r.rows.push_back(row(prefix + s, 5, 5, 5));
}

CoverageReport full_avx512f() {
  CoverageReport r;
  r.verification_ran = true;
  add_full(r, "AVX512F_", {"128", "128N", "256", "512", "KOP", "SCALAR"});
  return r;
}

FeatureSource source_of(const FeatureMap& m, const char* name) {
  const FeatureVerdict* v = m.find(name);
  EXPECT_NE(v, nullptr) << name;
  return v ? v->source : FeatureSource::kAbsent;
}

std::string note_of(const FeatureMap& m, const char* name) {
  const FeatureVerdict* v = m.find(name);
  return v ? v->note : "";
}

// ---------------------------------------------------------------------------
// Rules
// ---------------------------------------------------------------------------

TEST(FeatureMapRules, HostFeaturesAreNativeAndMissingOnesAbsent) {
  const FeatureMap m = build_feature_map(avx2_host(), CoverageReport{}, CoverageBasis::kVerified);
  EXPECT_EQ(source_of(m, "avx2"), FeatureSource::kNative);
  EXPECT_EQ(source_of(m, "fma"), FeatureSource::kNative);
  EXPECT_EQ(source_of(m, "sha-ni"), FeatureSource::kAbsent);
  EXPECT_EQ(source_of(m, "avx512f"), FeatureSource::kAbsent);
  EXPECT_EQ(m.xcr0_native, 0x7u);
  EXPECT_EQ(m.xcr0_emulated, 0u);
}

TEST(FeatureMapRules, FullyVerifiedAvx512fIsEmulatedWithVlAndTheAvx512Xcr0Bits) {
  const FeatureMap m = build_feature_map(avx2_host(), full_avx512f(), CoverageBasis::kVerified);
  EXPECT_EQ(source_of(m, "avx512f"), FeatureSource::kEmulated);
  EXPECT_EQ(source_of(m, "avx512vl"), FeatureSource::kEmulated);
  EXPECT_EQ(source_of(m, "avx512bw"), FeatureSource::kAbsent);  // no BW sets covered
  EXPECT_EQ(m.xcr0_emulated, 0xE0u);                            // opmask, ZMM_Hi256, Hi16_ZMM
  const CpuidSnapshot adv = m.advertised();
  EXPECT_TRUE(adv.bit(7, 0, R::kEbx, kEbx7Avx512f));
  EXPECT_TRUE(adv.bit(7, 0, R::kEbx, kEbx7Avx512vl));
  EXPECT_TRUE(adv.bit(7, 0, R::kEbx, kEbx7Avx2));
  EXPECT_FALSE(adv.bit(7, 0, R::kEbx, kEbx7Avx512bw));
  EXPECT_EQ(adv.xcr0, 0xE7u);
}

TEST(FeatureMapRules, OneUnverifiedMnemonicKeepsTheSubsetOut) {
  CoverageReport r = full_avx512f();
  r.rows.push_back(row("AVX512BW_512", 4, 4, 4));
  r.rows.push_back(row("AVX512BW_KOP", 3, 3, 3));
  r.rows[5] = row("AVX512F_SCALAR", 5, 5, 4);  // one translated, not verified
  const FeatureMap m = build_feature_map(avx2_host(), r, CoverageBasis::kVerified);
  EXPECT_EQ(source_of(m, "avx512f"), FeatureSource::kAbsent);
  EXPECT_NE(note_of(m, "avx512f").find("AVX512F_SCALAR"), std::string::npos)
      << note_of(m, "avx512f");
  // Without AVX512F nothing that depends on it may be advertised.
  EXPECT_EQ(source_of(m, "avx512bw"), FeatureSource::kAbsent);
  EXPECT_EQ(source_of(m, "avx512vl"), FeatureSource::kAbsent);
  EXPECT_EQ(m.xcr0_emulated, 0u);
}

TEST(FeatureMapRules, TranslatedOnlyCountsOnlyWhenAskedFor) {
  CoverageReport r = full_avx512f();
  for (CoverageRow& x : r.rows) x.verified.clear();
  r.verification_ran = false;
  EXPECT_EQ(source_of(build_feature_map(avx2_host(), r, CoverageBasis::kVerified), "avx512f"),
            FeatureSource::kAbsent);
  const FeatureMap m = build_feature_map(avx2_host(), r, CoverageBasis::kTranslatedOnly);
  EXPECT_EQ(source_of(m, "avx512f"), FeatureSource::kEmulated);
  EXPECT_NE(feature_map_text(m).find("NOT VERIFIED"), std::string::npos);
  EXPECT_NE(feature_map_json(m).find("NOT VERIFIED"), std::string::npos);
  EXPECT_NE(feature_map_libvirt(m).find("NOT VERIFIED"), std::string::npos);
}

TEST(FeatureMapRules, IncompleteShortFormsBlockOnlyVl) {
  CoverageReport r = full_avx512f();
  r.rows[2] = row("AVX512F_256", 5, 5, 3);
  const FeatureMap m = build_feature_map(avx2_host(), r, CoverageBasis::kVerified);
  EXPECT_EQ(source_of(m, "avx512f"), FeatureSource::kEmulated);
  EXPECT_EQ(source_of(m, "avx512vl"), FeatureSource::kAbsent);
  EXPECT_NE(note_of(m, "avx512vl").find("AVX512F_256"), std::string::npos);
}

TEST(FeatureMapRules, The128NSetsAreCoreNotVl) {
  CoverageReport r = full_avx512f();
  r.rows[1] = row("AVX512F_128N", 5, 5, 0);
  const FeatureMap m = build_feature_map(avx2_host(), r, CoverageBasis::kVerified);
  EXPECT_EQ(source_of(m, "avx512f"), FeatureSource::kAbsent);
  EXPECT_NE(note_of(m, "avx512f").find("AVX512F_128N"), std::string::npos);
}

TEST(FeatureMapRules, VlNeedsTheShortFormsOfEveryAdvertisedSubset) {
  CoverageReport r = full_avx512f();
  add_full(r, "AVX512BW_", {"128N", "512", "KOP"});
  r.rows.push_back(row("AVX512BW_128", 5, 5, 5));
  r.rows.push_back(row("AVX512BW_256", 5, 4, 4));
  const FeatureMap m = build_feature_map(avx2_host(), r, CoverageBasis::kVerified);
  EXPECT_EQ(source_of(m, "avx512bw"), FeatureSource::kEmulated);
  EXPECT_EQ(source_of(m, "avx512vl"), FeatureSource::kAbsent);
  EXPECT_NE(note_of(m, "avx512vl").find("AVX512BW_256"), std::string::npos);
}

TEST(FeatureMapRules, SubsetsTheDecoderDoesNotKnowAreNeverEmulated) {
  const FeatureMap m = build_feature_map(avx2_host(), full_avx512f(), CoverageBasis::kVerified);
  EXPECT_EQ(source_of(m, "avx512pf"), FeatureSource::kAbsent);  // no AVX512PF_* rows
  EXPECT_EQ(source_of(m, "avx512-4fmaps"), FeatureSource::kAbsent);
}

TEST(FeatureMapRules, NoEmulationWithoutTheHostBaselineTranslationsUse) {
  CpuidSnapshot host = avx2_host();
  host.set_bit(7, 0, R::kEbx, kEbx7Bmi2, false);
  const FeatureMap m = build_feature_map(host, full_avx512f(), CoverageBasis::kVerified);
  EXPECT_EQ(source_of(m, "avx512f"), FeatureSource::kAbsent);
  EXPECT_EQ(m.xcr0_emulated, 0u);
}

TEST(FeatureMapRules, Avx512BitsWithoutOsEnabledStateAreNotNative) {
  CpuidSnapshot host = avx512_host();
  host.xcr0 = 0x7;  // the OS did not enable opmask/ZMM state
  const FeatureMap m = build_feature_map(host, CoverageReport{}, CoverageBasis::kVerified);
  EXPECT_EQ(source_of(m, "avx512f"), FeatureSource::kAbsent);
  EXPECT_EQ(source_of(m, "avx2"), FeatureSource::kNative);
}

TEST(FeatureMapRules, OnANativeVlHostAnEmulatedSubsetNeedsItsShortFormsToo) {
  CoverageReport r;
  r.verification_ran = true;
  r.rows.push_back(row("AVX512_VP2INTERSECT_512", 2, 2, 2));
  r.rows.push_back(row("AVX512_VP2INTERSECT_128", 2, 2, 2));
  r.rows.push_back(row("AVX512_VP2INTERSECT_256", 2, 1, 1));
  FeatureMap m = build_feature_map(avx512_host(), r, CoverageBasis::kVerified);
  EXPECT_EQ(source_of(m, "avx512f"), FeatureSource::kNative);
  EXPECT_EQ(source_of(m, "avx512-vp2intersect"), FeatureSource::kAbsent);
  EXPECT_NE(note_of(m, "avx512-vp2intersect").find("AVX512_VP2INTERSECT_256"), std::string::npos);

  r.rows[2] = row("AVX512_VP2INTERSECT_256", 2, 2, 2);
  m = build_feature_map(avx512_host(), r, CoverageBasis::kVerified);
  EXPECT_EQ(source_of(m, "avx512-vp2intersect"), FeatureSource::kEmulated);
  EXPECT_EQ(m.xcr0_emulated, 0u);  // the host has the AVX-512 state itself
  EXPECT_NE(feature_map_qemu(m).find("+avx512-vp2intersect"), std::string::npos);
}

TEST(FeatureMapRules, NativeGfniIsHiddenWhileItsEvexFormsAreNotCovered) {
  CpuidSnapshot host = avx2_host();
  host.set_bit(7, 0, R::kEcx, kEcx7Gfni, true);
  // Without emulated AVX512F the guest cannot reach EVEX GFNI: stays native.
  FeatureMap m = build_feature_map(host, CoverageReport{}, CoverageBasis::kVerified);
  EXPECT_EQ(source_of(m, "gfni"), FeatureSource::kNative);

  m = build_feature_map(host, full_avx512f(), CoverageBasis::kVerified);
  EXPECT_EQ(source_of(m, "gfni"), FeatureSource::kHidden);
  EXPECT_EQ(feature_map_qemu(m), "-cpu host,+avx512f,+avx512vl,-gfni\n");
  const std::string xml = feature_map_libvirt(m);
  EXPECT_NE(xml.find("<feature policy='force' name='avx512f'/>"), std::string::npos) << xml;
  EXPECT_NE(xml.find("<feature policy='force' name='avx512vl'/>"), std::string::npos) << xml;
  EXPECT_NE(xml.find("<feature policy='disable' name='gfni'/>"), std::string::npos) << xml;
  EXPECT_FALSE(m.advertised().bit(7, 0, R::kEcx, kEcx7Gfni));

  CoverageReport r = full_avx512f();
  add_full(r, "AVX512_GFNI_", {"128", "256", "512"});
  m = build_feature_map(host, r, CoverageBasis::kVerified);
  EXPECT_EQ(source_of(m, "gfni"), FeatureSource::kNative);
}

TEST(FeatureMapRules, EveryRowOfTheTableIsJudgedOnce) {
  const FeatureMap m = build_feature_map(avx2_host(), full_avx512f(), CoverageBasis::kVerified);
  ASSERT_EQ(m.features.size(), feature_table().size());
  for (size_t i = 0; i < m.features.size(); ++i)
    EXPECT_EQ(m.features[i].feature, &feature_table()[i]);
}

// ---------------------------------------------------------------------------
// CPUID dumps
// ---------------------------------------------------------------------------

TEST(CpuidDump, ReadsIntegersHexStringsAndDefaults) {
  CpuidSnapshot s;
  std::string error;
  ASSERT_TRUE(parse_cpuid_dump(R"({"comment": ["anything", {"x": null}, true, -1.5e3],
        "cpuid": [{"leaf": 7, "ebx": "0x80010020", "edx": 264},
                  {"leaf": "0x80000001", "subleaf": "0", "ecx": "0X1"},
                  {"leaf": 7, "subleaf": 1, "eax": "32"}],
        "xcr0": "0xe7"})",
                               s, error))
      << error;
  EXPECT_EQ(s.reg(7, 0, R::kEbx), 0x80010020u);
  EXPECT_EQ(s.reg(7, 0, R::kEdx), 264u);
  EXPECT_EQ(s.reg(7, 0, R::kEax), 0u);
  EXPECT_EQ(s.reg(0x80000001, 0, R::kEcx), 1u);
  EXPECT_EQ(s.reg(7, 1, R::kEax), 32u);
  EXPECT_EQ(s.reg(1, 0, R::kEcx), 0u);  // absent leaf
  EXPECT_TRUE(s.has_xcr0);
  EXPECT_EQ(s.xcr0, 0xE7u);
}

TEST(CpuidDump, RefusesWrongShapesWithAReason) {
  const char* bad[] = {
      "",
      "[]",
      "{}",
      R"({"cpuid": {}})",
      R"({"cpuid": [1]})",
      R"({"cpuid": [{"eax": 1}]})",
      R"({"cpuid": [{"leaf": -1}]})",
      R"({"cpuid": [{"leaf": 1.5}]})",
      R"({"cpuid": [{"leaf": 1, "eax": 4294967296}]})",
      R"({"cpuid": [{"leaf": 1, "eax": "0x1ffffffff"}]})",
      R"({"cpuid": [{"leaf": 1, "eax": "12abc"}]})",
      R"({"cpuid": [{"leaf": 1, "eax": true}]})",
      R"({"cpuid": [{"leaf": 1}, {"leaf": 1, "subleaf": 0}]})",
      R"({"cpuid": [], "xcr0": "0x10000000000000000"})",
      R"({"cpuid": []} x)",
      R"({"cpuid": [],})",
      R"({"cpuid": [01]})",
      R"({"cpuid": ["\x"]})",
      "{\"cpuid\": [\"a\nb\"]}",
      R"({'cpuid': []})",
  };
  for (const char* text : bad) {
    CpuidSnapshot s;
    std::string error;
    EXPECT_FALSE(parse_cpuid_dump(text, s, error)) << text;
    EXPECT_FALSE(error.empty()) << text;
  }
}

TEST(CpuidDump, SurvivesDeepNestingTruncationAndGarbage) {
  std::string error;
  CpuidSnapshot s;
  EXPECT_FALSE(parse_cpuid_dump(std::string(100000, '['), s, error));
  EXPECT_NE(error.find("nesting"), std::string::npos) << error;

  const std::string valid =
      R"({"cpuid": [{"leaf": "0x7", "subleaf": 0, "eax": "0x0", "ebx": "0xd19f4fbb",)"
      R"( "ecx": 12, "edx": "0x1"}, {"leaf": 1, "ecx": "\u0030"}], "xcr0": "0xe7"})";
  ASSERT_TRUE(parse_cpuid_dump(valid, s, error)) << error;
  // Every proper prefix is incomplete JSON: each must be refused cleanly.
  for (size_t n = 0; n < valid.size(); ++n) {
    error.clear();
    EXPECT_FALSE(parse_cpuid_dump(valid.substr(0, n), s, error)) << n;
    EXPECT_FALSE(error.empty()) << n;
  }
  // Random byte flips and random bytes: any verdict, but always a clean one.
  std::mt19937 rng(42);
  for (int i = 0; i < 20000; ++i) {
    std::string text = valid;
    for (int flips = 1 + int(rng() % 4); flips > 0; --flips)
      text[rng() % text.size()] = char(rng());
    error.clear();
    EXPECT_TRUE(parse_cpuid_dump(text, s, error) || !error.empty());
  }
  for (int i = 0; i < 5000; ++i) {
    std::string text(rng() % 64, '\0');
    for (char& c : text) c = "{}[]\",:0123456789xe.-tfnlu\\ \"a"[rng() % 30];
    error.clear();
    EXPECT_TRUE(parse_cpuid_dump(text, s, error) || !error.empty());
  }
}

TEST(CpuidDump, JsonOutputOfAMapIsAValidDumpOfWhatItAdvertises) {
  CpuidSnapshot host = avx2_host();
  host.set_bit(7, 0, R::kEcx, kEcx7Gfni, true);
  const FeatureMap m = build_feature_map(host, full_avx512f(), CoverageBasis::kVerified);
  CpuidSnapshot s;
  std::string error;
  ASSERT_TRUE(parse_cpuid_dump(feature_map_json(m), s, error)) << error;
  EXPECT_TRUE(s.bit(7, 0, R::kEbx, kEbx7Avx512f));
  EXPECT_TRUE(s.bit(7, 0, R::kEbx, kEbx7Avx2));
  EXPECT_TRUE(s.bit(1, 0, R::kEcx, kEcx1Avx));
  EXPECT_FALSE(s.bit(7, 0, R::kEcx, kEcx7Gfni));  // hidden
  EXPECT_FALSE(s.bit(7, 0, R::kEbx, kEbx7Avx512bw));
  EXPECT_EQ(s.xcr0, 0xE7u);
}

// ---------------------------------------------------------------------------
// Source against destination
// ---------------------------------------------------------------------------

TEST(SourceCheck, SaysNativeEmulatedOrMissingPerFeature) {
  const FeatureMap dest = build_feature_map(avx2_host(), full_avx512f(), CoverageBasis::kVerified);
  CpuidSnapshot source = avx512_host();
  source.set_bit(7, 0, R::kEdx, kEdx7Avx5124fmaps, true);
  source.set_bit(1, 0, R::kEcx, 31, true);  // "running under a hypervisor": not a feature

  const SourceCheck check = check_source(source, dest);
  auto verdict = [&](const std::string& name) {
    for (const SourceCheckLine& l : check.lines)
      if (l.name == name) return int(l.verdict);
    return -1;
  };
  EXPECT_EQ(verdict("avx2"), int(SourceVerdict::kNative));
  EXPECT_EQ(verdict("avx512f"), int(SourceVerdict::kEmulated));
  EXPECT_EQ(verdict("avx512vl"), int(SourceVerdict::kEmulated));
  EXPECT_EQ(verdict("avx512bw"), int(SourceVerdict::kMissing));
  EXPECT_EQ(verdict("avx512-4fmaps"), int(SourceVerdict::kMissing));
  EXPECT_EQ(verdict("xcr0 opmask"), int(SourceVerdict::kEmulated));
  EXPECT_EQ(verdict("xcr0 SSE"), int(SourceVerdict::kNative));
  EXPECT_EQ(verdict("sha-ni"), -1);  // the source does not have it
  EXPECT_EQ(check.missing, 2);
  ASSERT_EQ(check.unchecked_bits.size(), 2u);  // OSXSAVE and the hypervisor bit
  const std::string text = source_check_text(check);
  EXPECT_NE(text.find("missing (blocks migration)"), std::string::npos) << text;
  EXPECT_NE(text.find("migration blocked"), std::string::npos) << text;
}

TEST(SourceCheck, AnAvx2SourceFitsAnyDestinationWithItsFeatures) {
  const FeatureMap dest =
      build_feature_map(avx2_host(), CoverageReport{}, CoverageBasis::kVerified);
  const SourceCheck check = check_source(avx2_host(), dest);
  EXPECT_EQ(check.missing, 0);
  EXPECT_NE(source_check_text(check).find("migration possible"), std::string::npos);
}

TEST(SourceCheck, XsaveStateTheDestinationLacksBlocks) {
  const FeatureMap dest =
      build_feature_map(avx2_host(), CoverageReport{}, CoverageBasis::kVerified);
  CpuidSnapshot source = avx2_host();
  source.xcr0 = 0x207;  // + PKRU
  const SourceCheck check = check_source(source, dest);
  EXPECT_EQ(check.missing, 1);
}

// ---------------------------------------------------------------------------
// The command
// ---------------------------------------------------------------------------

struct CliResult {
  int status = -1;
  std::string out, err;
};

CliResult run_cli(const std::string& args) {
  const std::string err_path = ::testing::TempDir() + "featuremap_stderr.txt";
  const std::string cmd = std::string(AVX512EMU_CLI) + " featuremap " + args + " 2>" + err_path;
  CliResult r;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  std::ifstream e(err_path);
  std::stringstream ss;
  ss << e.rdbuf();
  r.err = ss.str();
  return r;
}

std::string write_temp(const std::string& name, const std::string& text) {
  const std::string path = ::testing::TempDir() + name;
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

TEST(FeatureMapCommand, HelpDocumentsTheDumpFormat) {
  const CliResult r = run_cli("--help");
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.out.find("--check-source"), std::string::npos);
  EXPECT_NE(r.out.find("\"cpuid\""), std::string::npos);
}

TEST(FeatureMapCommand, BadOptionsAndFilesGetAClearErrorAndStatus2) {
  CliResult r = run_cli("--format yaml");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("unknown format"), std::string::npos) << r.err;
  r = run_cli("--check-source");
  EXPECT_EQ(r.status, 2);
  r = run_cli("--check-source /nonexistent/cpuid.json");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("cannot open"), std::string::npos) << r.err;
  r = run_cli("--check-source " + write_temp("fm_bad.json", "{\"cpuid\": [{\"leaf\": 7,"));
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("not valid JSON"), std::string::npos) << r.err;
  r = run_cli("--check-source " + write_temp("fm_shape.json", "{\"leaves\": []}"));
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("\"cpuid\""), std::string::npos) << r.err;
}

TEST(FeatureMapCommand, NoVerifyPrintsAUsableQemuStringAndSaysSoLoudly) {
  const CliResult r = run_cli("--no-verify --format qemu");
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.out.rfind("-cpu host", 0), 0u) << r.out;
  EXPECT_EQ(r.out.find('\n'), r.out.size() - 1) << "one line: " << r.out;
  EXPECT_NE(r.err.find("NOT VERIFIED"), std::string::npos) << r.err;
}

TEST(FeatureMapCommand, AcceptsItsOwnJsonAsASourceDump) {
  const CliResult map = run_cli("--no-verify --format json");
  ASSERT_EQ(map.status, 0) << map.err;
  const CliResult r = run_cli("--no-verify --check-source " + write_temp("fm_self.json", map.out));
  EXPECT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("migration possible"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("missing"), std::string::npos) << r.out;
}

TEST(FeatureMapCommand, ASourceWithAnUncoveredSubsetIsRefused) {
  // AVX512_4FMAPS (Xeon Phi only): not on this kind of CPU, and the decoder's
  // catalogue has no translation for it.
  CpuidSnapshot host = read_host_cpuid();
  if (host.bit(7, 0, R::kEdx, kEdx7Avx5124fmaps))
    GTEST_SKIP() << "this CPU has AVX512_4FMAPS natively";
  const std::string dump = R"({"cpuid": [{"leaf": 7, "subleaf": 0, "edx": ")" +
                           std::to_string(1u << kEdx7Avx5124fmaps) + R"("}]})";
  const CliResult r = run_cli("--no-verify --check-source " + write_temp("fm_4fmaps.json", dump));
  EXPECT_EQ(r.status, 1) << r.out << r.err;
  EXPECT_NE(r.out.find("avx512-4fmaps"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("missing (blocks migration)"), std::string::npos) << r.out;
}

TEST(FeatureMapCommand, DefaultRunVerifiesAndShowsProgress) {
  // The honest default: the differential check runs (on an AVX-512 host),
  // with progress on stderr, and the JSON says its basis is verified.
  const CliResult r = run_cli("--as-avx2-host --format json");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("\"basis\": \"verified\""), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("NOT VERIFIED"), std::string::npos);
  CpuidSnapshot host = read_host_cpuid();
  if (host.bit(7, 0, R::kEbx, kEbx7Avx512f) && (host.xcr0 & 0xE6) == 0xE6) {
    EXPECT_NE(r.err.find("verifying"), std::string::npos) << r.err;
  }
  // No AVX-512 feature may be native under --as-avx2-host; each is one line.
  CpuidSnapshot s;
  std::string error;
  ASSERT_TRUE(parse_cpuid_dump(r.out, s, error)) << error;
  std::istringstream lines(r.out);
  int avx512_rows = 0;
  for (std::string line; std::getline(lines, line);) {
    if (line.find("\"name\": \"avx512") == std::string::npos) continue;
    ++avx512_rows;
    EXPECT_EQ(line.find("\"source\": \"native\""), std::string::npos) << line;
  }
  EXPECT_GE(avx512_rows, 17);
}

}  // namespace
}  // namespace avx512emu::kvm
