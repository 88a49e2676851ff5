// Owns writing, mapping and validating translation-cache files.
#include "cache_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "cpu_state.h"

namespace avx512emu::jit {
namespace {

constexpr char kMagic[8] = {'A', '5', 'X', 'E', 'M', 'U', 'T', 'C'};
constexpr size_t kPage = 4096;
// Layout tag: translations address CpuState fields by offset, so a file is
// only valid for the state layout it was generated against.
constexpr uint32_t kStateLayout = uint32_t(sizeof(CpuState)) ^ 0x5a000000u;

uint64_t header_checksum_of(CacheFileHeader h) {
  h.header_checksum = 0;
  return checksum64(&h, sizeof h);
}

size_t align_up(size_t v, size_t a) { return (v + a - 1) / a * a; }

}  // namespace

bool write_cache_file(const std::string& path, std::vector<CacheFileInput> inputs,
                      const char* emu_version, std::string& error) {
  std::sort(inputs.begin(), inputs.end(), [](const CacheFileInput& a, const CacheFileInput& b) {
    return std::lexicographical_compare(a.key.bytes, a.key.bytes + a.key.length, b.key.bytes,
                                        b.key.bytes + b.key.length);
  });
  inputs.erase(std::unique(inputs.begin(), inputs.end(),
                           [](const CacheFileInput& a, const CacheFileInput& b) { return a.key == b.key; }),
               inputs.end());
  if (inputs.size() >= (1u << 30)) {
    error = "too many translations for one file";
    return false;
  }
  uint32_t slots = 16;
  while (slots < inputs.size() * 2) slots *= 2;  // load factor <= 1/2: short probes

  CacheFileHeader h{};
  std::memcpy(h.magic, kMagic, sizeof kMagic);
  h.format_version = kCacheFormatVersion;
  h.state_layout = kStateLayout;
  std::strncpy(h.emu_version, emu_version, sizeof h.emu_version - 1);
  h.entry_count = uint32_t(inputs.size());
  h.index_slots = slots;
  const size_t tables = sizeof h + inputs.size() * sizeof(CacheFileEntry) + size_t(slots) * 4;
  h.code_offset = uint32_t(align_up(tables, kPage));  // code gets its own pages

  std::vector<CacheFileEntry> entries(inputs.size());
  std::vector<uint32_t> index(slots, 0);
  size_t code_end = h.code_offset;
  for (size_t i = 0; i < inputs.size(); ++i) {
    CacheFileEntry& e = entries[i];
    e.key_length = inputs[i].key.length;
    std::memcpy(e.key_bytes, inputs[i].key.bytes, sizeof e.key_bytes);
    e.code_offset = uint32_t(code_end);
    e.code_size = inputs[i].code_size;
    e.total_size = uint32_t(inputs[i].code.size());
    e.code_checksum = checksum64(inputs[i].code.data(), inputs[i].code.size());
    code_end = align_up(code_end + inputs[i].code.size(), 32);
    if (code_end > 0xffffffffu) {
      error = "cache file would exceed 4 GiB";
      return false;
    }
    for (uint32_t s = uint32_t(inputs[i].key.hash()) & (slots - 1);; s = (s + 1) & (slots - 1))
      if (!index[s]) {
        index[s] = uint32_t(i + 1);
        break;
      }
  }
  h.file_size = align_up(code_end, kPage);
  std::vector<uint8_t> file(h.file_size, 0);
  std::memcpy(file.data() + sizeof h, entries.data(), entries.size() * sizeof(CacheFileEntry));
  std::memcpy(file.data() + sizeof h + entries.size() * sizeof(CacheFileEntry), index.data(),
              index.size() * 4);
  h.table_checksum = checksum64(file.data() + sizeof h, tables - sizeof h);
  for (size_t i = 0; i < inputs.size(); ++i)
    std::memcpy(file.data() + entries[i].code_offset, inputs[i].code.data(), inputs[i].code.size());
  h.header_checksum = header_checksum_of(h);
  std::memcpy(file.data(), &h, sizeof h);

  // Write to a temporary file and rename, so readers never see a partial file.
  const std::string tmp = path + ".tmp." + std::to_string(getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    error = "cannot create " + tmp + ": " + std::strerror(errno);
    return false;
  }
  size_t done = 0;
  while (done < file.size()) {
    const ssize_t n = ::write(fd, file.data() + done, file.size() - done);
    if (n <= 0) {
      if (n < 0 && errno == EINTR) continue;
      error = "cannot write " + tmp + ": " + std::strerror(errno);
      ::close(fd);
      ::unlink(tmp.c_str());
      return false;
    }
    done += size_t(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0 || ::rename(tmp.c_str(), path.c_str()) != 0) {
    error = "cannot finish " + path + ": " + std::strerror(errno);
    ::unlink(tmp.c_str());
    return false;
  }
  return true;
}

CacheFile::~CacheFile() {
  if (base_) munmap(const_cast<uint8_t*>(base_), size_);
}

std::unique_ptr<CacheFile> CacheFile::open(const std::string& path, const char* emu_version,
                                           std::string& error) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    error = path + ": cannot open: " + std::strerror(errno);
    return nullptr;
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    error = path + ": not a regular file";
    return nullptr;
  }
  const size_t size = size_t(st.st_size);
  auto fail = [&](const std::string& why) {
    ::close(fd);
    error = path + ": " + why;
    return nullptr;
  };
  if (size < sizeof(CacheFileHeader)) return fail("truncated (smaller than the header)");
  CacheFileHeader h;
  if (pread(fd, &h, sizeof h, 0) != ssize_t(sizeof h)) return fail("cannot read the header");
  if (std::memcmp(h.magic, kMagic, sizeof kMagic) != 0) return fail("not an avx512emu translation cache");
  if (h.header_checksum != header_checksum_of(h)) return fail("corrupt header (checksum mismatch)");
  if (h.format_version != kCacheFormatVersion)
    return fail("format version " + std::to_string(h.format_version) + ", this avx512emu reads " +
                std::to_string(kCacheFormatVersion));
  if (h.state_layout != kStateLayout) return fail("written for another state-block layout");
  if (std::strncmp(h.emu_version, emu_version, sizeof h.emu_version) != 0)
    return fail(std::string("written by avx512emu ") + std::string(h.emu_version, strnlen(h.emu_version, 16)) +
                ", this is " + emu_version + ": rebuild the cache");
  if (h.file_size != size) return fail("truncated or extended (size " + std::to_string(size) +
                                       ", header says " + std::to_string(h.file_size) + ")");
  const uint64_t tables = sizeof h + uint64_t(h.entry_count) * sizeof(CacheFileEntry) + uint64_t(h.index_slots) * 4;
  if (h.index_slots == 0 || (h.index_slots & (h.index_slots - 1)) || h.entry_count >= h.index_slots ||
      tables > h.code_offset || h.code_offset % kPage || h.code_offset > size)
    return fail("corrupt table layout");

