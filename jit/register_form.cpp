// Owns compile_register_form(): the register lowering of element-wise
// instructions (see register_form.h for the contract and the evaluation
// order).
#include "register_form.h"

#include <algorithm>
#include <array>

#include "emit_context.h"

namespace avx512emu::jit {
namespace {

using ir::Inst;
using ir::Op;
namespace xi = asmjit::x86::Inst;

constexpr int kMaxValues = 256;

//! Ops with no vector result that run once, in the first chunk pass (or the
//! last, when they read a mask assembled over the passes), with the memory
//! form's own lowering: they use GPRs and state-block slots only, never a
//! vector register.
bool is_scalar_side(Op op) {
  switch (op) {
    case Op::kReadMask: case Op::kReadGpr: case Op::kAddress: case Op::kConstMask:
    case Op::kWriteMask: case Op::kWriteGpr: case Op::kWriteFlags: case Op::kLoadGpr:
    case Op::kKAnd: case Op::kKAndN: case Op::kKOr: case Op::kKXor: case Op::kKXnor:
    case Op::kKAdd: case Op::kKNot: case Op::kKShl: case Op::kKShr: case Op::kKUnpck:
    case Op::kKOrTest: case Op::kKTest: case Op::kGprToMask: case Op::kMaskToGpr:
      return true;
    default:
      return false;
  }
}

//! Shifts by an xmm count read src1's low 64 bits in every chunk; the
//! register form keeps one chunk of a value at a time, so they stay out.
bool is_vector_count_shift(Op op) {
  return op == Op::kShlVec || op == Op::kShrVec || op == Op::kSarVec;
}

//! Whether the register form lowers `i`; `why` names the first op it does not.
bool has_register_lowering(const Inst& i, int bits, const char** why) {
  if (is_scalar_side(i.op) || i.op == Op::kAdvanceRip) return true;
  if (i.bits != bits && i.op != Op::kReadVec && i.op != Op::kWriteVec) {
    *why = "mixed vector widths";
    return false;
  }
  switch (i.op) {
    case Op::kReadVec:
      return i.bits == bits;
    case Op::kWriteVec:
      return i.bits == bits && bits >= 128;
    case Op::kLoad:
      return i.imm * 8 == i.bits;
    case Op::kStore:
      return i.bits >= 128;
    // Dword and qword elements: AVX2's vpmaskmov touches enabled elements
    // only, as the masked AVX-512 access does.
    case Op::kLoadMasked:
      return i.imm * 8 == i.bits;
    case Op::kStoreMasked:
      return i.bits >= 128 && ir::elem_bytes(i.elem) >= 4;
    case Op::kLoadBroadcast:
      return i.nsrc == 1 && (i.imm <= 8 || i.imm == 16 || (i.imm == 32 && bits >= 256));
    case Op::kZeroVec: case Op::kBroadcastGpr:
      return true;
    case Op::kInsertLane:  // its lane: is_inserted_lane()
      return true;
    case Op::kSelect:
      return !i.scalar;
    default:
      break;
  }
  if (i.scalar) {
    *why = "scalar form";
    return false;
  }
  if ((is_float_elementwise(i.op) || i.op == Op::kCmpF) && float_native_id(i)) return true;
  if (chunkwise_shuffle_id(i)) return true;
  if (is_mask_compare(i.op)) return true;
  if (is_rotate(i.op) && ir::elem_bytes(i.elem) >= 4) return true;
  if (ChunkLowering unused; chunk_lowering(i, unused)) return true;
  if (!is_vector_count_shift(i.op) && integer_native_id(i)) return true;
  *why = ir::op_name(i.op);
  return false;
}

bool is_narrowing(Op op) {
  return op == Op::kTruncate || op == Op::kTruncSatS || op == Op::kTruncSatU;
}

//! Index of the instruction that defines `v`, or -1.
int definition(const ir::Function& f, ir::ValueId v) {
  for (size_t k = 0; k < f.insts.size(); ++k)
    if (f.insts[k].dst == v) return int(k);
  return -1;
}

//! Narrowing (vpmov*) halves or quarters the width, so it does not fit the
//! chunk-major passes: the register form computes its whole result in pass
//! 0, which needs every chunk of its source then. It takes the ones whose
//! source is a register or a plain load (every chunk at hand: a live ymm,
//! the block, or a hoisted load), whose only use is a register write of at
//! least 128 bits, and that saturate no qwords (that path uses fixed
//! registers). `i` is the narrowing or that write.
bool narrowing_has_register_lowering(const ir::Function& f, const Inst& i) {
  const Inst* n = &i;
  if (i.op == Op::kWriteVec) {
    const int d = definition(f, i.src[0]);
    if (d < 0 || !is_narrowing(f.insts[size_t(d)].op)) return false;
    n = &f.insts[size_t(d)];
  }
  const int s = definition(f, n->src[0]);
  if (s < 0 || (f.insts[size_t(s)].op != Op::kReadVec && f.insts[size_t(s)].op != Op::kLoad))
    return false;
  if (n->op != Op::kTruncate && ir::elem_bytes(n->elem2) == 8) return false;
  int uses = 0;
  for (const Inst& u : f.insts)
    for (int k = 0; k < u.nsrc; ++k)
      if (u.src[k] == n->dst) {
        ++uses;
        if (u.op != Op::kWriteVec || u.bits < 128) return false;
      }
  return uses == 1;
}

//! Whether `i` is a narrowing, or the register write of one's result.
bool is_narrowing_part(const ir::Function& f, const Inst& i) {
  if (is_narrowing(i.op)) return true;
  if (i.op != Op::kWriteVec) return false;
  const int d = definition(f, i.src[0]);
  return d >= 0 && is_narrowing(f.insts[size_t(d)].op);
}

//! A lane insert (vinserti32x4 and kin) whose lane comes from a register
//! narrower than the result: the ReadVec of that register is the one op of
//! another width the register form takes, since the insert reads the lane
//! where the register is (live ymm or block) in whichever pass it lands.
bool is_inserted_lane(const ir::Function& f, const Inst& i) {
  if (i.op != Op::kReadVec) return false;
  int uses = 0;
  bool as_lane = true;
  for (const Inst& u : f.insts)
    for (int k = 0; k < u.nsrc; ++k)
      if (u.src[k] == i.dst) {
        ++uses;
        as_lane = as_lane && u.op == Op::kInsertLane && k == 1;
      }
  return uses == 1 && as_lane;
}

class RegisterLowering {
 public:
  RegisterLowering(EmitContext& c, const ir::Function& f, int bits) : c_(c), f_(f), bits_(bits) {
    for (const Inst& i : f.insts)
      if ((i.op == Op::kReadVec || i.op == Op::kWriteVec) && i.reg < 16) guest_ |= uint16_t(1u << i.reg);
    free_ = uint16_t(~guest_);
    last_use_.fill(-1);
    for (size_t k = 0; k < f.insts.size(); ++k)
      for (int s = 0; s < f.insts[k].nsrc; ++s) last_use_[f.insts[k].src[s]] = int(k);
    // A mask compare's value is complete after the last pass; scalar ops
    // that read it (kmov, kortest, k logic) wait for it there.
    std::array<int, kMaxValues> ready{};
    scalar_pass_.fill(0);
    for (size_t k = 0; k < f.insts.size(); ++k) {
      const Inst& i = f.insts[k];
      int pass = 0;
      for (int s = 0; s < i.nsrc; ++s) pass = std::max(pass, ready[i.src[s]]);
      if (is_mask_compare(i.op) || i.op == Op::kCmpF) pass = passes() - 1;
      scalar_pass_[k] = pass;
      if (i.dst != ir::kNoValue) ready[i.dst] = pass;
    }
    find_direct_write();
  }

