// Unit tests of the self-check's own pieces (form enumerator, native oracle,
// state generator, fault trap); none of them needs the JIT back end.
#include <gtest/gtest.h>

#include <algorithm>
#include <csignal>
#include <cstring>
#include <map>
#include <set>
#include <tuple>

#include "selfcheck/differential.h"
#include "selfcheck/form_enumerator.h"
#include "selfcheck/native_oracle.h"
#include "selfcheck/state_gen.h"

using namespace avx512emu;
using namespace avx512emu::selfcheck;

namespace {

// Shapes only: one form per operand shape and decoration.
constexpr EnumerateOptions kShapesOnly{/*addressing_variants=*/false, /*aliased_variants=*/false};

CpuState random_state(uint64_t seed, int variant = 0) {
  Rng rng(seed);
  return make_state(rng, variant);
}

uint32_t dword(const uint8_t* p, int i) {
  uint32_t v;
  std::memcpy(&v, p + 4 * i, 4);
  return v;
}

}  // namespace

// ---- Form enumerator --------------------------------------------------------

TEST(FormEnumerator, VpadddHasEveryWidthMaskAndOperandKind) {
  const std::vector<TestForm> forms = enumerate_forms("vpaddd", 7, kShapesOnly);
  // {xmm, ymm, zmm} x {unmasked, {k}, {k}{z}} x {register, memory, {1toN}}.
  ASSERT_EQ(forms.size(), 27u);
  std::set<std::tuple<int, int, int>> seen;
  for (const TestForm& f : forms) {
    SCOPED_TRACE(f.text);
    EXPECT_EQ(f.mnemonic, "vpaddd");
    EXPECT_TRUE(f.evex);
    EXPECT_FALSE(f.has_imm);
    EXPECT_EQ(f.rounding, Rounding::kNone);
    const int mask_mode = f.masked ? (f.zeroing ? 2 : 1) : 0;
    const int kind = !f.has_mem ? 0 : f.broadcast ? 2 : 1;
    seen.insert({f.vector_bits, mask_mode, kind});
    if (f.masked) {
      EXPECT_GE(f.mask_reg, 1);
    }
    if (kind == 1) {
      EXPECT_EQ(f.mem_bytes, f.vector_bits / 8);
    }
    if (kind == 2) {
      EXPECT_EQ(f.mem_bytes, 4);
      EXPECT_EQ(f.broadcast, f.vector_bits / 32);
    }
    if (f.has_mem) {
      EXPECT_NE(f.mem_base, 4);  // rsp
      EXPECT_NE(f.mem_base, 5);  // rbp
      EXPECT_FALSE(f.mem_written);
    }
    // The recorded bytes decode back to the same thing.
    DecodedInsn d;
    ASSERT_EQ(decode(f.bytes, f.length, d), DecodeStatus::kOk);
    EXPECT_EQ(d.length, f.length);
    EXPECT_EQ(format_insn(d), f.text);
  }
  EXPECT_EQ(seen.size(), 27u);
}

TEST(FormEnumerator, VaddpsEmbeddedRoundingOnlyOnZmmRegisterForms) {
  const std::vector<TestForm> forms = enumerate_forms("vaddps", 7, kShapesOnly);
  std::set<std::pair<Rounding, int>> rounded;  // (mode, mask mode)
  for (const TestForm& f : forms) {
    if (f.rounding == Rounding::kNone) continue;
    SCOPED_TRACE(f.text);
    EXPECT_EQ(f.vector_bits, 512);
    EXPECT_FALSE(f.has_mem);
    EXPECT_TRUE(f.sae);  // embedded rounding implies {sae}
    rounded.insert({f.rounding, f.masked ? (f.zeroing ? 2 : 1) : 0});
  }
  EXPECT_EQ(rounded.size(), 12u);  // 4 rounding modes x 3 mask modes
  // vaddps takes {er}, never a bare {sae}.
  for (const TestForm& f : forms) EXPECT_FALSE(f.sae && f.rounding == Rounding::kNone) << f.text;
}

