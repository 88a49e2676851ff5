// Owns pinning: keeping 32-byte halves of guest vector registers that an
// AVX2 CPU lacks (zmm0-15 bits 511:256, zmm16-31) in host ymm registers
// while a sequence of translations runs, instead of in the state block.
//
// Translations address that state in the block at rdi with VEX
// instructions, e.g. `vpaddd ymm0, ymm1, [rdi+zmm(3)+32]`. Such an access
// becomes a register operand (`vpaddd ymm0, ymm1, ymm9`) by rewriting its
// ModRM byte: the instruction gets shorter and is padded with NOPs, so every
// offset in the code (relative fields, fault tables) stays where it was.
// A slot can be pinned only when every access to it in the code can be
// rewritten that way with the same meaning:
//   - 32-byte loads and register-form-equivalent reads (any VEX.256 source
//     operand except the memory-only instructions: vlddqu, vmovntdqa,
//     vmaskmov/vpmaskmov, vbroadcast{i,f}128);
//   - 16-byte reads of the slot's first half (an xmm source operand reads
//     the register's bits 127:0);
//   - 32-byte stores by vmovdqu/vmovdqa/vmovups/vmovaps/vmovupd/vmovapd.
// Any other access (another size or offset, a GPR access, a read-modify-
// write, an access through an index or a derived pointer) keeps the slot in
// the block.
#pragma once

#include <cstdint>

namespace avx512emu::jit {

//! Slots: 0-15 are zmm0-15 bits 511:256; 16 + 2r and 17 + 2r are zmm(16+r)
//! bits 255:0 and 511:256.
constexpr int kPinSlots = 48;
//! Offset of slot `s` in CpuState.
int32_t pin_slot_offset(int s);

//! What code does to the slots: bit s of `touched` when it accesses slot s
//! at all, of `blocked` when some access cannot become a register operand.
struct SlotUse {
  uint64_t touched = 0, blocked = 0;
};

//! Scans the instructions in [begin, end) of `code`. Returns false on bytes
//! that do not decode (then nothing may be pinned).
bool scan_slot_uses(const uint8_t* code, uint32_t begin, uint32_t end, SlotUse& out);

//! Rewrites, in place, the `size` bytes of instructions at `code` (a copy of
//! code that scan_slot_uses passed): every access to a slot s with
//! `host_ymm[s]` >= 0 becomes that host register, padded with NOPs to its
//! old length. Slots it touches must not be blocked.
void rewrite_pinned_slots(uint8_t* code, uint32_t size, const int8_t host_ymm[kPinSlots]);

}  // namespace avx512emu::jit
