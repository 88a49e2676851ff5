// Owns the coverage report: for each AVX-512 ISA set, the mnemonics the
// decoder knows, how many are translated, and how many passed the
// differential check against this CPU.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace avx512emu {

struct CoverageRow {
  std::string isa_set;
  std::vector<std::string> known, translated, verified;
};

struct CoverageReport {
  std::vector<CoverageRow> rows;
  int unique_known = 0, unique_translated = 0, unique_verified = 0;
  bool verification_ran = false;  //!< False when no verifier was given.
};

//! Decides whether a translated mnemonic passes verification (the
//! differential self-check); empty when verification cannot run here.
using MnemonicVerifier = std::function<bool(const std::string& mnemonic)>;

//! Builds the report. A mnemonic counts as translated when its catalogue
//! sample translates; as verified when `verify` accepts it.
CoverageReport build_coverage(const MnemonicVerifier& verify);

std::string coverage_text(const CoverageReport& r);
std::string coverage_json(const CoverageReport& r);

}  // namespace avx512emu
