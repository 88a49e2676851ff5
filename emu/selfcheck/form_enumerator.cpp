// Owns test-form enumeration: candidate operand shapes are checked with
// AsmJit's validator, assembled with EVEX forced, and kept only when decode()
// reads them back as the requested mnemonic.
#include "selfcheck/form_enumerator.h"

#include <asmjit/x86.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <set>

#include "selfcheck/state_gen.h"

namespace avx512emu::selfcheck {
namespace {

using namespace asmjit;
// avx512emu::Operand (decoded) and asmjit::Operand (to assemble) both exist.
using AsmOperand = asmjit::Operand;
using Bcst = asmjit::x86::Mem::Broadcast;

// One operand position of a candidate shape. Registers get their numbers
// later; the shape only fixes kind and width.
enum class Slot : uint8_t { kX, kY, kZ, kK, kR32, kR64, kM8, kM16, kM32, kM64, kM128, kM256, kM512, kImm };
constexpr Slot kAllSlots[] = {Slot::kX,   Slot::kY,   Slot::kZ,    Slot::kK,    Slot::kR32,
                              Slot::kR64, Slot::kM8,  Slot::kM16,  Slot::kM32,  Slot::kM64,
                              Slot::kM128, Slot::kM256, Slot::kM512, Slot::kImm};
// AVX-512 instructions have at most four visible operands besides {k}.
constexpr int kMaxOperands = 4;

bool is_mem(Slot s) { return s >= Slot::kM8 && s <= Slot::kM512; }
bool is_vec(Slot s) { return s <= Slot::kZ; }
uint32_t mem_size(Slot s) { return 1u << (uint32_t(s) - uint32_t(Slot::kM8)); }

// Memory base candidates: a fixed small set so the state generator knows
// which registers hold addresses. rsp (host stack) and rbp are never used.
constexpr int kBaseRegs[] = {6 /*rsi*/, 2 /*rdx*/, 9 /*r9*/, 3 /*rbx*/, 12 /*r12*/, 13 /*r13*/};
constexpr int kIndexRegs[] = {1 /*rcx*/, 10 /*r10*/, 15 /*r15*/, 0 /*rax*/};
constexpr int kRsp = 4;

// Concrete register numbers and address parts for one realisation of a shape.
struct RegChoice {
  uint8_t vec[kMaxOperands] = {1, 2, 3, 4};
  uint8_t k[kMaxOperands] = {1, 2, 3, 4};
  uint8_t gpr[kMaxOperands] = {0, 1, 3, 7};
  uint8_t mask = 1;
  int base = 6, index = -1, scale_shift = 0;
  int32_t disp = 0;
};

// A decoration of a shape: masking plus broadcast or rounding.
struct Decoration {
  int mask_mode = 0;  // 0 none, 1 {k}, 2 {k}{z}
  Bcst bcst = Bcst::kNone;
  uint32_t bcst_elem = 0;  // bytes of the broadcast element
  InstOptions rounding = InstOptions::kNone;
};

AsmOperand make_operand(Slot s, int pos, const RegChoice& rc) {
  switch (s) {
    case Slot::kX: return x86::xmm(rc.vec[pos]);
    case Slot::kY: return x86::ymm(rc.vec[pos]);
    case Slot::kZ: return x86::zmm(rc.vec[pos]);
    case Slot::kK: return x86::k(rc.k[pos]);
    case Slot::kR32: return x86::gpd(rc.gpr[pos]);
    case Slot::kR64: return x86::gpq(rc.gpr[pos]);
    case Slot::kImm: return Imm(0x11);
    default: {
      const uint32_t size = mem_size(s);
      if (rc.index >= 0)
        return x86::ptr(x86::gpq(rc.base), x86::gpq(rc.index), rc.scale_shift, rc.disp, size);
      return x86::ptr(x86::gpq(rc.base), rc.disp, size);
    }
  }
}

// Builds the operand array; the memory operand gets the broadcast, if any.
int make_operands(const std::vector<Slot>& shape, const RegChoice& rc, const Decoration& deco,
                  AsmOperand* ops) {
  for (size_t i = 0; i < shape.size(); ++i) {
    ops[i] = make_operand(shape[i], int(i), rc);
    if (is_mem(shape[i]) && deco.bcst != Bcst::kNone) {
      x86::Mem& m = ops[i].as<x86::Mem>();
      m.setSize(deco.bcst_elem);
      m.setBroadcast(deco.bcst);
    }
  }
  return int(shape.size());
}

BaseInst make_inst(InstId id, const Decoration& deco, const RegChoice& rc) {
  InstOptions opts = deco.rounding;
  if (deco.mask_mode == 2) opts |= InstOptions::kX86_ZMask;
  if (deco.mask_mode) return BaseInst(id, opts, x86::k(rc.mask));
  return BaseInst(id, opts);
}

bool validates(const BaseInst& inst, const AsmOperand* ops, int n) {
  return InstAPI::validate(Arch::kX64, inst, ops, size_t(n)) == kErrorOk;
}

// Assembles one instruction; `evex` forces the EVEX prefix where VEX would do.
bool assemble(const BaseInst& inst, const AsmOperand* ops, int n, bool evex, bool mod_mr,
              std::vector<uint8_t>& out) {
  CodeHolder code;
  code.init(Environment(Arch::kX64));
  x86::Assembler a(&code);
  InstOptions opts = inst.options();
  if (evex) opts |= InstOptions::kX86_Evex;
  if (mod_mr) opts |= InstOptions::kX86_ModMR;
  a.addInstOptions(opts);
  if (inst.hasExtraReg()) a.setExtraReg(inst.extraReg());
  if (a.emitOpArray(inst.id(), ops, size_t(n)) != kErrorOk) return false;
  const CodeBuffer& buf = code.textSection()->buffer();
  out.assign(buf.data(), buf.data() + buf.size());
  return !out.empty() && out.size() <= 15;
}

// "map.pp.opcode" of an EVEX/VEX encoding, so that alternative opcodes of
// one shape (load form 6F vs store form 7F of a register move) stay apart.
std::string opcode_key(const uint8_t* b, size_t n) {
  char buf[32];
  if (n >= 5 && b[0] == 0x62) {
    std::snprintf(buf, sizeof buf, "evex.m%u.p%u.%02x", b[1] & 7u, b[2] & 3u, b[4]);
  } else if (n >= 3 && b[0] == 0xc5) {
    std::snprintf(buf, sizeof buf, "vex.m1.p%u.%02x", b[1] & 3u, b[2]);
  } else if (n >= 4 && b[0] == 0xc4) {
    std::snprintf(buf, sizeof buf, "vex.m%u.p%u.%02x", b[1] & 31u, b[2] & 3u, b[3]);
  } else {
    return "legacy";
  }
  return buf;
}

const char* addressing_tag(Addressing a) {
  switch (a) {
    case Addressing::kNone: return "";
    case Addressing::kBase: return " @base";
    case Addressing::kBaseDisp8: return " @disp8";
    case Addressing::kBaseIndexDisp32: return " @sib";
  }
  return "";
}

// Signature of a decoded instruction: everything but register numbers and
// displacement values.
std::string signature_of(const DecodedInsn& d, const TestForm& form) {
  std::string s = opcode_key(d.bytes, d.length);
  for (int i = 0; i < d.operand_count; ++i) {
    const Operand& o = d.ops[i];
    s += i ? "," : " ";
    switch (o.kind) {
      case OperandKind::kVec: s += "v" + std::to_string(o.bits); break;
      case OperandKind::kMask: s += "k"; break;
      case OperandKind::kGpr: s += "r" + std::to_string(o.bits); break;
      case OperandKind::kMem:
        s += (form.broadcast ? "b" : "m") + std::to_string(o.mem.bytes * 8);
        break;
      case OperandKind::kImm: s += "i8"; break;
      case OperandKind::kNone: s += "?"; break;
    }
  }
  if (form.masked) s += form.zeroing ? " {k}{z}" : " {k}";
  if (form.broadcast) s += " {1to" + std::to_string(form.broadcast) + "}";
  static const char* const kRound[] = {"", " {rn-sae}", " {rd-sae}", " {ru-sae}", " {rz-sae}"};
  if (form.rounding != Rounding::kNone) s += kRound[int(form.rounding)];
  else if (form.sae) s += " {sae}";
  s += addressing_tag(form.addressing);
  if (form.aliased) s += " alias";
  return s;
}

bool ends_with(const char* s, const char* suffix) {
  const size_t n = std::strlen(s), m = std::strlen(suffix);
  return n >= m && std::strcmp(s + n - m, suffix) == 0;
}

// Copies the decoded facts into `form`; false for shapes the self-check
// cannot run (rip-relative, segment, VSIB or rsp addressing, rsp operands).
bool fill_form(const DecodedInsn& d, TestForm& form) {
  std::memcpy(form.bytes, d.bytes, d.length);
  form.length = d.length;
  form.text = format_insn(d);
  form.mnemonic = d.mnemonic;
  form.evex = d.evex;
  form.vector_bits = d.vector_bits;
  form.masked = d.opmask != 0;
  form.mask_reg = d.opmask;
  // EVEX.z and EVEX.b are read from the encoding: Zydis also reports
  // zeroing for compares into k and a broadcast for vbroadcastss/vpbroadcast*,
  // which are not the {z} / {1toN} decorations.
  const uint8_t p2 = d.evex && d.length > 3 ? d.bytes[3] : 0;
  form.zeroing = (p2 & 0x80) != 0;
  const bool evex_b = (p2 & 0x10) != 0;
  form.rounding = d.rounding;
  form.sae = d.sae;
  for (int i = 0; i < d.operand_count; ++i) {
    const Operand& o = d.ops[i];
    if (o.kind == OperandKind::kNone) return false;
    if (o.kind == OperandKind::kGpr && o.reg == kRsp) return false;
    if (o.kind == OperandKind::kMem) {
      if (o.mem.rip_relative || o.mem.segment || o.mem.base < 0 || o.mem.base == kRsp) return false;
      form.has_mem = true;
      form.mem_base = o.mem.base;
      form.mem_index = o.mem.index;
      form.mem_scale = o.mem.scale;
      form.mem_disp = o.mem.disp;
      form.mem_bytes = o.mem.bytes;
      form.mem_written = o.written;
      if (evex_b) form.broadcast = d.broadcast;
    }
    if (o.kind == OperandKind::kImm) {
      // imm8 is the last byte of every EVEX/VEX encoding that has one.
      form.has_imm = true;
      form.imm_offset = uint8_t(d.length - 1);
      form.imm = d.bytes[d.length - 1];
    }
  }
  // EVEX.z on an instruction whose destination is not a vector register
  // (compare into k, store) is reserved.
  if (form.zeroing && (d.operand_count == 0 || d.ops[0].kind != OperandKind::kVec)) return false;
  // The address registers are overwritten by the state generator, so they
  // must not double as data operands.
  for (int i = 0; i < d.operand_count && form.has_mem; ++i) {
    const Operand& o = d.ops[i];
    if (o.kind == OperandKind::kGpr && (o.reg == form.mem_base || o.reg == form.mem_index))
      return false;
  }
  return true;
}

// Draws register numbers for one realisation. GPR operands avoid rsp and the
// address registers; vector registers cover zmm0-31 and k0-7 (k1-7 as {k}).
RegChoice random_regs(Rng& rng, Addressing addressing, bool aliased) {
  RegChoice rc;
  rc.base = rng.pick(kBaseRegs);
  rc.index = -1;
  rc.disp = 0;
  if (addressing == Addressing::kBaseDisp8) {
    // Multiples of 64 within -128..127 * N for every disp8*N scale N
    // (1..64), so the displacement always compresses to disp8.
    static constexpr int32_t kDisp8[] = {-128, -64, 64};
    rc.disp = rng.pick(kDisp8);
  } else if (addressing == Addressing::kBaseIndexDisp32) {
    do rc.index = rng.pick(kIndexRegs);
    while (rc.index == rc.base);
    rc.scale_shift = int(rng.below(4));
    rc.disp = 0x12345 + int32_t(rng.below(64));  // never a multiple of N: disp32
  }
  const uint8_t shared = uint8_t(rng.below(32));
  for (int i = 0; i < kMaxOperands; ++i) {
    rc.vec[i] = aliased ? shared : uint8_t(rng.below(32));
    rc.k[i] = uint8_t(rng.below(8));
    int g;
    do g = int(rng.below(16));
    while (g == kRsp || g == rc.base || g == rc.index);
    rc.gpr[i] = uint8_t(g);
  }
  rc.mask = uint8_t(1 + rng.below(7));
  return rc;
}

class Enumerator {
 public:
  Enumerator(const char* mnemonic, uint64_t seed, const EnumerateOptions& options)
      : mnemonic_(mnemonic), rng_(seed), options_(options) {
    id_ = InstAPI::stringToInstId(Arch::kX64, mnemonic, SIZE_MAX);
  }