TEST(FormEnumerator, VmaxpsHasSaeButNoRounding) {
  int sae = 0;
  for (const TestForm& f : enumerate_forms("vmaxps", 7, kShapesOnly)) {
    EXPECT_EQ(f.rounding, Rounding::kNone) << f.text;
    if (f.sae) {
      ++sae;
      EXPECT_EQ(f.vector_bits, 512) << f.text;
      EXPECT_FALSE(f.has_mem) << f.text;
    }
  }
  EXPECT_EQ(sae, 3);  // one per mask mode
}

TEST(FormEnumerator, KmovwHasItsFiveVexForms) {
  const std::vector<TestForm> forms = enumerate_forms("kmovw", 7, kShapesOnly);
  ASSERT_EQ(forms.size(), 5u);  // k<-k, k<-m16, m16<-k, k<-r32, r32<-k
  int loads = 0, stores = 0;
  for (const TestForm& f : forms) {
    SCOPED_TRACE(f.text);
    EXPECT_FALSE(f.evex);
    EXPECT_EQ(f.vector_bits, 0);
    EXPECT_FALSE(f.masked);
    if (f.has_mem) {
      EXPECT_EQ(f.mem_bytes, 2);
      (f.mem_written ? stores : loads) += 1;
    }
  }
  EXPECT_EQ(loads, 1);
  EXPECT_EQ(stores, 1);
}

TEST(FormEnumerator, StoresTakeMergeMaskingOnly) {
  for (const TestForm& f : enumerate_forms("vmovdqu32", 7, kShapesOnly)) {
    if (f.has_mem && f.mem_written) {
      EXPECT_FALSE(f.zeroing) << f.text;
    }
  }
}

TEST(FormEnumerator, VariantsCoverAddressingAndAliasing) {
  const std::vector<TestForm> forms = enumerate_forms("vpaddd", 11);
  EXPECT_GT(forms.size(), 27u);
  std::map<Addressing, int> addressing;
  int aliased = 0;
  for (const TestForm& f : forms) {
    SCOPED_TRACE(f.text);
    addressing[f.addressing]++;
    DecodedInsn d;
    ASSERT_EQ(decode(f.bytes, f.length, d), DecodeStatus::kOk);
    if (f.aliased) {
      ++aliased;
      std::set<int> regs;
      for (int i = 0; i < d.operand_count; ++i)
        if (d.ops[i].kind == OperandKind::kVec) regs.insert(d.ops[i].reg);
      EXPECT_EQ(regs.size(), 1u);
    }
    if (f.addressing == Addressing::kBaseIndexDisp32) {
      EXPECT_GE(f.mem_index, 0);
      EXPECT_NE(f.mem_index, f.mem_base);
      EXPECT_NE(f.mem_disp, 0);
    }
    if (f.addressing == Addressing::kBaseDisp8) {
      EXPECT_NE(f.mem_disp, 0);
      EXPECT_LT(f.length, 10) << "disp8*N must compress";
    }
  }
  EXPECT_GT(addressing[Addressing::kBase], 0);
  EXPECT_GT(addressing[Addressing::kBaseDisp8], 0);
  EXPECT_GT(addressing[Addressing::kBaseIndexDisp32], 0);
  EXPECT_GT(aliased, 0);
}

TEST(FormEnumerator, UsesHighRegistersAndIsDeterministic) {
  const std::vector<TestForm> a = enumerate_forms("vpternlogq", 3);
  const std::vector<TestForm> b = enumerate_forms("vpternlogq", 3);
  ASSERT_EQ(a.size(), b.size());
  bool high = false;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].signature, b[i].signature);
    EXPECT_EQ(std::memcmp(a[i].bytes, b[i].bytes, 15), 0);
    DecodedInsn d;
    ASSERT_EQ(decode(a[i].bytes, a[i].length, d), DecodeStatus::kOk);
    for (int k = 0; k < d.operand_count; ++k)
      if (d.ops[k].kind == OperandKind::kVec && d.ops[k].reg >= 16) high = true;
  }
  EXPECT_TRUE(high) << "zmm16-31 never used";
}

