// `avx512emu translate` as a user types it: bytes as objdump prints them,
// bytes after the instruction, and "0x" only as a prefix; and --version. The
// expected decodes are the SDM's (the encodings are written out by hand
// here); the version is CMakeLists.txt's project version.
#include <gtest/gtest.h>

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

TEST(Cli, VersionIsTheProjects) {
  const Outcome o = run({kCli, "--version"});
  EXPECT_EQ(o.exit_code, 0) << describe(o);
  EXPECT_EQ(o.out, std::string("avx512emu ") + AVX512EMU_PROJECT_VERSION + "\n");
}

}  // namespace
