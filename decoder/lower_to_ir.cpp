// Owns the generic lowering steps: operand reads (register, memory, broadcast,
// fault-suppressed masked loads), the per-form glue, merge/zero masking,
// upper-bit zeroing and the RIP advance. No instruction has its own code here:
// what an instruction computes comes from its semantics-table row.
#include "lower_to_ir.h"

#include <algorithm>

#include "semantics_table.h"

namespace avx512emu {
namespace {

using ir::Elem;
using ir::Inst;
using ir::Op;
using ir::ValueId;

int mask_width_of(Elem e) {
  return ir::elem_bytes(e) * 8;
}

class Lowerer {
 public:
  Lowerer(const DecodedInsn& d, const SemanticsRow& row, ir::Function& f)
      : d_(d), row_(row), b_(f) {}

  bool run(std::string& error);

 private:
  // ---- Small builders ------------------------------------------------------
  ValueId emit(Inst i) { return b_.emit(i); }
  Inst inst(Op op, uint16_t bits, Elem e) const {
    Inst i;
    i.op = op;
    i.bits = bits;
    i.elem = e;
    i.elem2 = e;
    return i;
  }
  static void add_src(Inst& i, ValueId v) { i.src[i.nsrc++] = v; }

  ValueId read_vec(uint8_t reg, uint16_t bits) {
    Inst i = inst(Op::kReadVec, bits, row_.elem);
    i.reg = reg;
    return emit(i);
  }
  ValueId read_kreg(uint8_t reg) {
    Inst i = inst(Op::kReadMask, 64, row_.elem);
    i.reg = reg;
    return emit(i);
  }
  ValueId zero_vec(uint16_t bits) { return emit(inst(Op::kZeroVec, bits, row_.elem)); }
  ValueId const_mask(uint64_t m) {
    Inst i = inst(Op::kConstMask, 64, row_.elem);
    i.imm = int64_t(m);
    return emit(i);
  }
  //! The {k} operand, read once; kNoValue when the instruction is unmasked.
  ValueId opmask() {
    if (!d_.opmask) return ir::kNoValue;
    if (mask_ == ir::kNoValue) mask_ = read_kreg(d_.opmask);
    return mask_;
  }
  ValueId address(const Operand& o) {
    Inst i = inst(Op::kAddress, 64, row_.elem);
    i.mem = o.mem;
    i.insn_length = d_.length;
    return emit(i);
  }
  uint8_t alignment(uint16_t bytes) const {
    return (row_.flags & kRowAligned) ? uint8_t(std::min<int>(bytes, 64)) : 0;
  }

  //! True for the shuffles and permutes: a destination element may come from
  //! any source element, so a masked-off destination element says nothing
  //! about which source bytes are needed. The SDM classes these "no fault
  //! suppression": the whole memory operand is read whatever the mask.
  static bool reads_whole_source(Op op) {
    switch (op) {
      case Op::kShufb:
      case Op::kShufImm:
      case Op::kShufWordsLo:
      case Op::kShufWordsHi:
      case Op::kShuf2Imm:
      case Op::kPermilVar:
      case Op::kSadBW:
      case Op::kDbSadBW:
      case Op::kUnpackLo:
      case Op::kUnpackHi:
      case Op::kAlignR:
      case Op::kPermIdx:
      case Op::kPerm4x64Imm:
      case Op::kPerm2:
      case Op::kShufLanes:
      case Op::kValign:
      case Op::kPackSS:
      case Op::kPackUS:
      case Op::kConflict:  // element i depends on every element before it
        return true;
      default:
        return false;
    }
  }

