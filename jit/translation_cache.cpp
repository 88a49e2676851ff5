// Owns the translation cache: an open-addressing table of atomic entry
// pointers (lock-free lookup) over entries and code that live until the cache
// is destroyed. Code memory comes from AsmJit's JitAllocator, which keeps
// pages W^X where the system asks for it.
#include "translation_cache.h"

#include <asmjit/core.h>

#include <cstring>
#include <vector>

namespace avx512emu::jit {

bool CacheKey::operator==(const CacheKey& o) const {
  return length == o.length && mode == o.mode && std::memcmp(bytes, o.bytes, length) == 0;
}

uint64_t CacheKey::hash() const {
  // FNV-1a over the meaningful bytes.
  uint64_t h = 1469598103934665603ull ^ mode;
  for (int i = 0; i < length; ++i) h = (h ^ bytes[i]) * 1099511628211ull;
  return h ^ (h >> 29);
}

struct TranslationCache::Impl {
  explicit Impl(size_t log2) : mask((size_t(1) << log2) - 1), slots(mask + 1) {}
  size_t mask;
  std::vector<std::atomic<const CacheEntry*>> slots;
  std::mutex insert_mutex;
  asmjit::JitAllocator allocator;
  std::vector<std::unique_ptr<CacheEntry>> entries;
  std::vector<void*> code_blocks;
};

TranslationCache::TranslationCache(size_t capacity_log2)
    : impl_(std::make_unique<Impl>(capacity_log2)) {}

TranslationCache::~TranslationCache() {
  for (void* rx : impl_->code_blocks) impl_->allocator.release(rx);
}

const CacheEntry* TranslationCache::lookup(const CacheKey& key) const {
  const size_t mask = impl_->mask;
  for (size_t i = key.hash() & mask, n = 0; n <= mask; i = (i + 1) & mask, ++n) {
    const CacheEntry* e = impl_->slots[i].load(std::memory_order_acquire);
    if (!e) return nullptr;
    if (e->key == key) return e;
  }
  return nullptr;
}

const CacheEntry* TranslationCache::insert(const CacheKey& key, const uint8_t* code,
                                           size_t total_size, size_t code_size,
                                           const char* mnemonic,
                                           const RegisterCode* register_code) {
  std::lock_guard<std::mutex> lock(impl_->insert_mutex);
  if (const CacheEntry* existing = lookup(key)) return existing;
  if (full()) return nullptr;
  void* rx = nullptr;
  void* rw = nullptr;
  if (impl_->allocator.alloc(&rx, &rw, total_size) != asmjit::kErrorOk) return nullptr;
  std::memcpy(rw, code, total_size);
  impl_->code_blocks.push_back(rx);
  void* register_rx = place_register_code(register_code);
  return publish(key, rx, code_size, total_size, mnemonic, register_rx ? register_code : nullptr,
                 register_rx);
}

void* TranslationCache::place_register_code(const RegisterCode* register_code) {
  void* rx = nullptr;
  void* rw = nullptr;
  if (!register_code || !register_code->bytes ||
      impl_->allocator.alloc(&rx, &rw, register_code->total_size) != asmjit::kErrorOk)
    return nullptr;
  std::memcpy(rw, register_code->bytes, register_code->total_size);
  impl_->code_blocks.push_back(rx);
  return rx;
}

const CacheEntry* TranslationCache::insert_external(const CacheKey& key, const void* code,
                                                    size_t code_size, size_t total_size,
                                                    const char* mnemonic,
                                                    const RegisterCode* register_code) {
  std::lock_guard<std::mutex> lock(impl_->insert_mutex);
  if (const CacheEntry* existing = lookup(key)) return existing;
  if (full()) return nullptr;
  void* register_rx = place_register_code(register_code);
  return publish(key, code, code_size, total_size, mnemonic, register_rx ? register_code : nullptr,
                 register_rx);
}

bool TranslationCache::full() const {
  // Keep the table at most 3/4 full so probes stay short and terminate.
  return (count_.load(std::memory_order_relaxed) + 1) * 4 > (impl_->mask + 1) * 3;
}

// Called with the insert mutex held.
const CacheEntry* TranslationCache::publish(const CacheKey& key, const void* code,
                                            size_t code_size, size_t total_size,
                                            const char* mnemonic,
                                            const RegisterCode* register_code,
                                            const void* register_rx) {
  auto entry = std::make_unique<CacheEntry>();
  if (register_code) {
    entry->register_code = register_rx;
    entry->register_code_size = uint32_t(register_code->code_size);
    entry->register_total_size = uint32_t(register_code->total_size);
    entry->register_low_read = register_code->low_read;
    entry->register_low_written = register_code->low_written;
  }
  entry->key = key;
  entry->code = code;
  entry->code_size = uint32_t(code_size);
  entry->total_size = uint32_t(total_size);
  entry->mnemonic = mnemonic;
  const CacheEntry* published = entry.get();
  impl_->entries.push_back(std::move(entry));
  const size_t mask = impl_->mask;
  for (size_t i = key.hash() & mask;; i = (i + 1) & mask) {
    if (!impl_->slots[i].load(std::memory_order_relaxed)) {
      // Release: the entry and its code are complete before readers see it.
      impl_->slots[i].store(published, std::memory_order_release);
      break;
    }
  }
  count_.fetch_add(1, std::memory_order_relaxed);
  return published;
}

}  // namespace avx512emu::jit