  bool run(RegisterFormUse& use, std::string& why) {
    const int passes = bits_ <= 128 ? 1 : bits_ / 256;
    const int width = bits_ <= 128 ? 16 : 32;
    for (int p = 0; p < passes; ++p) {
      for (size_t k = 0; k < f_.insts.size(); ++k) {
        if (is_scalar_side(f_.insts[k].op)) {
          if (p == scalar_pass_[k]) {
            lower_core(c_, f_.insts[k]);
            c_.lowered(f_.insts[k]);
          }
          continue;
        }
        if (!lower(f_.insts[k], p, 32 * p, width)) {
          why = "out of scratch registers";
          return false;
        }
        c_.lowered(f_.insts[k]);
        release_dead(int(k));
      }
    }
    if (held_reg_ >= 0) {
      // A VEX write of xmm/ymm zeroes the rest of the host register, as the
      // guest's EVEX write zeroes bits 255:width.
      if (held_dst_ < 16)
        c_.a.vmovdqa(vec(held_dst_, held_width_), vec(held_reg_, held_width_));
      else
        c_.a.vmovdqu(c_.state(state_offset::zmm(held_dst_)), vec(held_reg_, held_width_));
      release(held_reg_);
    }
    zero_upper_parts();
    for (const Inst& i : f_.insts)
      if (i.op == Op::kAdvanceRip) lower_core(c_, i);
    for (const Inst& i : f_.insts) {
      if (i.op == Op::kReadVec && i.reg < 16) use.low_read |= uint16_t(1u << i.reg);
      if (i.op == Op::kWriteVec && i.reg < 16) use.low_written |= uint16_t(1u << i.reg);
    }
    return true;
  }

 private:
  //! Where one chunk of a value is: a host register (`reg` >= 0) or memory.
  struct Loc {
    int reg = -1;
    x86::Mem mem;
    bool scratch = false;  //!< `reg` was allocated for it (free it when dead)
  };

  x86::Vec vec(int n, int width) const { return EmitContext::vreg(n, width); }

  int alloc() {
    if (!free_) return -1;
    const int r = 31 - __builtin_clz(uint32_t(free_));
    free_ = uint16_t(free_ & ~(1u << r));
    return r;
  }
  void release(int r) { free_ = uint16_t(free_ | (1u << r)); }

  void release_dead(int k) {
    for (const Inst& i : f_.insts) {
      if (i.dst == ir::kNoValue || last_use_[i.dst] != k) continue;
      Loc& l = loc_[i.dst];
      if (l.scratch) release(l.reg);
      l = Loc{};
    }
  }

