// Bad input gets a precise error and never a crash: random bytes, truncated
// encodings, invalid EVEX, non-AVX-512 instructions and unsupported ones.
#include <gtest/gtest.h>

#include <random>

#include "avx512emu.h"

using avx512emu::TranslateError;
using avx512emu::translate;

namespace {

TranslateError error_of(std::vector<uint8_t> bytes) {
  return translate(bytes.data(), bytes.size()).error;
}

}  // namespace

TEST(BadInput, NonAvx512InstructionIsNamed) {
  const auto r = translate(std::vector<uint8_t>{0x48, 0x01, 0xd8}.data(), 3);  // add rax, rbx
  EXPECT_EQ(r.error, TranslateError::kNotAvx512);
  EXPECT_NE(r.message.find("add"), std::string::npos) << r.message;
  // VEX AVX2 is not AVX-512 either: vpaddd ymm0, ymm1, ymm2.
  EXPECT_EQ(error_of({0xc5, 0xf5, 0xfe, 0xc2}), TranslateError::kNotAvx512);
}

TEST(BadInput, TruncatedEvexAtEveryLength) {
  // vmovdqu32 zmm0, [rdx+0x100]
  const std::vector<uint8_t> full = {0x62, 0xf1, 0x7e, 0x48, 0x6f, 0x82, 0x00, 0x01, 0x00, 0x00};
  for (size_t n = 1; n < full.size(); ++n) {
    const auto r = translate(full.data(), n);
    EXPECT_EQ(r.error, TranslateError::kTruncated) << "length " << n << ": " << r.message;
  }
  EXPECT_EQ(translate(full.data(), full.size()).error, TranslateError::kNone);
}

TEST(BadInput, InvalidEvexIsRejected) {
  // EVEX with the reserved P0 bit 3 set.
  EXPECT_EQ(error_of({0x62, 0xf9, 0x74, 0x48, 0x58, 0xc2}), TranslateError::kInvalid);
  // 0x0f 0x04 is not an instruction in 64-bit mode, however many bytes follow.
  EXPECT_EQ(error_of({0x0f, 0x04, 0x00, 0x00, 0x00, 0x00}), TranslateError::kInvalid);
  EXPECT_EQ(translate(nullptr, 0).error, TranslateError::kTruncated);
}

TEST(BadInput, UnsupportedAvx512IsNamed) {
  // vp2intersectd k0, zmm0, zmm1 (AVX512_VP2INTERSECT): decoded, not translated.
  const std::vector<uint8_t> b = {0x62, 0xf2, 0x7f, 0x48, 0x68, 0xc1};
  const auto r = translate(b.data(), b.size());
  EXPECT_EQ(r.error, TranslateError::kUnsupported);
  EXPECT_NE(r.message.find("vp2intersectd"), std::string::npos) << r.message;
}

TEST(BadInput, RandomBytesNeverCrash) {
  std::mt19937_64 rng(12345);
  int counts[5] = {};
  for (int n = 0; n < 200000; ++n) {
    uint8_t b[15];
    for (auto& x : b) x = uint8_t(rng());
    // Half the inputs start with an EVEX or VEX escape to reach deep paths.
    if (n % 2) b[0] = (n % 4 == 1) ? 0x62 : 0xc4;
    const auto r = translate(b, 1 + rng() % 15);
    ++counts[int(r.error)];
    if (r.error == TranslateError::kNone) {
      ASSERT_NE(r.translation, nullptr);
    } else {
      ASSERT_FALSE(r.message.empty());
    }
  }
  // Every category must actually have been reached.
  EXPECT_GT(counts[int(TranslateError::kNotAvx512)], 0);
  EXPECT_GT(counts[int(TranslateError::kInvalid)], 0);
  EXPECT_GT(counts[int(TranslateError::kTruncated)], 0);
}
