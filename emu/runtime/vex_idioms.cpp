// Owns the recognition of VEX zeroing idioms and vzeroupper/vzeroall, and
// their hand-built translations (see vex_idioms.h).
#include "vex_idioms.h"

#include <immintrin.h>

#include <utility>

namespace avx512emu::runtime {
namespace {

//! Ops whose result is zero when both sources are the same register: x^x,
//! ~x&x, x-x, x>x. Opcodes of map 0F.
struct ZeroOp {
  uint8_t opcode;
  uint8_t pp;  //!< VEX.pp: 0 none, 1 66.
  const char* mnemonic;
};
constexpr ZeroOp kZeroOps[] = {
    {0xef, 1, "vpxor"},    {0x57, 0, "vxorps"},  {0x57, 1, "vxorpd"},   {0xdf, 1, "vpandn"},
    {0x55, 0, "vandnps"},  {0x55, 1, "vandnpd"}, {0xf8, 1, "vpsubb"},   {0xf9, 1, "vpsubw"},
    {0xfa, 1, "vpsubd"},   {0xfb, 1, "vpsubq"},  {0x64, 1, "vpcmpgtb"}, {0x65, 1, "vpcmpgtw"},
    {0x66, 1, "vpcmpgtd"},
};

// The translations: plain functions of the runtime, called exactly like
// generated code (TranslationFn). They only store to the state block.

template <int Reg, int Length>
void zero_register(CpuState* s) {
  auto* z = reinterpret_cast<__m256i*>(s->zmm[Reg]);
  _mm256_storeu_si256(z, _mm256_setzero_si256());
  _mm256_storeu_si256(z + 1, _mm256_setzero_si256());
  s->rip += Length;
}

template <bool All, int Length>
void zero_uppers(CpuState* s) {
  for (int i = 0; i < 16; ++i) {
    auto* z = reinterpret_cast<__m128i*>(s->zmm[i]);
    for (int part = All ? 0 : 1; part < 4; ++part) _mm_storeu_si128(z + part, _mm_setzero_si128());
  }
  s->rip += Length;
}

struct Table {
  //! zero[reg][0]: the 2-byte VEX form (4 bytes), [1]: the 3-byte form (5).
  Translation zero[16][2];
  //! [0]: 2-byte VEX form (3 bytes), [1]: 3-byte form (4).
  Translation vzeroupper[2], vzeroall[2];
};

Translation entry(TranslationFn fn, uint8_t length, const char* mnemonic) {
  Translation t;
  t.key.length = length;  // the bytes differ per site; only the length is used
  t.code = reinterpret_cast<const void*>(fn);
  t.mnemonic = mnemonic;
  return t;
}

template <size_t... Reg>
void fill_zero(Table& t, std::index_sequence<Reg...>) {
  ((t.zero[Reg][0] = entry(&zero_register<Reg, 4>, 4, "zeroing idiom"),
    t.zero[Reg][1] = entry(&zero_register<Reg, 5>, 5, "zeroing idiom")),
   ...);
}

const Table& table() {
  static const Table* t = [] {
    auto* n = new Table;  // leaked: sites point into it for the life of the process
    fill_zero(*n, std::make_index_sequence<16>());
    n->vzeroupper[0] = entry(&zero_uppers<false, 3>, 3, "vzeroupper");
    n->vzeroupper[1] = entry(&zero_uppers<false, 4>, 4, "vzeroupper");
    n->vzeroall[0] = entry(&zero_uppers<true, 3>, 3, "vzeroall");
    n->vzeroall[1] = entry(&zero_uppers<true, 4>, 4, "vzeroall");
    return n;
  }();
  return *t;
}

}  // namespace

VexIdiom match_vex_idiom(const uint8_t* b, size_t size) {
  VexIdiom r;
  if (size < 3 || (b[0] != 0xc5 && b[0] != 0xc4)) return r;
  // The fields of both VEX forms (Intel SDM Vol. 2A, 2.3.5); R, B and vvvv
  // are stored inverted.
  const bool three = b[0] == 0xc4;
  if (three && size < 4) return r;
  const uint8_t map = three ? (b[1] & 0x1f) : 1;
  const uint8_t last = three ? b[2] : b[1];  // W/R vvvv L pp
  const int r_ext = (~b[1] >> 7) & 1;
  const int b_ext = three ? (~b[1] >> 5) & 1 : 0;
  const int vvvv = (~last >> 3) & 15;
  const int l = (last >> 2) & 1;
  const int pp = last & 3;
  const size_t at = three ? 3 : 2;  // opcode
  if (map != 1) return r;
  if (b[at] == 0x77 && pp == 0 && vvvv == 0) {
    r.kind = l ? VexIdiomKind::kVzeroall : VexIdiomKind::kVzeroupper;
    r.length = uint8_t(at + 1);
    r.mnemonic = l ? "vzeroall" : "vzeroupper";
    return r;
  }
  if (size < at + 2) return r;
  const uint8_t modrm = b[at + 1];
  const int reg = ((modrm >> 3) & 7) | r_ext << 3;
  const int rm = (modrm & 7) | b_ext << 3;
  if (modrm >> 6 != 3 || reg != rm || reg != vvvv) return r;
  for (const ZeroOp& op : kZeroOps) {
    if (op.opcode != b[at] || op.pp != pp) continue;
    r.kind = VexIdiomKind::kZeroRegister;
    r.reg = uint8_t(reg);
    r.length = uint8_t(at + 2);
    r.mnemonic = op.mnemonic;
    return r;
  }
  return r;
}

const Translation* vex_idiom_translation(const VexIdiom& idiom) {
  const Table& t = table();
  switch (idiom.kind) {
    case VexIdiomKind::kZeroRegister:
      return &t.zero[idiom.reg & 15][idiom.length == 5];
    case VexIdiomKind::kVzeroupper:
      return &t.vzeroupper[idiom.length == 4];
    case VexIdiomKind::kVzeroall:
      return &t.vzeroall[idiom.length == 4];
    case VexIdiomKind::kNone:
      break;
  }
  return nullptr;
}

bool is_vex_idiom_translation(const Translation* t) {
  const Table& table_ = table();
  const auto* p = reinterpret_cast<const uint8_t*>(t);
  const auto* begin = reinterpret_cast<const uint8_t*>(&table_);
  return p >= begin && p < begin + sizeof(Table);
}

}  // namespace avx512emu::runtime