  //! The chunk of `v` as an operand that may be memory (an instruction's
  //! last source).
  asmjit::Operand operand(ir::ValueId v, int width) const {
    const Loc& l = loc_[v];
    if (l.reg >= 0) return vec(l.reg, width);
    x86::Mem m = l.mem;
    m.setSize(uint32_t(width));
    return m;
  }
  //! The chunk of `v` in a register: loaded into `into` when it is in memory.
  x86::Vec in_register(ir::ValueId v, int width, int into) {
    const Loc& l = loc_[v];
    if (l.reg >= 0) return vec(l.reg, width);
    c_.a.vmovdqu(vec(into, width), l.mem);
    return vec(into, width);
  }
  bool result(const Inst& i, int reg) {
    if (reg < 0) return false;
    loc_[i.dst] = Loc{reg, {}, !(guest_ & (1u << reg))};  // a guest register is never freed
    return true;
  }

  //! Where `i` computes its chunk: straight into the guest's destination
  //! register when its value goes only to the instruction's (direct) write
  //! of a low register, in pass 0, and the caller's sequence reads every
  //! source before it writes its result (`reads_first`); else a scratch
  //! register. Saves the copy and a scratch register the stub would spill.
  int result_register(const Inst& i, int pass, bool reads_first) {
    if (direct_write_ && pass == 0 && reads_first && write_src_ == i.dst && write_reg_ < 16 &&
        last_use_[i.dst] == write_index_) {
      result_in_destination_ = true;
      return write_reg_;
    }
    return alloc();
  }

  bool lower(const Inst& i, int pass, int off, int width) {
    switch (i.op) {
      case Op::kAdvanceRip:
        return true;  // after every pass
      case Op::kReadVec:
        if (i.reg < 16 && pass == 0) loc_[i.dst] = Loc{i.reg, {}, false};
        else loc_[i.dst] = Loc{-1, c_.state(state_offset::zmm(i.reg) + off), false};
        return true;
      case Op::kLoad:
      case Op::kLoadMasked:
        return lower_load(i, pass, width);
      case Op::kStoreMasked: {
        const int m = alloc(), t = alloc(), v = alloc();
        if (m < 0 || t < 0 || v < 0) return false;
        c_.load_into(x86::rsi, i.src[0]);  // before the mask takes rax
        if (pass == 0 && i.align > 1) {
          c_.a.test(x86::rsi, i.align - 1);
          c_.a.jnz(c_.general_protection_label());
        }
        const x86::Vec value = in_register(i.src[1], width, v);
        c_.store_masked_chunk(x86::ptr(x86::rsi, off), value, vec(m, width), vec(t, width),
                              i.src[2], i.elem, off);
        for (int r : {m, t, v}) release(r);
        return true;
      }
      case Op::kStore: {
        c_.load_into(x86::rsi, i.src[0]);
        if (pass == 0 && i.align > 1) {
          c_.a.test(x86::rsi, i.align - 1);
          c_.a.jnz(c_.general_protection_label());
        }
        const int t = alloc();
        if (t < 0) return false;
        c_.a.vmovdqu(x86::ptr(x86::rsi, off), in_register(i.src[1], width, t));
        release(t);
        return true;
      }
      case Op::kLoadBroadcast: {
        const int r = alloc();
        if (r < 0) return false;
        c_.load_into(x86::rsi, i.src[0]);
        const x86::Vec v = vec(r, width);
        switch (i.imm) {
          case 1: c_.a.vpbroadcastb(v, x86::byte_ptr(x86::rsi)); break;
          case 2: c_.a.vpbroadcastw(v, x86::word_ptr(x86::rsi)); break;
          case 4: c_.a.vpbroadcastd(v, x86::dword_ptr(x86::rsi)); break;
          case 8: c_.a.vpbroadcastq(v, x86::qword_ptr(x86::rsi)); break;
          case 16:
            if (width == 16) c_.a.vmovdqu(v, x86::ptr(x86::rsi));
            else c_.a.vbroadcasti128(v, x86::ptr(x86::rsi));
            break;
          default: c_.a.vmovdqu(v, x86::ptr(x86::rsi)); break;
        }
        return result(i, r);
      }
      case Op::kBroadcastGpr: {
        // The GPR value lives in the block; broadcast straight from there.
        const int r = alloc();
        if (r < 0) return false;
        x86::Mem m = c_.value(i.src[0]);
        const int eb = ir::elem_bytes(i.elem);
        m.setSize(uint32_t(eb));
        static const asmjit::InstId kBroadcast[] = {xi::kIdVpbroadcastb, xi::kIdVpbroadcastw, 0,
                                                    xi::kIdVpbroadcastd, 0, 0, 0, xi::kIdVpbroadcastq};
        c_.a.emit(kBroadcast[eb - 1], vec(r, width), m);
        return result(i, r);
      }
      case Op::kZeroVec: {
        const int r = alloc();
        if (r < 0) return false;
        c_.a.vpxor(vec(r, 16), vec(r, 16), vec(r, 16));
        return result(i, r);
      }
      case Op::kSelect:
        return lower_select(i, off, width);
      case Op::kTruncate:
      case Op::kTruncSatS:
      case Op::kTruncSatU:
        return lower_narrow_op(i, pass);
      case Op::kInsertLane:
        return lower_insert_lane_op(i, off, width);
      case Op::kWriteVec: {
        if (32 * pass >= i.bits / 8) return true;  // no chunk here (a narrowed result)
        const int t = alloc();
        if (t < 0) return false;
        const x86::Vec v = in_register(i.src[0], width, t);
        if (pass == 0 && direct_write_) {
          if (i.reg >= 16) c_.a.vmovdqu(c_.state(state_offset::zmm(i.reg)), v);
          // Computed there already (a VEX write, which zeroed the rest of
          // the register); a plain copy of the register to itself still
          // zeroes bits 255:width.
          else if (!result_in_destination_) c_.a.vmovdqa(vec(i.reg, width), v);
        } else if (pass == 0) {
          // Held until every pass is done: a later pass can still fault
          // (an unmasked FP exception), and a fault must find the
          // destination as it was.
          const int hold = alloc();
          if (hold < 0) return false;
          c_.a.vmovdqa(vec(hold, width), v);
          held_reg_ = hold;
          held_width_ = width;
          held_dst_ = i.reg;
        } else {
          c_.a.vmovdqu(c_.state(state_offset::zmm(i.reg) + off), v);
        }
        release(t);
        return true;
      }
      default:
        if (is_mask_compare(i.op)) return lower_mask_compare(i, pass, off, width);
        if (is_rotate(i.op)) return lower_rotate_op(i, pass, width);
        if (ChunkLowering chunked; chunk_lowering(i, chunked))
          return lower_chunk_op(i, chunked, width);
        if (chunkwise_shuffle_id(i)) return lower_shuffle_op(i, pass, off, width);
        return is_float_elementwise(i.op) || i.op == Op::kCmpF ? lower_float_op(i, pass, off, width)
                                                               : lower_integer_op(i, pass, width);
    }
  }

