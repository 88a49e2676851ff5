// Three-way differential test of every mnemonic of the semantics table:
// native execution on this CPU, the reference interpreter and the JIT (on a
// CPU without AVX-512: the JIT against the reference interpreter), over
// every enumerated form (register and memory operands, {k}, {z}, {1toN},
// rounding and {sae}, VL 128/256/512, zmm16-31; all 256 vpternlog
// immediates, all compare predicates) with 300 generated states per form,
// including the edge values of state_gen. The whole state and all memory
// must match bit for bit.
//
// One test per mnemonic, grouped by CPUID feature, so ctest runs each in its
// own process and a failure names its mnemonic.
#include "selfcheck/differential.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "selfcheck/native_oracle.h"
#include "semantics_table.h"

namespace {

using avx512emu::selfcheck::verifiable_mnemonics;

constexpr int kStatesPerForm = 300;

std::vector<std::string> mnemonics_with_feature(const std::string& feature) {
  std::vector<std::string> out;
  for (const std::string& m : verifiable_mnemonics())
    if (feature == avx512emu::find_semantics(m.c_str())->feature) out.push_back(m);
  return out;
}

class Differential : public ::testing::TestWithParam<std::string> {};

TEST_P(Differential, MatchesNativeBitForBit) {
  // Without AVX-512 on this CPU, verify_mnemonic compares the JIT with the
  // reference interpreter alone; the record says which reference ran.
  ::testing::Test::RecordProperty("reference", avx512emu::selfcheck::host_runs_avx512()
                                                   ? "native"
                                                   : "reference interpreter");
  const auto report = avx512emu::selfcheck::verify_mnemonic(GetParam().c_str(), kStatesPerForm, 1);
  EXPECT_GT(report.forms, 0);
  EXPECT_TRUE(report.passed()) << report.failures << " failures\n" << report.summary();
}

std::string name_of(const ::testing::TestParamInfo<std::string>& info) {
  return info.param;
}

#define AVX512EMU_FEATURE_SUITE(feature)          \
  INSTANTIATE_TEST_SUITE_P(feature, Differential, \
                           ::testing::ValuesIn(mnemonics_with_feature(#feature)), name_of)
AVX512EMU_FEATURE_SUITE(AVX512F);
AVX512EMU_FEATURE_SUITE(AVX512BW);
AVX512EMU_FEATURE_SUITE(AVX512DQ);
AVX512EMU_FEATURE_SUITE(AVX512CD);
AVX512EMU_FEATURE_SUITE(AVX512BITALG);
AVX512EMU_FEATURE_SUITE(AVX512VPOPCNTDQ);
AVX512EMU_FEATURE_SUITE(AVX512IFMA);
AVX512EMU_FEATURE_SUITE(AVX512VBMI);
AVX512EMU_FEATURE_SUITE(AVX512VBMI2);
AVX512EMU_FEATURE_SUITE(AVX512VNNI);
AVX512EMU_FEATURE_SUITE(VAES);
AVX512EMU_FEATURE_SUITE(VPCLMULQDQ);

// Every table mnemonic belongs to one of the suites above (a row with a new
// feature needs its suite line).
TEST(DifferentialSuites, EveryMnemonicIsInASuite) {
  const char* features[] = {"AVX512F",     "AVX512BW",     "AVX512DQ",        "AVX512CD",
                            "AVX512BITALG", "AVX512VPOPCNTDQ", "AVX512VBMI", "AVX512VBMI2",
                            "AVX512IFMA",  "AVX512VNNI",   "VAES",            "VPCLMULQDQ"};
  size_t covered = 0;
  for (const char* f : features) covered += mnemonics_with_feature(f).size();
  EXPECT_EQ(covered, verifiable_mnemonics().size());
}

}  // namespace