  std::vector<TestForm> run() {
    if (id_ == BaseInst::kIdNone) return {};
    std::vector<Slot> shape;
    enumerate_shapes(shape, false);
    std::vector<TestForm> out;
    out.reserve(forms_.size());
    for (auto& [sig, form] : forms_) out.push_back(std::move(form));
    return out;
  }

 private:
  // Depth-first over operand positions: at most one memory operand, imm8
  // only last. Each complete shape is checked with template registers.
  void enumerate_shapes(std::vector<Slot>& shape, bool has_mem) {
    if (!shape.empty()) try_shape(shape);
    if (shape.size() == kMaxOperands || (!shape.empty() && shape.back() == Slot::kImm)) return;
    for (Slot s : kAllSlots) {
      if (is_mem(s) && has_mem) continue;
      shape.push_back(s);
      enumerate_shapes(shape, has_mem || is_mem(s));
      shape.pop_back();
    }
  }

  void try_shape(const std::vector<Slot>& shape) {
    const RegChoice templ;
    AsmOperand ops[kMaxOperands];
    const Decoration plain;
    const int n = make_operands(shape, templ, plain, ops);
    if (!validates(make_inst(id_, plain, templ), ops, n)) return;
    const bool has_mem = std::any_of(shape.begin(), shape.end(), is_mem);

    // Decorations beyond masking: broadcasts for memory shapes, embedded
    // rounding and {sae} for register-only shapes.
    std::vector<Decoration> extras{Decoration{}};
    if (has_mem) {
      static constexpr Bcst kBcst[] = {Bcst::k1To2, Bcst::k1To4, Bcst::k1To8, Bcst::k1To16,
                                       Bcst::k1To32};
      for (uint32_t elem : {2u, 4u, 8u})
        for (Bcst b : kBcst) {
          Decoration d;
          d.bcst = b;
          d.bcst_elem = elem;
          extras.push_back(d);
        }
    } else {
      for (InstOptions r : {InstOptions::kX86_RN_SAE, InstOptions::kX86_RD_SAE,
                            InstOptions::kX86_RU_SAE, InstOptions::kX86_RZ_SAE}) {
        Decoration d;
        d.rounding = InstOptions::kX86_ER | r;
        extras.push_back(d);
      }
      Decoration d;
      d.rounding = InstOptions::kX86_SAE;
      extras.push_back(d);
    }
    for (int mask_mode = 0; mask_mode < 3; ++mask_mode)
      for (Decoration deco : extras) {
        deco.mask_mode = mask_mode;
        const int m = make_operands(shape, templ, deco, ops);
        if (!validates(make_inst(id_, deco, templ), ops, m)) continue;
        realize(shape, deco, has_mem);
      }
  }