  // Reserve the whole range, then map tables read-only and code read+exec:
  // never writable and executable at once.
  void* base = mmap(nullptr, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED) return fail(std::string("cannot reserve address space: ") + std::strerror(errno));
  bool ok = mmap(base, h.code_offset, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 0) != MAP_FAILED;
  if (ok && size > h.code_offset)
    ok = mmap(static_cast<uint8_t*>(base) + h.code_offset, size - h.code_offset, PROT_READ | PROT_EXEC,
              MAP_PRIVATE | MAP_FIXED, fd, off_t(h.code_offset)) != MAP_FAILED;
  ::close(fd);
  std::unique_ptr<CacheFile> f(new CacheFile());
  f->base_ = static_cast<const uint8_t*>(base);
  f->size_ = size;
  if (!ok) {
    error = path + ": cannot map: " + std::strerror(errno);
    return nullptr;
  }
  f->header_ = reinterpret_cast<const CacheFileHeader*>(f->base_);
  if (checksum64(f->base_ + sizeof h, tables - sizeof h) != h.table_checksum) {
    error = path + ": corrupt index (checksum mismatch)";
    return nullptr;
  }
  f->entries_ = reinterpret_cast<const CacheFileEntry*>(f->base_ + sizeof h);
  f->index_ = reinterpret_cast<const uint32_t*>(f->base_ + sizeof h + h.entry_count * sizeof(CacheFileEntry));
  for (uint32_t i = 0; i < h.entry_count; ++i) {
    const CacheFileEntry& e = f->entries_[i];
    if (e.key_length == 0 || e.key_length > 15 || e.code_offset < h.code_offset ||
        e.code_offset > size || e.total_size > size - e.code_offset || e.code_size > e.total_size) {
      error = path + ": entry " + std::to_string(i) + " points outside the file";
      return nullptr;
    }
  }
  for (uint32_t s = 0; s < h.index_slots; ++s)
    if (f->index_[s] > h.entry_count) {
      error = path + ": index slot " + std::to_string(s) + " names a missing entry";
      return nullptr;
    }
  f->checked_.reset(new std::atomic<uint8_t>[h.entry_count]());
  return f;
}

const void* CacheFile::lookup(const CacheKey& key, uint32_t* code_size,
                              uint32_t* total_size) const {
  const uint32_t mask = header_->index_slots - 1;
  for (uint32_t s = uint32_t(key.hash()) & mask, n = 0; n <= mask; s = (s + 1) & mask, ++n) {
    const uint32_t slot = index_[s];
    if (!slot) return nullptr;
    const CacheFileEntry& e = entries_[slot - 1];
    if (e.key_length != key.length || std::memcmp(e.key_bytes, key.bytes, key.length) != 0) continue;
    std::atomic<uint8_t>& state = checked_[slot - 1];
    uint8_t verdict = state.load(std::memory_order_acquire);
    if (verdict == 0) {
      verdict = checksum64(base_ + e.code_offset, e.total_size) == e.code_checksum ? 1 : 2;
      state.store(verdict, std::memory_order_release);
    }
    if (verdict != 1) return nullptr;  // corrupt code is never executed
    if (code_size) *code_size = e.code_size;
    if (total_size) *total_size = e.total_size;
    return base_ + e.code_offset;
  }
  return nullptr;
}

uint32_t CacheFile::verify_all_code(std::string* first_error) const {
  uint32_t bad = 0;
  for (uint32_t i = 0; i < header_->entry_count; ++i) {
    const CacheFileEntry& e = entries_[i];
    if (checksum64(base_ + e.code_offset, e.total_size) != e.code_checksum) {
      if (!bad && first_error) *first_error = "entry " + std::to_string(i) + ": code checksum mismatch";
      ++bad;
    }
  }
  return bad;
}

}  // namespace avx512emu::jit
