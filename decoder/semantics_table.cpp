// Owns the semantics table: one row per AVX-512 mnemonic, naming its form,
// IR op, element type, masking, rounding control, fixed immediate and the
// CPUID feature it needs. Everything an instruction means is stated here once.
#include "semantics_table.h"

#include <cstring>

namespace avx512emu {
namespace {

using ir::Elem;
using ir::Op;
constexpr Elem I8 = Elem::kI8, I16 = Elem::kI16, I32 = Elem::kI32, I64 = Elem::kI64,
               F32 = Elem::kF32, F64 = Elem::kF64;
constexpr MaskClass MZ = MaskClass::kMergeZero, MD = MaskClass::kMaskDest,
                    NoMask = MaskClass::kNone;
constexpr RoundClass Er = RoundClass::kEr, Sae = RoundClass::kSae, NoRnd = RoundClass::kNone;

// Marks "source element = destination element" in row().
constexpr Elem kSameElem = Elem(0xff);

// Row builders keep the table one line per mnemonic.
constexpr SemanticsRow row(const char* mn, Form form, Op op, Elem e, MaskClass m, const char* feat,
                           int16_t imm = -1, uint8_t flags = 0, RoundClass r = NoRnd,
                           Elem e2 = kSameElem) {
  return {mn, form, op, e, e2 == kSameElem ? e : e2, m, r, imm, flags, feat};
}
constexpr SemanticsRow move(const char* mn, Elem e, const char* feat, uint8_t flags = 0,
                            MaskClass m = MZ) {
  return row(mn, Form::kMove, Op::kSelect, e, m, feat, -1, flags);
}
constexpr SemanticsRow binary(const char* mn, Op op, Elem e, const char* feat, RoundClass r = NoRnd,
                              uint8_t flags = 0) {
  return row(mn, Form::kBinary, op, e, MZ, feat, -1, flags, r);
}
constexpr SemanticsRow unary(const char* mn, Op op, Elem e, const char* feat, RoundClass r = NoRnd) {
  return row(mn, Form::kUnary, op, e, MZ, feat, -1, 0, r);
}
constexpr SemanticsRow compare(const char* mn, Op op, Elem e, const char* feat, int16_t imm = -1,
                               RoundClass r = NoRnd, uint8_t flags = 0) {
  return row(mn, Form::kCompare, op, e, MD, feat, imm, flags, r);
}
// FMA: imm bit0 negates the product, bit1 negates the addend, bit4 flips
// bit1 in odd elements (vfmaddsub/vfmsubadd).
constexpr SemanticsRow fma(const char* mn, Elem e, int16_t negate, uint8_t order, bool scalar) {
  return row(mn, Form::kFma, Op::kFma, e, MZ, "AVX512F", negate,
             uint8_t(order | (scalar ? kRowScalar : 0)), Er);
}
constexpr SemanticsRow widen(const char* mn, Op op, Elem to, Elem from, const char* feat) {
  return row(mn, Form::kWiden, op, to, MZ, feat, -1, 0, NoRnd, from);
}
constexpr SemanticsRow narrow(const char* mn, Op op, Elem to, Elem from, const char* feat) {
  return row(mn, Form::kNarrow, op, to, MZ, feat, -1, 0, NoRnd, from);
}
// Opmask rows: the element type encodes the mask width (b=8 ... q=64).
constexpr SemanticsRow kop(const char* mn, Form form, Op op, Elem width, const char* feat) {
  return row(mn, form, op, width, NoMask, feat);
}

constexpr SemanticsRow kRows[] = {
    // ---- Moves -------------------------------------------------------------
    move("vmovdqu8", I8, "AVX512BW"),
    move("vmovdqu16", I16, "AVX512BW"),
    move("vmovdqu32", I32, "AVX512F"),
    move("vmovdqu64", I64, "AVX512F"),
    move("vmovdqa32", I32, "AVX512F", kRowAligned),
    move("vmovdqa64", I64, "AVX512F", kRowAligned),
    move("vmovups", F32, "AVX512F"),
    move("vmovupd", F64, "AVX512F"),
    move("vmovaps", F32, "AVX512F", kRowAligned),
    move("vmovapd", F64, "AVX512F", kRowAligned),
    move("vmovntdq", I32, "AVX512F", kRowAligned, NoMask),
    move("vmovntdqa", I32, "AVX512F", kRowAligned, NoMask),
    move("vmovntps", F32, "AVX512F", kRowAligned, NoMask),
    move("vmovntpd", F64, "AVX512F", kRowAligned, NoMask),
    row("vmovss", Form::kMoveScalar, Op::kSelect, F32, MZ, "AVX512F"),
    row("vmovsd", Form::kMoveScalar, Op::kSelect, F64, MZ, "AVX512F"),
    row("vmovd", Form::kMoveGpr, Op::kSelect, I32, NoMask, "AVX512F"),
    row("vmovq", Form::kMoveGpr, Op::kSelect, I64, NoMask, "AVX512F"),

    // ---- Broadcasts (imm = bytes of the repeated block; -1 = one element) --
    row("vpbroadcastb", Form::kBroadcast, Op::kBroadcastElem, I8, MZ, "AVX512BW"),
    row("vpbroadcastw", Form::kBroadcast, Op::kBroadcastElem, I16, MZ, "AVX512BW"),
    row("vpbroadcastd", Form::kBroadcast, Op::kBroadcastElem, I32, MZ, "AVX512F"),
    row("vpbroadcastq", Form::kBroadcast, Op::kBroadcastElem, I64, MZ, "AVX512F"),
    row("vbroadcastss", Form::kBroadcast, Op::kBroadcastElem, F32, MZ, "AVX512F"),
    row("vbroadcastsd", Form::kBroadcast, Op::kBroadcastElem, F64, MZ, "AVX512F"),
    row("vbroadcasti32x2", Form::kBroadcast, Op::kBroadcastElem, I32, MZ, "AVX512DQ", 8),
    row("vbroadcastf32x2", Form::kBroadcast, Op::kBroadcastElem, F32, MZ, "AVX512DQ", 8),
    row("vbroadcasti32x4", Form::kBroadcast, Op::kBroadcastElem, I32, MZ, "AVX512F", 16),
    row("vbroadcastf32x4", Form::kBroadcast, Op::kBroadcastElem, F32, MZ, "AVX512F", 16),
    row("vbroadcasti64x2", Form::kBroadcast, Op::kBroadcastElem, I64, MZ, "AVX512DQ", 16),
    row("vbroadcastf64x2", Form::kBroadcast, Op::kBroadcastElem, F64, MZ, "AVX512DQ", 16),
    row("vbroadcasti32x8", Form::kBroadcast, Op::kBroadcastElem, I32, MZ, "AVX512DQ", 32),
    row("vbroadcastf32x8", Form::kBroadcast, Op::kBroadcastElem, F32, MZ, "AVX512DQ", 32),
    row("vbroadcasti64x4", Form::kBroadcast, Op::kBroadcastElem, I64, MZ, "AVX512F", 32),
    row("vbroadcastf64x4", Form::kBroadcast, Op::kBroadcastElem, F64, MZ, "AVX512F", 32),

    // ---- Integer arithmetic ------------------------------------------------
    binary("vpaddb", Op::kAdd, I8, "AVX512BW"),
    binary("vpaddw", Op::kAdd, I16, "AVX512BW"),
    binary("vpaddd", Op::kAdd, I32, "AVX512F"),
    binary("vpaddq", Op::kAdd, I64, "AVX512F"),
    binary("vpsubb", Op::kSub, I8, "AVX512BW"),
    binary("vpsubw", Op::kSub, I16, "AVX512BW"),
    binary("vpsubd", Op::kSub, I32, "AVX512F"),
    binary("vpsubq", Op::kSub, I64, "AVX512F"),
    binary("vpaddsb", Op::kAddSatS, I8, "AVX512BW"),
    binary("vpaddsw", Op::kAddSatS, I16, "AVX512BW"),
    binary("vpaddusb", Op::kAddSatU, I8, "AVX512BW"),
    binary("vpaddusw", Op::kAddSatU, I16, "AVX512BW"),
    binary("vpsubsb", Op::kSubSatS, I8, "AVX512BW"),
    binary("vpsubsw", Op::kSubSatS, I16, "AVX512BW"),
    binary("vpsubusb", Op::kSubSatU, I8, "AVX512BW"),
    binary("vpsubusw", Op::kSubSatU, I16, "AVX512BW"),
    binary("vpmullw", Op::kMulLo, I16, "AVX512BW"),
    binary("vpmulld", Op::kMulLo, I32, "AVX512F"),
    binary("vpmullq", Op::kMulLo, I64, "AVX512DQ"),
    binary("vpmuludq", Op::kMulUDQ, I64, "AVX512F"),
    binary("vpmuldq", Op::kMulDQ, I64, "AVX512F"),
    binary("vpmulhw", Op::kMulHiS, I16, "AVX512BW"),
    binary("vpmulhuw", Op::kMulHiU, I16, "AVX512BW"),
    binary("vpmulhrsw", Op::kMulHiRS, I16, "AVX512BW"),
    row("vpsadbw", Form::kBinary, Op::kSadBW, I64, NoMask, "AVX512BW"),
    binary("vdbpsadbw", Op::kDbSadBW, I16, "AVX512BW"),
    binary("vpmaddwd", Op::kMAddWD, I32, "AVX512BW"),
    binary("vpmaddubsw", Op::kMAddUBSW, I16, "AVX512BW"),
    binary("vpavgb", Op::kAvgU, I8, "AVX512BW"),
    binary("vpavgw", Op::kAvgU, I16, "AVX512BW"),
    binary("vpminsb", Op::kMinS, I8, "AVX512BW"),
    binary("vpminsw", Op::kMinS, I16, "AVX512BW"),
    binary("vpminsd", Op::kMinS, I32, "AVX512F"),
    binary("vpminsq", Op::kMinS, I64, "AVX512F"),
    binary("vpminub", Op::kMinU, I8, "AVX512BW"),
    binary("vpminuw", Op::kMinU, I16, "AVX512BW"),
    binary("vpminud", Op::kMinU, I32, "AVX512F"),
    binary("vpminuq", Op::kMinU, I64, "AVX512F"),
    binary("vpmaxsb", Op::kMaxS, I8, "AVX512BW"),
    binary("vpmaxsw", Op::kMaxS, I16, "AVX512BW"),
    binary("vpmaxsd", Op::kMaxS, I32, "AVX512F"),
    binary("vpmaxsq", Op::kMaxS, I64, "AVX512F"),
    binary("vpmaxub", Op::kMaxU, I8, "AVX512BW"),
    binary("vpmaxuw", Op::kMaxU, I16, "AVX512BW"),
    binary("vpmaxud", Op::kMaxU, I32, "AVX512F"),
    binary("vpmaxuq", Op::kMaxU, I64, "AVX512F"),
    unary("vpabsb", Op::kAbs, I8, "AVX512BW"),
    unary("vpabsw", Op::kAbs, I16, "AVX512BW"),
    unary("vpabsd", Op::kAbs, I32, "AVX512F"),
    unary("vpabsq", Op::kAbs, I64, "AVX512F"),
    unary("vplzcntd", Op::kLzcnt, I32, "AVX512CD"),
    unary("vplzcntq", Op::kLzcnt, I64, "AVX512CD"),
    unary("vpconflictd", Op::kConflict, I32, "AVX512CD"),
    unary("vpconflictq", Op::kConflict, I64, "AVX512CD"),
    // The source element type (elem2) is the opmask width copied.
    row("vpbroadcastmb2q", Form::kBroadcastMask, Op::kBroadcastGpr, I64, NoMask, "AVX512CD", -1, 0,
        NoRnd, I8),
    row("vpbroadcastmw2d", Form::kBroadcastMask, Op::kBroadcastGpr, I32, NoMask, "AVX512CD", -1, 0,
        NoRnd, I16),
    unary("vpopcntb", Op::kPopcnt, I8, "AVX512BITALG"),
    unary("vpopcntw", Op::kPopcnt, I16, "AVX512BITALG"),
    unary("vpopcntd", Op::kPopcnt, I32, "AVX512VPOPCNTDQ"),
    unary("vpopcntq", Op::kPopcnt, I64, "AVX512VPOPCNTDQ"),

    // ---- Logic (FP forms are bitwise too; the element type sets masking) ---
    binary("vpandd", Op::kAnd, I32, "AVX512F"),
    binary("vpandq", Op::kAnd, I64, "AVX512F"),
    binary("vpandnd", Op::kAndN, I32, "AVX512F"),
    binary("vpandnq", Op::kAndN, I64, "AVX512F"),
    binary("vpord", Op::kOr, I32, "AVX512F"),
    binary("vporq", Op::kOr, I64, "AVX512F"),
    binary("vpxord", Op::kXor, I32, "AVX512F"),
    binary("vpxorq", Op::kXor, I64, "AVX512F"),
    binary("vandps", Op::kAnd, I32, "AVX512DQ"),
    binary("vandpd", Op::kAnd, I64, "AVX512DQ"),
    binary("vandnps", Op::kAndN, I32, "AVX512DQ"),
    binary("vandnpd", Op::kAndN, I64, "AVX512DQ"),
    binary("vorps", Op::kOr, I32, "AVX512DQ"),
    binary("vorpd", Op::kOr, I64, "AVX512DQ"),
    binary("vxorps", Op::kXor, I32, "AVX512DQ"),
    binary("vxorpd", Op::kXor, I64, "AVX512DQ"),
    row("vpternlogd", Form::kTernary, Op::kTernlog, I32, MZ, "AVX512F"),
    row("vpternlogq", Form::kTernary, Op::kTernlog, I64, MZ, "AVX512F"),

    // ---- Shifts and rotates (kShift: op is the by-xmm-count variant) ------
    row("vpsllw", Form::kShift, Op::kShlVec, I16, MZ, "AVX512BW"),
    row("vpslld", Form::kShift, Op::kShlVec, I32, MZ, "AVX512F"),
    row("vpsllq", Form::kShift, Op::kShlVec, I64, MZ, "AVX512F"),
    row("vpsrlw", Form::kShift, Op::kShrVec, I16, MZ, "AVX512BW"),
    row("vpsrld", Form::kShift, Op::kShrVec, I32, MZ, "AVX512F"),
    row("vpsrlq", Form::kShift, Op::kShrVec, I64, MZ, "AVX512F"),
    row("vpsraw", Form::kShift, Op::kSarVec, I16, MZ, "AVX512BW"),
    row("vpsrad", Form::kShift, Op::kSarVec, I32, MZ, "AVX512F"),
    row("vpsraq", Form::kShift, Op::kSarVec, I64, MZ, "AVX512F"),
    binary("vpsllvw", Op::kShlVar, I16, "AVX512BW"),
    binary("vpsllvd", Op::kShlVar, I32, "AVX512F"),
    binary("vpsllvq", Op::kShlVar, I64, "AVX512F"),
    binary("vpsrlvw", Op::kShrVar, I16, "AVX512BW"),
    binary("vpsrlvd", Op::kShrVar, I32, "AVX512F"),
    binary("vpsrlvq", Op::kShrVar, I64, "AVX512F"),
    binary("vpsravw", Op::kSarVar, I16, "AVX512BW"),
    binary("vpsravd", Op::kSarVar, I32, "AVX512F"),
    binary("vpsravq", Op::kSarVar, I64, "AVX512F"),
    unary("vprold", Op::kRolImm, I32, "AVX512F"),
    unary("vprolq", Op::kRolImm, I64, "AVX512F"),
    unary("vprord", Op::kRorImm, I32, "AVX512F"),
    unary("vprorq", Op::kRorImm, I64, "AVX512F"),
    binary("vprolvd", Op::kRolVar, I32, "AVX512F"),
    binary("vprolvq", Op::kRolVar, I64, "AVX512F"),
    binary("vprorvd", Op::kRorVar, I32, "AVX512F"),
    binary("vprorvq", Op::kRorVar, I64, "AVX512F"),
    // Concatenating shifts: vpshld/vpshrd shift src1 with bits from src2;
    // vpshldv/vpshrdv shift dst with bits from src1, by src2's elements.
    binary("vpshldw", Op::kConcatShlImm, I16, "AVX512VBMI2"),
    binary("vpshldd", Op::kConcatShlImm, I32, "AVX512VBMI2"),
    binary("vpshldq", Op::kConcatShlImm, I64, "AVX512VBMI2"),
    binary("vpshrdw", Op::kConcatShrImm, I16, "AVX512VBMI2"),
    binary("vpshrdd", Op::kConcatShrImm, I32, "AVX512VBMI2"),
    binary("vpshrdq", Op::kConcatShrImm, I64, "AVX512VBMI2"),
    row("vpshldvw", Form::kTernary, Op::kConcatShlVar, I16, MZ, "AVX512VBMI2"),
    row("vpshldvd", Form::kTernary, Op::kConcatShlVar, I32, MZ, "AVX512VBMI2"),
    row("vpshldvq", Form::kTernary, Op::kConcatShlVar, I64, MZ, "AVX512VBMI2"),
    row("vpshrdvw", Form::kTernary, Op::kConcatShrVar, I16, MZ, "AVX512VBMI2"),
    row("vpshrdvd", Form::kTernary, Op::kConcatShrVar, I32, MZ, "AVX512VBMI2"),
    row("vpshrdvq", Form::kTernary, Op::kConcatShrVar, I64, MZ, "AVX512VBMI2"),
    row("vpslldq", Form::kUnary, Op::kByteShlImm, I8, NoMask, "AVX512BW"),
    row("vpsrldq", Form::kUnary, Op::kByteShrImm, I8, NoMask, "AVX512BW"),

    // ---- Compares into a mask (vpcmpeq = predicate 0, vpcmpgt = 6 "nle") --
    compare("vpcmpb", Op::kCmpS, I8, "AVX512BW"),
    compare("vpcmpw", Op::kCmpS, I16, "AVX512BW"),
    compare("vpcmpd", Op::kCmpS, I32, "AVX512F"),
    compare("vpcmpq", Op::kCmpS, I64, "AVX512F"),
    compare("vpcmpub", Op::kCmpU, I8, "AVX512BW"),
    compare("vpcmpuw", Op::kCmpU, I16, "AVX512BW"),
    compare("vpcmpud", Op::kCmpU, I32, "AVX512F"),
    compare("vpcmpuq", Op::kCmpU, I64, "AVX512F"),
    compare("vpcmpeqb", Op::kCmpS, I8, "AVX512BW", 0),
    compare("vpcmpeqw", Op::kCmpS, I16, "AVX512BW", 0),
    compare("vpcmpeqd", Op::kCmpS, I32, "AVX512F", 0),
    compare("vpcmpeqq", Op::kCmpS, I64, "AVX512F", 0),
    compare("vpcmpgtb", Op::kCmpS, I8, "AVX512BW", 6),
    compare("vpcmpgtw", Op::kCmpS, I16, "AVX512BW", 6),
    compare("vpcmpgtd", Op::kCmpS, I32, "AVX512F", 6),
    compare("vpcmpgtq", Op::kCmpS, I64, "AVX512F", 6),
    compare("vptestmb", Op::kTestM, I8, "AVX512BW"),
    compare("vptestmw", Op::kTestM, I16, "AVX512BW"),
    compare("vptestmd", Op::kTestM, I32, "AVX512F"),
    compare("vptestmq", Op::kTestM, I64, "AVX512F"),
    compare("vptestnmb", Op::kTestNM, I8, "AVX512BW"),
    compare("vptestnmw", Op::kTestNM, I16, "AVX512BW"),
    compare("vptestnmd", Op::kTestNM, I32, "AVX512F"),
    compare("vptestnmq", Op::kTestNM, I64, "AVX512F"),
    compare("vpshufbitqmb", Op::kShufBitQ, I8, "AVX512BITALG"),
    compare("vcmpps", Op::kCmpF, F32, "AVX512F", -1, Sae),
    compare("vcmppd", Op::kCmpF, F64, "AVX512F", -1, Sae),
    compare("vcmpss", Op::kCmpF, F32, "AVX512F", -1, Sae, kRowScalar),
    compare("vcmpsd", Op::kCmpF, F64, "AVX512F", -1, Sae, kRowScalar),

    row("vcomiss", Form::kCompareFlags, Op::kComiF, F32, NoMask, "AVX512F", -1, kRowScalar, Sae),
    row("vcomisd", Form::kCompareFlags, Op::kComiF, F64, NoMask, "AVX512F", -1, kRowScalar, Sae),
    row("vucomiss", Form::kCompareFlags, Op::kUcomiF, F32, NoMask, "AVX512F", -1, kRowScalar, Sae),
    row("vucomisd", Form::kCompareFlags, Op::kUcomiF, F64, NoMask, "AVX512F", -1, kRowScalar, Sae),

    // ---- Floating-point arithmetic ----------------------------------------
    binary("vaddps", Op::kFAdd, F32, "AVX512F", Er),
    binary("vaddpd", Op::kFAdd, F64, "AVX512F", Er),
    binary("vsubps", Op::kFSub, F32, "AVX512F", Er),
    binary("vsubpd", Op::kFSub, F64, "AVX512F", Er),
    binary("vmulps", Op::kFMul, F32, "AVX512F", Er),
    binary("vmulpd", Op::kFMul, F64, "AVX512F", Er),
    binary("vdivps", Op::kFDiv, F32, "AVX512F", Er),
    binary("vdivpd", Op::kFDiv, F64, "AVX512F", Er),
    binary("vminps", Op::kFMin, F32, "AVX512F", Sae),
    binary("vminpd", Op::kFMin, F64, "AVX512F", Sae),
    binary("vmaxps", Op::kFMax, F32, "AVX512F", Sae),
    binary("vmaxpd", Op::kFMax, F64, "AVX512F", Sae),
    unary("vsqrtps", Op::kFSqrt, F32, "AVX512F", Er),
    unary("vrcp14ps", Op::kRcp14, F32, "AVX512F"),
    unary("vrcp14pd", Op::kRcp14, F64, "AVX512F"),
    binary("vrcp14ss", Op::kRcp14, F32, "AVX512F", NoRnd, kRowScalar),
    binary("vrcp14sd", Op::kRcp14, F64, "AVX512F", NoRnd, kRowScalar),
    unary("vrsqrt14ps", Op::kRsqrt14, F32, "AVX512F"),
    unary("vrsqrt14pd", Op::kRsqrt14, F64, "AVX512F"),
    binary("vrsqrt14ss", Op::kRsqrt14, F32, "AVX512F", NoRnd, kRowScalar),
    binary("vrsqrt14sd", Op::kRsqrt14, F64, "AVX512F", NoRnd, kRowScalar),
    unary("vgetexpps", Op::kGetExp, F32, "AVX512F", Sae),
    unary("vgetexppd", Op::kGetExp, F64, "AVX512F", Sae),
    binary("vgetexpss", Op::kGetExp, F32, "AVX512F", Sae, kRowScalar),
    binary("vgetexpsd", Op::kGetExp, F64, "AVX512F", Sae, kRowScalar),
    unary("vrndscaleps", Op::kRndScale, F32, "AVX512F", Sae),
    unary("vrndscalepd", Op::kRndScale, F64, "AVX512F", Sae),
    binary("vrndscaless", Op::kRndScale, F32, "AVX512F", Sae, kRowScalar),
    binary("vrndscalesd", Op::kRndScale, F64, "AVX512F", Sae, kRowScalar),
    unary("vsqrtpd", Op::kFSqrt, F64, "AVX512F", Er),
    binary("vaddss", Op::kFAdd, F32, "AVX512F", Er, kRowScalar),
    binary("vaddsd", Op::kFAdd, F64, "AVX512F", Er, kRowScalar),
    binary("vsubss", Op::kFSub, F32, "AVX512F", Er, kRowScalar),
    binary("vsubsd", Op::kFSub, F64, "AVX512F", Er, kRowScalar),
    binary("vmulss", Op::kFMul, F32, "AVX512F", Er, kRowScalar),
    binary("vmulsd", Op::kFMul, F64, "AVX512F", Er, kRowScalar),
    binary("vdivss", Op::kFDiv, F32, "AVX512F", Er, kRowScalar),
    binary("vdivsd", Op::kFDiv, F64, "AVX512F", Er, kRowScalar),
    binary("vminss", Op::kFMin, F32, "AVX512F", Sae, kRowScalar),
    binary("vminsd", Op::kFMin, F64, "AVX512F", Sae, kRowScalar),
    binary("vmaxss", Op::kFMax, F32, "AVX512F", Sae, kRowScalar),
    binary("vmaxsd", Op::kFMax, F64, "AVX512F", Sae, kRowScalar),
    binary("vsqrtss", Op::kFSqrt, F32, "AVX512F", Er, kRowScalar),
    binary("vsqrtsd", Op::kFSqrt, F64, "AVX512F", Er, kRowScalar),
#define AVX512EMU_FMA_ROWS(name, negate)                                             \
  fma("v" name "132ps", F32, negate, kRowFma132, false),                             \
      fma("v" name "213ps", F32, negate, kRowFma213, false),                         \
      fma("v" name "231ps", F32, negate, kRowFma231, false),                         \
      fma("v" name "132pd", F64, negate, kRowFma132, false),                         \
      fma("v" name "213pd", F64, negate, kRowFma213, false),                         \
      fma("v" name "231pd", F64, negate, kRowFma231, false),                         \
      fma("v" name "132ss", F32, negate, kRowFma132, true),                          \
      fma("v" name "213ss", F32, negate, kRowFma213, true),                          \
      fma("v" name "231ss", F32, negate, kRowFma231, true),                          \
      fma("v" name "132sd", F64, negate, kRowFma132, true),                          \
      fma("v" name "213sd", F64, negate, kRowFma213, true),                          \
      fma("v" name "231sd", F64, negate, kRowFma231, true)
    AVX512EMU_FMA_ROWS("fmadd", 0),
    AVX512EMU_FMA_ROWS("fmsub", 2),
    AVX512EMU_FMA_ROWS("fnmadd", 1),
    AVX512EMU_FMA_ROWS("fnmsub", 3),
#undef AVX512EMU_FMA_ROWS
    // Alternating FMA (imm bit 4: odd elements flip the addend's negation):
    // fmaddsub subtracts in even elements, fmsubadd in odd ones.
#define AVX512EMU_FMA_ALTERNATING_ROWS(name, negate)                                 \
  fma("v" name "132ps", F32, negate | 16, kRowFma132, false),                        \
      fma("v" name "213ps", F32, negate | 16, kRowFma213, false),                    \
      fma("v" name "231ps", F32, negate | 16, kRowFma231, false),                    \
      fma("v" name "132pd", F64, negate | 16, kRowFma132, false),                    \
      fma("v" name "213pd", F64, negate | 16, kRowFma213, false),                    \
      fma("v" name "231pd", F64, negate | 16, kRowFma231, false)
    AVX512EMU_FMA_ALTERNATING_ROWS("fmaddsub", 2),
    AVX512EMU_FMA_ALTERNATING_ROWS("fmsubadd", 0),
#undef AVX512EMU_FMA_ALTERNATING_ROWS

    // ---- Conversions --------------------------------------------------------
    unary("vcvtdq2ps", Op::kCvtI32F32, F32, "AVX512F", Er),
    // The source is float: elem2 marks the instruction as FP for MXCSR and rounding.
    row("vcvtps2dq", Form::kUnary, Op::kCvtF32I32, I32, MZ, "AVX512F", -1, 0, Er, F32),
    row("vcvttps2dq", Form::kUnary, Op::kCvtF32I32Trunc, I32, MZ, "AVX512F", -1, 0, Sae, F32),
    // Width-changing FP conversions: elem = destination, elem2 = source.
    row("vcvtdq2pd", Form::kWiden, Op::kCvtI32F64, F64, MZ, "AVX512F", -1, 0, NoRnd, I32),
    row("vcvtps2pd", Form::kWiden, Op::kCvtF32F64, F64, MZ, "AVX512F", -1, 0, Sae, F32),
    row("vcvtpd2ps", Form::kNarrow, Op::kCvtF64F32, F32, MZ, "AVX512F", -1, 0, Er, F64),
    row("vcvtpd2dq", Form::kNarrow, Op::kCvtF64I32, I32, MZ, "AVX512F", -1, 0, Er, F64),
    row("vcvttpd2dq", Form::kNarrow, Op::kCvtF64I32Trunc, I32, MZ, "AVX512F", -1, 0, Sae, F64),
    row("vcvtudq2ps", Form::kUnary, Op::kCvtU32F32, F32, MZ, "AVX512F", -1, 0, Er, I32),
    row("vcvtudq2pd", Form::kWiden, Op::kCvtU32F64, F64, MZ, "AVX512F", -1, 0, NoRnd, I32),
    // Half precision: the source/destination element is 16 bits (I16).
    row("vcvtph2ps", Form::kWiden, Op::kCvtF16F32, F32, MZ, "AVX512F", -1, 0, Sae, I16),
    row("vcvtps2ph", Form::kNarrow, Op::kCvtF32F16, I16, MZ, "AVX512F", -1, 0, Sae, F32),
    row("vcvtss2sd", Form::kBinary, Op::kCvtF32F64, F64, MZ, "AVX512F", -1, kRowScalar, Sae, F32),
    row("vcvtsd2ss", Form::kBinary, Op::kCvtF64F32, F32, MZ, "AVX512F", -1, kRowScalar, Er, F64),
    // Element 0 to a signed GPR; imm 1 = truncating.
    row("vcvtss2si", Form::kConvertToGpr, Op::kCvtFInt, F32, NoMask, "AVX512F", 0, kRowScalar, Er),
    row("vcvtsd2si", Form::kConvertToGpr, Op::kCvtFInt, F64, NoMask, "AVX512F", 0, kRowScalar, Er),
    row("vcvttss2si", Form::kConvertToGpr, Op::kCvtFInt, F32, NoMask, "AVX512F", 1, kRowScalar, Sae),
    row("vcvttsd2si", Form::kConvertToGpr, Op::kCvtFInt, F64, NoMask, "AVX512F", 1, kRowScalar, Sae),
    // Integer GPR/memory to element 0; imm 1 = the integer is unsigned.
    row("vcvtsi2ss", Form::kConvertFromGpr, Op::kCvtIntF, F32, NoMask, "AVX512F", 0, kRowScalar, Er),
    row("vcvtsi2sd", Form::kConvertFromGpr, Op::kCvtIntF, F64, NoMask, "AVX512F", 0, kRowScalar, Er),
    row("vcvtusi2ss", Form::kConvertFromGpr, Op::kCvtIntF, F32, NoMask, "AVX512F", 1, kRowScalar, Er),
    row("vcvtusi2sd", Form::kConvertFromGpr, Op::kCvtIntF, F64, NoMask, "AVX512F", 1, kRowScalar, Er),
    widen("vpmovzxbw", Op::kZeroExtend, I16, I8, "AVX512BW"),
    widen("vpmovzxbd", Op::kZeroExtend, I32, I8, "AVX512F"),
    widen("vpmovzxbq", Op::kZeroExtend, I64, I8, "AVX512F"),
    widen("vpmovzxwd", Op::kZeroExtend, I32, I16, "AVX512F"),
    widen("vpmovzxwq", Op::kZeroExtend, I64, I16, "AVX512F"),
    widen("vpmovzxdq", Op::kZeroExtend, I64, I32, "AVX512F"),
    widen("vpmovsxbw", Op::kSignExtend, I16, I8, "AVX512BW"),
    widen("vpmovsxbd", Op::kSignExtend, I32, I8, "AVX512F"),
    widen("vpmovsxbq", Op::kSignExtend, I64, I8, "AVX512F"),
    widen("vpmovsxwd", Op::kSignExtend, I32, I16, "AVX512F"),
    widen("vpmovsxwq", Op::kSignExtend, I64, I16, "AVX512F"),
    widen("vpmovsxdq", Op::kSignExtend, I64, I32, "AVX512F"),
    narrow("vpmovwb", Op::kTruncate, I8, I16, "AVX512BW"),
    narrow("vpmovdb", Op::kTruncate, I8, I32, "AVX512F"),
    narrow("vpmovdw", Op::kTruncate, I16, I32, "AVX512F"),
    narrow("vpmovqb", Op::kTruncate, I8, I64, "AVX512F"),
    narrow("vpmovqw", Op::kTruncate, I16, I64, "AVX512F"),
    narrow("vpmovqd", Op::kTruncate, I32, I64, "AVX512F"),
    narrow("vpmovswb", Op::kTruncSatS, I8, I16, "AVX512BW"),
    narrow("vpmovsdb", Op::kTruncSatS, I8, I32, "AVX512F"),
    narrow("vpmovsdw", Op::kTruncSatS, I16, I32, "AVX512F"),
    narrow("vpmovsqb", Op::kTruncSatS, I8, I64, "AVX512F"),
    narrow("vpmovsqw", Op::kTruncSatS, I16, I64, "AVX512F"),
    narrow("vpmovsqd", Op::kTruncSatS, I32, I64, "AVX512F"),
    narrow("vpmovuswb", Op::kTruncSatU, I8, I16, "AVX512BW"),
    narrow("vpmovusdb", Op::kTruncSatU, I8, I32, "AVX512F"),
    narrow("vpmovusdw", Op::kTruncSatU, I16, I32, "AVX512F"),
    narrow("vpmovusqb", Op::kTruncSatU, I8, I64, "AVX512F"),
    narrow("vpmovusqw", Op::kTruncSatU, I16, I64, "AVX512F"),
    narrow("vpmovusqd", Op::kTruncSatU, I32, I64, "AVX512F"),
    row("vpacksswb", Form::kBinary, Op::kPackSS, I8, MZ, "AVX512BW", -1, 0, NoRnd, I16),
    row("vpackssdw", Form::kBinary, Op::kPackSS, I16, MZ, "AVX512BW", -1, 0, NoRnd, I32),
    row("vpackuswb", Form::kBinary, Op::kPackUS, I8, MZ, "AVX512BW", -1, 0, NoRnd, I16),
    row("vpackusdw", Form::kBinary, Op::kPackUS, I16, MZ, "AVX512BW", -1, 0, NoRnd, I32),
    row("vpmovb2m", Form::kVecToMask, Op::kVecToMask, I8, NoMask, "AVX512BW"),
    row("vpmovw2m", Form::kVecToMask, Op::kVecToMask, I16, NoMask, "AVX512BW"),
    row("vpmovd2m", Form::kVecToMask, Op::kVecToMask, I32, NoMask, "AVX512DQ"),
    row("vpmovq2m", Form::kVecToMask, Op::kVecToMask, I64, NoMask, "AVX512DQ"),
    row("vpmovm2b", Form::kMaskToVec, Op::kMaskToVec, I8, NoMask, "AVX512BW"),
    row("vpmovm2w", Form::kMaskToVec, Op::kMaskToVec, I16, NoMask, "AVX512BW"),
    row("vpmovm2d", Form::kMaskToVec, Op::kMaskToVec, I32, NoMask, "AVX512DQ"),
    row("vpmovm2q", Form::kMaskToVec, Op::kMaskToVec, I64, NoMask, "AVX512DQ"),

    // ---- Shuffles and permutes ----------------------------------------------
    binary("vpshufb", Op::kShufb, I8, "AVX512BW"),
    unary("vpshufd", Op::kShufImm, I32, "AVX512F"),
    unary("vpshuflw", Op::kShufWordsLo, I16, "AVX512BW"),
    unary("vpshufhw", Op::kShufWordsHi, I16, "AVX512BW"),
    binary("vshufps", Op::kShuf2Imm, F32, "AVX512F"),
    binary("vshufpd", Op::kShuf2Imm, F64, "AVX512F"),
    row("vpermilps", Form::kPermuteInLane, Op::kPermilVar, F32, MZ, "AVX512F"),
    row("vpermilpd", Form::kPermuteInLane, Op::kPermilVar, F64, MZ, "AVX512F"),
    // Duplicating moves are fixed in-lane shuffles: elements 0,0,2,2 (imm
    // 0xa0), 1,1,3,3 (0xf5), and the low qword of each lane (imm 0).
    row("vmovsldup", Form::kUnary, Op::kShufImm, F32, MZ, "AVX512F", 0xa0),
    row("vmovshdup", Form::kUnary, Op::kShufImm, F32, MZ, "AVX512F", 0xf5),
    row("vmovddup", Form::kUnary, Op::kShufImm, F64, MZ, "AVX512F", 0),
    binary("vunpcklps", Op::kUnpackLo, F32, "AVX512F"),
    binary("vunpckhps", Op::kUnpackHi, F32, "AVX512F"),
    binary("vunpcklpd", Op::kUnpackLo, F64, "AVX512F"),
    binary("vunpckhpd", Op::kUnpackHi, F64, "AVX512F"),
    binary("vpunpcklbw", Op::kUnpackLo, I8, "AVX512BW"),
    binary("vpunpckhbw", Op::kUnpackHi, I8, "AVX512BW"),
    binary("vpunpcklwd", Op::kUnpackLo, I16, "AVX512BW"),
    binary("vpunpckhwd", Op::kUnpackHi, I16, "AVX512BW"),
    binary("vpunpckldq", Op::kUnpackLo, I32, "AVX512F"),
    binary("vpunpckhdq", Op::kUnpackHi, I32, "AVX512F"),
    binary("vpunpcklqdq", Op::kUnpackLo, I64, "AVX512F"),
    binary("vpunpckhqdq", Op::kUnpackHi, I64, "AVX512F"),
    binary("vpalignr", Op::kAlignR, I8, "AVX512BW"),
    row("vpermb", Form::kPermute, Op::kPermIdx, I8, MZ, "AVX512VBMI"),
    row("vpermw", Form::kPermute, Op::kPermIdx, I16, MZ, "AVX512BW"),
    row("vpermd", Form::kPermute, Op::kPermIdx, I32, MZ, "AVX512F"),
    row("vpermq", Form::kPermute, Op::kPermIdx, I64, MZ, "AVX512F"),
    row("vpermps", Form::kPermute, Op::kPermIdx, F32, MZ, "AVX512F"),
    row("vpermpd", Form::kPermute, Op::kPermIdx, F64, MZ, "AVX512F"),
    row("vpermt2b", Form::kPermute2, Op::kPerm2, I8, MZ, "AVX512VBMI"),
    row("vpermt2w", Form::kPermute2, Op::kPerm2, I16, MZ, "AVX512BW"),
    row("vpermt2d", Form::kPermute2, Op::kPerm2, I32, MZ, "AVX512F"),
    row("vpermt2q", Form::kPermute2, Op::kPerm2, I64, MZ, "AVX512F"),
    row("vpermt2ps", Form::kPermute2, Op::kPerm2, F32, MZ, "AVX512F"),
    row("vpermt2pd", Form::kPermute2, Op::kPerm2, F64, MZ, "AVX512F"),
    row("vpermi2b", Form::kPermute2, Op::kPerm2, I8, MZ, "AVX512VBMI", -1, kRowIndexIsDst),
    row("vpermi2w", Form::kPermute2, Op::kPerm2, I16, MZ, "AVX512BW", -1, kRowIndexIsDst),
    row("vpermi2d", Form::kPermute2, Op::kPerm2, I32, MZ, "AVX512F", -1, kRowIndexIsDst),
    row("vpermi2q", Form::kPermute2, Op::kPerm2, I64, MZ, "AVX512F", -1, kRowIndexIsDst),
    row("vpermi2ps", Form::kPermute2, Op::kPerm2, F32, MZ, "AVX512F", -1, kRowIndexIsDst),
    row("vpermi2pd", Form::kPermute2, Op::kPerm2, F64, MZ, "AVX512F", -1, kRowIndexIsDst),
    binary("vshufi32x4", Op::kShufLanes, I32, "AVX512F"),
    binary("vshufi64x2", Op::kShufLanes, I64, "AVX512F"),
    binary("vshuff32x4", Op::kShufLanes, F32, "AVX512F"),
    binary("vshuff64x2", Op::kShufLanes, F64, "AVX512F"),
    binary("valignd", Op::kValign, I32, "AVX512F"),
    binary("valignq", Op::kValign, I64, "AVX512F"),
    row("vextracti32x4", Form::kExtract, Op::kExtractLane, I32, MZ, "AVX512F"),
    row("vextractf32x4", Form::kExtract, Op::kExtractLane, F32, MZ, "AVX512F"),
    row("vextracti64x2", Form::kExtract, Op::kExtractLane, I64, MZ, "AVX512DQ"),
    row("vextractf64x2", Form::kExtract, Op::kExtractLane, F64, MZ, "AVX512DQ"),
    row("vextracti32x8", Form::kExtract, Op::kExtractLane, I32, MZ, "AVX512DQ"),
    row("vextractf32x8", Form::kExtract, Op::kExtractLane, F32, MZ, "AVX512DQ"),
    row("vextracti64x4", Form::kExtract, Op::kExtractLane, I64, MZ, "AVX512F"),
    row("vextractf64x4", Form::kExtract, Op::kExtractLane, F64, MZ, "AVX512F"),
    row("vinserti32x4", Form::kInsert, Op::kInsertLane, I32, MZ, "AVX512F"),
    row("vinsertf32x4", Form::kInsert, Op::kInsertLane, F32, MZ, "AVX512F"),
    row("vinserti64x2", Form::kInsert, Op::kInsertLane, I64, MZ, "AVX512DQ"),
    row("vinsertf64x2", Form::kInsert, Op::kInsertLane, F64, MZ, "AVX512DQ"),
    row("vinserti32x8", Form::kInsert, Op::kInsertLane, I32, MZ, "AVX512DQ"),
    row("vinsertf32x8", Form::kInsert, Op::kInsertLane, F32, MZ, "AVX512DQ"),
    row("vinserti64x4", Form::kInsert, Op::kInsertLane, I64, MZ, "AVX512F"),
    row("vinsertf64x4", Form::kInsert, Op::kInsertLane, F64, MZ, "AVX512F"),
    // One qword (imm = 0 low, 1 high) between xmm and m64; no masking.
    row("vmovlps", Form::kMoveHalf, Op::kSelect, I64, NoMask, "AVX512F", 0),
    row("vmovhps", Form::kMoveHalf, Op::kSelect, I64, NoMask, "AVX512F", 1),
    row("vmovlpd", Form::kMoveHalf, Op::kSelect, I64, NoMask, "AVX512F", 0),
    row("vmovhpd", Form::kMoveHalf, Op::kSelect, I64, NoMask, "AVX512F", 1),
    // Element moves between xmm and GPR/memory: 128-bit only, no masking.
    row("vpextrb", Form::kExtractElem, Op::kVecToGpr, I8, NoMask, "AVX512BW"),
    row("vpextrw", Form::kExtractElem, Op::kVecToGpr, I16, NoMask, "AVX512BW"),
    row("vpextrd", Form::kExtractElem, Op::kVecToGpr, I32, NoMask, "AVX512DQ"),
    row("vpextrq", Form::kExtractElem, Op::kVecToGpr, I64, NoMask, "AVX512DQ"),
    row("vextractps", Form::kExtractElem, Op::kVecToGpr, I32, NoMask, "AVX512F"),
    row("vpinsrb", Form::kInsertElem, Op::kSelect, I8, NoMask, "AVX512BW"),
    row("vpinsrw", Form::kInsertElem, Op::kSelect, I16, NoMask, "AVX512BW"),
    row("vpinsrd", Form::kInsertElem, Op::kSelect, I32, NoMask, "AVX512DQ"),
    row("vpinsrq", Form::kInsertElem, Op::kSelect, I64, NoMask, "AVX512DQ"),
    row("vinsertps", Form::kInsertPs, Op::kSelect, I32, NoMask, "AVX512F"),
    row("vpblendmb", Form::kBlend, Op::kSelect, I8, NoMask, "AVX512BW"),
    row("vpblendmw", Form::kBlend, Op::kSelect, I16, NoMask, "AVX512BW"),
    row("vpblendmd", Form::kBlend, Op::kSelect, I32, NoMask, "AVX512F"),
    row("vpblendmq", Form::kBlend, Op::kSelect, I64, NoMask, "AVX512F"),
    row("vblendmps", Form::kBlend, Op::kSelect, F32, NoMask, "AVX512F"),
    row("vblendmpd", Form::kBlend, Op::kSelect, F64, NoMask, "AVX512F"),
    row("vpcompressb", Form::kCompress, Op::kCompress, I8, MZ, "AVX512VBMI2"),
    row("vpcompressw", Form::kCompress, Op::kCompress, I16, MZ, "AVX512VBMI2"),
    row("vpcompressd", Form::kCompress, Op::kCompress, I32, MZ, "AVX512F"),
    row("vpcompressq", Form::kCompress, Op::kCompress, I64, MZ, "AVX512F"),
    row("vpexpandb", Form::kExpand, Op::kExpand, I8, MZ, "AVX512VBMI2"),
    row("vpexpandw", Form::kExpand, Op::kExpand, I16, MZ, "AVX512VBMI2"),
    row("vpexpandd", Form::kExpand, Op::kExpand, I32, MZ, "AVX512F"),
    row("vpexpandq", Form::kExpand, Op::kExpand, I64, MZ, "AVX512F"),
    // FP compress/expand move elements without arithmetic: no MXCSR effect.
    row("vcompressps", Form::kCompress, Op::kCompress, F32, MZ, "AVX512F"),
    row("vcompresspd", Form::kCompress, Op::kCompress, F64, MZ, "AVX512F"),
    row("vexpandps", Form::kExpand, Op::kExpand, F32, MZ, "AVX512F"),
    row("vexpandpd", Form::kExpand, Op::kExpand, F64, MZ, "AVX512F"),
    // 128-bit only, no masking: vmovlhps = (src1.q0, src2.q0) is unpcklqdq;
    // vmovhlps = (src2.q1, src1.q1) is unpckhqdq with the sources swapped.
    row("vmovlhps", Form::kBinary, Op::kUnpackLo, I64, NoMask, "AVX512F"),
    row("vmovhlps", Form::kBinary, Op::kUnpackHi, I64, NoMask, "AVX512F", -1, kRowSwapSources),

    // ---- VNNI dot products: dst accumulates -------------------------------------
    row("vpdpwssd", Form::kTernary, Op::kDotWSSD, I32, MZ, "AVX512VNNI"),
    row("vpdpbusd", Form::kTernary, Op::kDotBUSD, I32, MZ, "AVX512VNNI"),
    row("vpdpwssds", Form::kTernary, Op::kDotWSSDS, I32, MZ, "AVX512VNNI"),
    row("vpdpbusds", Form::kTernary, Op::kDotBUSDS, I32, MZ, "AVX512VNNI"),

    // ---- IFMA: 52-bit multiply, dst accumulates ---------------------------------
    row("vpmadd52luq", Form::kTernary, Op::kMAdd52Lo, I64, MZ, "AVX512IFMA"),
    row("vpmadd52huq", Form::kTernary, Op::kMAdd52Hi, I64, MZ, "AVX512IFMA"),

    // ---- Cryptography: per 128-bit lane, no masking ---------------------------
    row("vaesenc", Form::kBinary, Op::kAesEnc, I64, NoMask, "VAES"),
    row("vaesenclast", Form::kBinary, Op::kAesEncLast, I64, NoMask, "VAES"),
    row("vaesdec", Form::kBinary, Op::kAesDec, I64, NoMask, "VAES"),
    row("vaesdeclast", Form::kBinary, Op::kAesDecLast, I64, NoMask, "VAES"),
    row("vpclmulqdq", Form::kBinary, Op::kClMul, I64, NoMask, "VPCLMULQDQ"),

    // ---- Opmask instructions (VEX-encoded, ISA sets *_KOP) -----------------
#define AVX512EMU_KOP_ROWS(name, form, op)                                   \
  kop("k" name "b", Form::form, Op::op, I8, "AVX512DQ"),                     \
      kop("k" name "w", Form::form, Op::op, I16, "AVX512F"),                 \
      kop("k" name "d", Form::form, Op::op, I32, "AVX512BW"),                \
      kop("k" name "q", Form::form, Op::op, I64, "AVX512BW")
    AVX512EMU_KOP_ROWS("mov", kMaskMove, kSelect),
    AVX512EMU_KOP_ROWS("and", kMaskBinary, kKAnd),
    AVX512EMU_KOP_ROWS("andn", kMaskBinary, kKAndN),
    AVX512EMU_KOP_ROWS("or", kMaskBinary, kKOr),
    AVX512EMU_KOP_ROWS("xor", kMaskBinary, kKXor),
    AVX512EMU_KOP_ROWS("xnor", kMaskBinary, kKXnor),
    AVX512EMU_KOP_ROWS("add", kMaskBinary, kKAdd),
    AVX512EMU_KOP_ROWS("not", kMaskUnary, kKNot),
    AVX512EMU_KOP_ROWS("shiftl", kMaskUnary, kKShl),
    AVX512EMU_KOP_ROWS("shiftr", kMaskUnary, kKShr),
    AVX512EMU_KOP_ROWS("ortest", kMaskTest, kKOrTest),
    AVX512EMU_KOP_ROWS("test", kMaskTest, kKTest),
#undef AVX512EMU_KOP_ROWS
    // kunpck: the element type is the destination width.
    kop("kunpckbw", Form::kMaskBinary, Op::kKUnpck, I16, "AVX512F"),
    kop("kunpckwd", Form::kMaskBinary, Op::kKUnpck, I32, "AVX512BW"),
    kop("kunpckdq", Form::kMaskBinary, Op::kKUnpck, I64, "AVX512BW"),
};

}  // namespace

std::span<const SemanticsRow> semantics_rows() { return kRows; }

const SemanticsRow* find_semantics(const char* mnemonic) {
  for (const SemanticsRow& r : kRows)
    if (std::strcmp(r.mnemonic, mnemonic) == 0) return &r;
  return nullptr;
}

}  // namespace avx512emu