TEST(FormEnumerator, GprOperandsAvoidAddressRegisters) {
  for (const char* m : {"vpbroadcastd", "vmovd", "vmovq", "kmovq"})
    for (const TestForm& f : enumerate_forms(m, 5)) {
      DecodedInsn d;
      ASSERT_EQ(decode(f.bytes, f.length, d), DecodeStatus::kOk);
      for (int i = 0; i < d.operand_count; ++i)
        if (d.ops[i].kind == OperandKind::kGpr) {
          EXPECT_NE(d.ops[i].reg, 4) << f.text;
          if (f.has_mem) {
            EXPECT_NE(d.ops[i].reg, f.mem_base) << f.text;
          }
        }
    }
}

TEST(FormEnumerator, UnknownMnemonicHasNoForms) {
  EXPECT_TRUE(enumerate_forms("vnotaninstruction").empty());
  // Valid, but only VEX-encodable and not AVX-512: nothing survives.
  EXPECT_TRUE(enumerate_forms("vpblendvb").empty());
}

TEST(FormEnumerator, WithImmRewritesTheLastByte) {
  const std::vector<TestForm> forms = enumerate_forms("vpternlogd", 1, kShapesOnly);
  ASSERT_FALSE(forms.empty());
  for (const TestForm& f : forms) {
    ASSERT_TRUE(f.has_imm) << f.text;
    EXPECT_EQ(f.imm_offset, f.length - 1);
    const TestForm g = with_imm(f, 0xca);
    EXPECT_EQ(g.imm, 0xca);
    EXPECT_EQ(g.bytes[g.length - 1], 0xca);
    DecodedInsn d;
    ASSERT_EQ(decode(g.bytes, g.length, d), DecodeStatus::kOk);
    EXPECT_EQ(d.ops[d.operand_count - 1].kind, OperandKind::kImm);
    EXPECT_EQ(d.ops[d.operand_count - 1].imm, 0xcau);
    EXPECT_EQ(g.text, format_insn(d));
  }
  // Forms without an immediate are left alone.
  const TestForm add = enumerate_forms("vpaddd", 1, kShapesOnly).front();
  EXPECT_EQ(std::memcmp(with_imm(add, 0x55).bytes, add.bytes, 15), 0);
}

TEST(FormEnumerator, ImmediateValueSets) {
  EXPECT_EQ(immediate_values("vpternlogd").size(), 256u);
  EXPECT_EQ(immediate_values("vpcmpud").size(), 8u);
  EXPECT_EQ(immediate_values("vcmppd").size(), 32u);
  const std::vector<uint8_t> spread = immediate_values("vpslld");
  for (int v : {0, 1, 7, 8, 15, 16, 31, 32, 63, 255})
    EXPECT_NE(std::find(spread.begin(), spread.end(), uint8_t(v)), spread.end()) << v;
  EXPECT_LT(immediate_values("vpternlogd", /*exhaustive=*/false).size(), 64u);
}

TEST(FormEnumerator, FormFromBytes) {
  // vpaddd zmm1 {k2}{z}, zmm3, [rsi+0x40]{1to16}
  const uint8_t bytes[] = {0x62, 0xf1, 0x65, 0xda, 0xfe, 0x4e, 0x10};
  TestForm f;
  ASSERT_TRUE(form_from_bytes(bytes, sizeof bytes, f));
  EXPECT_EQ(f.mnemonic, "vpaddd");
  EXPECT_TRUE(f.masked && f.zeroing);
  EXPECT_EQ(f.mask_reg, 2);
  EXPECT_EQ(f.broadcast, 16);
  EXPECT_EQ(f.mem_base, 6);
  EXPECT_EQ(f.mem_disp, 0x40);
  EXPECT_EQ(f.mem_bytes, 4);
  // rsp-based memory cannot be run by the oracle.
  const uint8_t rsp_based[] = {0x62, 0xf1, 0x7e, 0x48, 0x6f, 0x04, 0x24};  // vmovdqu32 zmm0, [rsp]
  EXPECT_FALSE(form_from_bytes(rsp_based, sizeof rsp_based, f));
}

