// Owns the AVX-512 mnemonic catalogue: decodes every EVEX opcode (maps 1-3
// and the FP16 maps 5-6, each pp/W/L'L, register and memory ModRM forms with
// every ModRM.reg) and every VEX opcode of maps 1-3 (the opmask
// instructions), and keeps the pairs whose ISA set is AVX512*.
#include "isa_catalog.h"

#include <array>
#include <cstring>
#include <map>
#include <utility>

#include "decoded_insn.h"

namespace avx512emu {
namespace {

void consider(const uint8_t* bytes, size_t n,
              std::map<std::pair<std::string, std::string>, CatalogEntry>& found) {
  DecodedInsn d;
  if (decode(bytes, n, d) != DecodeStatus::kOk) return;
  auto key = std::make_pair(std::string(d.isa_set), std::string(d.mnemonic));
  if (found.count(key)) return;
  CatalogEntry e;
  e.isa_set = key.first;
  e.mnemonic = key.second;
  std::memcpy(e.sample, d.bytes, d.length);
  e.sample_length = d.length;
  found.emplace(std::move(key), e);
}

std::vector<CatalogEntry> build_catalog() {
  std::map<std::pair<std::string, std::string>, CatalogEntry> found;
  uint8_t b[15];
  // Trailing bytes double as SIB/displacement/immediate; zero is valid for all.
  auto modrms = [](int reg) {
    return std::array<uint8_t, 2>{uint8_t(0xC1 | (reg << 3)), uint8_t(0x00 | (reg << 3))};
  };
  for (int map : {1, 2, 3, 5, 6})
    for (int pp = 0; pp < 4; ++pp)
      for (int w = 0; w < 2; ++w)
        for (int ll = 0; ll < 3; ++ll)
          for (int aaa = 0; aaa < 2; ++aaa)
            for (int op = 0; op < 256; ++op)
              for (int reg = 0; reg < 8; ++reg)
                for (uint8_t modrm : modrms(reg)) {
                  std::memset(b, 0, sizeof b);
                  b[0] = 0x62;
                  b[1] = uint8_t(0xF0 | map);                         // R X B R' = 1 (no extension)
                  b[2] = uint8_t((w << 7) | (0xF << 3) | 0x04 | pp);  // vvvv = 1111
                  b[3] = uint8_t((ll << 5) | 0x08 | aaa);             // V' = 1
                  b[4] = uint8_t(op);
                  b[5] = modrm;
                  consider(b, sizeof b, found);
                }
  // VEX three-byte form: the opmask (KOP) instructions.
  for (int map = 1; map <= 3; ++map)
    for (int pp = 0; pp < 4; ++pp)
      for (int w = 0; w < 2; ++w)
        for (int l = 0; l < 2; ++l)
          for (int op = 0; op < 256; ++op)
            for (int reg = 0; reg < 8; ++reg)
              for (uint8_t modrm : modrms(reg)) {
                std::memset(b, 0, sizeof b);
                b[0] = 0xC4;
                b[1] = uint8_t(0xE0 | map);
                b[2] = uint8_t((w << 7) | (0xF << 3) | (l << 2) | pp);
                b[3] = uint8_t(op);
                b[4] = modrm;
                consider(b, sizeof b, found);
              }
  std::vector<CatalogEntry> out;
  out.reserve(found.size());
  for (auto& [key, entry] : found) out.push_back(entry);
  return out;
}

}  // namespace

const std::vector<CatalogEntry>& avx512_catalog() {
  static const std::vector<CatalogEntry> catalog = build_catalog();
  return catalog;
}

}  // namespace avx512emu
