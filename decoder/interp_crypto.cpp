// Owns the reference semantics of the per-lane cryptographic IR ops: AES
// rounds (FIPS-197, as the Intel AES-NI white paper defines AESENC/AESDEC
// and their LAST forms) and carry-less multiplication. Plain C++: the S-box
// is derived from its definition, so no host AES-NI or PCLMULQDQ is needed.
#include <array>

#include "interpreter.h"

namespace avx512emu::interp {
namespace {

using ir::Inst;
using ir::Op;

constexpr int kLaneBytes = 16;

// ---- GF(2^8) arithmetic ------------------------------------------------------------------

//! Product in GF(2^8) modulo the AES polynomial x^8 + x^4 + x^3 + x + 1.
uint8_t gf_mul(uint8_t a, uint8_t b) {
  uint8_t p = 0;
  for (; b; b >>= 1) {
    if (b & 1) p ^= a;
    a = uint8_t((a << 1) ^ ((a & 0x80) ? 0x1b : 0));
  }
  return p;
}

uint8_t rotl8(uint8_t x, int n) {
  return uint8_t((x << n) | (x >> (8 - n)));
}

struct SBoxes {
  std::array<uint8_t, 256> forward{}, inverse{};
};

//! S-box: the multiplicative inverse (x^254; 0 maps to 0) followed by the
//! affine map b ^ rotl(b,1..4) ^ 0x63; the inverse box is its inverse.
const SBoxes& sboxes() {
  static const SBoxes boxes = [] {
    SBoxes s;
    for (int x = 0; x < 256; ++x) {
      uint8_t inv = 1, base = uint8_t(x);
      for (int e = 254; e; e >>= 1, base = gf_mul(base, base))
        if (e & 1) inv = gf_mul(inv, base);
      const uint8_t b = x ? inv : 0;
      const uint8_t y = b ^ rotl8(b, 1) ^ rotl8(b, 2) ^ rotl8(b, 3) ^ rotl8(b, 4) ^ 0x63;
      s.forward[size_t(x)] = y;
      s.inverse[y] = uint8_t(x);
    }
    return s;
  }();
  return boxes;
}

// ---- AES round ----------------------------------------------------------------------------

//! One AES round on the 16-byte state `in` (byte r + 4c is row r, column c)
//! with round key `key`. Encryption: ShiftRows, SubBytes, MixColumns (not in
//! the last round), AddRoundKey. Decryption: InvShiftRows, InvSubBytes,
//! InvMixColumns (not in the last round), AddRoundKey.
void aes_round(Op op, const uint8_t* in, const uint8_t* key, uint8_t* out) {
  const bool decrypt = op == Op::kAesDec || op == Op::kAesDecLast;
  const bool last = op == Op::kAesEncLast || op == Op::kAesDecLast;
  const std::array<uint8_t, 256>& box = decrypt ? sboxes().inverse : sboxes().forward;
  uint8_t s[kLaneBytes];
  for (int c = 0; c < 4; ++c) {
    for (int r = 0; r < 4; ++r) {
      const int from_column = decrypt ? (c - r + 4) % 4 : (c + r) % 4;
      s[r + 4 * c] = box[in[r + 4 * from_column]];
    }
  }
  if (!last) {
    static const uint8_t kMix[4] = {2, 3, 1, 1}, kInvMix[4] = {14, 11, 13, 9};
    const uint8_t* m = decrypt ? kInvMix : kMix;
    for (int c = 0; c < 4; ++c) {
      uint8_t col[4];
      for (int r = 0; r < 4; ++r) {
        col[r] = 0;
        for (int k = 0; k < 4; ++k) col[r] ^= gf_mul(m[(k - r + 4) % 4], s[k + 4 * c]);
      }
      for (int r = 0; r < 4; ++r) s[r + 4 * c] = col[r];
    }
  }
  for (int j = 0; j < kLaneBytes; ++j) out[j] = s[j] ^ key[j];
}

// ---- Carry-less multiplication ---------------------------------------------------------

//! vpclmulqdq: per 128-bit lane, the 128-bit carry-less product of a's
//! qword imm bit 0 and b's qword imm bit 4.
void clmul_lane(const uint8_t* a, const uint8_t* b, int64_t imm, uint8_t* out) {
  uint64_t x, y;
  std::memcpy(&x, a + 8 * (imm & 1), 8);
  std::memcpy(&y, b + 8 * ((imm >> 4) & 1), 8);
  uint64_t lo = 0, hi = 0;
  for (int bit = 0; bit < 64; ++bit) {
    if (!((y >> bit) & 1)) continue;
    lo ^= x << bit;
    if (bit) hi ^= x >> (64 - bit);
  }
  std::memcpy(out, &lo, 8);
  std::memcpy(out + 8, &hi, 8);
}

}  // namespace

bool exec_crypto(const Inst& i, Frame& fr) {
  switch (i.op) {
    case Op::kAesEnc:
    case Op::kAesEncLast:
    case Op::kAesDec:
    case Op::kAesDecLast:
    case Op::kClMul:
      break;
    default:
      return false;
  }
  alignas(64) uint8_t out[64] = {};
  for (int lane = 0; lane < i.bits / 8; lane += kLaneBytes) {
    const uint8_t* a = fr.bytes(i.src[0]) + lane;
    const uint8_t* b = fr.bytes(i.src[1]) + lane;
    if (i.op == Op::kClMul)
      clmul_lane(a, b, i.imm, out + lane);
    else
      aes_round(i.op, a, b, out + lane);
  }
  std::memcpy(fr.bytes(i.dst), out, 64);
  return true;
}

}  // namespace avx512emu::interp
