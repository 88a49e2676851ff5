// Owns the guest page walk and the instruction fetch (see guest_memory.h).
#include "guest_memory.h"

#include <algorithm>

#include "decoded_insn.h"

namespace avx512emu::kvm {
namespace {

constexpr uint64_t kPresent = 1, kUser = 4, kPageSize = 0x80, kNoExecute = 1ull << 63;
constexpr uint64_t kAddressMask = 0x000ffffffffff000ull;
// Bits 51:48 are reserved on every CPU (MAXPHYADDR <= 48 for 4-level paging
// here); an all-ones entry from unbacked memory always has them set.
constexpr uint64_t kReservedHigh = 0x000f000000000000ull;

bool canonical(uint64_t va) {
  const uint64_t top = va >> 47;
  return top == 0 || top == 0x1ffff;
}

uint64_t read_entry(const GuestMemory& mem, uint64_t gpa) {
  uint64_t e;
  return mem.read(gpa, &e, 8) ? e : ~0ull;
}

}  // namespace

FetchTranslation walk_for_fetch(const GuestMemory& mem, uint64_t cr3, uint64_t gva, int cpl) {
  FetchTranslation t;
  if (!canonical(gva)) {
    t.status = FetchTranslation::Status::kNonCanonical;
    return t;
  }
  const uint32_t base_error = kPfFetch | (cpl == 3 ? kPfUser : 0);
  uint64_t table = cr3 & kAddressMask;
  bool user_ok = true, exec_ok = true;
  for (int level = 4; level >= 1; --level) {
    const int shift = 12 + 9 * (level - 1);
    const uint64_t entry = read_entry(mem, table + ((gva >> shift) & 511) * 8);
    if (!(entry & kPresent)) {
      t.status = FetchTranslation::Status::kPageFault;
      t.pf_error = base_error;
      return t;
    }
    const bool large = level <= 3 && level >= 2 && (entry & kPageSize);
    if ((entry & kReservedHigh) || (level == 4 && (entry & kPageSize))) {
      t.status = FetchTranslation::Status::kPageFault;
      t.pf_error = base_error | kPfPresent | kPfReserved;
      return t;
    }
    user_ok = user_ok && (entry & kUser);
    exec_ok = exec_ok && !(entry & kNoExecute);
    if (level == 1 || large) {
      if ((cpl == 3 && !user_ok) || !exec_ok) {
        t.status = FetchTranslation::Status::kPageFault;
        t.pf_error = base_error | kPfPresent;
        return t;
      }
      const uint64_t page_mask = (1ull << shift) - 1;
      t.gpa = (entry & kAddressMask & ~page_mask) | (gva & page_mask);
      return t;
    }
    table = entry & kAddressMask;
  }
  return t;  // not reached: level 1 always returns
}

InstructionFetch fetch_instruction(const GuestMemory& mem, uint64_t cr3, uint64_t rip, int cpl) {
  InstructionFetch f;
  uint64_t va = rip;
  while (f.size < sizeof f.bytes) {
    const FetchTranslation t = walk_for_fetch(mem, cr3, va, cpl);
    if (t.status != FetchTranslation::Status::kOk) {
      f.status = t.status;
      f.pf_error = t.pf_error;
      f.fault_address = va;
      return f;
    }
    const size_t n = std::min<uint64_t>(sizeof f.bytes - f.size, 4096 - (va & 4095));
    if (!mem.read(t.gpa, f.bytes + f.size, n))
      std::fill(f.bytes + f.size, f.bytes + f.size + n, uint8_t(0xff));
    f.size += n;
    va += n;
    // The next page matters only when the instruction does not end in this one.
    if (instruction_length(f.bytes, f.size) != 0) break;
    DecodedInsn d;
    if (decode(f.bytes, f.size, d) != DecodeStatus::kTruncated) break;
  }
  return f;
}

}  // namespace avx512emu::kvm
