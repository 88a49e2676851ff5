// Owns the AVX2 lowering of the ops every instruction shares: architectural
// state access, effective addresses, loads and stores with exact fault
// behaviour, masking (Select), opmask arithmetic and register-file moves.
#include <algorithm>
#include <cstring>

#include "emit_context.h"

namespace avx512emu::jit {
namespace {

using ir::Inst;
using ir::Op;
using x86::rax;
using x86::rcx;
using x86::rdx;
using x86::rsi;

uint64_t width_mask(int bits) {
  return bits >= 64 ? ~0ull : (1ull << bits) - 1;
}

// ---- Byte copies between memory operands ------------------------------------

//! GPR of `bytes` width (1, 2, 4, 8) for scalar copies.
x86::Gp gpr_of(const x86::Gp& r, int bytes) {
  switch (bytes) {
    case 1:
      return r.r8();
    case 2:
      return r.r16();
    case 4:
      return r.r32();
    default:
      return r.r64();
  }
}

//! Copies `bytes` (1..64) from `src` to `dst`. Everything is loaded before
//! anything is stored, so overlapping slots are safe.
void copy_bytes(EmitContext& c, const x86::Mem& dst, const x86::Mem& src, int bytes) {
  auto at = [](x86::Mem m, int off) {
    m.addOffset(off);
    return m;
  };
  if (bytes >= 32) {
    for (int off = 0, n = 0; off < bytes; off += 32, ++n) c.a.vmovdqu(x86::ymm(n), at(src, off));
    for (int off = 0, n = 0; off < bytes; off += 32, ++n) c.a.vmovdqu(at(dst, off), x86::ymm(n));
  } else if (bytes == 16) {
    c.a.vmovdqu(x86::xmm0, src);
    c.a.vmovdqu(dst, x86::xmm0);
  } else {
    const x86::Gp r = gpr_of(rax, bytes);
    x86::Mem s = src, d = dst;
    s.setSize(bytes);
    d.setSize(bytes);
    c.a.mov(r, s);
    c.a.mov(d, r);
  }
}

//! Zeroes bytes [from, to) of a value or state slot (`to` <= 64).
void zero_bytes(EmitContext& c, x86::Mem m, int from, int to) {
  c.a.vpxor(x86::xmm15, x86::xmm15, x86::xmm15);
  int off = from;
  auto store = [&](int n) {
    x86::Mem p = m;
    p.addOffset(off);
    p.setSize(n);
    if (n == 32)
      c.a.vmovdqu(p, x86::ymm15);
    else if (n == 16)
      c.a.vmovdqu(p, x86::xmm15);
    else
      c.a.mov(p, 0);
    off += n;
  };
  while (off < to) {
    if (to - off >= 32 && off % 32 == 0)
      store(32);
    else if (to - off >= 16)
      store(16);
    else if (to - off >= 8) {
      x86::Mem p = m;
      p.addOffset(off);
      p.setSize(8);
      c.a.mov(p, 0);
      off += 8;
    } else if (to - off >= 4)
      store(4);
    else if (to - off >= 2)
      store(2);
    else
      store(1);
  }
}

// ---- Memory -------------------------------------------------------------------

void lower_address(EmitContext& c, const Inst& i) {
  const MemOperand& m = i.mem;
  if (m.base >= 0)
    c.a.mov(rax, c.state(state_offset::gpr(m.base)));
  else if (m.rip_relative)
    c.a.mov(rax, c.state(state_offset::kRip));
  else
    c.a.xor_(x86::eax, x86::eax);
  // One lea for index and displacement where the displacement fits its
  // 32 bits (it always does for an instruction's own; rip + length may not).
  const int64_t disp = m.disp + (m.rip_relative ? i.insn_length : 0);
  const bool disp32 = disp == int64_t(int32_t(disp));
  if (m.index >= 0) {
    c.a.mov(rcx, c.state(state_offset::gpr(m.index)));
    const int shift = m.scale == 8 ? 3 : m.scale == 4 ? 2 : m.scale == 2 ? 1 : 0;
    c.a.lea(rax, x86::ptr(rax, rcx, shift, disp32 ? int32_t(disp) : 0));
  } else if (disp && disp32) {
    c.a.lea(rax, x86::ptr(rax, int32_t(disp)));
  }
  if (disp && !disp32) {
    c.a.mov(rcx, disp);
    c.a.add(rax, rcx);
  }
  if (m.segment == 1) c.a.add(rax, c.state(state_offset::kFsBase));
  if (m.segment == 2) c.a.add(rax, c.state(state_offset::kGsBase));
  c.a.mov(c.value(i.dst), rax);
}

//! Loads the address value into rsi and checks the instruction's alignment.
void load_address(EmitContext& c, const Inst& i, ir::ValueId addr) {
  c.load_into(rsi, addr);
  if (i.align > 1) {
    c.a.test(rsi, i.align - 1);
    c.a.jnz(c.general_protection_label());
  }
}

//! Loads `bytes` from [rsi] into the result slot, zero-extended to `bits`.
void load_plain(EmitContext& c, const Inst& i, int bytes) {
  const x86::Mem dst = c.value(i.dst);
  if (bytes >= 16) {
    copy_bytes(c, dst, x86::ptr(rsi), bytes);
  } else {
    x86::Mem src = x86::ptr(rsi);
    src.setSize(bytes);
    if (bytes == 8)
      c.a.mov(rax, src);
    else if (bytes == 4)
      c.a.mov(x86::eax, src);
    else
      c.a.movzx(x86::eax, src);
    c.a.vmovq(x86::xmm0, rax);
    c.a.vmovdqu(dst, x86::xmm0);
    bytes = 16;
  }
  if (bytes < i.bits / 8) zero_bytes(c, dst, bytes, i.bits / 8);
}

//! Per-element copy of the enabled elements only: the exact-fault path for
//! masked loads and stores. Iterates the set bits of the mask with tzcnt/blsr,
//! so its cost is proportional to the enabled elements.
//! This form takes the mask, already limited to the element count, in rcx.
void copy_enabled_elements_rcx(EmitContext& c, bool store, const x86::Mem& vec, int eb) {
  asmjit::Label loop = c.a.newLabel(), done = c.a.newLabel();
  c.a.lea(x86::r8, vec);
  c.a.bind(loop);
  c.a.test(rcx, rcx);
  c.a.jz(done);
  c.a.tzcnt(rdx, rcx);
  const int shift = eb == 8 ? 3 : eb == 4 ? 2 : eb == 2 ? 1 : 0;
  const x86::Gp r = gpr_of(rax, eb);
  x86::Mem mem_elem = x86::ptr(rsi, rdx, shift, 0, eb);
  x86::Mem vec_elem = x86::ptr(x86::r8, rdx, shift, 0, eb);
  if (store) {
    c.a.mov(r, vec_elem);
    c.a.mov(mem_elem, r);
  } else {
    c.a.mov(r, mem_elem);
    c.a.mov(vec_elem, r);
  }
  c.a.blsr(rcx, rcx);
  c.a.jmp(loop);
  c.a.bind(done);
}

//! Loads the mask value into rcx, limited to `count` elements.
void load_mask_rcx(EmitContext& c, ir::ValueId mask, int count) {
  c.a.mov(rcx, c.value(mask));
  if (count < 64) {
    c.a.mov(rdx, width_mask(count));
    c.a.and_(rcx, rdx);
  }
}


//! Masked load: no access at all when no element is enabled; one whole load
//! plus a lane-mask AND when the access stays inside one page (the real
//! instruction touches that page too); otherwise element by element.
void lower_load_masked(EmitContext& c, const Inst& i) {
  const int eb = ir::elem_bytes(i.elem);
  const int bytes = int(i.imm);
  const int count = bytes / eb;
  const x86::Mem dst = c.value(i.dst);
  load_address(c, i, i.src[0]);
  zero_bytes(c, dst, 0, i.bits / 8);
  asmjit::Label slow = c.a.newLabel(), done = c.a.newLabel();
  c.a.mov(rcx, c.value(i.src[1]));
  if (count < 64) {
    c.a.mov(rdx, width_mask(count));
    c.a.and_(rcx, rdx);
  }
  c.a.test(rcx, rcx);
  c.a.jz(done);
  if (bytes >= 16) {
    c.a.mov(x86::eax, x86::esi);
    c.a.and_(x86::eax, 4095);
    c.a.cmp(x86::eax, 4096 - bytes);
    c.a.ja(slow);
    c.for_each_chunk(bytes * 8, [&](int off, int width) {
      const x86::Vec v = EmitContext::vreg(0, width), m = EmitContext::vreg(1, width),
                     t = EmitContext::vreg(2, width);
      c.expand_mask(m, t, i.src[1], i.elem, off);
      c.a.vpand(v, m, x86::ptr(rsi, off));
      x86::Mem d = dst;
      d.addOffset(off);
      c.a.vmovdqu(d, v);
    });
    c.a.jmp(done);
  }
  c.a.bind(slow);
  copy_enabled_elements(c, /*store=*/false, dst, eb, count, i.src[1]);
  c.a.bind(done);
}

//! Broadcast of an element or a block (vbroadcasti32x4 ...). Under a mask,
//! block element j is needed when any destination element j, j+n, j+2n ...
//! is enabled (n = elements per block): a fully masked-off broadcast touches
//! no memory, and a block that crosses a page is read element by element,
//! needed elements only, so masked-off ones never fault.
void lower_load_broadcast(EmitContext& c, const Inst& i) {
  const x86::Mem dst = c.value(i.dst);
  const int block = int(i.imm);
  const int eb = ir::elem_bytes(i.elem);
  asmjit::Label done = c.a.newLabel();
  c.load_into(rsi, i.src[0]);
  if (i.nsrc > 1) {
    zero_bytes(c, dst, 0, i.bits / 8);
    const int count = i.bits / 8 / eb;
    load_mask_rcx(c, i.src[1], count);
    const int per_block = block / eb;
    if (per_block > 1) {  // fold the repeats onto the block's elements
      c.a.mov(rdx, rcx);
      for (int r = 1; r < count / per_block; ++r) {
        c.a.mov(rax, rdx);
        c.a.shr(rax, r * per_block);
        c.a.or_(rcx, rax);
      }
      c.a.mov(rdx, width_mask(per_block));
      c.a.and_(rcx, rdx);
    }
    c.a.test(rcx, rcx);
    c.a.jz(done);
    if (per_block > 1) {
      asmjit::Label whole = c.a.newLabel();
      c.a.mov(x86::eax, x86::esi);
      c.a.and_(x86::eax, 4095);
      c.a.cmp(x86::eax, 4096 - block);
      c.a.jbe(whole);
      copy_enabled_elements_rcx(c, /*store=*/false, dst, eb);  // block at the slot's start
      c.a.lea(rsi, dst);
      c.a.bind(whole);
    }
  }
  const x86::Vec y = i.bits == 128 ? x86::Vec(x86::xmm0) : x86::Vec(x86::ymm0);
  switch (block) {
    case 1:
      c.a.vpbroadcastb(y, x86::byte_ptr(rsi));
      break;
    case 2:
      c.a.vpbroadcastw(y, x86::word_ptr(rsi));
      break;
    case 4:
      c.a.vpbroadcastd(y, x86::dword_ptr(rsi));
      break;
    case 8:
      c.a.vpbroadcastq(y, x86::qword_ptr(rsi));
      break;
    case 16:
      if (i.bits == 128)
        c.a.vmovdqu(x86::xmm0, x86::ptr(rsi));
      else
        c.a.vbroadcasti128(x86::ymm0, x86::ptr(rsi));
      break;
    default:
      c.a.vmovdqu(x86::ymm0, x86::ptr(rsi));
      break;
  }
  c.for_each_chunk(i.bits, [&](int off, int) {
    x86::Mem d = dst;
    d.addOffset(off);
    c.a.vmovdqu(d, y);
  });
  c.a.bind(done);
}

void lower_store(EmitContext& c, const Inst& i) {
  load_address(c, i, i.src[0]);
  copy_bytes(c, x86::ptr(rsi), c.value(i.src[1]), i.bits / 8);
}

//! Masked store: dword/qword elements use vpmaskmov, which never writes a
//! masked-off element; byte/word elements go element by element.
void lower_store_masked(EmitContext& c, const Inst& i) {
  const int eb = ir::elem_bytes(i.elem);
  const int bytes = i.bits / 8;
  load_address(c, i, i.src[0]);
  if (eb >= 4 && bytes >= 16) {
    c.for_each_chunk(i.bits, [&](int off, int width) {
      const x86::Vec v = EmitContext::vreg(0, width), m = EmitContext::vreg(1, width),
                     t = EmitContext::vreg(2, width);
      x86::Mem src = c.value(i.src[1]);
      src.addOffset(off);
      c.a.vmovdqu(v, src);
      c.store_masked_chunk(x86::ptr(rsi, off), v, m, t, i.src[2], i.elem, off);
    });
    return;
  }
  copy_enabled_elements(c, /*store=*/true, c.value(i.src[1]), eb, bytes / eb, i.src[2]);
}

// ---- Masking ------------------------------------------------------------------

void lower_select(EmitContext& c, const Inst& i) {
  const int eb = ir::elem_bytes(i.elem);
  const x86::Mem dst = c.value(i.dst);
  if (i.scalar) {
    // Element 0 by mask bit 0; the other elements from `upper`. All sources
    // are read before the result slot is written.
    asmjit::Label use_off = c.a.newLabel(), done = c.a.newLabel();
    c.a.vmovdqu(x86::xmm0, c.value(i.src[3]));
    const x86::Gp r = gpr_of(rcx, eb);
    x86::Mem mask = c.value(i.src[0]), on = c.value(i.src[1]), off = c.value(i.src[2]);
    mask.setSize(1);
    on.setSize(eb);
    off.setSize(eb);
    c.a.test(mask, 1);
    c.a.jz(use_off);
    c.a.mov(r, on);
    c.a.jmp(done);
    c.a.bind(use_off);
    c.a.mov(r, off);
    c.a.bind(done);
    c.a.vmovdqu(dst, x86::xmm0);
    x86::Mem d0 = dst;
    d0.setSize(eb);
    c.a.mov(d0, r);
    return;
  }
  c.for_each_chunk(i.bits, [&](int off, int width) {
    const x86::Vec m = EmitContext::vreg(0, width), t = EmitContext::vreg(1, width),
                   other = EmitContext::vreg(2, width);
    c.expand_mask(m, t, i.src[0], i.elem, off);
    c.a.vmovdqu(other, c.value(i.src[2], off));
    // vpblendvb takes its second source where the mask byte's top bit is set.
    c.a.vpblendvb(other, other, c.value(i.src[1], off), m);
    c.a.vmovdqu(c.value(i.dst, off), other);
  });
}

// ---- Opmask arithmetic ----------------------------------------------------------

//! Loads mask operands into rax/rcx (rcx first: either may be the value
//! the previous op left in rax).
void load_mask_operands(EmitContext& c, const Inst& i) {
  if (i.nsrc > 1) c.load_into(rcx, i.src[1]);
  c.load_into(rax, i.src[0]);
}

void and_width(EmitContext& c, const x86::Gp& r, int bits) {
  if (bits >= 64) return;
  if (bits == 32) {
    c.a.mov(r.r32(), r.r32());
  } else if (bits == 16) {
    c.a.movzx(r.r32(), r.r16());
  } else if (bits == 8) {
    c.a.movzx(r.r32(), r.r8());
  } else {
    c.a.mov(rdx, width_mask(bits));
    c.a.and_(r, rdx);
  }
}

bool lower_mask_op(EmitContext& c, const Inst& i) {
  const int w = i.bits;
  switch (i.op) {
    case Op::kKAnd:
      load_mask_operands(c, i);
      c.a.and_(rax, rcx);
      break;
    case Op::kKAndN:
      load_mask_operands(c, i);
      c.a.andn(rax, rax, rcx);
      break;
    case Op::kKOr:
      load_mask_operands(c, i);
      c.a.or_(rax, rcx);
      break;
    case Op::kKXor:
      load_mask_operands(c, i);
      c.a.xor_(rax, rcx);
      break;
    case Op::kKXnor:
      load_mask_operands(c, i);
      c.a.xor_(rax, rcx);
      c.a.not_(rax);
      break;
    case Op::kKAdd:
      load_mask_operands(c, i);
      and_width(c, rax, w);
      and_width(c, rcx, w);
      c.a.add(rax, rcx);
      break;
    case Op::kKNot:
      load_mask_operands(c, i);
      c.a.not_(rax);
      break;
    case Op::kKShl:
    case Op::kKShr:
      if (i.imm >= w) {
        c.a.xor_(x86::eax, x86::eax);
      } else {
        load_mask_operands(c, i);
        and_width(c, rax, w);
        if (i.op == Op::kKShl)
          c.a.shl(rax, int(i.imm));
        else
          c.a.shr(rax, int(i.imm));
      }
      break;
    case Op::kKUnpck:
      // (src0 low half << half) | src1 low half
      load_mask_operands(c, i);
      and_width(c, rax, w / 2);
      and_width(c, rcx, w / 2);
      c.a.shl(rax, w / 2);
      c.a.or_(rax, rcx);
      break;
    case Op::kKOrTest:
    case Op::kKTest: {
      // ZF/CF per the SDM: kortest: ZF = (a|b)==0, CF = (a|b)==all ones;
      // ktest: ZF = (a&b)==0, CF = (~a&b)==0. Built with setcc into a flags image.
      load_mask_operands(c, i);
      and_width(c, rax, w);
      and_width(c, rcx, w);
      if (i.op == Op::kKOrTest) {
        c.a.or_(rax, rcx);
        c.a.mov(rdx, width_mask(w));
        c.a.cmp(rax, rdx);
        c.a.sete(x86::dl);
        c.a.test(rax, rax);
        c.a.setz(x86::al);
      } else {
        c.a.andn(rdx, rax, rcx);
        c.a.test(rdx, rdx);
        c.a.setz(x86::dl);
        c.a.test(rax, rcx);
        c.a.setz(x86::al);
      }
      // ZF is bit 6, CF bit 0.
      c.a.movzx(x86::eax, x86::al);
      c.a.shl(x86::eax, 6);
      c.a.movzx(x86::edx, x86::dl);
      c.a.or_(x86::eax, x86::edx);
      c.a.mov(c.value(i.dst), rax);
      c.result_in_rax = true;
      return true;
    }
    default:
      return false;
  }
  and_width(c, rax, w);
  c.a.mov(c.value(i.dst), rax);
  c.result_in_rax = true;
  return true;
}

// ---- Register-file moves --------------------------------------------------------

void lower_vec_to_mask(EmitContext& c, const Inst& i) {
  // The sign bit of each element: vpmovmskb/vmovmskps/vmovmskpd per chunk;
  // words go through vpmovmskb (two bits per word) and pext of the odd bits.
  const int eb = ir::elem_bytes(i.elem);
  c.a.xor_(x86::r8d, x86::r8d);
  c.for_each_chunk(i.bits, [&](int off, int width) {
    const x86::Vec v = EmitContext::vreg(0, width);
    c.a.vmovdqu(v, c.value(i.src[0], off));
    switch (eb) {
      case 1:
        c.a.vpmovmskb(x86::eax, v);
        break;
      case 2:
        c.a.vpmovmskb(x86::eax, v);
        c.a.mov(x86::edx, 0xAAAAAAAAu);
        c.a.pext(x86::eax, x86::eax, x86::edx);
        break;
      case 4:
        c.a.vmovmskps(x86::eax, v);
        break;
      default:
        c.a.vmovmskpd(x86::eax, v);
        break;
    }
    if (off) c.a.shl(rax, off / eb);
    c.a.or_(x86::r8, rax);
  });
  c.a.mov(c.value(i.dst), x86::r8);
}

void lower_mask_to_vec(EmitContext& c, const Inst& i) {
  c.for_each_chunk(i.bits, [&](int off, int width) {
    const x86::Vec m = EmitContext::vreg(0, width), t = EmitContext::vreg(1, width);
    c.expand_mask(m, t, i.src[0], i.elem, off);
    c.a.vmovdqu(c.value(i.dst, off), m);
  });
}

void lower_broadcast_gpr(EmitContext& c, const Inst& i) {
  const x86::Vec y = i.bits == 128 ? x86::Vec(x86::xmm0) : x86::Vec(x86::ymm0);
  c.a.vmovq(x86::xmm0, c.value(i.src[0]));
  switch (ir::elem_bytes(i.elem)) {
    case 1:
      c.a.vpbroadcastb(y, x86::xmm0);
      break;
    case 2:
      c.a.vpbroadcastw(y, x86::xmm0);
      break;
    case 4:
      c.a.vpbroadcastd(y, x86::xmm0);
      break;
    default:
      c.a.vpbroadcastq(y, x86::xmm0);
      break;
  }
  c.for_each_chunk(i.bits, [&](int off, int) { c.a.vmovdqu(c.value(i.dst, off), y); });
}

}  // namespace

void copy_enabled_elements(EmitContext& c, bool store, const x86::Mem& vec, int eb, int count,
                           ir::ValueId mask) {
  load_mask_rcx(c, mask, count);
  copy_enabled_elements_rcx(c, store, vec, eb);
}

bool lower_core(EmitContext& c, const Inst& i) {
  switch (i.op) {
    case Op::kReadVec:
    case Op::kReadMask:
    case Op::kReadGpr:
      return true;  // the value aliases the state slot
    case Op::kWriteVec: {
      const int bytes = i.bits / 8;
      const x86::Mem reg = c.state(state_offset::zmm(i.reg));
      // Results narrower than 256 bits are zero-extended to 256 in ymm0 and
      // written with one 32-byte store (then bits 511:256 are zeroed): a
      // later 32-byte load of the register, the live stubs' reload of ymmN
      // included, forwards from that store instead of stalling on a
      // 16-byte store next to a zeroing one.
      if (bytes >= 32) {
        copy_bytes(c, reg, c.value(i.src[0]), bytes);
      } else if (bytes == 16) {
        c.a.vmovdqu(x86::xmm0, c.value(i.src[0]));
        c.a.vmovdqu(reg, x86::ymm0);
      } else {  // narrow results (vpmovqb xmm)
        x86::Mem src = c.value(i.src[0]);
        src.setSize(8);
        c.a.mov(rax, src);
        and_width(c, rax, i.bits);
        c.a.vmovq(x86::xmm0, rax);
        c.a.vmovdqu(reg, x86::ymm0);
      }
      if (bytes < 64) zero_bytes(c, reg, std::max(bytes, 32), 64);
      return true;
    }
    case Op::kWriteMask:
      c.load_into(rax, i.src[0]);
      and_width(c, rax, i.bits);
      c.a.mov(c.state(state_offset::k(i.reg)), rax);
      return true;
    case Op::kWriteGpr: {
      x86::Mem reg = c.state(state_offset::gpr(i.reg));
      if (i.bits == 64) {
        c.load_into(rax, i.src[0]);
        c.a.mov(reg, rax);
      } else if (i.bits == 32) {  // 32-bit writes zero-extend
        c.load_into(rax, i.src[0]);
        c.a.mov(x86::eax, x86::eax);
        c.a.mov(reg, rax);
      } else {
        copy_bytes(c, reg, c.value(i.src[0]), i.bits / 8);
      }
      return true;
    }
    case Op::kWriteFlags: {
      const uint64_t arith = kFlagCF | kFlagPF | kFlagAF | kFlagZF | kFlagSF | kFlagOF;
      c.a.mov(rax, c.state(state_offset::kRflags));
      c.a.and_(rax, int32_t(~arith));
      c.a.mov(rcx, c.value(i.src[0]));
      c.a.and_(rcx, int32_t(arith));
      c.a.or_(rax, rcx);
      c.a.mov(c.state(state_offset::kRflags), rax);
      return true;
    }
    case Op::kAdvanceRip: {
      x86::Mem rip = c.state(state_offset::kRip);
      rip.setSize(8);
      c.a.add(rip, int32_t(i.imm));
      return true;
    }
    case Op::kAddress:
      lower_address(c, i);
      return true;
    case Op::kLoad:
      load_address(c, i, i.src[0]);
      load_plain(c, i, int(i.imm));
      return true;
    case Op::kLoadGpr: {
      c.load_into(rsi, i.src[0]);
      x86::Mem src = x86::ptr(rsi);
      src.setSize(uint32_t(i.imm));
      if (i.imm == 8)
        c.a.mov(rax, src);
      else if (i.imm == 4)
        c.a.mov(x86::eax, src);
      else
        c.a.movzx(x86::eax, src);
      c.a.mov(c.value(i.dst), rax);
      return true;
    }
    case Op::kLoadMasked:
      lower_load_masked(c, i);
      return true;
    case Op::kLoadBroadcast:
      lower_load_broadcast(c, i);
      return true;
    case Op::kStore:
      lower_store(c, i);
      return true;
    case Op::kStoreMasked:
      lower_store_masked(c, i);
      return true;
    case Op::kZeroVec:
      zero_bytes(c, c.value(i.dst), 0, i.bits / 8);
      return true;
    case Op::kConstMask:
      c.a.mov(rax, uint64_t(i.imm));
      c.a.mov(c.value(i.dst), rax);
      return true;
    case Op::kSelect:
      lower_select(c, i);
      return true;
    case Op::kVecToMask:
      lower_vec_to_mask(c, i);
      return true;
    case Op::kMaskToVec:
      lower_mask_to_vec(c, i);
      return true;
    case Op::kCompressMask: {
      const int count = i.bits / 8 / ir::elem_bytes(i.elem);
      c.a.mov(rax, c.value(i.src[0]));
      and_width(c, rax, count);
      c.a.popcnt(rcx, rax);
      c.a.mov(rax, -1);
      c.a.bzhi(rax, rax, rcx);  // bzhi keeps all 64 bits when the count is 64
      c.a.mov(c.value(i.dst), rax);
      return true;
    }
    case Op::kGprToMask:
    case Op::kMaskToGpr:
      c.load_into(rax, i.src[0]);
      and_width(c, rax, i.bits);
      c.a.mov(c.value(i.dst), rax);
      c.result_in_rax = true;
      return true;
    case Op::kGprToVec:
      c.a.mov(rax, c.value(i.src[0]));
      and_width(c, rax, int(i.imm));
      c.a.vmovq(x86::xmm0, rax);
      c.a.vmovdqu(c.value(i.dst), x86::xmm0);
      return true;
    case Op::kVecToGpr:
      c.a.mov(rax, c.value(i.src[0]));
      and_width(c, rax, int(i.imm));
      c.a.mov(c.value(i.dst), rax);
      return true;
    case Op::kBroadcastGpr:
      lower_broadcast_gpr(c, i);
      return true;
    default:
      return lower_mask_op(c, i);
  }
}

}  // namespace avx512emu::jit
