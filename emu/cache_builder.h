// Owns the offline translation-cache generator and the `cache info/verify`
// reports.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace avx512emu {

//! How `build_cache` shows progress on stderr.
enum class CacheBuildProgress {
  kNone,
  kTerminal,  //!< One line rewritten in place, a few times a second.
  kLines,     //!< A new line every few seconds, and only on long work (logs, CI).
};

struct CacheBuildOptions {
  std::vector<std::string> paths;  //!< ELF files or directories.
  std::string output;
  int jobs = 1;  //!< Threads for scanning and for translating.
  CacheBuildProgress progress = CacheBuildProgress::kNone;
};

struct CacheBuildSummary {
  int files_scanned = 0, files_skipped = 0;
  uint64_t instructions_found = 0;  //!< AVX-512 instructions, with repeats.
  uint64_t distinct = 0, translated = 0, untranslated = 0;
  std::map<std::string, uint64_t> untranslated_mnemonics;  //!< Distinct encodings per mnemonic.
  uint64_t code_bytes = 0, file_bytes = 0;
  double seconds = 0, scan_seconds = 0, translate_seconds = 0;
};

//! Scans, translates every distinct AVX-512 instruction and writes the file.
bool build_cache(const CacheBuildOptions& options, CacheBuildSummary& summary, std::string& error);

//! Human-readable header and content summary of a cache file.
bool cache_info(const std::string& path, std::string& out, std::string& error);

//! Checks checksums, that every entry decodes to its AVX-512 instruction, and
//! that no code contains AVX-512. Returns false with the problems in `out`.
bool cache_verify(const std::string& path, std::string& out);

//! The avx512emu version written into and required of cache files.
const char* emu_version();

}  // namespace avx512emu
