// Owns the byte encoding of VMM-side state inside migration_stream records
// (adapter state, run progress, vCPU state): little-endian fixed-width
// values appended to a buffer, and a reader that bounds-checks every read so
// a corrupt payload is refused, never over-read.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

namespace avx512emu::kvm {

class StateWriter {
 public:
  template <typename T>
  void put(const T& value) {
    static_assert(std::is_trivially_copyable_v<T>);
    bytes(&value, sizeof value);
  }
  void bytes(const void* data, size_t size) {
    const auto* p = static_cast<const uint8_t*>(data);
    out_.insert(out_.end(), p, p + size);
  }
  //! A length-prefixed byte string.
  void blob(std::span<const uint8_t> data) {
    put<uint64_t>(data.size());
    bytes(data.data(), data.size());
  }
  std::vector<uint8_t>& buffer() { return out_; }

 private:
  std::vector<uint8_t> out_;
};

class StateReader {
 public:
  explicit StateReader(std::span<const uint8_t> in) : in_(in) {}
  template <typename T>
  bool get(T& value) {
    static_assert(std::is_trivially_copyable_v<T>);
    return bytes(&value, sizeof value);
  }
  bool bytes(void* data, size_t size) {
    if (size > in_.size() - at_) return fail();
    std::memcpy(data, in_.data() + at_, size);
    at_ += size;
    return true;
  }
  bool blob(std::vector<uint8_t>& data, uint64_t max_size) {
    uint64_t size = 0;
    if (!get(size) || size > max_size || size > in_.size() - at_) return fail();
    data.assign(in_.data() + at_, in_.data() + at_ + size);
    at_ += size;
    return true;
  }
  bool ok() const { return ok_; }
  bool at_end() const { return at_ == in_.size(); }

 private:
  bool fail() {
    ok_ = false;
    return false;
  }
  std::span<const uint8_t> in_;
  size_t at_ = 0;
  bool ok_ = true;
};

}  // namespace avx512emu::kvm