// ---- State generator ----------------------------------------------------------

TEST(StateGen, StatesAreReproducibleAndSafe) {
  for (int variant = 0; variant < 2 * kStateVariants; ++variant) {
    const CpuState a = random_state(99, variant), b = random_state(99, variant);
    EXPECT_EQ(std::memcmp(&a, &b, sizeof a), 0);
    EXPECT_EQ(a.mxcsr & 0x1f80u, 0x1f80u) << "every FP exception stays masked";
    EXPECT_EQ(a.mxcsr & ~0xffffu, 0u);
    EXPECT_EQ(a.rflags & ~kNativeFlagsLoaded, 0x202u);
  }
  const CpuState c = random_state(100);
  const CpuState d = random_state(99);
  EXPECT_NE(std::memcmp(c.zmm, d.zmm, sizeof c.zmm), 0);
}

TEST(StateGen, EdgeVariantsContainSpecialValues) {
  bool nan = false, snan = false, denormal = false, inf = false, zero = false;
  for (uint64_t seed = 0; seed < 20; ++seed) {
    const CpuState s = random_state(seed, 1);  // float edge cases
    for (const auto& reg : s.zmm)
      for (int i = 0; i < 16; ++i) {
        const uint32_t v = dword(reg, i) & 0x7fffffff;
        nan |= v > 0x7f800000;
        snan |= v > 0x7f800000 && v < 0x7fc00000;
        denormal |= v && v < 0x00800000;
        inf |= v == 0x7f800000;
        zero |= v == 0;
      }
  }
  EXPECT_TRUE(nan && snan && denormal && inf && zero);
}

TEST(StateGen, ArenaPlacementsAndAiming) {
  MemoryArena arena(2);
  ASSERT_TRUE(arena.ok());
  Rng rng(5);
  const uint64_t begin = uint64_t(uintptr_t(arena.begin())), end = uint64_t(uintptr_t(arena.end()));
  EXPECT_EQ(arena.place(Placement::kEndAtGuard, 64, 64, rng), end - 64);
  EXPECT_EQ(arena.place(Placement::kStartAtGuard, 64, 64, rng), begin);
  EXPECT_EQ(arena.place(Placement::kStraddleEnd, 64, 1, rng, 24), end - 24);
  EXPECT_EQ(arena.place(Placement::kStraddleStart, 64, 1, rng, 24), begin - 40);
  for (int i = 0; i < 100; ++i) {
    const uint64_t a = arena.place(Placement::kMiddle, 64, 64, rng);
    EXPECT_EQ(a % 64, 0u);
    EXPECT_GE(a, begin + 64);
    EXPECT_LE(a + 64, end - 64);
  }
  arena.fill(rng, 0);
  const std::vector<uint8_t> snap = arena.snapshot();
  EXPECT_EQ(arena.first_difference(snap), -1);
  arena.begin()[100] ^= 1;
  EXPECT_EQ(arena.first_difference(snap), 100);
  arena.restore(snap);
  EXPECT_EQ(arena.first_difference(snap), -1);

  // SIB form: base + index*scale + disp must land on the address.
  for (const TestForm& f : enumerate_forms("vpaddq", 9)) {
    if (f.addressing != Addressing::kBaseIndexDisp32) continue;
    CpuState s = random_state(1);
    const uint64_t target = begin + 128;
    aim_memory_operand(s, f, target, rng);
    EXPECT_EQ(s.gpr[f.mem_base] + s.gpr[f.mem_index] * f.mem_scale + uint64_t(f.mem_disp), target)
        << f.text;
  }
}

