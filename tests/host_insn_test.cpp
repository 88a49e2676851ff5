// decode_host_insn (decoder/host_insn.h) on the instructions a loop region
// copies: branch kinds and targets, what must refuse a region, the flags an
// instruction tests and replaces (flags liveness), and VEX/EVEX encodings.
// Expected values are the Intel SDM's (encodings and flags affected).
#include "host_insn.h"

#include <gtest/gtest.h>

#include <vector>

namespace {

using avx512emu::HostInsn;
using avx512emu::HostInsnKind;

HostInsn decode(std::initializer_list<uint8_t> bytes) {
  const std::vector<uint8_t> b(bytes);
  HostInsn h;
  EXPECT_TRUE(avx512emu::decode_host_insn(b.data(), b.size(), h));
  EXPECT_EQ(h.length, b.size());
  return h;
}

constexpr uint8_t kArith = avx512emu::kHostArithFlags;

TEST(HostInsn, ConditionalBranchTestsItsFlagsAndHasATarget) {
  const HostInsn jne = decode({0x75, 0xf0});  // jne -16
  EXPECT_EQ(jne.kind, HostInsnKind::kCondJump);
  EXPECT_EQ(jne.rel_size, 1);
  EXPECT_EQ(jne.rel_target, 2 - 16);
  EXPECT_EQ(jne.flags_tested, avx512emu::kHostZF);
  EXPECT_EQ(jne.flags_replaced, 0);
  const HostInsn jb = decode({0x0f, 0x82, 0x00, 0x01, 0x00, 0x00});  // jb +256
  EXPECT_EQ(jb.kind, HostInsnKind::kCondJump);
  EXPECT_EQ(jb.rel_size, 4);
  EXPECT_EQ(jb.rel_target, 6 + 256);
  EXPECT_EQ(jb.flags_tested, avx512emu::kHostCF);
}

TEST(HostInsn, ArithmeticReplacesFlagsIncAndDecKeepCarry) {
  const HostInsn add = decode({0x48, 0x83, 0xc0, 0x40});  // add rax, 64
  EXPECT_EQ(add.flags_replaced, kArith);
  EXPECT_EQ(add.flags_tested, 0);
  const HostInsn dec = decode({0x48, 0xff, 0xc9});  // dec rcx
  EXPECT_EQ(dec.flags_replaced, kArith & ~avx512emu::kHostCF);
  const HostInsn adc = decode({0x48, 0x11, 0xd8});  // adc rax, rbx
  EXPECT_EQ(adc.flags_tested, avx512emu::kHostCF);
  const HostInsn mov = decode({0x48, 0x89, 0xd8});  // mov rax, rbx
  EXPECT_EQ(mov.flags_replaced, 0);
  EXPECT_EQ(mov.flags_tested, 0);
}

TEST(HostInsn, EncodingsAreTold) {
  const HostInsn vex = decode({0xc5, 0xfd, 0xfe, 0xc1});  // vpaddd ymm0, ymm0, ymm1
  EXPECT_TRUE(vex.vex);
  EXPECT_FALSE(vex.evex);
  EXPECT_EQ(vex.vecs_written, 1);
  const HostInsn sse = decode({0x66, 0x0f, 0xfe, 0xc1});  // paddd xmm0, xmm1
  EXPECT_FALSE(sse.vex);
  EXPECT_FALSE(sse.evex);
  EXPECT_EQ(sse.vecs_written, 1);
  const HostInsn evex =
      decode({0x62, 0xf1, 0x7d, 0x28, 0xfe, 0xc1});  // vpaddd ymm0, ymm0, ymm1 (EVEX)
  EXPECT_TRUE(evex.evex);
}

TEST(HostInsn, WholeStateInstructionsAreNotPlain) {
  EXPECT_EQ(decode({0xc5, 0xfc, 0x77}).kind, HostInsnKind::kVzeroupper);   // vzeroall
  EXPECT_EQ(decode({0xc5, 0xf8, 0x77}).kind, HostInsnKind::kVzeroupper);   // vzeroupper
  EXPECT_EQ(decode({0x0f, 0xae, 0x2f}).kind, HostInsnKind::kOther);        // xrstor [rdi]
  EXPECT_EQ(decode({0x48, 0x0f, 0xae, 0x0f}).kind, HostInsnKind::kOther);  // fxrstor64 [rdi]
  EXPECT_EQ(decode({0xe8, 0, 0, 0, 0}).kind, HostInsnKind::kOther);        // call rel32
  EXPECT_EQ(decode({0xff, 0xe0}).kind, HostInsnKind::kOther);              // jmp rax
  EXPECT_EQ(decode({0x0f, 0x05}).kind, HostInsnKind::kOther);              // syscall
}

TEST(HostInsn, RipRelativeOperandHasItsField) {
  const HostInsn h = decode({0x48, 0x8b, 0x05, 0x10, 0x00, 0x00, 0x00});  // mov rax, [rip+16]
  EXPECT_EQ(h.kind, HostInsnKind::kPlain);
  EXPECT_EQ(h.rel_offset, 3);
  EXPECT_EQ(h.rel_size, 4);
  EXPECT_EQ(h.rel_target, 7 + 16);
  EXPECT_EQ(h.mem.base, 16);
}

}  // namespace
