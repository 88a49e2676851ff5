// Owns the IR tables generated from AVX512EMU_IR_OPS, the printer and the verifier.
#include "ir.h"

#include <cinttypes>
#include <cstdio>

#include "cpu_state.h"

namespace avx512emu::ir {

namespace {
struct OpInfo {
  const char* name;
  Kind kind;
  int operands;
};
constexpr OpInfo kOpInfo[] = {
#define AVX512EMU_X(name, kind, n) {#name, Kind::kind, n},
    AVX512EMU_IR_OPS(AVX512EMU_X)
#undef AVX512EMU_X
};
}  // namespace

const char* op_name(Op op) { return kOpInfo[int(op)].name; }
Kind op_result_kind(Op op) { return kOpInfo[int(op)].kind; }
int op_fixed_operands(Op op) { return kOpInfo[int(op)].operands; }

const char* elem_name(Elem e) {
  static const char* const kNames[] = {"i8", "i16", "i32", "i64", "f32", "f64"};
  return kNames[int(e)];
}

bool Function::uses_fp() const {
  for (const Inst& i : insts)
    if (elem_is_float(i.elem) || elem_is_float(i.elem2) || i.op == Op::kCvtI32F32) return true;
  return false;
}

ValueId Builder::emit(Inst inst) {
  const Kind kind = op_result_kind(inst.op);
  if (kind != Kind::kNone) {
    inst.dst = ValueId(f_.values.size());
    const uint16_t bits = kind == Kind::kVec ? inst.bits : 64;
    f_.values.push_back({kind, bits});
  }
  f_.insts.push_back(inst);
  return inst.dst;
}

namespace {

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::kVec: return "v";
    case Kind::kMask: return "k";
    case Kind::kGpr: return "g";
    default: return "";
  }
}

const char* rounding_name(Rounding r) {
  switch (r) {
    case Rounding::kNearest: return "rn";
    case Rounding::kDown: return "rd";
    case Rounding::kUp: return "ru";
    case Rounding::kZero: return "rz";
    default: return "";
  }
}

bool is_state_write(Op op) {
  return op == Op::kWriteVec || op == Op::kWriteMask || op == Op::kWriteGpr ||
         op == Op::kWriteFlags || op == Op::kAdvanceRip || op == Op::kStore ||
         op == Op::kStoreMasked;
}

}  // namespace

std::string print(const Function& f) {
  std::string out;
  char buf[256];
  for (const Inst& i : f.insts) {
    std::string line = "  ";
    if (i.dst != kNoValue) {
      const ValueInfo& v = f.values[i.dst];
      std::snprintf(buf, sizeof buf, "%%%u:%s%u = ", i.dst, kind_name(v.kind), v.bits);
      line += buf;
    }
    line += op_name(i.op);
    line += '.';
    line += elem_name(i.elem);
    if (i.elem2 != i.elem &&
        (i.op == Op::kZeroExtend || i.op == Op::kSignExtend || i.op == Op::kTruncate ||
         i.op == Op::kTruncSatS || i.op == Op::kTruncSatU || i.op == Op::kPackSS ||
         i.op == Op::kPackUS)) {
      line += "<-";
      line += elem_name(i.elem2);
    }
    if (i.scalar) line += ".scalar";
    if (i.rounding != Rounding::kNone) {
      line += ".";
      line += rounding_name(i.rounding);
    }
    if (i.sae) line += ".sae";
    std::snprintf(buf, sizeof buf, " b%u", i.bits);
    line += buf;
    for (int s = 0; s < i.nsrc; ++s) {
      std::snprintf(buf, sizeof buf, "%s%%%u", s ? ", " : " ", i.src[s]);
      line += buf;
    }
    switch (i.op) {
      case Op::kReadVec: case Op::kWriteVec:
        std::snprintf(buf, sizeof buf, " zmm%u", i.reg); line += buf; break;
      case Op::kReadMask: case Op::kWriteMask:
        std::snprintf(buf, sizeof buf, " k%u", i.reg); line += buf; break;
      case Op::kReadGpr: case Op::kWriteGpr:
        std::snprintf(buf, sizeof buf, " r%u", i.reg); line += buf; break;
      case Op::kAddress:
        std::snprintf(buf, sizeof buf, " [%s%s%d + r%d*%u %+" PRId64 "]",
                      i.mem.segment == 1 ? "fs:" : i.mem.segment == 2 ? "gs:" : "",
                      i.mem.rip_relative ? "rip+len " : "r", i.mem.rip_relative ? i.insn_length : i.mem.base,
                      i.mem.index, i.mem.scale, i.mem.disp);
        line += buf;
        break;
      default: break;
    }
    if (i.align) {
      std::snprintf(buf, sizeof buf, " align%u", i.align);
      line += buf;
    }
    if (i.imm) {
      std::snprintf(buf, sizeof buf, " imm=0x%" PRIx64, uint64_t(i.imm));
      line += buf;
    }
    out += line + "\n";
  }
  return out;
}

std::string verify(const Function& f) {
  char buf[160];
  std::vector<bool> defined(f.values.size(), false);
  bool wrote_state = false;
  for (size_t n = 0; n < f.insts.size(); ++n) {
    const Inst& i = f.insts[n];
    if (int(i.op) >= int(Op::kCount)) return "unknown op";
    const int fixed = op_fixed_operands(i.op);
    if (fixed >= 0 && i.nsrc != fixed) {
      std::snprintf(buf, sizeof buf, "inst %zu (%s): %u operands, expected %d", n, op_name(i.op),
                    i.nsrc, fixed);
      return buf;
    }
    for (int s = 0; s < i.nsrc; ++s) {
      if (i.src[s] >= f.values.size() || !defined[i.src[s]]) {
        std::snprintf(buf, sizeof buf, "inst %zu (%s): operand %d used before definition", n,
                      op_name(i.op), s);
        return buf;
      }
    }
    const Kind kind = op_result_kind(i.op);
    if (kind == Kind::kVec && i.bits != 128 && i.bits != 256 && i.bits != 512) {
      std::snprintf(buf, sizeof buf, "inst %zu (%s): vector width %u", n, op_name(i.op), i.bits);
      return buf;
    }
    // A translation may read a register's state slot in place, so no
    // architectural write may come before a read.
    const bool is_read = i.op == Op::kReadVec || i.op == Op::kReadMask || i.op == Op::kReadGpr;
    if (is_read && wrote_state) {
      std::snprintf(buf, sizeof buf, "inst %zu (%s): state read after a state write", n,
                    op_name(i.op));
      return buf;
    }
    if (is_state_write(i.op)) wrote_state = true;
    if (kind != Kind::kNone) {
      if (i.dst >= f.values.size() || defined[i.dst]) return "bad result value";
      defined[i.dst] = true;
    }
  }
  if (f.values.size() > size_t(kScratchSlots)) return "too many values for the scratch area";
  return "";
}

}  // namespace avx512emu::ir