  bool lower_load(const Inst& i, int pass, int width) {
    const int passes = bits_ <= 128 ? 1 : bits_ / 256;
    if (pass == 0 && i.op == Op::kLoadMasked && ir::elem_bytes(i.elem) < 4)
      return lower_load_masked_narrow(i, width);
    if (pass == 0) {
      // Every chunk now, in address order, before anything is written.
      c_.load_into(x86::rsi, i.src[0]);
      if (i.align > 1) {
        c_.a.test(x86::rsi, i.align - 1);
        c_.a.jnz(c_.general_protection_label());
      }
      for (int q = 0; q < passes; ++q) {
        const int r = alloc();
        if (r < 0) return false;
        hoisted_[i.dst][q] = r;
        if (i.op == Op::kLoad) {
          c_.a.vmovdqu(vec(r, width), x86::ptr(x86::rsi, 32 * q));
          continue;
        }
        // Masked: zero in the masked-off elements, which are not touched.
        const int m = alloc(), t = alloc();
        if (m < 0 || t < 0) return false;
        c_.expand_mask(vec(m, width), vec(t, width), i.src[1], i.elem, 32 * q);
        if (ir::elem_bytes(i.elem) == 8) c_.a.vpmaskmovq(vec(r, width), vec(m, width), x86::ptr(x86::rsi, 32 * q));
        else c_.a.vpmaskmovd(vec(r, width), vec(m, width), x86::ptr(x86::rsi, 32 * q));
        release(m);
        release(t);
      }
    }
    loc_[i.dst] = Loc{hoisted_[i.dst][pass], {}, true};
    return true;
  }

  //! Byte and word masked loads (AVX2 has no masked access at that grain),
  //! as the memory form does them: nothing touched when no element is
  //! enabled; one whole load and a lane-mask AND when the access stays in
  //! one page (the instruction touches that page anyway); else element by
  //! element into the value's slot. Every chunk is loaded here, in pass 0.
  bool lower_load_masked_narrow(const Inst& i, int width) {
    const int passes_n = passes(), eb = ir::elem_bytes(i.elem), bytes = int(i.imm);
    const int count = bytes / eb;
    int h[2] = {-1, -1};
    for (int q = 0; q < passes_n; ++q)
      if ((h[q] = hoisted_[i.dst][q] = alloc()) < 0) return false;
    const int m = alloc(), t = alloc();
    if (m < 0 || t < 0) return false;
    asmjit::Label none = c_.a.newLabel(), slow = c_.a.newLabel(), done = c_.a.newLabel();
    c_.load_into(x86::rsi, i.src[0]);
    if (i.align > 1) {
      c_.a.test(x86::rsi, i.align - 1);
      c_.a.jnz(c_.general_protection_label());
    }
    c_.a.mov(x86::rcx, c_.value(i.src[1]));
    if (count < 64) {
      c_.a.mov(x86::rdx, count >= 64 ? ~0ull : (1ull << count) - 1);
      c_.a.and_(x86::rcx, x86::rdx);
    }
    c_.a.test(x86::rcx, x86::rcx);
    c_.a.jz(none);
    c_.a.mov(x86::eax, x86::esi);
    c_.a.and_(x86::eax, 4095);
    c_.a.cmp(x86::eax, 4096 - bytes);
    c_.a.ja(slow);
    for (int q = 0; q < passes_n; ++q) {
      c_.expand_mask(vec(m, width), vec(t, width), i.src[1], i.elem, 32 * q);
      c_.a.vpand(vec(h[q], width), vec(m, width), x86::ptr(x86::rsi, 32 * q));
    }
    c_.a.jmp(done);
    c_.a.bind(slow);
    const x86::Mem slot = c_.value(i.dst);
    c_.a.vpxor(vec(t, 16), vec(t, 16), vec(t, 16));
    for (int q = 0; q < passes_n; ++q) {
      x86::Mem part = slot;
      part.addOffset(32 * q);
      c_.a.vmovdqu(part, vec(t, width));
    }
    copy_enabled_elements(c_, /*store=*/false, slot, eb, count, i.src[1]);
    for (int q = 0; q < passes_n; ++q) {
      x86::Mem part = slot;
      part.addOffset(32 * q);
      c_.a.vmovdqu(vec(h[q], width), part);
    }
    c_.a.jmp(done);
    c_.a.bind(none);
    for (int q = 0; q < passes_n; ++q) c_.a.vpxor(vec(h[q], 16), vec(h[q], 16), vec(h[q], 16));
    c_.a.bind(done);
    release(m);
    release(t);
    loc_[i.dst] = Loc{h[0], {}, true};
    return true;
  }

