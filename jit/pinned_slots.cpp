// Owns scan_slot_uses() and rewrite_pinned_slots() (see pinned_slots.h).
#include "pinned_slots.h"

#include "cpu_state.h"
#include "host_insn.h"

namespace avx512emu::jit {
namespace {

constexpr int kRdi = 7;

//! The fields of a VEX instruction that the rewrite needs. Generated code
//! puts no legacy prefix before VEX, so the prefix is the first byte.
struct Vex {
  int length = 0;  //!< 2 (C5) or 3 (C4)
  int map = 0;     //!< 1: 0F, 2: 0F38, 3: 0F3A
  int pp = 0;      //!< 0: none, 1: 66, 2: F3, 3: F2
  bool l256 = false;
  uint8_t opcode = 0;
  uint8_t modrm = 0;
};

bool read_vex(const uint8_t* c, uint32_t n, Vex& v) {
  if (n < 4 || (c[0] != 0xc5 && c[0] != 0xc4)) return false;
  if (c[0] == 0xc5) {
    v.length = 2;
    v.map = 1;
    v.pp = c[1] & 3;
    v.l256 = c[1] >> 2 & 1;
  } else {
    if (n < 5) return false;
    v.length = 3;
    v.map = c[1] & 0x1f;
    v.pp = c[2] & 3;
    v.l256 = c[2] >> 2 & 1;
  }
  v.opcode = c[v.length];
  v.modrm = c[v.length + 1];
  return true;
}

//! VEX instructions whose memory operand has no register form (or a
//! register form that means something else).
bool memory_only(const Vex& v) {
  if (v.map == 1) return (v.opcode == 0xf0 && v.pp == 3) || v.opcode == 0xe7 || v.opcode == 0x2b;
  if (v.map == 2) {
    switch (v.opcode) {
      case 0x1a:
      case 0x5a:  // vbroadcastf128, vbroadcasti128
      case 0x2a:  // vmovntdqa
      case 0x2c:
      case 0x2d:
      case 0x2e:
      case 0x2f:  // vmaskmovps/pd
      case 0x8c:
      case 0x8e:  // vpmaskmovd/q
        return true;
      default:
        return false;
    }
  }
  return false;
}

//! A whole-register store whose register form is a register move.
bool plain_store(const Vex& v) {
  if (v.map != 1 || !v.l256) return false;
  switch (v.opcode) {
    case 0x7f:
      return v.pp == 1 || v.pp == 2;  // vmovdqa, vmovdqu
    case 0x11:
    case 0x29:
      return v.pp == 0 || v.pp == 1;  // vmovups/upd, vmovaps/apd
    default:
      return false;
  }
}

//! The slot that [disp, disp + bytes) lies in entirely, or -1; `overlaps`
//! is set when it touches any slot.
int slot_of(int64_t disp, int bytes, uint64_t& overlaps) {
  overlaps = 0;
  int whole = -1;
  for (int s = 0; s < kPinSlots; ++s) {
    const int64_t lo = pin_slot_offset(s), hi = lo + 32;
    if (disp < hi && lo < disp + (bytes ? bytes : 1)) {
      overlaps |= uint64_t(1) << s;
      if (disp >= lo && disp + bytes <= hi) whole = s;
    }
  }
  return whole;
}

//! Whether the access `h` (through rdi, no index) to slot `s` can become a
//! register operand.
bool rewritable(const uint8_t* c, uint32_t n, const HostInsn& h, int s) {
  Vex v;
  if (!read_vex(c, n, v) || h.mem.base != kRdi || h.mem.index >= 0 || h.mem.segment) return false;
  const int mod = v.modrm >> 6;
  if ((mod != 1 && mod != 2) || (v.modrm & 7) != kRdi) return false;
  if (v.length == 3 && !(c[1] & 0x20)) return false;  // VEX.B set: r15, not rdi
  if (memory_only(v)) return false;
  const bool at_start = h.mem.disp == pin_slot_offset(s);
  if (h.mem.written) return !h.mem.read && h.mem.bytes == 32 && at_start && plain_store(v);
  if (!h.mem.read || !at_start) return false;
  return (h.mem.bytes == 32 && v.l256) || h.mem.bytes == 16;
}

//! One NOP instruction of `n` bytes (1-8), the forms the SDM recommends
//! (Vol. 2B, NOP): one instruction to decode instead of `n`.
void pad_with_nop(uint8_t* p, uint32_t n) {
  static const uint8_t kNops[8][8] = {
      {0x90},
      {0x66, 0x90},
      {0x0f, 0x1f, 0x00},
      {0x0f, 0x1f, 0x40, 0x00},
      {0x0f, 0x1f, 0x44, 0x00, 0x00},
      {0x66, 0x0f, 0x1f, 0x44, 0x00, 0x00},
      {0x0f, 0x1f, 0x80, 0x00, 0x00, 0x00, 0x00},
      {0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00},
  };
  for (uint32_t k = 0; n && k < n; ++k) p[k] = kNops[n - 1][k];
}

}  // namespace

int32_t pin_slot_offset(int s) {
  return s < 16 ? state_offset::zmm(s) + 32 : state_offset::zmm(16 + (s - 16) / 2) + 32 * (s % 2);
}

bool scan_slot_uses(const uint8_t* code, uint32_t begin, uint32_t end, SlotUse& out) {
  out = SlotUse{};
  constexpr uint64_t kAll = (uint64_t(1) << kPinSlots) - 1;
  for (uint32_t off = begin; off < end;) {
    HostInsn h;
    if (!decode_host_insn(code + off, end - off, h)) return false;
    // rdi as a value, or an access through it with an index or a derived
    // pointer: the code may reach any slot (live_form.h treats it the same
    // way), except a pointer into the scratch area, which holds no slot.
    const bool scratch_area =
        h.mem.disp >= state_offset::scratch(0) && h.mem.disp < state_offset::scratch(kScratchSlots);
    if ((h.gprs_read >> kRdi & 1) || (h.mem.present && h.mem.index == kRdi)) out.blocked = kAll;
    if (h.mem.present && h.mem.base == kRdi) {
      if (h.mem.index >= 0 || h.mem.address_only || h.mem.segment) {
        if (!scratch_area) out.blocked = kAll;
      } else {
        uint64_t overlaps = 0;
        const int s = slot_of(h.mem.disp, h.mem.bytes, overlaps);
        out.touched |= overlaps;
        if (overlaps && (s < 0 || !rewritable(code + off, end - off, h, s)))
          out.blocked |= overlaps;
      }
    }
    off += h.length;
  }
  return true;
}

void rewrite_pinned_slots(uint8_t* code, uint32_t size, const int8_t host_ymm[kPinSlots]) {
  for (uint32_t off = 0; off < size;) {
    HostInsn h;
    if (!decode_host_insn(code + off, size - off, h)) return;
    const uint32_t length = h.length;
    uint64_t overlaps = 0;
    const int s = h.mem.present && h.mem.base == kRdi && h.mem.index < 0 && !h.mem.address_only
                      ? slot_of(h.mem.disp, h.mem.bytes, overlaps)
                      : -1;
    Vex v;
    if (s >= 0 && host_ymm[s] >= 0 && read_vex(code + off, size - off, v)) {
      const int p = host_ymm[s];
      uint8_t* c = code + off;
      uint8_t out[16];
      int n = 0;
      if (v.length == 2 && p < 8) {
        out[n++] = 0xc5;
        out[n++] = c[1];
      } else if (v.length == 2) {  // C5 has no VEX.B: the C4 form of the same fields
        out[n++] = 0xc4;
        out[n++] = uint8_t((c[1] & 0x80) | 0x40 | 0x01);  // ~R, ~X, ~B = 0 (B set), map 0F
        out[n++] = uint8_t(c[1] & 0x7f);                  // W = 0, ~vvvv, L, pp
      } else {
        out[n++] = 0xc4;
        out[n++] = uint8_t((c[1] & ~0x20) | (p < 8 ? 0x20 : 0));
        out[n++] = c[2];
      }
      out[n++] = v.opcode;
      out[n++] = uint8_t(0xc0 | (v.modrm & 0x38) | (p & 7));
      // The rest after the displacement (an immediate, if any).
      const uint32_t rest = uint32_t(v.length + 2 + ((v.modrm >> 6) == 1 ? 1 : 4));
      for (uint32_t k = rest; k < length; ++k) out[n++] = c[k];
      pad_with_nop(out + n, length - uint32_t(n));
      for (uint32_t k = 0; k < length; ++k) c[k] = out[k];
    }
    off += length;
  }
}

}  // namespace avx512emu::jit