// ---- Native oracle --------------------------------------------------------------

// The oracle runs the instruction on this CPU: without AVX-512 there is
// nothing to check (the differential suite then compares the JIT with the
// reference interpreter instead).
#define SKIP_WITHOUT_AVX512()                                \
  if (!avx512emu::selfcheck::host_runs_avx512()) GTEST_SKIP() \
      << "the native oracle needs a CPU with AVX-512"

TEST(NativeOracle, VpadddMatchesScalarSum) {
  SKIP_WITHOUT_AVX512();
  const uint8_t vpaddd[] = {0x62, 0xf1, 0x75, 0x48, 0xfe, 0xc2};  // vpaddd zmm0, zmm1, zmm2
  const CpuState before = random_state(42, 3);
  CpuState after = before;
  ASSERT_TRUE(run_native(vpaddd, sizeof vpaddd, after));
  for (int i = 0; i < 16; ++i)
    EXPECT_EQ(dword(after.zmm[0], i), dword(before.zmm[1], i) + dword(before.zmm[2], i)) << i;
  // Nothing else changes, except rip, which advances like the emulator's.
  EXPECT_EQ(after.rip, before.rip + sizeof vpaddd);
  CpuState expect = before;
  std::memcpy(expect.zmm[0], after.zmm[0], 64);
  expect.rip = after.rip;
  EXPECT_EQ(std::memcmp(expect.gpr, after.gpr, sizeof after.gpr), 0);
  EXPECT_EQ(expect.rflags, after.rflags);
  EXPECT_EQ(expect.mxcsr, after.mxcsr);
  EXPECT_EQ(std::memcmp(expect.k, after.k, sizeof after.k), 0);
  EXPECT_EQ(std::memcmp(expect.zmm, after.zmm, sizeof after.zmm), 0);
}

TEST(NativeOracle, StubIsReusableAndRestoresHostMxcsr) {
  SKIP_WITHOUT_AVX512();
  const uint8_t vaddps[] = {0x62, 0xf1, 0x74, 0x48, 0x58, 0xc2};  // vaddps zmm0, zmm1, zmm2
  NativeStub stub;
  ASSERT_TRUE(stub.build(vaddps, sizeof vaddps));
  uint32_t host_before, host_after;
  asm volatile("stmxcsr %0" : "=m"(host_before));
  for (int i = 0; i < 3; ++i) {
    CpuState s = random_state(uint64_t(i), 1);
    s.mxcsr = 0x1f80 | (3u << 13);  // round toward zero
    stub.run(s);
    EXPECT_EQ(s.mxcsr & ~0x3fu, 0x1f80u | (3u << 13)) << "guest MXCSR kept, flags may be added";
  }
  asm volatile("stmxcsr %0" : "=m"(host_after));
  EXPECT_EQ(host_before, host_after);
}

TEST(NativeOracle, KortestWritesRflagsAndGprsRoundTrip) {
  SKIP_WITHOUT_AVX512();
  const uint8_t kortestw[] = {0xc5, 0xf8, 0x98, 0xca};  // kortestw k1, k2
  CpuState s = random_state(3);
  s.k[1] = 0;
  s.k[2] = 0xffff0000;  // zero in the low 16 bits
  s.rflags = 0x202 | kFlagCF | kFlagSF;
  const CpuState before = s;
  ASSERT_TRUE(run_native(kortestw, sizeof kortestw, s));
  EXPECT_EQ(s.rflags, 0x202u | kFlagZF);  // ZF: OR is zero; CF: not all ones
  for (int i = 0; i < 16; ++i) EXPECT_EQ(s.gpr[i], before.gpr[i]) << i;
  s = before;
  s.k[1] = 0xffff;
  ASSERT_TRUE(run_native(kortestw, sizeof kortestw, s));
  EXPECT_EQ(s.rflags, 0x202u | kFlagCF);
}

