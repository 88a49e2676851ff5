// Owns the AVX2 lowering of the per-lane cryptographic IR ops (AES rounds,
// carry-less multiplication): the VEX.128 AES-NI / PCLMULQDQ instruction on
// each 128-bit lane.
#include "emit_context.h"

namespace avx512emu::jit {
namespace {

using asmjit::InstId;
using ir::Inst;
using ir::Op;
namespace xi = asmjit::x86::Inst;

constexpr int kLaneBytes = 16;

InstId native_id(Op op) {
  switch (op) {
    case Op::kAesEnc:
      return xi::kIdVaesenc;
    case Op::kAesEncLast:
      return xi::kIdVaesenclast;
    case Op::kAesDec:
      return xi::kIdVaesdec;
    case Op::kAesDecLast:
      return xi::kIdVaesdeclast;
    case Op::kClMul:
      return xi::kIdVpclmulqdq;
    default:
      return 0;
  }
}

//! crypto_by_lanes: the ymm/zmm forms (VAES, VPCLMULQDQ) are these same
//! operations applied to each 128-bit lane independently, and an AVX2 host
//! need not have VAES. The VEX.128 forms (AES-NI and PCLMULQDQ with AVX,
//! present on every AVX2 CPU) compute one lane each, bit for bit the same.
void lower_by_lanes(EmitContext& c, const Inst& i, InstId id) {
  for (int lane = 0; lane < i.bits / 8; lane += kLaneBytes) {
    c.a.vmovdqu(x86::xmm0, c.value(i.src[0], lane));
    if (i.op == Op::kClMul)
      c.a.emit(id, x86::xmm0, x86::xmm0, c.value(i.src[1], lane), asmjit::Imm(i.imm & 0xff));
    else
      c.a.emit(id, x86::xmm0, x86::xmm0, c.value(i.src[1], lane));
    c.a.vmovdqu(c.value(i.dst, lane), x86::xmm0);
  }
}

}  // namespace

bool lower_crypto(EmitContext& c, const ir::Inst& i) {
  const InstId id = native_id(i.op);
  if (id == 0) return false;
  lower_by_lanes(c, i, id);
  return true;
}

}  // namespace avx512emu::jit