  bool lower_select(const Inst& i, int off, int width) {
    const int m = alloc(), t = alloc(), r = alloc();
    if (m < 0 || t < 0 || r < 0) return false;
    c_.expand_mask(vec(m, width), vec(t, width), i.src[0], i.elem, off);
    const x86::Vec other = in_register(i.src[2], width, r);
    // vpblendvb takes its second source where the mask byte's top bit is set.
    c_.a.emit(xi::kIdVpblendvb, vec(r, width), other, operand(i.src[1], width), vec(m, width));
    release(m);
    release(t);
    return result(i, r);
  }

  bool lower_integer_op(const Inst& i, int pass, int width) {
    const asmjit::InstId id = integer_native_id(i);
    // One instruction; only a first source in memory is loaded into the
    // result register before it, which the destination must not be then.
    const int r = result_register(i, pass, i.op == Op::kAbs || loc_[i.src[0]].reg >= 0);
    if (r < 0) return false;
    const x86::Vec v = vec(r, width);
    const asmjit::Imm imm(i.imm & 0xff);
    switch (i.op) {
      case Op::kAbs:
        c_.a.emit(id, v, operand(i.src[0], width));
        break;
      case Op::kShlImm: case Op::kShrImm: case Op::kSarImm: case Op::kByteShlImm:
      case Op::kByteShrImm:
        c_.a.emit(id, v, in_register(i.src[0], width, r), imm);
        break;
      default:
        c_.a.emit(id, v, in_register(i.src[0], width, r), operand(i.src[1], width));
        break;
    }
    return result(i, r);
  }

  //! Compares into a mask: each pass adds its chunk's bits to the mask
  //! value's slot; the last applies the complemented predicates.
  bool lower_mask_compare(const Inst& i, int pass, int off, int width) {
    const int v = alloc(), a = alloc(), b = alloc(), bias = alloc();
    if (v < 0 || a < 0 || b < 0 || bias < 0) return false;
    // The sources are changed in place: copies, never the guest's registers.
    for (auto [s, r] : {std::pair{i.src[0], a}, std::pair{i.src[1], b}}) {
      const Loc& l = loc_[s];
      if (l.reg >= 0) c_.a.vmovdqa(vec(r, width), vec(l.reg, width));
      else c_.a.vmovdqu(vec(r, width), l.mem);
    }
    const MaskCompareRegs regs{vec(v, width), vec(a, width), vec(b, width), vec(bias, width)};
    emit_mask_compare_chunk(c_, i, off, regs);
    const x86::Mem dst = c_.value(i.dst);
    if (pass == 0) c_.a.mov(dst, x86::rax);
    else c_.a.or_(dst, x86::rax);
    if (pass == passes() - 1) emit_mask_compare_finish(c_, i, dst);
    for (int r : {v, a, b, bias}) release(r);
    return true;
  }

  int passes() const { return bits_ <= 128 ? 1 : bits_ / 256; }

  //! Finds the instruction's vector write (write_index_, write_src_,
  //! write_reg_) and sets direct_write_: whether pass 0 may write the
  //! destination's low chunk straight away, with no register holding it to
  //! the end. It may when the instruction writes one vector, last (nothing
  //! after it reads the old value), and nothing in a later pass can fault
  //! (no FP op, no store), so no fault finds the destination half written,
  //! and no later pass reads a register's low chunk (a lane insert does).
  void find_direct_write() {
    int writes = 0;
    bool after_write = false;
    for (size_t k = 0; k < f_.insts.size(); ++k) {
      const Inst& i = f_.insts[k];
      if (i.op == Op::kWriteVec) {
        ++writes;
        after_write = true;
        write_index_ = int(k);
        write_src_ = i.src[0];
        write_reg_ = i.reg;
        continue;
      }
      if (after_write && !is_scalar_side(i.op) && i.op != Op::kAdvanceRip) return;
      // A lane insert reads its lane's register (chunk 0) in a later pass.
      if (i.op == Op::kInsertLane && passes() > 1) return;
      if (passes() > 1 && (is_float_elementwise(i.op) || i.op == Op::kCmpF || i.op == Op::kStore ||
                           i.op == Op::kStoreMasked))
        return;
    }
    direct_write_ = writes == 1;
  }

