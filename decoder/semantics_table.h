// Owns the semantics table's row type: one row per mnemonic says how the
// instruction maps onto IR. The rows themselves live in semantics_table.cpp.
#pragma once

#include <cstdint>
#include <span>

#include "ir.h"

namespace avx512emu {

//! How the instruction's operands feed the IR op. Each form is one generic
//! lowering routine in lower_to_ir.cpp.
enum class Form : uint8_t {
  kMove,          //!< dst(vec|mem) <- src(vec|mem): loads, stores, register moves.
  kMoveScalar,    //!< vmovss/vmovsd: load (zero upper), store, or merge from src1.
  kMoveGpr,       //!< vmovd/vmovq between xmm and r/m, and vmovq xmm, xmm/m64.
  kUnary,         //!< dst <- op(src [, imm]).
  kBinary,        //!< dst <- op(src1, src2 [, imm]).
  kShift,         //!< Shift by imm (unary shape) or by an xmm count (binary shape).
  kPermute,       //!< vpermd/q/w/b by index vector, or vpermq/pd by imm.
  kPermuteInLane, //!< vpermilps/pd: op(src1, index vector), or ShufImm(src, imm).
  kTernary,       //!< dst <- op(dst, src1, src2 [, imm]): vpternlog, vpshldv/vpshrdv, vpdp*.
  kFma,           //!< dst <- a*b+c, operand order from the 132/213/231 suffix.
  kCompare,       //!< k <- op(src1, src2 [, imm]) & k_mask.
  kCompareFlags,  //!< RFLAGS <- op(src1, src2): vcomis/vucomis.
  kBlend,         //!< dst <- k ? src2 : src1 (vpblendm).
  kPermute2,      //!< vpermt2* (dst is a table) and vpermi2* (dst is the index).
  kBroadcast,     //!< dst <- element 0 of xmm, or a memory block, repeated.
  kBroadcastGpr,  //!< dst <- GPR repeated.
  kExtract,       //!< dst(xmm/ymm/mem) <- lane imm of src.
  kInsert,        //!< dst <- src1 with lane imm replaced by src2.
  kExtractElem,   //!< dst(gpr|mem) <- element imm of xmm src (vpextr*, vextractps).
  kInsertElem,    //!< dst <- src1 with element imm replaced by src2(gpr|mem) (vpinsr*).
  kInsertPs,      //!< vinsertps: element imm[7:6] of src2 (or m32) to imm[5:4], zero imm[3:0].
  kConvertFromGpr,//!< dst <- src1 with element 0 = convert(r/m32|64) (vcvt(u)si2ss/sd).
  kConvertToGpr,  //!< r32/r64 <- convert(element 0 of xmm/m) (vcvt(t)ss2si/sd2si).
  kMoveHalf,      //!< vmov{l,h}p{s,d}: qword imm of xmm <-> m64; a load keeps src1's other qword.
  kWiden,         //!< dst <- extend(src), src narrower (vpmovzx/sx).
  kNarrow,        //!< dst(vec|mem) <- truncate(src) (vpmov*, vpmovs*, vpmovus*).
  kVecToMask,     //!< k <- sign bits of src.
  kMaskToVec,     //!< dst <- all-ones elements where k is set.
  kBroadcastMask, //!< dst <- k zero-extended into every element (vpbroadcastm*).
  kCompress,      //!< dst(vec|mem) <- enabled elements of src packed low.
  kExpand,        //!< dst <- src elements spread to enabled positions.
  kMaskBinary,    //!< k1 <- op(k2, k3).
  kMaskUnary,     //!< k1 <- op(k2 [, imm]).
  kMaskMove,      //!< kmov between k, GPR and memory.
  kMaskTest,      //!< RFLAGS <- op(k1, k2).
};

//! Which masking the instruction takes.
enum class MaskClass : uint8_t {
  kNone,        //!< No {k}.
  kMergeZero,   //!< Vector destination: {k} merges, {k}{z} zeroes.
  kMaskDest,    //!< Mask destination: result AND k (compares).
};

//! Which embedded rounding control the instruction accepts (register forms).
enum class RoundClass : uint8_t { kNone, kSae, kEr };

//! Row flags.
enum RowFlag : uint8_t {
  kRowScalar = 1,       //!< Scalar ss/sd form: element 0 only, upper from src1.
  kRowAligned = 2,      //!< Memory operand must be aligned to its full width.
  kRowFma132 = 4,       //!< FMA order; 213 and 231 below.
  kRowFma213 = 8,
  kRowFma231 = 16,
  kRowIndexIsDst = 32,  //!< vpermi2*: the destination register holds the index.
  kRowSwapSources = 64, //!< kBinary: the op takes (src2, src1), e.g. vmovhlps = unpckhpd(src2, src1).
};

struct SemanticsRow {
  const char* mnemonic;  //!< Lower-case Intel mnemonic as Zydis spells it.
  Form form;
  ir::Op op;
  ir::Elem elem;         //!< Element type: masking granularity and op type.
  ir::Elem elem2;        //!< Source element type for kWiden/kNarrow.
  MaskClass mask;
  RoundClass rounding;
  int16_t imm;           //!< Fixed immediate (vpcmpeqd = predicate 0), or -1.
  uint8_t flags;         //!< RowFlag bits.
  const char* feature;   //!< CPUID feature the instruction needs ("AVX512F", ...).
};

//! All rows, in table order.
std::span<const SemanticsRow> semantics_rows();
//! The row for `mnemonic`, or nullptr.
const SemanticsRow* find_semantics(const char* mnemonic);

}  // namespace avx512emu