  // Emits the addressing and aliasing variants of one valid decorated shape.
  void realize(const std::vector<Slot>& shape, const Decoration& deco, bool has_mem) {
    std::vector<Addressing> addressings{has_mem ? Addressing::kBase : Addressing::kNone};
    if (has_mem && options_.addressing_variants) {
      addressings.push_back(Addressing::kBaseDisp8);
      addressings.push_back(Addressing::kBaseIndexDisp32);
    }
    const int vec_count = int(std::count_if(shape.begin(), shape.end(), is_vec));
    std::vector<bool> aliasings{false};
    if (options_.aliased_variants && vec_count >= 2) aliasings.push_back(true);
    for (Addressing addressing : addressings)
      for (bool aliased : aliasings)
        for (bool mod_mr : {false, true}) emit_one(shape, deco, addressing, aliased, mod_mr);
  }

  void emit_one(const std::vector<Slot>& shape, const Decoration& deco, Addressing addressing,
                bool aliased, bool mod_mr) {
    AsmOperand ops[kMaxOperands];
    // Random registers occasionally break an instruction-specific rule;
    // retry a few draws before giving up on this variant.
    for (int attempt = 0; attempt < 8; ++attempt) {
      const RegChoice rc = random_regs(rng_, addressing, aliased);
      const int n = make_operands(shape, rc, deco, ops);
      const BaseInst inst = make_inst(id_, deco, rc);
      if (!validates(inst, ops, n)) continue;
      DecodedInsn d;
      if (!encode_and_check(inst, ops, n, /*evex=*/true, mod_mr, d) &&
          !encode_and_check(inst, ops, n, /*evex=*/false, mod_mr, d))
        continue;
      TestForm form;
      if (!fill_form(d, form)) continue;
      form.addressing = addressing;
      form.aliased = aliased;
      form.signature = signature_of(d, form);
      forms_.emplace(form.signature, std::move(form));  // the first of a signature wins
      return;
    }
  }

