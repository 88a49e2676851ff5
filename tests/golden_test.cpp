// Golden snapshots of decode, IR and AVX2 assembly: one file per AVX-512 ISA
// set under tests/golden/, one block per translated mnemonic (its catalogue
// sample form), plus the hand-picked forms in tests/golden/extra-forms.txt.
// A change in generated code shows up as a diff here. After an intended
// change, run scripts/rebase-golden.sh and review `git diff tests/golden`.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>

#include "avx512emu.h"
#include "decoded_insn.h"
#include "isa_catalog.h"

namespace {

const std::string kDir = AVX512EMU_GOLDEN_DIR;

bool rebasing() { return std::getenv("AVX512EMU_REBASE") != nullptr; }

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string snapshot_of(const uint8_t* bytes, size_t n) {
  std::string text;
  avx512emu::describe(bytes, n, text);
  return "## " + avx512emu::hex_bytes(bytes, n) + "\n" + text + "\n";
}

//! Compares or rewrites one golden file; reports the first differing line.
void check_golden(const std::string& name, const std::string& actual) {
  const std::string path = kDir + "/" + name;
  if (rebasing()) {
    std::ofstream(path) << actual;
    return;
  }
  const std::string expected = read_file(path);
  if (expected == actual) return;
  std::istringstream e(expected), a(actual);
  std::string le, la;
  int line = 1;
  while (std::getline(e, le) && std::getline(a, la) && le == la) ++line;
  ADD_FAILURE() << path << " differs at line " << line << ":\n  golden: " << le
                << "\n  now:    " << la
                << "\n(intended? run scripts/rebase-golden.sh and review git diff)";
}

}  // namespace

TEST(Golden, CatalogueSamplesPerIsaSet) {
  std::map<std::string, std::string> files;
  for (const auto& e : avx512emu::avx512_catalog()) {
    if (avx512emu::translate(e.sample, e.sample_length).error != avx512emu::TranslateError::kNone)
      continue;
    files[e.isa_set + ".txt"] += snapshot_of(e.sample, e.sample_length);
  }
  ASSERT_FALSE(files.empty());
  for (const auto& [name, text] : files) check_golden(name, text);
}

TEST(Golden, ExtraForms) {
  // Lines: HEX [# comment]. Each form is snapshotted whether or not it translates.
  std::ifstream in(kDir + "/extra-forms.txt");
  ASSERT_TRUE(in) << "missing " << kDir << "/extra-forms.txt";
  std::string line, out;
  while (std::getline(in, line)) {
    const std::string hex = line.substr(0, line.find('#'));
    std::vector<uint8_t> bytes;
    for (size_t i = 0; i + 1 < hex.size(); ++i) {
      if (!std::isxdigit(uint8_t(hex[i])) || !std::isxdigit(uint8_t(hex[i + 1]))) continue;
      bytes.push_back(uint8_t(std::stoul(hex.substr(i, 2), nullptr, 16)));
      ++i;
    }
    if (bytes.empty()) continue;
    out += "# " + line + "\n" + snapshot_of(bytes.data(), bytes.size());
  }
  check_golden("extra-forms.golden", out);
}