  //! Rotates: the memory form's chunk body, with the sources read in place.
  //! Only the registers the rotate uses are taken (each one taken is a
  //! guest register the stub must spill): the others alias `out`.
  bool lower_rotate_op(const Inst& i, int pass, int width) {
    const RotateUses uses = rotate_uses(i);
    // emit_rotate_chunk writes `out` last, after reading every source.
    const int out = result_register(i, pass, true);
    if (out < 0) return false;
    std::array<int, 6> taken{};
    taken.fill(-1);
    const auto take = [&](int slot, bool needed) {
      if (!needed) return true;
      taken[size_t(slot)] = alloc();
      return taken[size_t(slot)] >= 0;
    };
    enum { kA, kB, kHi, kLo, kN, kRest };
    if (!take(kA, loc_[i.src[0]].reg < 0) || !take(kB, uses.b && loc_[i.src[1]].reg < 0) ||
        !take(kHi, uses.hi_lo) || !take(kLo, uses.hi_lo) || !take(kN, uses.n_rest) ||
        !take(kRest, uses.n_rest))
      return false;
    const auto reg = [&](int slot) {
      return vec(taken[size_t(slot)] >= 0 ? taken[size_t(slot)] : out, width);
    };
    const x86::Vec va = in_register(i.src[0], width, taken[kA]);
    const x86::Vec vb = uses.b ? in_register(i.src[1], width, taken[kB]) : reg(kB);
    emit_rotate_chunk(c_, i, {vec(out, width), va, vb, reg(kHi), reg(kLo), reg(kN), reg(kRest)});
    for (int r : taken)
      if (r >= 0) release(r);
    return result(i, out);
  }

  //! Ops AVX2 computes with a short sequence (ChunkLowering): the memory
  //! form's sequence on registers taken here, the sources copied into them
  //! (the sequence may change its sources; a move between registers costs
  //! next to nothing).
  bool lower_chunk_op(const Inst& i, const ChunkLowering& chunked, int width) {
    std::array<int, 9> taken;
    taken.fill(-1);
    int n = 0;
    const auto take = [&] {
      const int r = alloc();
      if (r >= 0) taken[size_t(n++)] = r;
      return r;
    };
    const int out = take();
    int src[3] = {-1, -1, -1};
    for (int s = 0; s < i.nsrc && s < 3; ++s) {
      if ((src[s] = take()) < 0) return false;
      const Loc& l = loc_[i.src[s]];
      if (l.reg >= 0)
        c_.a.vmovdqa(vec(src[s], width), vec(l.reg, width));
      else
        c_.a.vmovdqu(vec(src[s], width), l.mem);
    }
    Chunk k{width, vec(out, width), vec(out, width), vec(out, width), vec(out, width), {}};
    if (src[0] >= 0) k.a = vec(src[0], width);
    if (src[1] >= 0) k.b = vec(src[1], width);
    if (src[2] >= 0) k.c = vec(src[2], width);
    for (int t = 0; t < chunked.temps; ++t)
      if ((k.temp_regs[t] = take()) < 0) return false;
    if (out < 0) return false;
    chunked.body(c_, k);
    for (int r : taken)
      if (r >= 0 && r != out) release(r);
    return result(i, out);
  }

  //! Narrowing: the whole result in pass 0 (see
  //! narrowing_has_register_lowering), each source chunk copied into a
  //! register of its own first (emit_narrow changes them).
  bool lower_narrow_op(const Inst& i, int pass) {
    if (pass > 0) return true;
    const ir::ValueId src = i.src[0];
    const int src_bits = f_.values[src].bits;
    const int chunks = src_bits > 256 ? 2 : 1, width = src_bits >= 256 ? 32 : 16;
    const Inst& def = f_.insts[size_t(definition(f_, src))];
    int r[2] = {-1, -1};
    for (int q = 0; q < chunks; ++q) {
      if ((r[q] = alloc()) < 0) return false;
      const x86::Vec into = vec(r[q], width);
      if (def.op == Op::kLoad) {
        c_.a.vmovdqa(into, vec(hoisted_[src][q], width));
      } else if (def.reg < 16 && q == 0) {
        c_.a.vmovdqa(into, vec(def.reg, width));
      } else {
        x86::Mem m = c_.state(state_offset::zmm(def.reg) + 32 * q);
        m.setSize(uint32_t(width));
        c_.a.vmovdqu(into, m);
      }
    }
    const int tmp = alloc();
    if (tmp < 0) return false;
    emit_narrow(c_, i, NarrowRegs{{x86::ymm(r[0]), x86::ymm(r[chunks - 1])}, x86::xmm(tmp)});
    release(tmp);
    if (chunks > 1) release(r[1]);
    return result(i, r[0]);
  }

