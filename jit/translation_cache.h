// Owns the in-memory translation cache: instruction bytes + mode -> executable
// translation. Lookups are lock-free; inserts serialise on a mutex.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>

namespace avx512emu::jit {

//! Cache key: the exact instruction bytes and the decoding mode.
struct CacheKey {
  uint8_t bytes[15] = {};
  uint8_t length = 0;
  uint8_t mode = 64;  //!< Machine mode the bytes were decoded in.

  bool operator==(const CacheKey& o) const;
  uint64_t hash() const;
};

//! One immutable cache entry. Published with a release store, never freed or
//! changed while the cache lives, so readers need no lock.
struct CacheEntry {
  CacheKey key;
  const void* code = nullptr;  //!< Executable, position-independent.
  uint32_t code_size = 0;      //!< Instruction bytes (excluding the constant pool).
  uint32_t total_size = 0;
  const char* mnemonic = "";
  //! The register form (register_form.h), when the instruction has one:
  //! same shape as `code`, for running inline on the live registers. Null
  //! for entries from cache files, which hold the memory form only.
  const void* register_code = nullptr;
  uint32_t register_code_size = 0;
  uint32_t register_total_size = 0;
  uint16_t register_low_read = 0;     //!< guest ymm read live (bit per zmm0-15)
  uint16_t register_low_written = 0;  //!< guest ymm written live
};

//! The register form of an entry being inserted.
struct RegisterCode {
  const uint8_t* bytes = nullptr;
  size_t total_size = 0, code_size = 0;
  uint16_t low_read = 0, low_written = 0;
};

class TranslationCache {
 public:
  explicit TranslationCache(size_t capacity_log2 = 16);
  ~TranslationCache();
  TranslationCache(const TranslationCache&) = delete;
  TranslationCache& operator=(const TranslationCache&) = delete;

  //! The entry for `key`, or nullptr. Safe against concurrent inserts.
  const CacheEntry* lookup(const CacheKey& key) const;

  //! Copies `code` into executable memory and publishes an entry. When
  //! another thread inserted the same key first, returns that entry. Returns
  //! nullptr when the table or the executable memory is exhausted.
  const CacheEntry* insert(const CacheKey& key, const uint8_t* code, size_t total_size,
                           size_t code_size, const char* mnemonic,
                           const RegisterCode* register_code = nullptr);

  //! Publishes an entry whose code already lives in executable memory owned
  //! by someone else (a mapped cache file that outlives this cache); its
  //! register form, when given, is copied into this cache's memory.
  const CacheEntry* insert_external(const CacheKey& key, const void* code, size_t code_size,
                                    size_t total_size, const char* mnemonic,
                                    const RegisterCode* register_code = nullptr);

  size_t size() const { return count_.load(std::memory_order_relaxed); }

 private:
  struct Impl;
  bool full() const;
  //! Copies a register form into executable memory; null when there is none
  //! or no memory is left. Insert mutex held.
  void* place_register_code(const RegisterCode* register_code);
  const CacheEntry* publish(const CacheKey& key, const void* code, size_t code_size,
                            size_t total_size, const char* mnemonic,
                            const RegisterCode* register_code = nullptr,
                            const void* register_rx = nullptr);
  std::unique_ptr<Impl> impl_;
  std::atomic<size_t> count_{0};
};

}  // namespace avx512emu::jit
