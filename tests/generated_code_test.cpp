// Generated code holds no AVX-512: every translation decodes (Zydis) to
// non-EVEX, non-AVX512 instructions only.
#include <gtest/gtest.h>

#include <cstring>

#include "avx512emu.h"
#include "decoded_insn.h"
#include "isa_catalog.h"

namespace {

//! Checks one translation's instructions; returns the first offending line.
std::string first_avx512_line(const avx512emu::Translation& t) {
  const auto lines =
      avx512emu::disassemble(static_cast<const uint8_t*>(t.code), t.code_size);
  for (const auto& line : lines) {
    if (!line.valid || line.evex || std::strncmp(line.isa_set.c_str(), "AVX512", 6) == 0)
      return line.text + " (" + line.isa_set + ")";
  }
  return "";
}

}  // namespace

TEST(GeneratedCode, NoAvx512InAnyCatalogTranslation) {
  int translated = 0;
  for (const auto& entry : avx512emu::avx512_catalog()) {
    const auto r = avx512emu::translate(entry.sample, entry.sample_length);
    if (r.error != avx512emu::TranslateError::kNone) continue;
    ++translated;
    EXPECT_EQ(first_avx512_line(*r.translation), "")
        << entry.mnemonic << " " << avx512emu::hex_bytes(entry.sample, entry.sample_length);
  }
  // The catalogue has samples of every translated mnemonic; an empty run
  // would prove nothing.
  EXPECT_GT(translated, 100);
}

TEST(GeneratedCode, VaddpsZmmUsesNoZmmOrOpmask) {
  const uint8_t vaddps[] = {0x62, 0xf1, 0x74, 0x48, 0x58, 0xc2};
  const auto r = avx512emu::translate(vaddps, sizeof vaddps);
  ASSERT_EQ(r.error, avx512emu::TranslateError::kNone) << r.message;
  for (const auto& line : avx512emu::disassemble(static_cast<const uint8_t*>(r.translation->code),
                                                 r.translation->code_size)) {
    EXPECT_EQ(line.text.find("zmm"), std::string::npos) << line.text;
    EXPECT_EQ(line.text.find(" k"), std::string::npos) << line.text;
  }
}
