// Owns the IR: typed vector, mask and GPR values in SSA form, the operation
// list (declared once, in IR_OPS), the printer and the verifier.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "decoded_insn.h"

namespace avx512emu::ir {

//! Element type of a vector operation.
enum class Elem : uint8_t { kI8, kI16, kI32, kI64, kF32, kF64 };
inline int elem_bytes(Elem e) {
  switch (e) {
    case Elem::kI8: return 1;
    case Elem::kI16: return 2;
    case Elem::kI32: case Elem::kF32: return 4;
    default: return 8;
  }
}
inline bool elem_is_float(Elem e) { return e == Elem::kF32 || e == Elem::kF64; }
const char* elem_name(Elem e);

//! Kind of an IR value. Vectors are 128/256/512 bits, masks always 64 bits,
//! GPR values 64 bits.
enum class Kind : uint8_t { kNone, kVec, kMask, kGpr };

// Every IR operation, declared once: name, result kind, and number of value
// operands ("-1" = variable). The interpreter and the JIT each dispatch on this
// list; the printer and verifier are generated from it.
#define AVX512EMU_IR_OPS(X)                                                                    \
  /* Architectural state. Writes come after every read of the instruction. */                  \
  X(ReadVec, kVec, 0)        /* reg; bits */                                                   \
  X(WriteVec, kNone, 1)      /* reg; writes low `bits`, zeroes the rest of the zmm */               \
  X(ReadMask, kMask, 0)      /* reg */                                                         \
  X(WriteMask, kNone, 1)     /* reg; bits = mask width to keep (upper bits zeroed) */         \
  X(ReadGpr, kGpr, 0)        /* reg */                                                         \
  X(WriteGpr, kNone, 1)      /* reg; bits 32 zero-extends, 64 writes all */                   \
  X(WriteFlags, kNone, 1)    /* RFLAGS arithmetic bits := src (OSZAPC), others kept */        \
  X(AdvanceRip, kNone, 0)    /* rip += imm */                                                  \
  /* Memory. `align` > 1 faults (#GP) on a misaligned address. */                              \
  X(Address, kGpr, 0)        /* mem, insn_length -> effective address */                      \
  X(Load, kVec, 1)           /* addr; imm bytes loaded, zero-extended to `bits` */                 \
  X(LoadMasked, kVec, 2)     /* addr, mask; imm bytes; only enabled elems touched */           \
  X(LoadBroadcast, kVec, -1) /* addr[, mask]; imm = bytes of the repeated block */            \
  X(LoadGpr, kGpr, 1)        /* addr; imm bytes (1..8) zero-extended */                       \
  X(Store, kNone, 2)         /* addr, value (vec, mask or gpr); bits stored */                \
  X(StoreMasked, kNone, 3)   /* addr, value, mask; never writes a masked-off byte */          \
  /* Constants and masking. */                                                                 \
  X(ZeroVec, kVec, 0)                                                                          \
  X(ConstMask, kMask, 0)     /* imm */                                                         \
  X(Select, kVec, -1)        /* mask, on, off[, upper]: per element; scalar: element 0 */    \
                             /* only, the other elements from `upper` */                     \
  /* Integer element-wise. */                                                                  \
  X(Add, kVec, 2) X(Sub, kVec, 2)                                                              \
  X(AddSatS, kVec, 2) X(AddSatU, kVec, 2) X(SubSatS, kVec, 2) X(SubSatU, kVec, 2)             \
  X(MulLo, kVec, 2)          /* low half of the product */                                    \
  X(MulUDQ, kVec, 2)         /* u32 x u32 -> u64 from the even dwords */                      \
  X(MulDQ, kVec, 2)          /* s32 x s32 -> s64 from the even dwords */                       \
  X(MAddWD, kVec, 2)         /* s16 pairs -> s32 sums */                                      \
  X(MAddUBSW, kVec, 2)       /* u8 x s8 pairs -> saturated s16 sums */                       \
  X(DotWSSD, kVec, 3)        /* acc, a, b: acc + two s16 x s16 products per dword, wrapping */ \
  X(DotBUSD, kVec, 3)        /* acc, a, b: acc + four u8(a) x s8(b) products per dword, wrapping */ \
  X(DotWSSDS, kVec, 3) X(DotBUSDS, kVec, 3) /* the same sums, saturated to s32 */                \
  X(MAdd52Lo, kVec, 3) X(MAdd52Hi, kVec, 3) /* acc, a, b: acc + bits 51:0 / 103:52 of the */    \
                             /* product of a's and b's low 52 bits, per qword (IFMA) */       \
  X(MulHiS, kVec, 2) X(MulHiU, kVec, 2) /* high half of the signed/unsigned product */         \
  X(MulHiRS, kVec, 2)        /* s16 x s16 -> (product + 0x4000) >> 15, low 16 bits */          \
  X(SadBW, kVec, 2)          /* per qword: sum of |a - b| over its 8 u8 pairs */               \
  X(DbSadBW, kVec, 2)        /* vdbpsadbw: b's dwords shuffled per lane by imm, then 4-byte */ \
                             /* SADs per word at byte offsets 0,1 (a low) and 2,3 (a high) */ \
  X(AvgU, kVec, 2)                                                                             \
  X(MinS, kVec, 2) X(MinU, kVec, 2) X(MaxS, kVec, 2) X(MaxU, kVec, 2)                         \
  X(Abs, kVec, 1)                                                                              \
  X(Lzcnt, kVec, 1) X(Popcnt, kVec, 1) /* per element: leading zero bits / set bits */        \
  X(Conflict, kVec, 1)       /* element i: bit j set for each j < i with src[j] == src[i] */  \
  X(And, kVec, 2) X(AndN, kVec, 2) X(Or, kVec, 2) X(Xor, kVec, 2)                             \
  X(Ternlog, kVec, 3)        /* imm = truth table, bit (a<<2|b<<1|c) */                       \
  X(ShlImm, kVec, 1) X(ShrImm, kVec, 1) X(SarImm, kVec, 1)                                     \
  X(ShlVec, kVec, 2) X(ShrVec, kVec, 2) X(SarVec, kVec, 2) /* count = low 64 bits of src1 */  \
  X(ShlVar, kVec, 2) X(ShrVar, kVec, 2) X(SarVar, kVec, 2)                                     \
  X(RolImm, kVec, 1) X(RorImm, kVec, 1) X(RolVar, kVec, 2) X(RorVar, kVec, 2)                 \
  X(ByteShlImm, kVec, 1) X(ByteShrImm, kVec, 1) /* per 128-bit lane, imm bytes */             \
  /* Concatenating shifts (vpshld/vpshrd): a shifted by n = count mod width, the vacated */      \
  /* bits filled from the far end of b; count = imm, or per element from src2 (Var). */         \
  X(ConcatShlImm, kVec, 2) X(ConcatShrImm, kVec, 2)                                            \
  X(ConcatShlVar, kVec, 3) X(ConcatShrVar, kVec, 3)                                            \
  /* Floating point. Optional last operand: mask of active elements; inactive */              \
  /* elements must not raise MXCSR flags. `rounding`/`sae` override MXCSR. */                 \
  X(FAdd, kVec, -1) X(FSub, kVec, -1) X(FMul, kVec, -1) X(FDiv, kVec, -1)                     \
  X(FMin, kVec, -1) X(FMax, kVec, -1) X(FSqrt, kVec, -1)                                       \
  X(Fma, kVec, -1)           /* a*b+c; imm bit0 negates a*b, bit1 c, bit4 flips bit1 in odd elems */ \
  X(CvtI32F32, kVec, -1) X(CvtF32I32, kVec, -1) X(CvtF32I32Trunc, kVec, -1)                   \
  X(CvtI32F64, kVec, -1) X(CvtF32F64, kVec, -1) /* widening: elem2 source elements */        \
  X(CvtF64F32, kVec, -1) X(CvtF64I32, kVec, -1) X(CvtF64I32Trunc, kVec, -1) /* narrowing */   \
  X(CvtU32F32, kVec, -1) X(CvtU32F64, kVec, -1) /* unsigned dwords (elem2 I32) */             \
  X(CvtF16F32, kVec, -1)     /* vcvtph2ps: binary16 (elem2 I16) to f32 */                      \
  X(CvtF32F16, kVec, -1)     /* vcvtps2ph: imm[1:0] rounding, imm[2] MXCSR.RC instead */       \
                             /* scalar: element 0 of src1 converted, the rest from src0 */     \
  X(CvtIntF, kVec, -1)       /* src0 = upper, src1 = gpr: element 0 = the elem2-wide integer, */ \
                             /* imm 1 = unsigned; rounded by MXCSR or {er} */                 \
  X(Rcp14, kVec, -1) X(Rsqrt14, kVec, -1) /* Intel's 14-bit approximations; no MXCSR flags; */ \
                             /* scalar: element 0 of src1, the rest from src0 */              \
  X(GetExp, kVec, -1)        /* floor(log2 |x|) as a float; scalar: element 0 of src1 */    \
  X(CvtFInt, kGpr, -1)       /* element 0 of src0 to a signed int of `bits` (32/64); */     \
                             /* imm 1 = truncate, else MXCSR.RC or {er} */                   \
  X(RndScale, kVec, -1)      /* vrndscale: round to a multiple of 2^-imm[7:4]; imm[3] no PE, */ \
                             /* imm[2] MXCSR.RC else imm[1:0]; scalar: element 0 of src1 */    \
  /* Compares into a mask (bits beyond the element count are 0). */                           \
  X(CmpS, kMask, 2) X(CmpU, kMask, 2) /* imm = VPCMP predicate 0..7 */                       \
  X(CmpF, kMask, -1)         /* imm = VCMPPS predicate 0..31; optional active mask */        \
  X(ComiF, kGpr, -1) X(UcomiF, kGpr, -1) /* a, b: RFLAGS (ZF, PF, CF) of element 0's order; */ \
                             /* Comi signals on any NaN, Ucomi on SNaN only */               \
  X(TestM, kMask, 2) X(TestNM, kMask, 2)                                                       \
  X(ShufBitQ, kMask, 2)      /* a, idx: mask bit j = bit (idx byte j & 63) of a's qword of j */ \
  X(VecToMask, kMask, 1)     /* sign bit of each element */                                  \
  X(MaskToVec, kVec, 1)      /* each element all-ones where the mask bit is set */           \
  /* Shuffles and permutes. */                                                                 \
  X(Shufb, kVec, 2)          /* pshufb within 128-bit lanes */                                \
  X(ShufImm, kVec, 1)        /* per 128-bit lane by imm: dwords 2 bits each (vpshufd), */     \
                             /* qwords imm bit e for element e (vpermilpd) */                 \
  X(ShufWordsLo, kVec, 1) X(ShufWordsHi, kVec, 1) /* vpshuflw/hw: 4 words of a lane by imm */  \
  X(Shuf2Imm, kVec, 2)       /* a, b: vshufps/pd: per lane, low half from a, high from b */   \
  X(PermilVar, kVec, 2)      /* a, idx: per lane, element idx of a (dwords idx & 3, */         \
                             /* qwords bit 1 of idx) */                                       \
  X(UnpackLo, kVec, 2) X(UnpackHi, kVec, 2)                                                    \
  X(AlignR, kVec, 2)         /* palignr per 128-bit lane: (a:b) >> imm bytes */             \
  X(PermIdx, kVec, 2)        /* idx, table: out[i] = table[idx[i] mod n] */                  \
  X(Perm4x64Imm, kVec, 1)    /* vpermq imm: qwords within each 256-bit half */               \
  X(Perm2, kVec, 3)          /* idx, a, b: out[i] = (a:b)[idx[i] mod 2n] */                   \
  X(ShufLanes, kVec, 2)      /* a, b: 128-bit lanes chosen by imm (vshufi32x4) */            \
  X(Valign, kVec, 2)         /* a, b: (a:b) >> imm elements */                               \
  X(ExtractLane, kVec, 1)    /* imm = lane index, bits = lane width */                       \
  X(InsertLane, kVec, 2)     /* a, lane: imm = lane index, lane width = src1 bits */         \
  X(BroadcastElem, kVec, 1)  /* element 0 of src0 repeated */                                \
  X(Compress, kVec, 2) X(Expand, kVec, 2) /* a, mask */                                       \
  X(CompressMask, kMask, 1)  /* (1 << popcount(mask within bits/elem)) - 1 */                \
  /* Per 128-bit lane cryptography: a = state or multiplicand, b = round key or multiplier. */ \
  X(AesEnc, kVec, 2) X(AesEncLast, kVec, 2) X(AesDec, kVec, 2) X(AesDecLast, kVec, 2)          \
  X(ClMul, kVec, 2)          /* carry-less product of a's qword imm bit 0, b's imm bit 4 */    \
  /* Width changes: elem = destination, elem2 = source element. */                            \
  X(ZeroExtend, kVec, 1) X(SignExtend, kVec, 1)                                                \
  X(Truncate, kVec, 1) X(TruncSatS, kVec, 1) X(TruncSatU, kVec, 1)                             \
  X(PackSS, kVec, 2) X(PackUS, kVec, 2) /* per 128-bit lane, elem = destination */           \
  /* Opmask operations on 64-bit values; bits = the instruction's mask width. */              \
  X(KAnd, kMask, 2) X(KAndN, kMask, 2) X(KOr, kMask, 2) X(KXor, kMask, 2) X(KXnor, kMask, 2)  \
  X(KAdd, kMask, 2) X(KNot, kMask, 1) X(KShl, kMask, 1) X(KShr, kMask, 1)                      \
  X(KUnpck, kMask, 2)        /* (src0 low half << half) | src1 low half */                  \
  X(KOrTest, kGpr, 2) X(KTest, kGpr, 2) /* -> RFLAGS value for WriteFlags */                 \
  /* Moves between register files. */                                                         \
  X(GprToMask, kMask, 1) X(MaskToGpr, kGpr, 1)                                                 \
  X(GprToVec, kVec, 1)       /* bits of src0 (imm) into element 0, rest zero */               \
  X(VecToGpr, kGpr, 1)       /* low `imm` bits of src0, zero-extended */                       \
  X(BroadcastGpr, kVec, 1)   /* low elem bits of src0 into every element */

enum class Op : uint8_t {
#define AVX512EMU_X(name, kind, n) k##name,
  AVX512EMU_IR_OPS(AVX512EMU_X)
#undef AVX512EMU_X
      kCount
};
const char* op_name(Op op);
Kind op_result_kind(Op op);
int op_fixed_operands(Op op);  //!< -1 when the count varies.

using ValueId = uint8_t;
inline constexpr ValueId kNoValue = 0xff;

struct Inst {
  Op op = Op::kZeroVec;
  Elem elem = Elem::kI32;   //!< Element type (destination type for conversions).
  Elem elem2 = Elem::kI32;  //!< Source element type for width changes.
  uint16_t bits = 0;        //!< Result width: vector bits, or mask width for K ops.
  ValueId dst = kNoValue;
  uint8_t nsrc = 0;
  ValueId src[4] = {kNoValue, kNoValue, kNoValue, kNoValue};
  uint8_t reg = 0;          //!< Register number for Read*/Write*.
  bool scalar = false;      //!< Scalar FP form: element 0 only, upper elements from src0.
  bool sae = false;         //!< Suppress all exceptions: MXCSR flags unchanged.
  Rounding rounding = Rounding::kNone;
  uint8_t align = 0;        //!< Required alignment for Load/Store (0 = none).
  uint8_t insn_length = 0;  //!< For Address: RIP-relative base is rip + length.
  int64_t imm = 0;
  MemOperand mem;           //!< For Address.
};

struct ValueInfo {
  Kind kind = Kind::kNone;
  uint16_t bits = 0;
};

//! The IR of one guest instruction.
struct Function {
  std::vector<Inst> insts;
  std::vector<ValueInfo> values;

  bool uses_fp() const;
};

//! Appends instructions and allocates values; used by the lowering.
class Builder {
 public:
  explicit Builder(Function& f) : f_(f) {}
  //! Appends `inst`, allocating its result value from the op's result kind.
  ValueId emit(Inst inst);
  Function& function() { return f_; }

 private:
  Function& f_;
};

std::string print(const Function& f);
//! Returns an empty string when `f` is well formed, otherwise the first problem.
std::string verify(const Function& f);

}  // namespace avx512emu::ir
