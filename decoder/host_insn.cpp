// Owns decode_host_insn(): Zydis facts about host x86-64 code (generated
// translations, copied program code) for relocation and register liveness.
#include "host_insn.h"

#include "zydis_common_p.h"

namespace avx512emu {
namespace {

using zydis_common::gpr_number;

//! Marks register `r` read and/or written in `out`.
void note_register(ZydisRegister r, bool read, bool written, HostInsn& out) {
  const int g = gpr_number(r);
  if (g >= 0) {
    if (read) out.gprs_read |= uint16_t(1u << g);
    if (written) out.gprs_written |= uint16_t(1u << g);
    if (written && g == 4) out.stack = true;
    return;
  }
  const ZydisRegisterClass cls = ZydisRegisterGetClass(r);
  if (cls == ZYDIS_REGCLASS_XMM || cls == ZYDIS_REGCLASS_YMM || cls == ZYDIS_REGCLASS_ZMM) {
    const int id = ZydisRegisterGetId(r);
    if (id >= 16 || cls == ZYDIS_REGCLASS_ZMM) out.high_vec = true;
    if (id < 16) {
      if (read) out.vecs_read |= uint16_t(1u << id);
      if (written) out.vecs_written |= uint16_t(1u << id);
    }
  } else if (cls == ZYDIS_REGCLASS_MASK) {
    out.high_vec = true;
  }
}

//! Zydis flag bits as HostFlag bits.
uint8_t host_flags(ZydisAccessedFlagsMask m) {
  return uint8_t((m & ZYDIS_CPUFLAG_CF ? kHostCF : 0) | (m & ZYDIS_CPUFLAG_PF ? kHostPF : 0) |
                 (m & ZYDIS_CPUFLAG_AF ? kHostAF : 0) | (m & ZYDIS_CPUFLAG_ZF ? kHostZF : 0) |
                 (m & ZYDIS_CPUFLAG_SF ? kHostSF : 0) | (m & ZYDIS_CPUFLAG_OF ? kHostOF : 0));
}

int segment_of(ZydisRegister s) {
  return s == ZYDIS_REGISTER_FS ? 1 : s == ZYDIS_REGISTER_GS ? 2 : 0;
}

}  // namespace

bool decode_host_insn(const uint8_t* bytes, size_t size, HostInsn& out) {
  out = HostInsn{};
  ZydisDecodedInstruction zi;
  ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
  if (!ZYAN_SUCCESS(ZydisDecoderDecodeFull(&zydis_common::decoder64(), bytes, size, &zi, ops))) return false;
  out.length = zi.length;

  switch (zi.mnemonic) {
    case ZYDIS_MNEMONIC_JMP:
      out.kind = HostInsnKind::kJump;
      break;
    case ZYDIS_MNEMONIC_JB: case ZYDIS_MNEMONIC_JBE: case ZYDIS_MNEMONIC_JL:
    case ZYDIS_MNEMONIC_JLE: case ZYDIS_MNEMONIC_JNB: case ZYDIS_MNEMONIC_JNBE:
    case ZYDIS_MNEMONIC_JNL: case ZYDIS_MNEMONIC_JNLE: case ZYDIS_MNEMONIC_JNO:
    case ZYDIS_MNEMONIC_JNP: case ZYDIS_MNEMONIC_JNS: case ZYDIS_MNEMONIC_JNZ:
    case ZYDIS_MNEMONIC_JO: case ZYDIS_MNEMONIC_JP: case ZYDIS_MNEMONIC_JS:
    case ZYDIS_MNEMONIC_JZ: case ZYDIS_MNEMONIC_JCXZ: case ZYDIS_MNEMONIC_JECXZ:
    case ZYDIS_MNEMONIC_JRCXZ: case ZYDIS_MNEMONIC_LOOP: case ZYDIS_MNEMONIC_LOOPE:
    case ZYDIS_MNEMONIC_LOOPNE:
      out.kind = HostInsnKind::kCondJump;
      break;
    case ZYDIS_MNEMONIC_RET:
      out.kind = HostInsnKind::kRet;
      break;
    case ZYDIS_MNEMONIC_VZEROUPPER:
    case ZYDIS_MNEMONIC_VZEROALL:
      out.kind = HostInsnKind::kVzeroupper;
      break;
    case ZYDIS_MNEMONIC_VSTMXCSR: case ZYDIS_MNEMONIC_STMXCSR:
      out.kind = HostInsnKind::kStmxcsr;
      break;
    case ZYDIS_MNEMONIC_VLDMXCSR: case ZYDIS_MNEMONIC_LDMXCSR:
      out.kind = HostInsnKind::kLdmxcsr;
      break;
    default:
      // XSAVE/FXSAVE-family instructions read or load the whole register
      // state, which no operand list shows.
      if (zi.meta.branch_type != ZYDIS_BRANCH_TYPE_NONE ||
          zi.meta.category == ZYDIS_CATEGORY_SYSTEM || zi.meta.category == ZYDIS_CATEGORY_SYSCALL ||
          zi.meta.category == ZYDIS_CATEGORY_INTERRUPT ||
          zi.meta.category == ZYDIS_CATEGORY_XSAVE || zi.meta.isa_set == ZYDIS_ISA_SET_FXSAVE ||
          zi.meta.isa_set == ZYDIS_ISA_SET_FXSAVE64)
        out.kind = HostInsnKind::kOther;
      break;
  }
  // Relative branches outside a jmp/jcc (call rel32) stay kOther: the
  // caller refuses them anyway.
  if (out.kind == HostInsnKind::kJump || out.kind == HostInsnKind::kCondJump) {
    const bool relative = zi.operand_count_visible == 1 && ops[0].type == ZYDIS_OPERAND_TYPE_IMMEDIATE &&
                          ops[0].imm.is_relative;
    if (!relative) {
      out.kind = HostInsnKind::kOther;  // indirect jmp
    } else {
      for (const auto& imm : zi.raw.imm) {
        if (imm.is_relative && imm.size) {
          out.rel_offset = imm.offset;
          out.rel_size = uint8_t(imm.size / 8);
          out.rel_target = int64_t(zi.length) + imm.value.s;
        }
      }
    }
  }

  int memory_operands = 0;
  for (uint8_t n = 0; n < zi.operand_count; ++n) {
    const ZydisDecodedOperand& o = ops[n];
    const bool read = o.actions & ZYDIS_OPERAND_ACTION_MASK_READ;
    const bool written = o.actions & ZYDIS_OPERAND_ACTION_MASK_WRITE;
    if (o.type == ZYDIS_OPERAND_TYPE_REGISTER) {
      if (o.reg.value == ZYDIS_REGISTER_RSP && o.visibility != ZYDIS_OPERAND_VISIBILITY_EXPLICIT)
        out.stack = true;  // push, pop, call, ret, enter, leave
      if (o.reg.value == ZYDIS_REGISTER_RIP || ZydisRegisterGetClass(o.reg.value) == ZYDIS_REGCLASS_FLAGS)
        continue;
      note_register(o.reg.value, read, written, out);
    } else if (o.type == ZYDIS_OPERAND_TYPE_MEMORY) {
      const bool agen = o.mem.type == ZYDIS_MEMOP_TYPE_AGEN;
      if (o.visibility != ZYDIS_OPERAND_VISIBILITY_EXPLICIT && !agen) {
        // Implicit stack memory (push/pop/call/ret) or string operands.
        if (o.mem.base == ZYDIS_REGISTER_RSP) out.stack = true;
        ++memory_operands;
        continue;
      }
      ++memory_operands;
      HostMemOperand& m = out.mem;
      m.present = true;
      m.address_only = agen;
      m.read = read && !agen;
      m.written = written && !agen;
      m.bytes = agen ? 0 : uint16_t(o.size / 8);
      m.segment = uint8_t(segment_of(o.mem.segment));
      m.scale = o.mem.scale;
      m.disp = o.mem.disp.value;
      if (o.mem.base == ZYDIS_REGISTER_RIP) {
        m.base = 16;
        out.rel_offset = zi.raw.disp.offset;
        out.rel_size = uint8_t(zi.raw.disp.size / 8);
        out.rel_target = int64_t(zi.length) + o.mem.disp.value;
      } else {
        m.base = int8_t(gpr_number(o.mem.base));
      }
      const int index = gpr_number(o.mem.index);
      m.index = int8_t(index >= 0 ? index : index == -1 ? -1 : 17);
      if (index == -2) note_register(o.mem.index, true, false, out);
    }
  }
  out.two_memory_operands = memory_operands > 1;
  if (zi.cpu_flags) {
    constexpr ZydisAccessedFlagsMask kArith = ZYDIS_CPUFLAG_CF | ZYDIS_CPUFLAG_PF | ZYDIS_CPUFLAG_AF |
                                              ZYDIS_CPUFLAG_ZF | ZYDIS_CPUFLAG_SF | ZYDIS_CPUFLAG_OF |
                                              ZYDIS_CPUFLAG_DF;
    const ZydisAccessedFlags& f = *zi.cpu_flags;
    out.flags_written = ((f.modified | f.set_0 | f.set_1 | f.undefined) & kArith) != 0;
    out.flags_tested = host_flags(f.tested);
    out.flags_replaced = host_flags(f.modified | f.set_0 | f.set_1 | f.undefined);
  }
  out.vex = zi.encoding == ZYDIS_INSTRUCTION_ENCODING_VEX;
  out.evex = zi.encoding == ZYDIS_INSTRUCTION_ENCODING_EVEX;
  return true;
}

}  // namespace avx512emu
