// Owns the guest side of Zydis: decoding bytes into DecodedInsn and
// formatting it back to text.
#include <Zydis/Zydis.h>

#include <cstring>

#include "decoded_insn.h"
#include "zydis_common_p.h"

namespace avx512emu {

const char* decode_status_name(DecodeStatus s) {
  switch (s) {
    case DecodeStatus::kOk:
      return "ok";
    case DecodeStatus::kNotAvx512:
      return "not an AVX-512 instruction";
    case DecodeStatus::kInvalid:
      return "invalid instruction";
    case DecodeStatus::kTruncated:
      return "truncated instruction";
  }
  return "?";
}

std::string hex_bytes(const uint8_t* p, size_t n) {
  static const char kHex[] = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    s += kHex[p[i] >> 4];
    s += kHex[p[i] & 15];
  }
  return s;
}

namespace {

using zydis_common::decoder64;
using zydis_common::gpr_number;

uint8_t broadcast_count(ZydisBroadcastMode m) {
  switch (m) {
    case ZYDIS_BROADCAST_MODE_1_TO_2:
      return 2;
    case ZYDIS_BROADCAST_MODE_1_TO_4:
      return 4;
    case ZYDIS_BROADCAST_MODE_1_TO_8:
      return 8;
    case ZYDIS_BROADCAST_MODE_1_TO_16:
      return 16;
    case ZYDIS_BROADCAST_MODE_1_TO_32:
      return 32;
    case ZYDIS_BROADCAST_MODE_1_TO_64:
      return 64;
    default:
      return 0;
  }
}

Rounding rounding_of(ZydisRoundingMode m) {
  switch (m) {
    case ZYDIS_ROUNDING_MODE_RN:
      return Rounding::kNearest;
    case ZYDIS_ROUNDING_MODE_RD:
      return Rounding::kDown;
    case ZYDIS_ROUNDING_MODE_RU:
      return Rounding::kUp;
    case ZYDIS_ROUNDING_MODE_RZ:
      return Rounding::kZero;
    default:
      return Rounding::kNone;
  }
}

// Copies one visible Zydis operand; returns false for operand shapes the
// project never lowers (segment registers, far pointers, VSIB, ...).
bool copy_operand(const ZydisDecodedOperand& z, Operand& o) {
  o.read = (z.actions & ZYDIS_OPERAND_ACTION_MASK_READ) != 0;
  o.written = (z.actions & ZYDIS_OPERAND_ACTION_MASK_WRITE) != 0;
  o.bits = z.size;
  switch (z.type) {
    case ZYDIS_OPERAND_TYPE_REGISTER: {
      const ZydisRegisterClass cls = ZydisRegisterGetClass(z.reg.value);
      if (cls == ZYDIS_REGCLASS_XMM || cls == ZYDIS_REGCLASS_YMM || cls == ZYDIS_REGCLASS_ZMM) {
        o.kind = OperandKind::kVec;
        o.reg = uint8_t(ZydisRegisterGetId(z.reg.value));
      } else if (cls == ZYDIS_REGCLASS_MASK) {
        o.kind = OperandKind::kMask;
        o.reg = uint8_t(ZydisRegisterGetId(z.reg.value));
      } else if (gpr_number(z.reg.value) >= 0) {
        o.kind = OperandKind::kGpr;
        o.reg = uint8_t(gpr_number(z.reg.value));
      } else {
        return false;
      }
      return true;
    }
    case ZYDIS_OPERAND_TYPE_MEMORY: {
      if (z.mem.type != ZYDIS_MEMOP_TYPE_MEM || z.mem.index >= ZYDIS_REGISTER_XMM0) {
        // VSIB (gathers/scatters) and agen-only forms are not memory reads.
        if (z.mem.type != ZYDIS_MEMOP_TYPE_MEM) return false;
        if (ZydisRegisterGetClass(z.mem.index) != ZYDIS_REGCLASS_GPR64 &&
            z.mem.index != ZYDIS_REGISTER_NONE)
          return false;
      }
      o.kind = OperandKind::kMem;
      o.mem.rip_relative = z.mem.base == ZYDIS_REGISTER_RIP;
      o.mem.base = int8_t(o.mem.rip_relative ? -1 : gpr_number(z.mem.base));
      o.mem.index = int8_t(gpr_number(z.mem.index));
      if (o.mem.base < -1 || o.mem.index < -1) return false;  // 32-bit addressing etc.
      if (ZydisRegisterGetClass(z.mem.base) == ZYDIS_REGCLASS_GPR32) return false;
      o.mem.scale = z.mem.scale ? z.mem.scale : 1;
      o.mem.disp = z.mem.disp.has_displacement ? z.mem.disp.value : 0;
      o.mem.segment = z.mem.segment == ZYDIS_REGISTER_FS   ? 1
                      : z.mem.segment == ZYDIS_REGISTER_GS ? 2
                                                           : 0;
      o.mem.bytes = uint16_t(z.size / 8);
      return true;
    }
    case ZYDIS_OPERAND_TYPE_IMMEDIATE:
      o.kind = OperandKind::kImm;
      o.imm = z.imm.value.u;
      return true;
    default:
      return false;
  }
}

}  // namespace

