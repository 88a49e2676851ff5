// Owns the fuzz target of the translation-cache loader: any byte string
// handed to CacheFile::open must be refused with a message or accepted as a
// file whose every lookup stays inside its own mapping and hands out only
// code whose checksum holds. Built as a libFuzzer binary with clang
// (AVX512EMU_LIBFUZZER) and run by cache_loader_fuzz_driver in ctest.
#include "cache_loader_fuzz.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

#include "cache_builder.h"
#include "cache_file.h"

namespace {

CacheLoaderFuzzOutcomes g_outcomes;

using avx512emu::jit::CacheFile;
using avx512emu::jit::CacheKey;

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "cache_loader_fuzz: %s\n", what);
  __builtin_trap();
}

//! Checks that code the loader handed out for `key` is the code of an entry
//! with that key, inside the mapping, and what that entry's checksum says.
//! (Damaged tables may hold several entries with one key or one code offset.)
void check_handed_out(const CacheFile& file, const CacheKey& key, const void* code) {
  const auto* p = static_cast<const uint8_t*>(code);
  if (p < file.base() || p >= file.base() + file.size()) fail("lookup points outside the file");
  const size_t offset = size_t(p - file.base());
  for (uint32_t i = 0; i < file.header().entry_count; ++i) {
    const auto& e = file.entry(i);
    if (e.code_offset == offset && e.key_length == key.length &&
        std::memcmp(e.key_bytes, key.bytes, key.length) == 0 &&
        avx512emu::jit::checksum64(p, e.total_size) == e.code_checksum)
      return;
  }
  fail("lookup handed out code that is not a checksummed entry of its key");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The loader takes a path; a memfd is a regular file that never touches disk.
  const int fd = memfd_create("cache_loader_fuzz", MFD_CLOEXEC);
  if (fd < 0) return 0;
  size_t written = 0;
  while (written < size) {
    const ssize_t n = write(fd, data + written, size - written);
    if (n <= 0) {
      close(fd);
      return 0;
    }
    written += size_t(n);
  }
  const std::string path = "/proc/self/fd/" + std::to_string(fd);
  std::string error;
  const auto file = CacheFile::open(path, avx512emu::emu_version(), error);
  if (!file) {
    if (error.empty()) fail("refused without a message");
    ++g_outcomes.refused;
  } else {
    ++g_outcomes.accepted;
    // Every entry's own key, then a key made of the input's first bytes.
    for (uint32_t i = 0; i < file->header().entry_count; ++i) {
      const auto& e = file->entry(i);
      CacheKey key;
      key.length = e.key_length;
      std::memcpy(key.bytes, e.key_bytes, e.key_length);
      if (const void* code = file->lookup(key)) check_handed_out(*file, key, code);
    }
    CacheKey key;
    key.length = uint8_t(std::min<size_t>(size, 15));
    std::memcpy(key.bytes, data, key.length);
    if (const void* code = file->lookup(key)) check_handed_out(*file, key, code);
    file->verify_all_code();
  }
  close(fd);
  return 0;
}

CacheLoaderFuzzOutcomes cache_loader_fuzz_outcomes() {
  return g_outcomes;
}
