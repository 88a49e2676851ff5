// Pinning (jit/pinned_slots.h): which accesses to the guest state's slots
// become register operands, and the bytes they become. The expected
// encodings come from AsmJit's assembler, not from the rewrite.
#include "pinned_slots.h"

#include <asmjit/x86.h>
#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "cpu_state.h"
#include "host_insn.h"

namespace {

namespace x86 = asmjit::x86;
using avx512emu::jit::kPinSlots;
using avx512emu::jit::pin_slot_offset;
using avx512emu::jit::rewrite_pinned_slots;
using avx512emu::jit::scan_slot_uses;
using avx512emu::jit::SlotUse;

//! The bytes AsmJit assembles for `emit`.
std::vector<uint8_t> assemble(const std::function<void(x86::Assembler&)>& emit) {
  asmjit::CodeHolder code;
  code.init(asmjit::Environment::host());
  x86::Assembler a(&code);
  emit(a);
  const asmjit::CodeBuffer& b = code.textSection()->buffer();
  return std::vector<uint8_t>(b.data(), b.data() + b.size());
}

x86::Mem slot_mem(int s, int size, int extra = 0) {
  return x86::ptr(x86::rdi, pin_slot_offset(s) + extra, uint32_t(size));
}

SlotUse scan(const std::vector<uint8_t>& code) {
  SlotUse use;
  EXPECT_TRUE(scan_slot_uses(code.data(), 0, uint32_t(code.size()), use));
  return use;
}

//! `memory_form` accesses slot `s`; pinned to ymm `host`, its bytes must
//! be `register_form`'s followed by one NOP instruction up to its length.
void expect_rewritten(int s, int host, const std::function<void(x86::Assembler&)>& memory_form,
                      const std::function<void(x86::Assembler&)>& register_form,
                      bool move_has_two_encodings = false) {
  std::vector<uint8_t> code = assemble(memory_form);
  const std::vector<uint8_t> want = assemble(register_form);
  const SlotUse use = scan(code);
  EXPECT_EQ(use.touched, uint64_t(1) << s);
  EXPECT_EQ(use.blocked, 0u);
  int8_t pins[kPinSlots];
  for (int8_t& p : pins) p = -1;
  pins[s] = int8_t(host);
  const size_t length = code.size();
  rewrite_pinned_slots(code.data(), uint32_t(length), pins);
  ASSERT_EQ(code.size(), length);
  avx512emu::HostInsn got, expected;
  ASSERT_TRUE(avx512emu::decode_host_insn(code.data(), length, got));
  ASSERT_TRUE(avx512emu::decode_host_insn(want.data(), want.size(), expected));
  // A register-to-register move has two encodings (load and store
  // opcode); AsmJit picks one. Either way: the same registers, no memory.
  EXPECT_FALSE(got.mem.present);
  EXPECT_EQ(got.vecs_read, expected.vecs_read);
  EXPECT_EQ(got.vecs_written, expected.vecs_written);
  if (!move_has_two_encodings) {
    EXPECT_EQ(std::vector<uint8_t>(code.begin(), code.begin() + got.length), want);
  }
  if (got.length < length) {
    avx512emu::HostInsn nop;
    ASSERT_TRUE(avx512emu::decode_host_insn(code.data() + got.length, length - got.length, nop));
    EXPECT_EQ(size_t(nop.length), length - got.length) << "padding is one instruction";
    EXPECT_FALSE(nop.mem.written);
    EXPECT_FALSE(nop.flags_written);
    EXPECT_EQ(nop.gprs_written | nop.vecs_written, 0);
  }
}

}  // namespace

TEST(PinnedSlots, SlotsAreTheHalvesAnAvx2CpuLacks) {
  namespace so = avx512emu::state_offset;
  for (int r = 0; r < 16; ++r) EXPECT_EQ(pin_slot_offset(r), so::zmm(r) + 32);
  for (int r = 16; r < 32; ++r) {
    EXPECT_EQ(pin_slot_offset(16 + 2 * (r - 16)), so::zmm(r));
    EXPECT_EQ(pin_slot_offset(17 + 2 * (r - 16)), so::zmm(r) + 32);
  }
  EXPECT_EQ(kPinSlots, 48);
}