  //! Reads a vector source operand as a `bits`-wide value with element type
  //! `e`. Memory sources honour {1toN} broadcast and, under {k}, fault
  //! suppression: masked-off elements are never touched.
  ValueId read_source(const Operand& o, uint16_t bits, Elem e) {
    if (o.kind == OperandKind::kVec) return read_vec(o.reg, std::max<uint16_t>(o.bits, 128));
    const ValueId addr = address(o);
    const ValueId fault_mask = reads_whole_source(row_.op) ? ir::kNoValue : opmask();
    if (d_.broadcast) {
      Inst i = inst(Op::kLoadBroadcast, bits, e);
      add_src(i, addr);
      if (fault_mask != ir::kNoValue) add_src(i, fault_mask);
      i.imm = o.mem.bytes;
      return emit(i);
    }
    const uint16_t load_bits = std::max<uint16_t>(uint16_t(o.mem.bytes * 8), 128);
    Inst i = inst(fault_mask != ir::kNoValue ? Op::kLoadMasked : Op::kLoad, load_bits, e);
    add_src(i, addr);
    if (fault_mask != ir::kNoValue) add_src(i, fault_mask);
    i.imm = o.mem.bytes;
    i.align = alignment(o.mem.bytes);
    return emit(i);
  }

  //! Reads a GPR operand (all 64 bits), or `bytes` from a memory operand,
  //! zero-extended: the integer source of vpinsr* and vcvtsi2s*.
  ValueId read_gpr_or_memory(const Operand& o, int bytes, Elem e) {
    if (o.kind == OperandKind::kGpr) {
      Inst r = inst(Op::kReadGpr, 64, e);
      r.reg = o.reg;
      return emit(r);
    }
    Inst ld = inst(Op::kLoadGpr, 64, e);
    add_src(ld, address(o));
    ld.imm = bytes;
    return emit(ld);
  }

  //! Reads a source operand that is one whole value rather than elements,
  //! such as the xmm/m128 count of vpsllw: no broadcast, no fault suppression.
  ValueId read_whole(const Operand& o) {
    if (o.kind == OperandKind::kVec) return read_vec(o.reg, std::max<uint16_t>(o.bits, 128));
    Inst i = inst(Op::kLoad, std::max<uint16_t>(uint16_t(o.mem.bytes * 8), 128), Elem::kI64);
    add_src(i, address(o));
    i.imm = o.mem.bytes;
    return emit(i);
  }

  //! Writes `value` (elements of type `e`, `bits` wide) to the destination
  //! operand with the generic merge/zero masking.
  void write_dest(const Operand& dst, ValueId value, uint16_t bits, Elem e, bool scalar = false,
                  ValueId upper = ir::kNoValue) {
    if (dst.kind == OperandKind::kMem) {
      const ValueId addr = address(dst);
      Inst i = inst(opmask() != ir::kNoValue ? Op::kStoreMasked : Op::kStore, dst.mem.bytes * 8, e);
      add_src(i, addr);
      add_src(i, value);
      if (opmask() != ir::kNoValue) add_src(i, opmask());
      i.align = alignment(dst.mem.bytes);
      pending_writes_.push_back(i);
      return;
    }
    const uint16_t value_bits = b_.function().values[value].bits;
    if (row_.mask == MaskClass::kMergeZero && (opmask() != ir::kNoValue || scalar)) {
      const ValueId m = opmask() != ir::kNoValue ? opmask() : const_mask(~0ull);
      const ValueId off = d_.zeroing ? zero_vec(value_bits) : read_vec(dst.reg, value_bits);
      Inst sel = inst(Op::kSelect, value_bits, e);
      sel.scalar = scalar;
      add_src(sel, m);
      add_src(sel, value);
      add_src(sel, off);
      if (scalar) add_src(sel, upper == ir::kNoValue ? value : upper);
      value = emit(sel);
    }
    Inst w = inst(Op::kWriteVec, bits, e);
    w.reg = dst.reg;
    add_src(w, value);
    pending_writes_.push_back(w);
  }

  void write_mask(uint8_t reg, ValueId value, uint16_t bits) {
    Inst w = inst(Op::kWriteMask, bits, row_.elem);
    w.reg = reg;
    add_src(w, value);
    pending_writes_.push_back(w);
  }

  //! Element-wise op with the row's op; FP ops get the active-element mask
  //! and the instruction's rounding control.
  ValueId apply(Op op, uint16_t bits, std::initializer_list<ValueId> srcs, int64_t imm = 0) {
    Inst i = inst(op, bits, row_.elem);
    i.elem2 = row_.elem2;
    i.scalar = (row_.flags & kRowScalar) != 0;
    i.imm = imm;
    for (ValueId v : srcs) add_src(i, v);
    const bool fp =
        ir::elem_is_float(row_.elem) || ir::elem_is_float(row_.elem2) || op == Op::kCvtI32F32;
    if (fp && ir::op_fixed_operands(op) < 0) {
      i.rounding = d_.rounding;
      i.sae = d_.sae;
      if (opmask() != ir::kNoValue) add_src(i, opmask());
    }
    return emit(i);
  }

