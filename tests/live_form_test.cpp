// The live form of translations (jit/live_form.h): every catalogue
// translation can run inline, and the guest state each one is found to touch
// is what the instruction's definition in the Intel SDM says it touches.
#include <gtest/gtest.h>

#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "avx512emu.h"
#include "cpu_state.h"
#include "decoded_insn.h"
#include "isa_catalog.h"
#include "live_form.h"

namespace {

using avx512emu::jit::LiveForm;

LiveForm live_form_of(std::initializer_list<uint8_t> bytes, std::string* why_out = nullptr) {
  const std::vector<uint8_t> b(bytes);
  const auto r = avx512emu::translate(b.data(), b.size());
  EXPECT_EQ(r.error, avx512emu::TranslateError::kNone) << r.message;
  LiveForm f;
  const char* why = "";
  if (r.translation) {
    const bool ok =
        avx512emu::jit::make_live_form(static_cast<const uint8_t*>(r.translation->code),
                                       r.translation->code_size, r.translation->total_size, f, &why);
    EXPECT_TRUE(ok) << why;
  }
  if (why_out) *why_out = why;
  return f;
}

uint16_t bit(int r) {
  return uint16_t(1u << r);
}

}  // namespace

TEST(LiveForm, EveryCatalogTranslationRunsInline) {
  int translated = 0;
  std::map<std::string, std::string> refused;
  for (const auto& entry : avx512emu::avx512_catalog()) {
    const auto r = avx512emu::translate(entry.sample, entry.sample_length);
    if (r.error != avx512emu::TranslateError::kNone) continue;
    ++translated;
    LiveForm f;
    const char* why = "";
    if (!avx512emu::jit::make_live_form(static_cast<const uint8_t*>(r.translation->code),
                                        r.translation->code_size, r.translation->total_size, f,
                                        &why))
      refused[entry.mnemonic] = why;
  }
  EXPECT_GT(translated, 100);
  for (const auto& [mnemonic, why] : refused) ADD_FAILURE() << mnemonic << ": " << why;
}

// vaddps zmm0, zmm1, zmm2 (62 f1 74 48 58 c2): reads zmm1, zmm2, writes zmm0
// (all 512 bits), uses MXCSR, touches no GPR and no flag.
TEST(LiveForm, VaddpsReadsSourcesWritesDestination) {
  const LiveForm f = live_form_of({0x62, 0xf1, 0x74, 0x48, 0x58, 0xc2});
  EXPECT_EQ(f.guest_low_read, bit(1) | bit(2));
  EXPECT_EQ(f.guest_low_written, bit(0));
  EXPECT_EQ(f.guest_upper_written, 1u << 0);
  EXPECT_EQ(f.guest_k_written, 0);
  EXPECT_EQ(f.guest_gprs_read, 0);
  EXPECT_EQ(f.guest_gprs_written, 0);
  EXPECT_FALSE(f.writes_rflags);
  EXPECT_FALSE(f.reads_rip);
  // The MXCSR prologue and epilogue are not part of the body.
  EXPECT_GT(f.body_begin, 0u);
}

// vpaddd zmm1, zmm2, [rax+rcx*4+0x40] (62 f1 6d 48 fe 4c 88 01): the
// address registers are read; nothing else of the GPRs.
TEST(LiveForm, MemoryOperandReadsAddressRegisters) {
  const LiveForm f = live_form_of({0x62, 0xf1, 0x6d, 0x48, 0xfe, 0x4c, 0x88, 0x01});
  EXPECT_EQ(f.guest_gprs_read, bit(0) | bit(1));
  EXPECT_EQ(f.guest_gprs_written, 0);
  EXPECT_EQ(f.guest_low_read, bit(2));
  EXPECT_EQ(f.guest_low_written, bit(1));
}

// vmovdqu64 zmm3, [rip+0x100] (62 f1 fe 48 6f 1d 00 01 00 00): a
// RIP-relative operand needs the instruction's address.
TEST(LiveForm, RipRelativeOperandNeedsRip) {
  const LiveForm f = live_form_of({0x62, 0xf1, 0xfe, 0x48, 0x6f, 0x1d, 0x00, 0x01, 0x00, 0x00});
  EXPECT_TRUE(f.reads_rip);
  EXPECT_EQ(f.guest_low_written, bit(3));
  EXPECT_EQ(f.guest_gprs_read, 0);
}

// kortestw k1, k2 (c5 f8 98 ca): writes ZF and CF, reads no vector register.
TEST(LiveForm, KortestWritesFlags) {
  const LiveForm f = live_form_of({0xc5, 0xf8, 0x98, 0xca});
  EXPECT_TRUE(f.writes_rflags);
  EXPECT_EQ(f.guest_k_written, 0);
  EXPECT_EQ(f.guest_low_read, 0);
  EXPECT_EQ(f.guest_low_written, 0);
}

// kmovw eax, k1 (c5 f8 93 c1): writes eax (zero-extended to rax).
TEST(LiveForm, KmovToGprWritesIt) {
  const LiveForm f = live_form_of({0xc5, 0xf8, 0x93, 0xc1});
  EXPECT_EQ(f.guest_gprs_written, bit(0));
  EXPECT_FALSE(f.writes_rflags);
  EXPECT_EQ(f.guest_k_written, 0);
}

