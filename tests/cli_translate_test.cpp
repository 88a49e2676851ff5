// `avx512emu translate` as a user types it: bytes as objdump prints them,
// bytes after the instruction, "0x" only as a prefix, and the encoding named
// as it is; `verify` with mnemonics as the SDM prints them and with ones
// that are not translated; `cache build` with nothing to cache; --version.
// The expected decodes are the SDM's (the encodings are written out by hand
// here); the version is CMakeLists.txt's project version.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "subprocess.h"

namespace {

using avx512emu::testing::describe;
using avx512emu::testing::Outcome;
using avx512emu::testing::run;

const std::string kCli = AVX512EMU_CLI;

TEST(CliTranslate, ObjdumpStyleBytesAreOneInstruction) {
  // EVEX.512.66.0F38.W0 78 /r: vpbroadcastb zmm3, byte ptr [rax].
  const Outcome o = run({kCli, "translate", "62", "f2", "7d", "48", "78", "18"});
  EXPECT_EQ(o.exit_code, 0) << describe(o);
  EXPECT_EQ(o.out.rfind("decode:  vpbroadcastb zmm3, byte ptr [rax]\n", 0), 0u) << o.out;
  EXPECT_EQ(o.err, "");
}

TEST(CliTranslate, SeveralInstructionsStaySeparate) {
  // vaddps zmm0, zmm1, zmm2 and vpaddd zmm0, zmm1, zmm2.
  const Outcome o = run({kCli, "translate", "62f1744858c2", "62f17548fec2"});
  EXPECT_EQ(o.exit_code, 0) << describe(o);
  EXPECT_NE(o.out.find("decode:  vaddps zmm0, zmm1, zmm2\n"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("decode:  vpaddd zmm0, zmm1, zmm2\n"), std::string::npos) << o.out;
}

TEST(CliTranslate, BytesAfterTheInstructionAreAnError) {
  const Outcome o = run({kCli, "translate", "62f27d48781890"});
  EXPECT_EQ(o.exit_code, 2) << describe(o);
  EXPECT_EQ(o.out, "");
  EXPECT_NE(o.err.find("1 byte after the instruction (its length is 6)"), std::string::npos)
      << o.err;
}

TEST(CliTranslate, ZeroXIsOnlyAPrefix) {
  const Outcome bad = run({kCli, "translate", "10x2"});
  EXPECT_EQ(bad.exit_code, 2) << describe(bad);
  EXPECT_NE(bad.err.find("not a hex digit: 'x'"), std::string::npos) << bad.err;
  const Outcome good = run({kCli, "translate", "0x62,0xf1,0x74,0x48,0x58,0xc2"});
  EXPECT_EQ(good.exit_code, 0) << describe(good);
  EXPECT_EQ(good.out.rfind("decode:  vaddps zmm0, zmm1, zmm2\n", 0), 0u) << good.out;
}

TEST(CliTranslate, ZeroXTakesWholeBytes) {
  // Read digit by digit, the first used to be vaddps zmm0, zmm1, zmm2 (0xc,0x2 as 0xc2) and the
  // second the same with nothing after its last "0x".
  for (const char* text :
       {"0x62,0xf1,0x74,0x48,0x58,0xc,0x2", "0x62 0xf1 0x74 0x48 0x58 0xc2 0x"}) {
    const Outcome o = run({kCli, "translate", text});
    EXPECT_EQ(o.exit_code, 2) << text << "\n" << describe(o);
    EXPECT_EQ(o.out, "") << text;
    EXPECT_NE(o.err.find("\"0x\" must be followed by whole bytes"), std::string::npos) << o.err;
  }
}

TEST(CliTranslate, EncodingIsNamedAsItIs) {
  // 90: nop, a legacy encoding with no vector length; C5 F8 77: vzeroupper (VEX).
  // Neither is AVX-512: the description goes to stderr with the error.
  const Outcome nop = run({kCli, "translate", "90"});
  EXPECT_NE(nop.err.find("ISA set I86, legacy encoding\n"), std::string::npos) << nop.err;
  const Outcome vzu = run({kCli, "translate", "c5f877"});
  EXPECT_NE(vzu.err.find("ISA set AVX, VEX\n"), std::string::npos) << vzu.err;
  const Outcome evex = run({kCli, "translate", "62f1744858c2"});
  EXPECT_NE(evex.out.find(", EVEX, VL 512"), std::string::npos) << evex.out;
}

TEST(CliVerify, MnemonicsAsTheSdmPrintsThem) {
  const Outcome o = run({kCli, "verify", "--states", "2", "VPADDD"});
  EXPECT_EQ(o.exit_code, 0) << describe(o);
  EXPECT_NE(o.out.find(" ok   vpaddd "), std::string::npos) << o.out;
}

TEST(CliVerify, UntranslatedAndUnknownMnemonicsAreNamedSo) {
  // vexp2ps is AVX512ER (Xeon Phi only): out of scope, never translated.
  const Outcome o = run({kCli, "verify", "vexp2ps", "vnotreal"});
  EXPECT_EQ(o.exit_code, 1) << describe(o);
  EXPECT_NE(o.out.find("vexp2ps            not translated (AVX512ER"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("vnotreal           not an AVX-512 mnemonic"), std::string::npos) << o.out;
  EXPECT_EQ(o.out.find("FAIL"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("0 failed, 1 not translated, 1 unknown"), std::string::npos) << o.out;
}

TEST(CliCache, BuildWithNoElfInputFailsAndKeepsTheOutput) {
  char dir[] = "/tmp/avx512emu-cli-cache-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string out = std::string(dir) + "/kept.a5c", text = std::string(dir) + "/text";
  ASSERT_EQ(system(("printf kept > " + out + " && printf 'not ELF' > " + text).c_str()), 0);
  const Outcome o = run({kCli, "cache", "build", "-o", out, text});
  EXPECT_EQ(o.exit_code, 1) << describe(o);
  EXPECT_NE(o.err.find("nothing written"), std::string::npos) << o.err;
  FILE* f = std::fopen(out.c_str(), "r");
  ASSERT_NE(f, nullptr);
  char buf[16] = {};
  EXPECT_EQ(std::fread(buf, 1, sizeof buf - 1, f), 4u);
  std::fclose(f);
  EXPECT_STREQ(buf, "kept");
  (void)system(("rm -rf " + std::string(dir)).c_str());
}

TEST(Cli, VersionIsTheProjects) {
  const Outcome o = run({kCli, "--version"});
  EXPECT_EQ(o.exit_code, 0) << describe(o);
  EXPECT_EQ(o.out, std::string("avx512emu ") + AVX512EMU_PROJECT_VERSION + "\n");
}

}  // namespace
