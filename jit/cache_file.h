// Owns the translation-cache file: a versioned, checksummed, mmap-able file
// of position-independent translations with a hash index keyed by the
// instruction bytes, so identical instructions in different binaries share
// one translation.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "checksum.h"
#include "translation_cache.h"

namespace avx512emu::jit {

//! File layout (all little-endian; offsets from the start of the file):
//!
//!   CacheFileHeader (72 bytes)
//!   entries[entry_count]    CacheFileEntry, sorted by key
//!   index[index_slots]      uint32: entry number + 1, 0 = empty (linear probing
//!                           from CacheKey::hash())
//!   code area               each translation, 32-byte aligned, executable
//!
//! header_checksum covers the header with both checksums zeroed;
//! table_checksum covers entries and index. Each entry carries the checksum
//! of its own code, checked before that code is first handed out, so opening
//! a large file does not read all of its code.
struct CacheFileHeader {
  char magic[8];             //!< "A5XEMUTC"
  uint32_t format_version;   //!< kCacheFormatVersion
  uint32_t state_layout;     //!< sizeof(CpuState) and layout tag
  char emu_version[16];      //!< avx512emu version that wrote the file
  uint32_t entry_count;
  uint32_t index_slots;      //!< power of two
  uint32_t code_offset;
  uint32_t reserved;
  uint64_t file_size;
  uint64_t table_checksum;
  uint64_t header_checksum;
};
static_assert(sizeof(CacheFileHeader) == 72);

struct CacheFileEntry {
  uint8_t key_length;
  uint8_t key_bytes[15];
  uint32_t code_offset;      //!< From the start of the file.
  uint32_t code_size;        //!< Instruction bytes (the rest is constants).
  uint32_t total_size;
  uint32_t reserved;
  uint64_t code_checksum;
};
static_assert(sizeof(CacheFileEntry) == 40);

//! 2: checksums over 64-bit words (checksum.h) instead of bytes.
inline constexpr uint32_t kCacheFormatVersion = 2;


//! One translation to write.
struct CacheFileInput {
  CacheKey key;
  std::vector<uint8_t> code;  //!< Instructions followed by constants.
  uint32_t code_size = 0;
};

//! Writes `inputs` (deduplicated by key) to `path` atomically (temp + rename).
bool write_cache_file(const std::string& path, std::vector<CacheFileInput> inputs,
                      const char* emu_version, std::string& error);

//! A read-only, mapped cache file. Opening validates magic, versions, sizes
//! and the table checksum; code checksums are checked on first lookup of
//! each entry.
class CacheFile {
 public:
  ~CacheFile();
  //! Maps and validates `path`; nullptr with `error` set when the file is
  //! missing, truncated, corrupt, foreign or from another version.
  static std::unique_ptr<CacheFile> open(const std::string& path, const char* emu_version,
                                         std::string& error);

  //! Executable code of the translation for `key`, or nullptr when the file
  //! has none (or that entry's code fails its checksum). `code_size` gets
  //! the instruction bytes, `total_size` those and the constants.
  const void* lookup(const CacheKey& key, uint32_t* code_size = nullptr,
                     uint32_t* total_size = nullptr) const;

  const CacheFileHeader& header() const { return *header_; }
  const CacheFileEntry& entry(uint32_t i) const { return entries_[i]; }
  const uint8_t* base() const { return base_; }
  size_t size() const { return size_; }
  //! Verifies every entry's code checksum; returns the number that fail.
  uint32_t verify_all_code(std::string* first_error = nullptr) const;

 private:
  CacheFile() = default;
  const uint8_t* base_ = nullptr;
  size_t size_ = 0;
  const CacheFileHeader* header_ = nullptr;
  const CacheFileEntry* entries_ = nullptr;
  const uint32_t* index_ = nullptr;
  //! Per entry: 0 unchecked, 1 good, 2 bad. Mutable: checking is lazy.
  mutable std::unique_ptr<std::atomic<uint8_t>[]> checked_;
};

}  // namespace avx512emu::jit
