// Owns the layout of the architectural state block that IR, the reference
// interpreter and every translation operate on.
#pragma once

#include <cstddef>
#include <cstdint>

namespace avx512emu {

//! Number of 64-byte scratch slots a translation may use for IR temporaries.
inline constexpr int kScratchSlots = 48;

//! The guest's AVX-512 architectural state plus a scratch area.
//!
//! A translation is a position-independent function `void(CpuState*)` (SysV
//! ABI, pointer in rdi). It reads and writes only this block and the memory
//! the instruction addresses. The layout is part of the translation-cache file
//! format: change it only together with the format version.
struct alignas(64) CpuState {
  uint64_t gpr[16];   //!< rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi, r8..r15 (hardware order).
  uint64_t rip;       //!< Address of the instruction being executed.
  uint64_t rflags;
  uint64_t fs_base;   //!< Segment bases for fs:/gs: memory operands.
  uint64_t gs_base;
  uint32_t mxcsr;
  uint32_t reserved0;
  uint64_t host_save[3];  //!< Translation-private: host MXCSR and spill space.
  uint64_t k[8];          //!< Opmask registers k0..k7.
  alignas(64) uint8_t zmm[32][64];  //!< zmm0..zmm31, little-endian bytes.
  //! Scratch for IR temporaries: not architectural, never compared.
  alignas(64) uint8_t scratch[kScratchSlots][64];
};

namespace state_offset {
inline constexpr int32_t gpr(int i) { return int32_t(offsetof(CpuState, gpr) + 8 * i); }
inline constexpr int32_t kRip = offsetof(CpuState, rip);
inline constexpr int32_t kRflags = offsetof(CpuState, rflags);
inline constexpr int32_t kFsBase = offsetof(CpuState, fs_base);
inline constexpr int32_t kGsBase = offsetof(CpuState, gs_base);
inline constexpr int32_t kMxcsr = offsetof(CpuState, mxcsr);
inline constexpr int32_t kHostSave = offsetof(CpuState, host_save);
inline constexpr int32_t k(int i) { return int32_t(offsetof(CpuState, k) + 8 * i); }
inline constexpr int32_t zmm(int i) { return int32_t(offsetof(CpuState, zmm) + 64 * i); }
inline constexpr int32_t scratch(int i) { return int32_t(offsetof(CpuState, scratch) + 64 * i); }
}  // namespace state_offset

// RFLAGS bits that AVX-512 instructions (kortest, ktest, vcomiss) write.
inline constexpr uint64_t kFlagCF = 1u << 0, kFlagPF = 1u << 2, kFlagAF = 1u << 4,
                          kFlagZF = 1u << 6, kFlagSF = 1u << 7, kFlagOF = 1u << 11;

}  // namespace avx512emu
