// Owns EmitContext: value slots, the constant pool, the chunk helper, opmask
// expansion and the MXCSR override used by embedded rounding and SAE.
#include "emit_context.h"

#include <cstring>

namespace avx512emu::jit {

EmitContext::EmitContext(x86::Assembler& assembler, const ir::Function& function)
    : a(assembler), f(function) {}

x86::Mem EmitContext::value(ir::ValueId v, int offset) const {
  // State reads alias their register's slot: the IR verifier guarantees no
  // state write happens before the last read.
  for (const ir::Inst& i : f.insts) {
    if (i.dst != v) continue;
    switch (i.op) {
      case ir::Op::kReadVec: return state(state_offset::zmm(i.reg) + offset);
      case ir::Op::kReadMask: return state(state_offset::k(i.reg) + offset);
      case ir::Op::kReadGpr: return state(state_offset::gpr(i.reg) + offset);
      default: break;
    }
    break;
  }
  return state(state_offset::scratch(v) + offset);
}

x86::Mem EmitContext::constant(const void* data, size_t n) {
  for (const Constant& c : constants_)
    if (c.bytes.size() == n && std::memcmp(c.bytes.data(), data, n) == 0) return x86::ptr(c.label);
  Constant c;
  c.bytes.assign(static_cast<const uint8_t*>(data), static_cast<const uint8_t*>(data) + n);
  c.label = a.newLabel();
  constants_.push_back(std::move(c));
  return x86::ptr(constants_.back().label);
}

x86::Mem EmitContext::splat_constant(uint64_t value, int bytes) {
  uint8_t buf[32];
  for (int off = 0; off < 32; off += bytes) std::memcpy(buf + off, &value, bytes);
  return constant(buf, sizeof buf);
}

void EmitContext::for_each_chunk(int bits, const std::function<void(int, int)>& body) {
  if (bits <= 128) {
    body(0, 16);
    return;
  }
  for (int off = 0; off < bits / 8; off += 32) body(off, 32);
}

void EmitContext::store_masked_chunk(const x86::Mem& dst, const x86::Vec& v, x86::Vec lanes,
                                     x86::Vec tmp, ir::ValueId mask, ir::Elem elem, int offset) {
  const int eb = ir::elem_bytes(elem);
  const int all = (1 << (int(v.size()) / eb)) - 1;  // the chunk's mask bits, at most 8
  asmjit::Label masked = a.newLabel(), done = a.newLabel();
  a.mov(x86::rax, value(mask));
  if (offset) a.shr(x86::rax, offset / eb);
  a.and_(x86::eax, all);
  a.jz(done);
  a.cmp(x86::eax, all);
  a.jne(masked);
  a.vmovdqu(dst, v);
  a.jmp(done);
  a.bind(masked);
  expand_mask(lanes, tmp, mask, elem, offset);
  if (eb == 8)
    a.vpmaskmovq(dst, lanes, v);
  else
    a.vpmaskmovd(dst, lanes, v);
  a.bind(done);
}

void EmitContext::expand_mask(x86::Vec dst, x86::Vec tmp, ir::ValueId mask, ir::Elem elem,
                              int offset) {
  // Broadcast the chunk's mask bits to every element, keep one distinct bit
  // per element with vpand, and turn "bit present" into all-ones with vpcmpeq.
  const int eb = ir::elem_bytes(elem);
  const int first = offset / eb;  // index of the chunk's first element
  a.mov(x86::rax, value(mask));
  if (first) a.shr(x86::rax, first);
  a.vmovq(dst.xmm(), x86::rax);
  uint8_t bits[32];
  switch (eb) {
    case 1: {
      // Bytes: element j needs mask bit j (0..31). Spread mask byte j/8 to
      // byte j with vpshufb, then test bit j%8.
      a.vpbroadcastd(dst, dst.xmm());
      uint8_t spread[32];
      for (int j = 0; j < 32; ++j) spread[j] = uint8_t(j / 8);
      a.vpshufb(dst, dst, constant(spread, dst.size()));
      for (int j = 0; j < 32; ++j) bits[j] = uint8_t(1u << (j % 8));
      a.vmovdqu(tmp, constant(bits, dst.size()));
      a.vpand(dst, dst, tmp);
      a.vpcmpeqb(dst, dst, tmp);
      return;
    }
    case 2: {
      a.vpbroadcastw(dst, dst.xmm());
      uint16_t w[16];
      for (int j = 0; j < 16; ++j) w[j] = uint16_t(1u << j);
      a.vmovdqu(tmp, constant(w, dst.size()));
      a.vpand(dst, dst, tmp);
      a.vpcmpeqw(dst, dst, tmp);
      return;
    }
    case 4: {
      a.vpbroadcastd(dst, dst.xmm());
      uint32_t d[8];
      for (int j = 0; j < 8; ++j) d[j] = 1u << j;
      a.vmovdqu(tmp, constant(d, dst.size()));
      a.vpand(dst, dst, tmp);
      a.vpcmpeqd(dst, dst, tmp);
      return;
    }
    default: {
      a.vpbroadcastq(dst, dst.xmm());
      uint64_t q[4];
      for (int j = 0; j < 4; ++j) q[j] = 1ull << j;
      a.vmovdqu(tmp, constant(q, dst.size()));
      a.vpand(dst, dst, tmp);
      a.vpcmpeqq(dst, dst, tmp);
      return;
    }
  }
}

void EmitContext::with_rounding(const ir::Inst& inst, const std::function<void()>& body) {
  if (inst.rounding == Rounding::kNone && !inst.sae) {
    body();
    return;
  }
  // host_save[1] keeps the MXCSR in force (the guest's); host_save[2] holds
  // the overridden copy. Restoring host_save[1] afterwards drops any flag the
  // body raised, which is exactly SAE; embedded rounding always implies SAE.
  const x86::Mem saved = state(state_offset::kHostSave + 8);
  const x86::Mem temp = state(state_offset::kHostSave + 16);
  a.vstmxcsr(saved);
  if (inst.rounding != Rounding::kNone) {
    static const uint32_t kRc[] = {0, 0u << 13, 1u << 13, 2u << 13, 3u << 13};
    a.mov(x86::eax, saved);
    a.and_(x86::eax, ~uint32_t(3u << 13));
    a.or_(x86::eax, kRc[int(inst.rounding)]);
    a.mov(temp, x86::eax);
    a.vldmxcsr(temp);
  }
  body();
  a.vldmxcsr(saved);
}

void EmitContext::mxcsr_bit_mask(x86::Vec dst, int bit) {
  a.mov(x86::eax, state(state_offset::kMxcsr));
  a.shr(x86::eax, bit);
  a.and_(x86::eax, 1);
  a.neg(x86::rax);
  a.vmovq(dst.xmm(), x86::rax);
  a.vpbroadcastq(dst, dst.xmm());
}

void EmitContext::split_float_fields(const x86::Vec& x, bool f64, const FloatFields& out,
                                     const x86::Vec& t, const x86::Vec& zero) {
  namespace xi = asmjit::x86::Inst;
  const int eb = f64 ? 8 : 4, mant = f64 ? 52 : 23;
  const uint64_t bias = f64 ? 1023 : 127, one = bias << mant, fraction_mask = (1ull << mant) - 1;
  const asmjit::InstId shr = f64 ? xi::kIdVpsrlq : xi::kIdVpsrld;
  a.vpand(out.sign, x, splat_constant(1ull << (eb * 8 - 1), eb));
  a.vpxor(out.magnitude, x, out.sign);
  a.emit(shr, out.exponent, out.magnitude, asmjit::Imm(mant));
  a.vpand(out.fraction, out.magnitude, splat_constant(fraction_mask, eb));
  a.emit(f64 ? xi::kIdVpcmpeqq : xi::kIdVpcmpeqd, out.denormal, out.exponent, zero);
  a.vpor(t, out.fraction, splat_constant(one, eb));
  a.emit(f64 ? xi::kIdVsubpd : xi::kIdVsubps, t, t, splat_constant(one, eb));
  a.vpblendvb(out.fraction, out.fraction, t, out.denormal);
  a.emit(shr, t, t, asmjit::Imm(mant));
  a.emit(f64 ? xi::kIdVpsubq : xi::kIdVpsubd, t, t, splat_constant(bias - 1, eb));
  a.vpblendvb(out.exponent, out.exponent, t, out.denormal);
  a.vpand(out.fraction, out.fraction, splat_constant(fraction_mask, eb));
}

asmjit::Label EmitContext::general_protection_label() {
  if (!gp_used_) {
    gp_label_ = a.newLabel();
    gp_used_ = true;
  }
  return gp_label_;
}

size_t EmitContext::finish() {
  if (gp_used_) {
    // A load from a non-canonical address raises #GP(0), like the misaligned
    // aligned access it stands for (Linux: SIGSEGV, si_addr 0).
    a.bind(gp_label_);
    a.mov(x86::rax, 0x8000000000000000ull);
    a.mov(x86::al, x86::byte_ptr(x86::rax));
    a.ud2();
  }
  const size_t code_end = a.offset();
  if (constants_.empty()) return code_end;
  a.align(asmjit::AlignMode::kData, 32);
  for (const Constant& c : constants_) {
    a.align(asmjit::AlignMode::kData, c.bytes.size() >= 32 ? 32 : 16);
    a.bind(c.label);
    a.embed(c.bytes.data(), c.bytes.size());
  }
  return code_end;
}

}  // namespace avx512emu::jit