// vpbroadcastd zmm5, r9d (62 d2 7d 48 7c e9): reads r9 only.
TEST(LiveForm, BroadcastFromGprReadsIt) {
  const LiveForm f = live_form_of({0x62, 0xd2, 0x7d, 0x48, 0x7c, 0xe9});
  EXPECT_EQ(f.guest_gprs_read, bit(9));
  EXPECT_EQ(f.guest_low_written, bit(5));
  EXPECT_EQ(f.guest_upper_written, 1u << 5);
}

// kmovw k3, eax (c5 f8 92 d8): writes k3 only.
TEST(LiveForm, KmovFromGprWritesTheOpmask) {
  const LiveForm f = live_form_of({0xc5, 0xf8, 0x92, 0xd8});
  EXPECT_EQ(f.guest_k_written, 1u << 3);
  EXPECT_EQ(f.guest_gprs_read, bit(0));
  EXPECT_EQ(f.guest_upper_written, 0u);
}

// vpaddd zmm17, zmm18, zmm19 (62 a1 6d 40 fe cb): all in the shadow; no live ymm.
TEST(LiveForm, HighRegistersStayInTheShadow) {
  const LiveForm f = live_form_of({0x62, 0xa1, 0x6d, 0x40, 0xfe, 0xcb});
  EXPECT_EQ(f.guest_low_read, 0);
  EXPECT_EQ(f.guest_low_written, 0);
  EXPECT_EQ(f.guest_upper_written, 1u << 17);
}

// A code blob that is not a translation is refused with a reason.
TEST(LiveForm, RefusesCodeWithoutTheEpilogue) {
  const uint8_t push_ret[] = {0x50, 0xc3};  // push rax; ret
  LiveForm f;
  const char* why = nullptr;
  EXPECT_FALSE(avx512emu::jit::make_live_form(push_ret, 2, 2, f, &why));
  ASSERT_NE(why, nullptr);
  EXPECT_NE(std::string(why), "");
}

// The register form (jit/register_form.h) exists for the staples of compiled
// AVX-512 loops; the catalogue count is printed for the record.
TEST(RegisterForm, CoversTheStaples) {
  int translated = 0, with_register_form = 0;
  std::map<std::string, int> has;  // samples of the mnemonic with a register form
  for (const auto& entry : avx512emu::avx512_catalog()) {
    const auto r = avx512emu::translate(entry.sample, entry.sample_length);
    if (r.error != avx512emu::TranslateError::kNone) continue;
    ++translated;
    if (r.translation->register_code) {
      ++with_register_form;
      ++has[entry.mnemonic];
    }
  }
  std::printf("register form: %d of %d catalogue samples\n", with_register_form, translated);
  for (const char* staple : {"vpaddd", "vpaddq", "vpxord", "vpxorq", "vpandq", "vpord", "vmovdqu64",
                             "vmovdqa64", "vmovdqu32", "vmovups", "vaddps", "vmulpd",
                             "vfmadd231ps", "vpmaxsd", "vpsubb"})
    EXPECT_GT(has[staple], 0) << staple;
}

// vpbroadcastd zmm0, eax (62 f2 7d 48 7c c0) and vpbroadcastd zmm0, [rax]
// (62 f2 7d 48 58 00): broadcasts from a GPR and from memory.
TEST(RegisterForm, BroadcastsFromGprAndMemory) {
  for (std::vector<uint8_t> bytes : {std::vector<uint8_t>{0x62, 0xf2, 0x7d, 0x48, 0x7c, 0xc0},
                                     std::vector<uint8_t>{0x62, 0xf2, 0x7d, 0x48, 0x58, 0x00}}) {
    const auto r = avx512emu::translate(bytes.data(), bytes.size());
    ASSERT_EQ(r.error, avx512emu::TranslateError::kNone);
    EXPECT_NE(r.translation->register_code, nullptr) << avx512emu::hex_bytes(bytes.data(), bytes.size());
    EXPECT_EQ(r.translation->register_low_written, bit(0));
  }
}

// vpaddd zmm1{k2}, zmm2, zmm3 (62 f1 6d 4a fe cb): merge masking reads the
// old zmm1; the register form uses zmm1-3 in place.
TEST(RegisterForm, MaskedAddUsesItsRegistersInPlace) {
  const uint8_t bytes[] = {0x62, 0xf1, 0x6d, 0x4a, 0xfe, 0xcb};
  const auto r = avx512emu::translate(bytes, sizeof bytes);
  ASSERT_EQ(r.error, avx512emu::TranslateError::kNone);
  ASSERT_NE(r.translation->register_code, nullptr);
  EXPECT_EQ(r.translation->register_low_read, bit(1) | bit(2) | bit(3));
  EXPECT_EQ(r.translation->register_low_written, bit(1));
  LiveForm f;
  const char* why = "";
  ASSERT_TRUE(avx512emu::jit::make_live_form(
      static_cast<const uint8_t*>(r.translation->register_code), r.translation->register_code_size,
      r.translation->register_total_size, f, &why))
      << why;
  // No ymm is read from the block: bits 255:0 are live. Bits 511:256 of the
  // sources and the old destination are read there, and written for zmm1.
  EXPECT_EQ(f.guest_low_read, 0);
  EXPECT_EQ(f.guest_low_written, 0);
  EXPECT_EQ(f.guest_upper_read, (1u << 1) | (1u << 2) | (1u << 3));
  EXPECT_EQ(f.guest_upper_written, 1u << 1);
  // Scratch registers only outside the instruction's own.
  EXPECT_EQ(f.host_vecs_written & (bit(2) | bit(3)), 0);
}