  //! Lane insert, a chunk at a time as the memory form's: the lane's
  //! register (is_inserted_lane) where the lane covers the chunk, else the
  //! first source with the lane put in by vinserti128 where it lands.
  bool lower_insert_lane_op(const Inst& i, int off, int width) {
    const Inst& lane_def = f_.insts[size_t(definition(f_, i.src[1]))];
    const int lane_bytes = lane_def.bits / 8, lane_off = int(i.imm) * lane_bytes;
    const auto lane = [&](int bytes) -> asmjit::Operand {
      if (lane_def.reg < 16) return vec(lane_def.reg, bytes);
      x86::Mem m = c_.state(state_offset::zmm(lane_def.reg));
      m.setSize(uint32_t(bytes));
      return m;
    };
    const int r = alloc();
    if (r < 0) return false;
    const x86::Vec v = vec(r, width);
    if (lane_off <= off && off + width <= lane_off + lane_bytes) {  // the lane is the chunk
      const asmjit::Operand src = lane(width);
      if (src.isReg())
        c_.a.vmovdqa(v, src.as<x86::Vec>());
      else
        c_.a.vmovdqu(v, src.as<x86::Mem>());
    } else if (lane_off + lane_bytes <= off || off + width <= lane_off) {  // elsewhere
      const Loc& l = loc_[i.src[0]];
      if (l.reg >= 0)
        c_.a.vmovdqa(v, vec(l.reg, width));
      else
        c_.a.vmovdqu(v, l.mem);
    } else {
      c_.a.emit(xi::kIdVinserti128, v, in_register(i.src[0], width, r), lane(16),
                asmjit::Imm((lane_off - off) / 16));
    }
    return result(i, r);
  }

  //! As the memory form's lower_chunkwise: one VEX instruction per chunk,
  //! with the chunk's imm8 where the op takes one.
  bool lower_shuffle_op(const Inst& i, int pass, int off, int width) {
    const asmjit::InstId id = chunkwise_shuffle_id(i);
    asmjit::Imm imm;
    const bool with_imm = chunkwise_shuffle_imm(i, off, imm);
    // As lower_integer_op: one instruction, a first source in memory loaded
    // into the result register first.
    const int r = result_register(i, pass, i.nsrc == 1 || loc_[i.src[0]].reg >= 0);
    if (r < 0) return false;
    const x86::Vec v = vec(r, width);
    if (i.nsrc == 1) c_.a.emit(id, v, operand(i.src[0], width), imm);
    else if (with_imm) c_.a.emit(id, v, in_register(i.src[0], width, r), operand(i.src[1], width), imm);
    else c_.a.emit(id, v, in_register(i.src[0], width, r), operand(i.src[1], width));
    return result(i, r);
  }

  //! As the memory form's lower_elementwise: the instruction's own form with
  //! the IR's sources in its register roles, and inactive elements of a
  //! masked op replaced by 1.0 first so they raise no MXCSR flag.
  //! FP compares into a mask (CmpF) too: each pass adds its chunk's bits to
  //! the mask value's slot, as the memory form's lower_compare does.
  bool lower_float_op(const Inst& i, int pass, int off, int width) {
    const asmjit::InstId id = float_native_id(i);
    const int n = float_vector_operands(i);
    const bool masked = i.nsrc > n;
    const int r = alloc();
    if (r < 0) return false;
    std::array<asmjit::Operand, 3> src;
    std::array<int, 3> temp = {-1, -1, -1};
    for (int s = 0; s < n; ++s) {
      // The result register carries src0 (FMA accumulates into it); masked
      // ops need every source in a register of its own for the blend.
      if (s == 0 && (n == 3 || masked)) {
        const Loc& l = loc_[i.src[0]];
        if (l.reg >= 0) c_.a.vmovaps(vec(r, width), vec(l.reg, width));
        else c_.a.vmovups(vec(r, width), l.mem);
        src[0] = vec(r, width);
      } else if (masked) {
        if ((temp[s] = alloc()) < 0) return false;
        src[s] = in_register(i.src[s], width, temp[s]);
        if (loc_[i.src[s]].reg >= 0) {
          c_.a.vmovaps(vec(temp[s], width), src[s].as<x86::Vec>());
          src[s] = vec(temp[s], width);
        }
      } else if (s == 0) {
        src[0] = in_register(i.src[0], width, r);
      } else if (n == 3 && s == 1 && loc_[i.src[1]].reg < 0) {
        // The FMA's middle operand must be a register; only the last may be memory.
        if ((temp[1] = alloc()) < 0) return false;
        src[1] = in_register(i.src[1], width, temp[1]);
      } else {
        src[s] = operand(i.src[s], width);
      }
    }
    if (masked) {
      const bool f64 = ir::elem_bytes(i.elem) == 8;
      const int one = alloc(), lanes = alloc(), t = alloc();
      if (one < 0 || lanes < 0 || t < 0) return false;
      c_.a.vmovups(vec(one, width), c_.splat_constant(f64 ? 0x3ff0000000000000ull : 0x3f800000u, f64 ? 8 : 4));
      c_.expand_mask(vec(lanes, width), vec(t, width), i.src[n], i.elem, off);
      for (int s = 0; s < n; ++s) {
        const x86::Vec v = src[s].as<x86::Vec>();
        c_.a.emit(f64 ? xi::kIdVblendvpd : xi::kIdVblendvps, v, vec(one, width), v, vec(lanes, width));
      }
      release(one);
      release(lanes);
      release(t);
    }
    c_.with_rounding(i, [&] {
      if (i.op == Op::kCmpF) c_.a.emit(id, vec(r, width), src[0], src[1], asmjit::Imm(i.imm & 31));
      else if (n == 1) c_.a.emit(id, vec(r, width), src[0]);
      else if (n == 2) c_.a.emit(id, vec(r, width), src[0], src[1]);
      else c_.a.emit(id, vec(r, width), src[1], src[2]);
    });
    for (int s = 0; s < 3; ++s)
      if (temp[s] >= 0) release(temp[s]);
    if (i.op != Op::kCmpF) return result(i, r);
    const int eb = ir::elem_bytes(i.elem);
    if (eb == 8) c_.a.vmovmskpd(x86::eax, vec(r, width));
    else c_.a.vmovmskps(x86::eax, vec(r, width));
    if (off) c_.a.shl(x86::rax, off / eb);
    if (pass == 0) c_.a.mov(c_.value(i.dst), x86::rax);
    else c_.a.or_(c_.value(i.dst), x86::rax);
    release(r);
    return true;
  }