  int64_t immediate(int index) const {
    if (row_.imm >= 0) return row_.imm;
    return d_.ops[index].kind == OperandKind::kImm ? int64_t(d_.ops[index].imm & 0xff) : 0;
  }
  bool has_imm(int index) const {
    return index < d_.operand_count && d_.ops[index].kind == OperandKind::kImm;
  }

  //! Element 0 of `v` moved to element `index` of a 128-bit value whose
  //! other elements come from `base` (byte shifts then a one-bit Select).
  ValueId place_element(ValueId v, int index, ValueId base, Elem e) {
    const int eb = ir::elem_bytes(e);
    Inst shl = inst(Op::kByteShlImm, 128, Elem::kI8);
    add_src(shl, v);
    shl.imm = index * eb;
    Inst sel = inst(Op::kSelect, 128, e);
    add_src(sel, const_mask(1ull << index));
    add_src(sel, emit(shl));
    add_src(sel, base);
    return emit(sel);
  }
  //! Element `index` of the 128-bit value `v` moved to element 0.
  ValueId element_to_low(ValueId v, int index, Elem e) {
    Inst shr = inst(Op::kByteShrImm, 128, Elem::kI8);
    add_src(shr, v);
    shr.imm = index * ir::elem_bytes(e);
    return emit(shr);
  }

  bool lower_form(std::string& error);
  bool lower_mask_form(std::string& error);