  // Assembles and decodes back; true when the bytes are the requested
  // mnemonic, EVEX-encoded or one of the VEX opmask (*_KOP) instructions.
  // Forcing EVEX on a VEX-only instruction makes AsmJit emit garbage, which
  // this rejects, so the caller then retries without forcing.
  bool encode_and_check(const BaseInst& inst, const AsmOperand* ops, int n, bool evex, bool mod_mr,
                        DecodedInsn& d) const {
    std::vector<uint8_t> bytes;
    if (!assemble(inst, ops, n, evex, mod_mr, bytes)) return false;
    if (decode(bytes.data(), bytes.size(), d) != DecodeStatus::kOk) return false;
    if (d.length != bytes.size() || std::strcmp(d.mnemonic, mnemonic_) != 0) return false;
    return d.evex || ends_with(d.isa_set, "_KOP");
  }

  const char* mnemonic_;
  Rng rng_;
  EnumerateOptions options_;
  InstId id_ = BaseInst::kIdNone;
  std::map<std::string, TestForm> forms_;
};

}  // namespace

std::vector<TestForm> enumerate_forms(const char* mnemonic, uint64_t seed,
                                      const EnumerateOptions& options) {
  return Enumerator(mnemonic, seed, options).run();
}

bool form_from_bytes(const uint8_t* bytes, size_t length, TestForm& form) {
  DecodedInsn d;
  form = TestForm{};
  if (decode(bytes, length, d) != DecodeStatus::kOk) return false;
  if (!fill_form(d, form)) return false;
  if (form.has_mem) {
    form.addressing = form.mem_index >= 0 ? Addressing::kBaseIndexDisp32
                      : form.mem_disp    ? Addressing::kBaseDisp8
                                         : Addressing::kBase;
  }
  form.signature = signature_of(d, form);
  return true;
}

TestForm with_imm(const TestForm& form, uint8_t imm) {
  if (!form.has_imm) return form;
  TestForm out = form;
  out.bytes[out.imm_offset] = imm;
  out.imm = imm;
  DecodedInsn d;
  if (decode(out.bytes, out.length, d) == DecodeStatus::kOk) out.text = format_insn(d);
  return out;
}

std::vector<uint8_t> immediate_values(const char* mnemonic, bool exhaustive, uint64_t seed) {
  const std::string m = mnemonic;
  auto all_below = [](int n) {
    std::vector<uint8_t> v(size_t(n), 0);
    for (int i = 0; i < n; ++i) v[size_t(i)] = uint8_t(i);
    return v;
  };
  if (exhaustive) {
    if (m.starts_with("vpternlog")) return all_below(256);
    // vpcmp{b,w,d,q,ub,uw,ud,uq}: 3-bit predicate (vpcmpeq*/vpcmpgt* have no imm).
    if (m.starts_with("vpcmp")) return all_below(8);
    if (m.starts_with("vcmp")) return all_below(32);
  }
  // Shift counts at and around every element width, lane/element selectors,
  // and the extremes.
  std::set<uint8_t> spread = {0,  1,  2,  3,  4,  5,   7,   8,   9,   15,  16,  17,
                              24, 31, 32, 33, 48, 63,  64,  65,  127, 128, 170, 255};
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a: stable, unlike std::hash
  for (char c : m) h = (h ^ uint8_t(c)) * 0x100000001b3ull;
  Rng rng(seed ^ h);
  for (int i = 0; i < 4; ++i) spread.insert(uint8_t(rng.next()));
  return {spread.begin(), spread.end()};
}

}  // namespace avx512emu::selfcheck