  //! A write narrower than 512 bits zeroes the rest of the register in the
  //! block (bits 511:256 of zmm0-15, or the tail of zmm16-31); done after
  //! every pass, when every read of the instruction is behind.
  void zero_upper_parts() {
    for (const Inst& i : f_.insts) {
      if (i.op != Op::kWriteVec || i.bits >= 512) continue;
      const int from = i.reg < 16 ? 32 : i.bits / 8;
      int t = alloc();
      if (t < 0) t = 15;  // cannot happen: every pass released its registers
      c_.a.vpxor(vec(t, 16), vec(t, 16), vec(t, 16));
      for (int o = from; o < 64;) {
        const int n = 64 - o >= 32 && o % 32 == 0 ? 32 : 16;
        c_.a.vmovdqu(c_.state(state_offset::zmm(i.reg) + o), vec(t, n));
        o += n;
      }
      release(t);
    }
  }

  EmitContext& c_;
  const ir::Function& f_;
  const int bits_;
  uint16_t guest_ = 0, free_ = 0;
  int held_reg_ = -1, held_width_ = 32, held_dst_ = 0;  //!< the live destination's value
  bool direct_write_ = false;  //!< find_direct_write()
  //! The instruction's vector write (set by find_direct_write()).
  int write_index_ = -1, write_reg_ = -1;
  bool result_in_destination_ = false;  //!< result_register() chose the destination
  ir::ValueId write_src_ = ir::kNoValue;
  std::array<int, kMaxValues> last_use_;
  std::array<int, kMaxValues> scalar_pass_;  //!< the pass a scalar-side op runs in
  std::array<Loc, kMaxValues> loc_;
  std::array<std::array<int, 2>, kMaxValues> hoisted_{};
};

}  // namespace

bool compile_register_form(const ir::Function& f, bool callable, CompiledCode& out,
                           RegisterFormUse& use, std::string& why) {
  use = {};
  int bits = 0;
  for (const Inst& i : f.insts)
    if (ir::op_result_kind(i.op) == ir::Kind::kVec || i.op == Op::kWriteVec) bits = std::max<int>(bits, i.bits);
  const char* reason = nullptr;
  for (const Inst& i : f.insts) {
    if (is_narrowing_part(f, i)) {
      if (narrowing_has_register_lowering(f, i)) continue;
      why = "no register lowering: narrowing";
      return false;
    }
    if (i.bits != bits && is_inserted_lane(f, i)) continue;
    if (!has_register_lowering(i, bits, &reason)) {
      why = std::string("no register lowering: ") + (reason ? reason : ir::op_name(i.op));
      return false;
    }
  }
  asmjit::CodeHolder code;
  code.init(asmjit::Environment::host());
  x86::Assembler a(&code);
  EmitContext c(a, f);
  if (callable) {
    a.vstmxcsr(c.state(state_offset::kHostSave));
    a.vldmxcsr(c.state(state_offset::kMxcsr));
    for (int r = 0; r < 16; ++r) a.vmovdqu(x86::ymm(r), c.state(state_offset::zmm(r)));
  }
  RegisterLowering lowering(c, f, bits);
  if (!lowering.run(use, why)) return false;
  if (callable) {
    // Only the registers it writes: the others served as scratch.
    for (int r = 0; r < 16; ++r)
      if (use.low_written >> r & 1) a.vmovdqu(c.state(state_offset::zmm(r)), x86::ymm(r));
    a.vstmxcsr(c.state(state_offset::kMxcsr));
    a.vldmxcsr(c.state(state_offset::kHostSave));
  }
  return finish_translation(c, code, out, why);
}

}  // namespace avx512emu::jit
