// Owns the coverage report: the decoder's AVX-512 catalogue crossed with what
// translates today and what the differential self-check verified.
#include "coverage.h"

#include <cstdio>
#include <map>
#include <set>

#include "avx512emu.h"
#include "isa_catalog.h"

namespace avx512emu {

CoverageReport build_coverage(const MnemonicVerifier& verify) {
  CoverageReport r;
  r.verification_ran = bool(verify);
  std::map<std::string, CoverageRow> rows;
  std::set<std::string> known, translated, verified;
  std::map<std::string, bool> verdicts;  // each mnemonic is verified once
  for (const CatalogEntry& e : avx512_catalog()) {
    CoverageRow& row = rows[e.isa_set];
    row.isa_set = e.isa_set;
    row.known.push_back(e.mnemonic);
    known.insert(e.mnemonic);
    if (translate(e.sample, e.sample_length).error != TranslateError::kNone) continue;
    row.translated.push_back(e.mnemonic);
    translated.insert(e.mnemonic);
    if (!verify) continue;
    auto it = verdicts.find(e.mnemonic);
    if (it == verdicts.end()) it = verdicts.emplace(e.mnemonic, verify(e.mnemonic)).first;
    if (it->second) {
      row.verified.push_back(e.mnemonic);
      verified.insert(e.mnemonic);
    }
  }
  for (auto& [name, row] : rows) r.rows.push_back(std::move(row));
  r.unique_known = int(known.size());
  r.unique_translated = int(translated.size());
  r.unique_verified = int(verified.size());
  return r;
}

namespace {

std::string json_list(const std::vector<std::string>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ",\"" : "\"") + v[i] + "\"";
  return s + "]";
}

}  // namespace

std::string coverage_text(const CoverageReport& r) {
  std::string out;
  char buf[256];
  std::snprintf(buf, sizeof buf, "%-28s %7s %10s %8s\n", "ISA set", "known", "translated",
                r.verification_ran ? "verified" : "");
  out += buf;
  for (const CoverageRow& row : r.rows) {
    if (r.verification_ran)
      std::snprintf(buf, sizeof buf, "%-28s %7zu %10zu %8zu\n", row.isa_set.c_str(),
                    row.known.size(), row.translated.size(), row.verified.size());
    else
      std::snprintf(buf, sizeof buf, "%-28s %7zu %10zu\n", row.isa_set.c_str(), row.known.size(),
                    row.translated.size());
    out += buf;
  }
  std::snprintf(buf, sizeof buf, "\ndistinct mnemonics: %d known, %d translated", r.unique_known,
                r.unique_translated);
  out += buf;
  if (r.verification_ran) {
    std::snprintf(buf, sizeof buf, ", %d verified against this CPU", r.unique_verified);
    out += buf;
  } else {
    out += " (verification needs an AVX-512 host: not run)";
  }
  out += "\n";
  return out;
}

std::string coverage_json(const CoverageReport& r) {
  std::string out = "{\"isa_sets\":[";
  for (size_t i = 0; i < r.rows.size(); ++i) {
    const CoverageRow& row = r.rows[i];
    out += (i ? "," : "") + std::string("{\"isa_set\":\"") + row.isa_set + "\",\"known\":" +
           json_list(row.known) + ",\"translated\":" + json_list(row.translated) +
           ",\"verified\":" + json_list(row.verified) + "}";
  }
  out += "],\"distinct\":{\"known\":" + std::to_string(r.unique_known) +
         ",\"translated\":" + std::to_string(r.unique_translated) +
         ",\"verified\":" + std::to_string(r.unique_verified) + "},\"verification_ran\":" +
         (r.verification_ran ? "true" : "false") + "}\n";
  return out;
}

}  // namespace avx512emu
