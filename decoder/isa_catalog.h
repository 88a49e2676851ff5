// Owns the catalogue of every AVX-512 mnemonic the decoder knows, found by
// sweeping the EVEX and VEX encoding space.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace avx512emu {

//! One mnemonic of one AVX-512 ISA set, with a sample encoding.
struct CatalogEntry {
  std::string isa_set;   //!< "AVX512F_512", "AVX512BW_KOP", ...
  std::string mnemonic;
  uint8_t sample[15] = {};
  uint8_t sample_length = 0;
};

//! All (ISA set, mnemonic) pairs of AVX512* ISA sets, sorted by ISA set then
//! mnemonic. Computed once (about half a million decodes) and cached.
const std::vector<CatalogEntry>& avx512_catalog();

}  // namespace avx512emu
