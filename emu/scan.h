// Owns the static scan of ELF files: which AVX-512 instructions a binary
// contains, per ISA set and mnemonic, and how many avx512emu translates.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace avx512emu {

//! One AVX-512 instruction found in a file.
struct FoundInstruction {
  uint64_t address = 0;  //!< Link-time virtual address.
  uint8_t bytes[15] = {};
  uint8_t length = 0;
};

struct ScanResult {
  std::string path;
  std::string error;            //!< Non-empty when the file could not be scanned.
  std::string function_source;  //!< Where code ranges came from.
  uint64_t code_bytes = 0;      //!< Bytes decoded.
  uint64_t instructions = 0;    //!< All instructions decoded.
  uint64_t avx512 = 0, translated = 0;
  //! Executable bytes outside every known function range, and the AVX-512
  //! instructions found there (included in the counts above) when decoded.
  uint64_t gap_bytes = 0, gap_avx512 = 0;
  bool gaps_decoded = false;  //!< ScanOptions::decode_gaps was set.
  std::map<std::string, uint64_t> per_isa_set;
  std::map<std::string, uint64_t> per_mnemonic;
  std::map<std::string, uint64_t> untranslated;  //!< mnemonic -> count
};

struct ScanOptions {
  //! Translate what is found, to fill `translated` and `untranslated`. The
  //! cache builder turns this off: it translates each distinct instruction
  //! once afterwards, in parallel and outside the process cache.
  bool count_translations = true;
  //! Also decode the executable bytes outside every known function range
  //! (`gap_bytes`): hand-written assembly often has neither unwind info nor
  //! symbols. Data placed there may then decode as instructions, so this is
  //! for the cache builder (an extra translation costs only space), never for
  //! code that rewrites what it finds.
  bool decode_gaps = false;
};

//! Scans one ELF file. `on_found` (optional) receives every AVX-512 instruction.
ScanResult scan_elf_file(const std::string& path,
                         const std::function<void(const FoundInstruction&)>& on_found = {},
                         const ScanOptions& options = {});

//! Expands PATH arguments: files as they are, directories recursively
//! (regular files only, symlinks not followed), sorted.
std::vector<std::string> expand_scan_paths(const std::vector<std::string>& paths,
                                           std::vector<std::string>& errors);

std::string scan_text(const std::vector<ScanResult>& results);
std::string scan_json(const std::vector<ScanResult>& results);

}  // namespace avx512emu