TEST(PinnedSlots, WholeRegisterAccessesBecomeRegisterOperands) {
  using namespace x86;
  // Upper half of zmm3 into ymm9 (VEX.B needed: the C5 prefix becomes C4).
  expect_rewritten(
      3, 9, [](Assembler& a) { a.vmovdqu(ymm0, slot_mem(3, 32)); },
      [](Assembler& a) { a.vmovdqu(ymm0, ymm9); });
  expect_rewritten(
      3, 2, [](Assembler& a) { a.vmovdqu(slot_mem(3, 32), ymm14); },
      [](Assembler& a) { a.vmovdqu(ymm2, ymm14); }, /*move_has_two_encodings=*/true);
  expect_rewritten(
      20, 12, [](Assembler& a) { a.vpaddd(ymm1, ymm2, slot_mem(20, 32)); },
      [](Assembler& a) { a.vpaddd(ymm1, ymm2, ymm12); });
  expect_rewritten(
      47, 5, [](Assembler& a) { a.vpermq(ymm4, slot_mem(47, 32), 0x4e); },
      [](Assembler& a) { a.vpermq(ymm4, ymm5, 0x4e); });
  expect_rewritten(
      16, 11, [](Assembler& a) { a.vpblendvb(ymm0, ymm15, slot_mem(16, 32), ymm3); },
      [](Assembler& a) { a.vpblendvb(ymm0, ymm15, ymm11, ymm3); });
  // 16-byte reads of the slot's first half read the register's bits 127:0.
  expect_rewritten(
      7, 8, [](Assembler& a) { a.vinserti128(ymm0, ymm0, slot_mem(7, 16), 1); },
      [](Assembler& a) { a.vinserti128(ymm0, ymm0, xmm8, 1); });
  expect_rewritten(
      30, 1, [](Assembler& a) { a.vpmovzxwd(ymm2, slot_mem(30, 16)); },
      [](Assembler& a) { a.vpmovzxwd(ymm2, xmm1); });
  expect_rewritten(
      18, 13, [](Assembler& a) { a.vpcmpgtd(xmm2, xmm3, slot_mem(18, 16)); },
      [](Assembler& a) { a.vpcmpgtd(xmm2, xmm3, xmm13); });
}

TEST(PinnedSlots, AccessesWithoutAnEqualRegisterFormKeepTheSlotInTheBlock) {
  using namespace x86;
  const auto blocked = [](int s, const std::function<void(Assembler&)>& emit) {
    const SlotUse use = scan(assemble(emit));
    EXPECT_TRUE(use.blocked >> s & 1) << "slot " << s;
  };
  blocked(3, [](Assembler& a) { a.vpmaskmovd(ymm0, ymm1, slot_mem(3, 32)); });
  blocked(3, [](Assembler& a) { a.vpmaskmovd(slot_mem(3, 32), ymm1, ymm0); });
  blocked(3, [](Assembler& a) { a.vbroadcasti128(ymm0, slot_mem(3, 16)); });
  blocked(3, [](Assembler& a) { a.vlddqu(ymm0, slot_mem(3, 32)); });
  blocked(3, [](Assembler& a) { a.vmovntdqa(ymm0, slot_mem(3, 32)); });
  // A 16-byte store would clear the register's bits 255:128.
  blocked(3, [](Assembler& a) { a.vmovdqu(slot_mem(3, 16), xmm0); });
  blocked(3, [](Assembler& a) { a.vextracti128(slot_mem(3, 16), ymm0, 1); });
  // Part of a slot, or a store that is not a plain move.
  blocked(3, [](Assembler& a) { a.vmovdqu(xmm0, slot_mem(3, 16, 16)); });
  blocked(3, [](Assembler& a) { a.vpbroadcastd(ymm0, slot_mem(3, 4, 8)); });
  blocked(3, [](Assembler& a) { a.mov(rax, slot_mem(3, 8)); });
  blocked(3, [](Assembler& a) { a.mov(slot_mem(3, 8), rax); });
  // A 32-byte access that straddles two slots blocks both.
  blocked(16, [](Assembler& a) { a.vmovdqu(ymm0, slot_mem(16, 32, 16)); });
  blocked(17, [](Assembler& a) { a.vmovdqu(ymm0, slot_mem(16, 32, 16)); });
}

TEST(PinnedSlots, IndexedOrDerivedAccessesBlockEverySlot) {
  using namespace x86;
  const uint64_t all = (uint64_t(1) << kPinSlots) - 1;
  namespace so = avx512emu::state_offset;
  EXPECT_EQ(
      scan(assemble([](Assembler& a) { a.vmovdqu(ymm0, ptr(rdi, rcx, 0, so::zmm(0))); })).blocked,
      all);
  EXPECT_EQ(scan(assemble([](Assembler& a) { a.lea(rax, ptr(rdi, so::zmm(4))); })).blocked, all);
  EXPECT_EQ(scan(assemble([](Assembler& a) { a.mov(rax, rdi); })).blocked, all);
  // A pointer into the scratch area reaches no slot.
  EXPECT_EQ(scan(assemble([](Assembler& a) {
              a.lea(r9, ptr(rdi, so::scratch(2)));
              a.vmovdqu(ptr(rdi, rdx, 2, so::scratch(2)), ymm2);
            })).blocked,
            0u);
}
