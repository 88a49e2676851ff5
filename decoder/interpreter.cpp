// Owns the reference interpreter's driver and the ops every family shares:
// architectural state access, memory (with exact fault behaviour), masking,
// opmask arithmetic and moves between register files.
#include "interpreter.h"

#include <bit>

namespace avx512emu {
namespace interp {
namespace {

using ir::Inst;
using ir::Op;

uint64_t width_mask(int bits) {
  return bits >= 64 ? ~0ull : (1ull << bits) - 1;
}

// A misaligned aligned-access raises #GP(0) on hardware, which Linux delivers
// as SIGSEGV with si_addr 0. A load from a non-canonical address raises the
// same #GP(0), so the interpreter's fault matches the instruction's.
[[noreturn]] void raise_general_protection() {
  volatile uint8_t* const non_canonical = reinterpret_cast<uint8_t*>(0x8000000000000000ull);
  (void)*non_canonical;
  __builtin_trap();
}

void check_alignment(const Inst& i, uint64_t addr) {
  if (i.align > 1 && (addr & (i.align - 1)) != 0) raise_general_protection();
}

uint8_t* mem(uint64_t addr) {
  return reinterpret_cast<uint8_t*>(addr);
}

uint64_t effective_address(const Inst& i, const CpuState& s) {
  const MemOperand& m = i.mem;
  uint64_t a = uint64_t(m.disp);
  if (m.base >= 0) a += s.gpr[m.base];
  if (m.index >= 0) a += s.gpr[m.index] * m.scale;
  if (m.rip_relative) a += s.rip + i.insn_length;
  if (m.segment == 1) a += s.fs_base;
  if (m.segment == 2) a += s.gs_base;
  return a;
}

bool exec_core(const Inst& i, Frame& fr) {
  CpuState& s = fr.state;
  const int eb = ir::elem_bytes(i.elem);
  switch (i.op) {
    case Op::kReadVec:
      std::memcpy(fr.bytes(i.dst), s.zmm[i.reg], i.bits / 8);
      return true;
    case Op::kWriteVec:
      std::memset(s.zmm[i.reg], 0, 64);
      std::memcpy(s.zmm[i.reg], fr.bytes(i.src[0]), i.bits / 8);
      return true;
    case Op::kReadMask:
      fr.set_u64(i.dst, s.k[i.reg]);
      return true;
    case Op::kWriteMask:
      s.k[i.reg] = fr.u64(i.src[0]) & width_mask(i.bits);
      return true;
    case Op::kReadGpr:
      fr.set_u64(i.dst, s.gpr[i.reg]);
      return true;
    case Op::kWriteGpr: {
      const uint64_t v = fr.u64(i.src[0]);
      if (i.bits >= 32)
        s.gpr[i.reg] = v & width_mask(i.bits);  // 32-bit writes zero-extend
      else
        s.gpr[i.reg] = (s.gpr[i.reg] & ~width_mask(i.bits)) | (v & width_mask(i.bits));
      return true;
    }
    case Op::kWriteFlags: {
      const uint64_t arith = kFlagCF | kFlagPF | kFlagAF | kFlagZF | kFlagSF | kFlagOF;
      s.rflags = (s.rflags & ~arith) | (fr.u64(i.src[0]) & arith);
      return true;
    }
    case Op::kAdvanceRip:
      s.rip += uint64_t(i.imm);
      return true;
    case Op::kAddress:
      fr.set_u64(i.dst, effective_address(i, s));
      return true;
    case Op::kLoad: {
      const uint64_t a = fr.u64(i.src[0]);
      check_alignment(i, a);
      std::memset(fr.bytes(i.dst), 0, 64);
      std::memcpy(fr.bytes(i.dst), mem(a), size_t(i.imm));
      return true;
    }
    case Op::kLoadGpr: {
      const uint64_t a = fr.u64(i.src[0]);
      uint64_t v = 0;
      std::memcpy(&v, mem(a), size_t(i.imm));
      fr.set_u64(i.dst, v);
      return true;
    }
    case Op::kLoadMasked: {
      const uint64_t a = fr.u64(i.src[0]);
      const uint64_t m = fr.u64(i.src[1]);
      std::memset(fr.bytes(i.dst), 0, 64);
      for (int e = 0; e < int(i.imm) / eb; ++e)
        if ((m >> e) & 1) std::memcpy(fr.bytes(i.dst) + e * eb, mem(a + e * eb), eb);
      return true;
    }
    case Op::kLoadBroadcast: {
      const uint64_t a = fr.u64(i.src[0]);
      std::memset(fr.bytes(i.dst), 0, 64);
      // Fault suppression: block element j is read only when some destination
      // element j, j+n, j+2n ... is enabled (n elements per block).
      const int per_block = int(i.imm) / eb;
      uint64_t needed = width_mask(per_block);
      if (i.nsrc > 1) {
        const uint64_t m = fr.u64(i.src[1]) & width_mask(elem_count(i));
        needed = 0;
        for (int e = 0; e < elem_count(i); e += per_block) needed |= m >> e;
        needed &= width_mask(per_block);
      }
      uint8_t block[64] = {};
      for (int e = 0; e < per_block; ++e)
        if ((needed >> e) & 1) std::memcpy(block + e * eb, mem(a + e * eb), eb);
      for (int off = 0; off < i.bits / 8; off += int(i.imm))
        std::memcpy(fr.bytes(i.dst) + off, block, size_t(i.imm));
      return true;
    }
    case Op::kStore: {
      const uint64_t a = fr.u64(i.src[0]);
      check_alignment(i, a);
      std::memcpy(mem(a), fr.bytes(i.src[1]), i.bits / 8);
      return true;
    }
    case Op::kStoreMasked: {
      const uint64_t a = fr.u64(i.src[0]);
      const uint64_t m = fr.u64(i.src[2]);
      for (int e = 0; e < i.bits / 8 / eb; ++e)
        if ((m >> e) & 1) std::memcpy(mem(a + e * eb), fr.bytes(i.src[1]) + e * eb, eb);
      return true;
    }
    case Op::kZeroVec:
      std::memset(fr.bytes(i.dst), 0, 64);
      return true;
    case Op::kConstMask:
      fr.set_u64(i.dst, uint64_t(i.imm));
      return true;
    case Op::kSelect: {
      const uint64_t m = fr.u64(i.src[0]);
      uint8_t out[64] = {};
      const int n = i.scalar ? 1 : elem_count(i);
      if (i.scalar) std::memcpy(out, fr.bytes(i.src[3]), i.bits / 8);
      for (int e = 0; e < n; ++e) {
        const ir::ValueId from = ((m >> e) & 1) ? i.src[1] : i.src[2];
        std::memcpy(out + e * eb, fr.bytes(from) + e * eb, eb);
      }
      std::memcpy(fr.bytes(i.dst), out, 64);
      return true;
    }
    case Op::kVecToMask: {
      uint64_t m = 0;
      for (int e = 0; e < elem_count(i); ++e)
        m |= uint64_t(fr.bytes(i.src[0])[e * eb + eb - 1] >> 7) << e;
      fr.set_u64(i.dst, m);
      return true;
    }
    case Op::kMaskToVec: {
      const uint64_t m = fr.u64(i.src[0]);
      std::memset(fr.bytes(i.dst), 0, 64);
      for (int e = 0; e < elem_count(i); ++e)
        if ((m >> e) & 1) std::memset(fr.bytes(i.dst) + e * eb, 0xff, eb);
      return true;
    }
    case Op::kCompressMask: {
      const int n = std::popcount(fr.u64(i.src[0]) & width_mask(elem_count(i)));
      fr.set_u64(i.dst, width_mask(n));
      return true;
    }
    case Op::kGprToMask:
    case Op::kMaskToGpr:
      fr.set_u64(i.dst, fr.u64(i.src[0]) & width_mask(i.bits));
      return true;
    case Op::kGprToVec:
      std::memset(fr.bytes(i.dst), 0, 64);
      fr.set_u64(i.dst, fr.u64(i.src[0]) & width_mask(int(i.imm)));
      return true;
    case Op::kVecToGpr:
      fr.set_u64(i.dst, fr.u64(i.src[0]) & width_mask(int(i.imm)));
      return true;
    case Op::kBroadcastGpr: {
      const uint64_t v = fr.u64(i.src[0]);
      for (int off = 0; off < i.bits / 8; off += eb) std::memcpy(fr.bytes(i.dst) + off, &v, eb);
      std::memset(fr.bytes(i.dst) + i.bits / 8, 0, 64 - i.bits / 8);
      return true;
    }
    default:
      break;
  }
  // Opmask arithmetic: `bits` is the instruction's mask width.
  const uint64_t wm = width_mask(i.bits);
  const uint64_t a = i.nsrc > 0 ? fr.u64(i.src[0]) & wm : 0;
  const uint64_t b = i.nsrc > 1 ? fr.u64(i.src[1]) & wm : 0;
  switch (i.op) {
    case Op::kKAnd:
      fr.set_u64(i.dst, a & b);
      return true;
    case Op::kKAndN:
      fr.set_u64(i.dst, ~a & b & wm);
      return true;
    case Op::kKOr:
      fr.set_u64(i.dst, a | b);
      return true;
    case Op::kKXor:
      fr.set_u64(i.dst, a ^ b);
      return true;
    case Op::kKXnor:
      fr.set_u64(i.dst, ~(a ^ b) & wm);
      return true;
    case Op::kKAdd:
      fr.set_u64(i.dst, (a + b) & wm);
      return true;
    case Op::kKNot:
      fr.set_u64(i.dst, ~a & wm);
      return true;
    case Op::kKShl:
      fr.set_u64(i.dst, i.imm >= i.bits ? 0 : (a << i.imm) & wm);
      return true;
    case Op::kKShr:
      fr.set_u64(i.dst, i.imm >= i.bits ? 0 : a >> i.imm);
      return true;
    case Op::kKUnpck: {
      const int half = i.bits / 2;
      const uint64_t hm = width_mask(half);
      fr.set_u64(i.dst, ((a & hm) << half) | (b & hm));
      return true;
    }
    case Op::kKOrTest: {
      const uint64_t t = a | b;
      fr.set_u64(i.dst, (t == 0 ? kFlagZF : 0) | (t == wm ? kFlagCF : 0));
      return true;
    }
    case Op::kKTest:
      fr.set_u64(i.dst, ((a & b) == 0 ? kFlagZF : 0) | ((~a & b & wm) == 0 ? kFlagCF : 0));
      return true;
    default:
      return false;
  }
}

}  // namespace
}  // namespace interp

bool interpret_ir(const ir::Function& f, CpuState& state, std::string* error) {
  interp::Frame fr(f, state);
  for (const ir::Inst& i : f.insts) {
    if (interp::exec_core(i, fr) || interp::exec_integer(i, fr) || interp::exec_float(i, fr) ||
        interp::exec_shuffle(i, fr) || interp::exec_crypto(i, fr))
      continue;
    if (error) *error = std::string("interpreter has no implementation of ") + ir::op_name(i.op);
    return false;
  }
  return true;
}

}  // namespace avx512emu
