// Owns the lock-free trap-site table (see site_table.h).
#include "site_table.h"

#include <sys/mman.h>

#include <new>

#include "signal_safe.h"

namespace avx512emu::runtime {

bool code_still_holds(const Site& site) {
  const auto* p = reinterpret_cast<const uint8_t*>(site.address);
  return (p[0] == 0x0f && p[1] == 0x0b) || p[0] == 0xe9 || p[0] == 0xeb ||
         sys::equal(p, site.original, site.length);
}
namespace {

uint64_t hash_address(uint64_t a) {
  a ^= a >> 33;
  a *= 0xff51afd7ed558ccdull;
  a ^= a >> 33;
  return a;
}

void* reserve(size_t bytes) {
  const long p = sys::mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE);
  return p < 0 ? nullptr : reinterpret_cast<void*>(p);
}

}  // namespace

bool SiteTable::init(size_t capacity) {
  size_t slots = 1;
  while (slots < capacity * 2) slots <<= 1;  // at most half full: probes stay short
  slots_ = static_cast<std::atomic<Site*>*>(reserve(slots * sizeof(std::atomic<Site*>)));
  records_ = static_cast<Site*>(reserve(capacity * sizeof(Site)));
  if (!slots_ || !records_) return false;
  mask_ = slots - 1;
  capacity_ = capacity;
  return true;
}

Site* SiteTable::lookup(uint64_t address) const {
  for (size_t i = hash_address(address) & mask_, n = 0; n <= mask_; i = (i + 1) & mask_, ++n) {
    Site* s = slots_[i].load(std::memory_order_acquire);
    if (!s) return nullptr;
    if (s->address == address) return s;
  }
  return nullptr;
}

Site* SiteTable::insert(uint64_t address, const uint8_t* bytes, uint8_t length, SiteState state,
                        const Translation* translation, const char* mnemonic) {
  Site* fresh = nullptr;
  for (size_t i = hash_address(address) & mask_, n = 0; n <= mask_; i = (i + 1) & mask_, ++n) {
    Site* s = slots_[i].load(std::memory_order_acquire);
    if (s && s->address != address) continue;
    if (s && s->length == length && sys::equal(s->original, bytes, length)) return s;
    if (!fresh) {
      // Claim and fill a record before publishing it (release below).
      const size_t index = used_.fetch_add(1, std::memory_order_relaxed);
      if (index >= capacity_) return nullptr;
      fresh = new (&records_[index]) Site;
      fresh->address = address;
      sys::copy(fresh->original, bytes, length);
      fresh->length = length;
      fresh->state.store(state, std::memory_order_relaxed);
      fresh->translation = translation;
      fresh->mnemonic = mnemonic;
    }
    // Empty slot: claim it. Stale site (other bytes): replace it.
    if (slots_[i].compare_exchange_strong(s, fresh, std::memory_order_acq_rel)) return fresh;
    // Lost a race for this slot: look at it again.
    if (s && s->address == address && s->length == length && sys::equal(s->original, bytes, length))
      return s;
    i = (i - 1) & mask_;
    --n;
  }
  return nullptr;
}

}  // namespace avx512emu::runtime