DecodeStatus decode(const uint8_t* bytes, size_t size, DecodedInsn& out) {
  out = DecodedInsn{};
  // No bytes is "needs more bytes" whatever the pointer; Zydis and memcpy
  // below must not be handed a null buffer (translate(nullptr, 0)).
  if (size == 0) return DecodeStatus::kTruncated;
  ZydisDecodedInstruction zi;
  ZydisDecodedOperand zops[ZYDIS_MAX_OPERAND_COUNT];
  const ZyanStatus st = ZydisDecoderDecodeFull(&decoder64(), bytes, size, &zi, zops);
  if (st == ZYDIS_STATUS_NO_MORE_DATA) return DecodeStatus::kTruncated;
  if (!ZYAN_SUCCESS(st)) {
    // Zydis reports a cut-off instruction as a decoding error when the
    // prefix bytes alone look malformed; retry with padding to tell apart
    // "needs more bytes" from "can never decode".
    if (size < 15) {
      uint8_t padded[15] = {};
      std::memcpy(padded, bytes, size);
      ZydisDecodedInstruction probe;
      if (ZYAN_SUCCESS(ZydisDecoderDecodeInstruction(&decoder64(), nullptr, padded, 15, &probe)) &&
          probe.length > size)
        return DecodeStatus::kTruncated;
    }
    return DecodeStatus::kInvalid;
  }
  out.length = zi.length;
  std::memcpy(out.bytes, bytes, zi.length);
  out.mnemonic_id = uint16_t(zi.mnemonic);
  out.mnemonic = ZydisMnemonicGetString(zi.mnemonic);
  out.isa_set = ZydisISASetGetString(zi.meta.isa_set);
  out.evex = zi.encoding == ZYDIS_INSTRUCTION_ENCODING_EVEX;
  out.vex = zi.encoding == ZYDIS_INSTRUCTION_ENCODING_VEX;
  const bool avx512 = std::strncmp(out.isa_set, "AVX512", 6) == 0;
  if (!avx512) return DecodeStatus::kNotAvx512;

  out.vector_bits = out.evex ? zi.avx.vector_length : 0;
  if (out.evex && zi.avx.mask.reg != ZYDIS_REGISTER_NONE)
    out.opmask = uint8_t(ZydisRegisterGetId(zi.avx.mask.reg));
  // vpblendm*/vblendmp* use the mask as a control; Zydis reports their {z}
  // as CONTROL_ZEROING.
  out.zeroing = zi.avx.mask.mode == ZYDIS_MASK_MODE_ZEROING ||
                zi.avx.mask.mode == ZYDIS_MASK_MODE_CONTROL_ZEROING;
  out.broadcast = broadcast_count(zi.avx.broadcast.mode);
  out.rounding = rounding_of(zi.avx.rounding.mode);
  out.sae = zi.avx.has_sae || out.rounding != Rounding::kNone;

  for (int i = 0; i < zi.operand_count_visible; ++i) {
    const ZydisDecodedOperand& z = zops[i];
    // The {k} decoration is carried in `opmask`, not as an operand.
    if (z.encoding == ZYDIS_OPERAND_ENCODING_MASK) continue;
    if (out.operand_count == 5) return DecodeStatus::kInvalid;
    Operand& o = out.ops[out.operand_count++];
    if (!copy_operand(z, o)) {
      o.kind = OperandKind::kNone;  // lowering reports the form as unsupported
    }
    if (o.kind == OperandKind::kMem && out.broadcast) o.mem.bytes = uint16_t(z.element_size / 8);
  }
  return DecodeStatus::kOk;
}

size_t instruction_length(const uint8_t* bytes, size_t size) {
  static const ZydisDecoder minimal = [] {
    ZydisDecoder d;
    ZydisDecoderInit(&d, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64);
    ZydisDecoderEnableMode(&d, ZYDIS_DECODER_MODE_MINIMAL, ZYAN_TRUE);
    return d;
  }();
  ZydisDecodedInstruction zi;
  if (!ZYAN_SUCCESS(ZydisDecoderDecodeInstruction(&minimal, nullptr, bytes, size, &zi))) return 0;
  return zi.length;
}

std::string format_insn(const DecodedInsn& insn, uint64_t address) {
  static const ZydisFormatter formatter = [] {
    ZydisFormatter f;
    ZydisFormatterInit(&f, ZYDIS_FORMATTER_STYLE_INTEL);
    return f;
  }();
  ZydisDecodedInstruction zi;
  ZydisDecodedOperand zops[ZYDIS_MAX_OPERAND_COUNT];
  if (!ZYAN_SUCCESS(ZydisDecoderDecodeFull(&decoder64(), insn.bytes, insn.length, &zi, zops)))
    return "(undecodable)";
  char buf[256];
  if (!ZYAN_SUCCESS(ZydisFormatterFormatInstruction(&formatter, &zi, zops, zi.operand_count_visible,
                                                    buf, sizeof buf, address, nullptr)))
    return "(unformattable)";
  return buf;
}

}  // namespace avx512emu

namespace avx512emu {

std::vector<DisasmLine> disassemble(const uint8_t* code, size_t size) {
  std::vector<DisasmLine> out;
  size_t off = 0;
  while (off < size) {
    DisasmLine line;
    line.offset = uint32_t(off);
    DecodedInsn d;
    const DecodeStatus st = decode(code + off, size - off, d);
    if (st != DecodeStatus::kOk && st != DecodeStatus::kNotAvx512) {
      line.valid = false;
      line.text = "(bad) " + hex_bytes(code + off, 1);
      out.push_back(line);
      break;
    }
    line.length = d.length;
    line.text = format_insn(d, off);
    line.isa_set = d.isa_set;
    line.evex = d.evex;
    out.push_back(line);
    off += d.length;
  }
  return out;
}

}  // namespace avx512emu