TEST(NativeOracle, GprWritesComeBack) {
  SKIP_WITHOUT_AVX512();
  const uint8_t vmovq[] = {0x62, 0xe1, 0xfd, 0x08, 0x7e, 0xcf};  // vmovq rdi, xmm17
  CpuState s = random_state(8);
  ASSERT_TRUE(run_native(vmovq, sizeof vmovq, s));
  uint64_t q;
  std::memcpy(&q, s.zmm[17], 8);
  EXPECT_EQ(s.gpr[7], q);
}

TEST(NativeOracle, MaskedLoadStraddlingGuardPageDoesNotFault) {
  SKIP_WITHOUT_AVX512();
  MemoryArena arena(1);
  ASSERT_TRUE(arena.ok());
  Rng rng(1);
  arena.fill(rng, 0);
  const uint8_t load[] = {0x62, 0xf1, 0x7e, 0x49, 0x6f, 0x0e};  // vmovdqu32 zmm1 {k1}, [rsi]
  CpuState s = random_state(11);
  // Eight dwords inside the arena, eight in the guard page: mask them off.
  s.gpr[6] = arena.place(Placement::kStraddleEnd, 64, 1, rng, 32);
  s.k[1] = 0xffffffffffff00ffull;  // bits past element 15 do not matter
  const CpuState before = s;
  NativeStub stub;
  ASSERT_TRUE(stub.build(load, sizeof load));
  struct Args {
    NativeStub* stub;
    CpuState* state;
  } args{&stub, &s};
  auto run = [](void* p) {
    auto* a = static_cast<Args*>(p);
    a->stub->run(*a->state);
  };
  Fault fault;
  ASSERT_TRUE(run_guarded(run, &args, fault)) << fault.describe();
  EXPECT_EQ(std::memcmp(s.zmm[1], arena.end() - 32, 32), 0);
  EXPECT_EQ(std::memcmp(s.zmm[1] + 32, before.zmm[1] + 32, 32), 0);  // merged

  // Control: enabling one element in the guard page faults, and the trap
  // reports it instead of killing the process.
  s = before;
  s.k[1] = 0x01ff;
  EXPECT_FALSE(run_guarded(run, &args, fault));
  EXPECT_EQ(fault.signal, SIGSEGV);
  EXPECT_EQ(fault.address, uint64_t(uintptr_t(arena.end())));
}

TEST(NativeOracle, FaultTrapRestoresPreviousHandlers) {
  struct sigaction before, after;
  sigaction(SIGSEGV, nullptr, &before);
  {
    FaultTrapScope scope;
    Fault fault;
    EXPECT_TRUE(run_guarded([](void*) {}, nullptr, fault));
    EXPECT_EQ(fault.signal, 0);
  }
  sigaction(SIGSEGV, nullptr, &after);
  EXPECT_EQ(before.sa_handler, after.sa_handler);
}

// ---- Differential driver (parts that need no JIT) ----------------------------------

TEST(Differential, VerifiableMnemonicsAreTheTableUnique) {
  const std::vector<std::string> m = verifiable_mnemonics();
  EXPECT_EQ(std::set<std::string>(m.begin(), m.end()).size(), m.size());
  for (const char* name : {"vpaddd", "vaddps", "kmovw", "vpternlogd"})
    EXPECT_NE(std::find(m.begin(), m.end(), name), m.end()) << name;
}

TEST(Differential, UnknownMnemonicIsAFailure) {
  const DiffReport r = verify_mnemonic("vnotaninstruction", 1, 1);
  EXPECT_FALSE(r.passed());
  EXPECT_EQ(r.forms, 0);
  ASSERT_FALSE(r.messages.empty());
  EXPECT_NE(r.messages[0].find("no forms"), std::string::npos);
}