  const DecodedInsn& d_;
  const SemanticsRow& row_;
  ir::Builder b_;
  ValueId mask_ = ir::kNoValue;
  std::vector<Inst> pending_writes_;  // emitted last: writes follow every read
};

Op immediate_shift_of(Op by_vector) {
  switch (by_vector) {
    case Op::kShlVec:
      return Op::kShlImm;
    case Op::kShrVec:
      return Op::kShrImm;
    default:
      return Op::kSarImm;
  }
}

bool Lowerer::lower_form(std::string& error) {
  const Operand* o = d_.ops;
  const uint16_t vl = d_.vector_bits;
  const Elem e = row_.elem;
  const bool scalar = (row_.flags & kRowScalar) != 0;
  switch (row_.form) {
    case Form::kMove: {
      const uint16_t bits = vl;
      const ValueId v = read_source(o[1], bits, e);
      write_dest(o[0], v, bits, e);
      return true;
    }
    case Form::kMoveScalar: {
      const uint16_t eb = uint16_t(ir::elem_bytes(e) * 8);
      if (d_.operand_count == 3) {  // register merge: element 0 from src2, upper from src1
        const ValueId upper = read_vec(o[1].reg, 128);
        const ValueId low = read_vec(o[2].reg, 128);
        write_dest(o[0], low, 128, e, /*scalar=*/true, upper);
      } else if (o[0].kind == OperandKind::kMem) {
        write_dest(o[0], read_vec(o[1].reg, 128), eb, e);
      } else {  // load: upper elements zero
        const ValueId v = read_source(o[1], 128, e);
        write_dest(o[0], v, 128, e, /*scalar=*/true, v);
      }
      return true;
    }
    case Form::kMoveGpr: {
      const uint16_t eb = uint16_t(ir::elem_bytes(e) * 8);
      ValueId v;
      if (o[0].kind == OperandKind::kVec) {
        if (o[1].kind == OperandKind::kGpr) {
          Inst r = inst(Op::kReadGpr, 64, e);
          r.reg = o[1].reg;
          Inst g = inst(Op::kGprToVec, 128, e);
          add_src(g, emit(r));
          g.imm = eb;
          v = emit(g);
        } else if (o[1].kind == OperandKind::kMem) {
          v = read_source(o[1], 128, e);
        } else {  // vmovq xmm, xmm: keep the low qword, zero the rest
          Inst t = inst(Op::kVecToGpr, 64, e);
          add_src(t, read_vec(o[1].reg, 128));
          t.imm = 64;
          Inst g = inst(Op::kGprToVec, 128, e);
          add_src(g, emit(t));
          g.imm = 64;
          v = emit(g);
        }
        write_dest(o[0], v, 128, e);
      } else if (o[0].kind == OperandKind::kGpr) {
        Inst t = inst(Op::kVecToGpr, 64, e);
        add_src(t, read_vec(o[1].reg, 128));
        t.imm = eb;
        Inst w = inst(Op::kWriteGpr, o[0].bits, e);
        w.reg = o[0].reg;
        add_src(w, emit(t));
        pending_writes_.push_back(w);
      } else {
        write_dest(o[0], read_vec(o[1].reg, 128), eb, e);
      }
      return true;
    }
    case Form::kUnary: {
      const ValueId a = read_source(o[1], vl, e);
      write_dest(o[0], apply(row_.op, vl, {a}, has_imm(2) ? immediate(2) : row_.imm), vl, e);
      return true;
    }
    case Form::kShift:
      if (has_imm(2)) {
        const ValueId a = read_source(o[1], vl, e);
        write_dest(o[0], apply(immediate_shift_of(row_.op), vl, {a}, immediate(2)), vl, e);
        return true;
      }
      [[fallthrough]];
    case Form::kBinary: {
      const uint16_t bits = scalar ? 128 : vl;
      const ValueId a = read_vec(o[1].reg, std::max<uint16_t>(o[1].bits, 128));
      // elem2 is the second source's element type (vpack*, vcvtss2sd: wider or narrower).
      const ValueId bv =
          row_.form == Form::kShift ? read_whole(o[2]) : read_source(o[2], bits, row_.elem2);
      const int64_t imm = has_imm(3) ? immediate(3) : std::max<int16_t>(row_.imm, 0);
      const ValueId r = (row_.flags & kRowSwapSources) ? apply(row_.op, bits, {bv, a}, imm)
                                                       : apply(row_.op, bits, {a, bv}, imm);
      write_dest(o[0], r, bits, e, scalar);
      return true;
    }
    case Form::kPermute: {
      if (has_imm(2)) {
        const ValueId a = read_source(o[1], vl, e);
        write_dest(o[0], apply(Op::kPerm4x64Imm, vl, {a}, immediate(2)), vl, e);
      } else {
        const ValueId idx = read_vec(o[1].reg, vl);
        const ValueId table = read_source(o[2], vl, e);
        write_dest(o[0], apply(Op::kPermIdx, vl, {idx, table}), vl, e);
      }
      return true;
    }
    case Form::kPermuteInLane: {
      if (has_imm(2)) {
        const ValueId a = read_source(o[1], vl, e);
        write_dest(o[0], apply(Op::kShufImm, vl, {a}, immediate(2)), vl, e);
      } else {
        const ValueId a = read_vec(o[1].reg, vl);
        const ValueId idx = read_source(o[2], vl, e);
        write_dest(o[0], apply(row_.op, vl, {a, idx}), vl, e);
      }
      return true;
    }
    case Form::kTernary: {
      const ValueId a = read_vec(o[0].reg, vl);
      const ValueId bv = read_vec(o[1].reg, vl);
      const ValueId c = read_source(o[2], vl, e);
      write_dest(o[0], apply(row_.op, vl, {a, bv, c}, has_imm(3) ? immediate(3) : 0), vl, e);
      return true;
    }
    case Form::kFma: {
      const uint16_t bits = scalar ? 128 : vl;
      const ValueId a = read_vec(o[0].reg, bits);
      const ValueId bv = read_vec(o[1].reg, bits);
      const ValueId c = read_source(o[2], bits, e);
      const int order = (row_.flags & kRowFma132) ? 1 : (row_.flags & kRowFma213) ? 2 : 3;
      write_dest(o[0], apply(Op::kFma, bits, {a, bv, c}, row_.imm | (order << 2)), bits, e, scalar);
      return true;
    }
    case Form::kCompare: {
      const uint16_t bits = scalar ? 128 : vl;
      const ValueId a = read_vec(o[1].reg, bits);
      const ValueId bv = read_source(o[2], bits, e);
      ValueId m = apply(row_.op, bits, {a, bv}, immediate(3));
      if (opmask() != ir::kNoValue) {
        Inst k = inst(Op::kKAnd, 64, e);
        add_src(k, m);
        add_src(k, opmask());
        m = emit(k);
      }
      write_mask(o[0].reg, m, 64);
      return true;
    }
    case Form::kCompareFlags: {
      const ValueId a = read_vec(o[0].reg, 128);
      const ValueId bv = read_source(o[1], 128, e);
      Inst w = inst(Op::kWriteFlags, 64, e);
      add_src(w, apply(row_.op, 128, {a, bv}));
      pending_writes_.push_back(w);
      return true;
    }
    case Form::kBlend: {
      const ValueId a = read_vec(o[1].reg, vl);
      const ValueId bv = read_source(o[2], vl, e);
      const ValueId m = opmask() != ir::kNoValue ? opmask() : const_mask(~0ull);
      const ValueId off = d_.zeroing ? zero_vec(vl) : a;
      Inst sel = inst(Op::kSelect, vl, e);
      add_src(sel, m);
      add_src(sel, bv);
      add_src(sel, off);
      write_dest(o[0], emit(sel), vl, e);
      return true;
    }
    case Form::kPermute2: {
      const ValueId dst = read_vec(o[0].reg, vl);
      const ValueId src1 = read_vec(o[1].reg, vl);
      const ValueId src2 = read_source(o[2], vl, e);
      const bool index_is_dst = (row_.flags & kRowIndexIsDst) != 0;
      const ValueId r = index_is_dst ? apply(Op::kPerm2, vl, {dst, src1, src2})
                                     : apply(Op::kPerm2, vl, {src1, dst, src2});
      write_dest(o[0], r, vl, e);
      return true;
    }
    case Form::kBroadcast: {
      const int block = row_.imm > 0 ? row_.imm : ir::elem_bytes(e);
      ValueId v;
      if (o[1].kind == OperandKind::kGpr) {
        Inst r = inst(Op::kReadGpr, 64, e);
        r.reg = o[1].reg;
        Inst bc = inst(Op::kBroadcastGpr, vl, e);
        add_src(bc, emit(r));
        v = emit(bc);
      } else if (o[1].kind == OperandKind::kVec) {
        Inst bc = inst(Op::kBroadcastElem, vl, e);
        add_src(bc, read_vec(o[1].reg, 128));
        bc.imm = block;
        v = emit(bc);
      } else {
        Inst ld = inst(Op::kLoadBroadcast, vl, e);
        add_src(ld, address(o[1]));
        if (opmask() != ir::kNoValue) add_src(ld, opmask());
        ld.imm = block;
        v = emit(ld);
      }
      write_dest(o[0], v, vl, e);
      return true;
    }
    case Form::kExtract: {
      const uint16_t lane_bits =
          o[0].kind == OperandKind::kMem ? uint16_t(o[0].mem.bytes * 8) : o[0].bits;
      const ValueId src = read_vec(o[1].reg, vl);
      Inst x = inst(Op::kExtractLane, std::max<uint16_t>(lane_bits, 128), e);
      add_src(x, src);
      x.imm = immediate(2) & (vl / lane_bits - 1);
      write_dest(o[0], emit(x), lane_bits, e);
      return true;
    }
    case Form::kInsert: {
      const ValueId a = read_vec(o[1].reg, vl);
      const uint16_t lane_bits =
          o[2].kind == OperandKind::kMem ? uint16_t(o[2].mem.bytes * 8) : o[2].bits;
      // The lane is read whole: no element of it is masked off by {k}, which
      // applies to the destination's elements.
      ValueId lane;
      if (o[2].kind == OperandKind::kVec) {
        lane = read_vec(o[2].reg, lane_bits);
      } else {
        Inst ld = inst(Op::kLoad, lane_bits, e);
        add_src(ld, address(o[2]));
        ld.imm = o[2].mem.bytes;
        lane = emit(ld);
      }
      Inst ins = inst(Op::kInsertLane, vl, e);
      add_src(ins, a);
      add_src(ins, lane);
      ins.imm = immediate(3) & (vl / lane_bits - 1);
      write_dest(o[0], emit(ins), vl, e);
      return true;
    }
    case Form::kExtractElem: {
      const int eb = ir::elem_bytes(e);
      const int index = int(immediate(2)) & (16 / eb - 1);
      Inst t = inst(Op::kVecToGpr, 64, e);
      add_src(t, element_to_low(read_vec(o[1].reg, 128), index, e));
      t.imm = eb * 8;
      const ValueId v = emit(t);
      if (o[0].kind == OperandKind::kMem) {
        Inst st = inst(Op::kStore, uint16_t(eb * 8), e);
        add_src(st, address(o[0]));
        add_src(st, v);
        pending_writes_.push_back(st);
      } else {  // r32 (zero-extended to 64) or r64
        Inst w = inst(Op::kWriteGpr, o[0].bits, e);
        w.reg = o[0].reg;
        add_src(w, v);
        pending_writes_.push_back(w);
      }
      return true;
    }
    case Form::kMoveHalf: {
      if (o[0].kind == OperandKind::kMem) {  // store the qword
        Inst st = inst(Op::kStore, 64, e);
        add_src(st, address(o[0]));
        add_src(st, element_to_low(read_vec(o[1].reg, 128), row_.imm, e));
        pending_writes_.push_back(st);
        return true;
      }
      const ValueId base = read_vec(o[1].reg, 128);
      write_dest(o[0], place_element(read_whole(o[2]), row_.imm, base, e), 128, e);
      return true;
    }
    case Form::kInsertElem: {
      const int eb = ir::elem_bytes(e);
      const ValueId base = read_vec(o[1].reg, 128);
      const ValueId g = read_gpr_or_memory(o[2], eb, e);
      Inst v = inst(Op::kGprToVec, 128, e);
      add_src(v, g);
      v.imm = eb * 8;
      write_dest(o[0], place_element(emit(v), int(immediate(3)) & (16 / eb - 1), base, e), 128, e);
      return true;
    }
    case Form::kInsertPs: {
      const int imm = int(immediate(3));
      const ValueId base = read_vec(o[1].reg, 128);
      // The register form takes element imm[7:6]; the m32 form reads that one element.
      const ValueId src = o[2].kind == OperandKind::kVec
                              ? element_to_low(read_vec(o[2].reg, 128), (imm >> 6) & 3, e)
                              : read_whole(o[2]);
      const ValueId placed = place_element(src, (imm >> 4) & 3, base, e);
      Inst zero = inst(Op::kSelect, 128, e);
      add_src(zero, const_mask(~uint64_t(imm) & 0xf));
      add_src(zero, placed);
      add_src(zero, zero_vec(128));
      write_dest(o[0], emit(zero), 128, e);
      return true;
    }
    case Form::kConvertToGpr: {
      Inst cv = inst(Op::kCvtFInt, o[0].bits, e);
      cv.imm = row_.imm;
      cv.rounding = d_.rounding;
      cv.sae = d_.sae;
      add_src(cv, read_source(o[1], 128, e));
      Inst w = inst(Op::kWriteGpr, o[0].bits, e);
      w.reg = o[0].reg;
      add_src(w, emit(cv));
      pending_writes_.push_back(w);
      return true;
    }
    case Form::kConvertFromGpr: {
      const ValueId upper = read_vec(o[1].reg, 128);
      const bool wide = o[2].kind == OperandKind::kGpr ? o[2].bits == 64 : o[2].mem.bytes == 8;
      const ValueId g = read_gpr_or_memory(o[2], wide ? 8 : 4, e);
      Inst cv = inst(Op::kCvtIntF, 128, e);
      cv.elem2 = wide ? Elem::kI64 : Elem::kI32;
      cv.scalar = true;
      cv.imm = row_.imm;
      cv.rounding = d_.rounding;
      cv.sae = d_.sae;
      add_src(cv, upper);
      add_src(cv, g);
      write_dest(o[0], emit(cv), 128, e);
      return true;
    }
    case Form::kWiden: {
      const int ratio = ir::elem_bytes(e) / ir::elem_bytes(row_.elem2);
      const uint16_t src_bits = uint16_t(vl / ratio);
      ValueId src;
      if (o[1].kind == OperandKind::kVec) {
        src = read_vec(o[1].reg, std::max<uint16_t>(src_bits, 128));
      } else if (d_.broadcast) {
        // {1toN}: the fault mask must not count elements past the
        // destination's, which a 128-bit load of a 64-bit source would.
        Inst ld = inst(Op::kLoadBroadcast, std::max<uint16_t>(src_bits, 128), row_.elem2);
        add_src(ld, address(o[1]));
        if (opmask() != ir::kNoValue) {
          Inst k = inst(Op::kKAnd, 64, e);
          add_src(k, opmask());
          add_src(k, const_mask(vl / (ir::elem_bytes(e) * 8) >= 64
                                    ? ~0ull
                                    : (1ull << (vl / (ir::elem_bytes(e) * 8))) - 1));
          add_src(ld, emit(k));
        }
        ld.imm = o[1].mem.bytes;
        src = emit(ld);
      } else {
        const ValueId addr = address(o[1]);
        Inst ld = inst(opmask() != ir::kNoValue ? Op::kLoadMasked : Op::kLoad,
                       std::max<uint16_t>(src_bits, 128), row_.elem2);
        add_src(ld, addr);
        if (opmask() != ir::kNoValue) add_src(ld, opmask());
        ld.imm = src_bits / 8;
        src = emit(ld);
      }
      write_dest(o[0], apply(row_.op, vl, {src}), vl, e);
      return true;
    }
    case Form::kNarrow: {
      const int ratio = ir::elem_bytes(row_.elem2) / ir::elem_bytes(e);
      const uint16_t dst_bits = uint16_t(vl / ratio);
      const ValueId src = read_source(o[1], vl, row_.elem2);
      const ValueId r =
          apply(row_.op, std::max<uint16_t>(dst_bits, 128), {src}, has_imm(2) ? immediate(2) : 0);
      write_dest(o[0], r, dst_bits, e);
      return true;
    }
    case Form::kVecToMask: {
      Inst m = inst(Op::kVecToMask, vl, e);
      add_src(m, read_vec(o[1].reg, vl));
      write_mask(o[0].reg, emit(m), 64);
      return true;
    }
    case Form::kMaskToVec: {
      Inst v = inst(Op::kMaskToVec, vl, e);
      add_src(v, read_kreg(o[1].reg));
      write_dest(o[0], emit(v), vl, e);
      return true;
    }
    case Form::kBroadcastMask: {
      Inst g = inst(Op::kMaskToGpr, uint16_t(ir::elem_bytes(row_.elem2) * 8), e);
      add_src(g, read_kreg(o[1].reg));
      Inst bc = inst(Op::kBroadcastGpr, vl, e);
      add_src(bc, emit(g));
      write_dest(o[0], emit(bc), vl, e);
      return true;
    }
    case Form::kCompress: {
      const ValueId src = read_vec(o[1].reg, vl);
      const ValueId m = opmask() != ir::kNoValue ? opmask() : const_mask(~0ull);
      Inst c = inst(Op::kCompress, vl, e);
      add_src(c, src);
      add_src(c, m);
      const ValueId packed = emit(c);
      Inst cm = inst(Op::kCompressMask, vl, e);
      add_src(cm, m);
      // Only the packed elements are written; the rest merge, zero, or (in
      // memory) stay untouched.
      mask_ = emit(cm);
      write_dest(o[0], packed, o[0].kind == OperandKind::kMem ? vl : vl, e);
      if (o[0].kind == OperandKind::kMem) {
        Inst& st = pending_writes_.back();
        st.op = Op::kStoreMasked;
        st.bits = vl;
        if (st.nsrc == 2) add_src(st, mask_);
      }
      return true;
    }
    case Form::kExpand: {
      const ValueId m = opmask() != ir::kNoValue ? opmask() : const_mask(~0ull);
      ValueId src;
      if (o[1].kind == OperandKind::kVec) {
        src = read_vec(o[1].reg, vl);
      } else {  // only popcount(k) elements are read from memory
        Inst cm = inst(Op::kCompressMask, vl, e);
        add_src(cm, m);
        Inst ld = inst(Op::kLoadMasked, vl, e);
        add_src(ld, address(o[1]));
        add_src(ld, emit(cm));
        ld.imm = vl / 8;
        src = emit(ld);
      }
      Inst x = inst(Op::kExpand, vl, e);
      add_src(x, src);
      add_src(x, m);
      write_dest(o[0], emit(x), vl, e);
      return true;
    }
    default:
      return lower_mask_form(error);
  }
}

bool Lowerer::lower_mask_form(std::string& error) {
  const Operand* o = d_.ops;
  const uint16_t width = uint16_t(mask_width_of(row_.elem));
  switch (row_.form) {
    case Form::kMaskBinary: {
      Inst k = inst(row_.op, width, row_.elem);
      add_src(k, read_kreg(o[1].reg));
      add_src(k, read_kreg(o[2].reg));
      write_mask(o[0].reg, emit(k), width);
      return true;
    }
    case Form::kMaskUnary: {
      Inst k = inst(row_.op, width, row_.elem);
      add_src(k, read_kreg(o[1].reg));
      k.imm = has_imm(2) ? int64_t(o[2].imm & 0xff) : 0;
      write_mask(o[0].reg, emit(k), width);
      return true;
    }
    case Form::kMaskTest: {
      Inst t = inst(row_.op, width, row_.elem);
      add_src(t, read_kreg(o[0].reg));
      add_src(t, read_kreg(o[1].reg));
      Inst w = inst(Op::kWriteFlags, 64, row_.elem);
      add_src(w, emit(t));
      pending_writes_.push_back(w);
      return true;
    }
    case Form::kMaskMove: {
      ValueId v;
      switch (o[1].kind) {
        case OperandKind::kMask:
          v = read_kreg(o[1].reg);
          break;
        case OperandKind::kGpr: {
          Inst r = inst(Op::kReadGpr, 64, row_.elem);
          r.reg = o[1].reg;
          Inst g = inst(Op::kGprToMask, width, row_.elem);
          add_src(g, emit(r));
          v = emit(g);
          break;
        }
        case OperandKind::kMem: {
          Inst ld = inst(Op::kLoadGpr, 64, row_.elem);
          add_src(ld, address(o[1]));
          ld.imm = width / 8;
          Inst g = inst(Op::kGprToMask, width, row_.elem);
          add_src(g, emit(ld));
          v = emit(g);
          break;
        }
        default:
          error = "unsupported kmov source";
          return false;
      }
      if (o[0].kind == OperandKind::kMask) {
        write_mask(o[0].reg, v, width);
      } else if (o[0].kind == OperandKind::kGpr) {
        Inst g = inst(Op::kMaskToGpr, width, row_.elem);
        add_src(g, v);
        Inst w = inst(Op::kWriteGpr, o[0].bits, row_.elem);
        w.reg = o[0].reg;
        add_src(w, emit(g));
        pending_writes_.push_back(w);
      } else {
        write_dest(o[0], v, width, row_.elem);
      }
      return true;
    }
    default:
      error = "form not lowered";
      return false;
  }
}

bool Lowerer::run(std::string& error) {
  for (int i = 0; i < d_.operand_count; ++i) {
    if (d_.ops[i].kind == OperandKind::kNone) {
      error = "operand kind not supported";
      return false;
    }
  }
  if (!lower_form(error)) return false;
  for (const Inst& w : pending_writes_) b_.emit(w);
  Inst adv = inst(Op::kAdvanceRip, 64, row_.elem);
  adv.imm = d_.length;
  b_.emit(adv);
  return true;
}

}  // namespace

bool lower_to_ir(const DecodedInsn& insn, ir::Function& out, std::string& error) {
  out = ir::Function{};
  const SemanticsRow* row = find_semantics(insn.mnemonic);
  if (!row) {
    error = std::string(insn.mnemonic) + ": no semantics row (not translated yet)";
    return false;
  }
  Lowerer lowerer(insn, *row, out);
  if (!lowerer.run(error)) {
    error = std::string(insn.mnemonic) + ": " + error;
    return false;
  }
  const std::string problem = ir::verify(out);
  if (!problem.empty()) {
    error = std::string(insn.mnemonic) + ": IR verifier: " + problem;
    return false;
  }
  return true;
}

}  // namespace avx512emu
