// Owns `avx512emu scan`: maps each ELF file, decodes its function ranges
// linearly (data inside .text is skipped where .eh_frame/symbols describe the
// functions), and counts AVX-512 instructions and their translation status.
#include "scan.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <set>

#include "avx512emu.h"
#include "decoded_insn.h"
#include "elf_code_map.h"

namespace avx512emu {
namespace {

//! Read-only mapping of a whole file, unmapped on destruction.
class MappedFile {
 public:
  bool open(const std::string& path, std::string& error) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      error = std::string("cannot open: ") + std::strerror(errno);
      return false;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      ::close(fd);
      error = "not a regular file";
      return false;
    }
    size_ = size_t(st.st_size);
    if (size_) {
      void* p = mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (p == MAP_FAILED) {
        ::close(fd);
        error = std::string("cannot map: ") + std::strerror(errno);
        return false;
      }
      data_ = static_cast<const uint8_t*>(p);
    }
    ::close(fd);
    return true;
  }
  ~MappedFile() {
    if (data_) munmap(const_cast<uint8_t*>(data_), size_);
  }
  std::span<const uint8_t> bytes() const { return {data_, size_}; }

 private:
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

//! The executable bytes of `sections` that no range of `functions` (sorted,
//! non-overlapping) covers.
std::vector<CodeRange> uncovered_ranges(const std::vector<ElfCodeMap::Section>& sections,
                                        const std::vector<CodeRange>& functions) {
  std::vector<CodeRange> gaps;
  for (const auto& sec : sections) {
    uint64_t at = sec.addr;
    const uint64_t end = sec.addr + sec.size;
    for (const CodeRange& f : functions) {
      if (f.start + f.size <= at || f.start >= end) continue;
      if (f.start > at) gaps.push_back({at, f.start - at});
      at = std::max(at, f.start + f.size);
    }
    if (at < end) gaps.push_back({at, end - at});
  }
  return gaps;
}

}  // namespace

ScanResult scan_elf_file(const std::string& path,
                         const std::function<void(const FoundInstruction&)>& on_found,
                         const ScanOptions& options) {
  ScanResult r;
  r.path = path;
  MappedFile file;
  if (!file.open(path, r.error)) return r;
  ElfCodeMap map;
  if (!read_elf_code_map(file.bytes(), map, r.error)) return r;
  r.function_source = map.function_source;

  // Decodes `range` linearly, resynchronising byte by byte on what does not
  // decode (padding, data); returns the AVX-512 instructions it found.
  auto decode_range = [&](const CodeRange& range) -> uint64_t {
    // Locate the range's bytes through its section.
    const ElfCodeMap::Section* sec = nullptr;
    for (const auto& s : map.sections)
      if (range.start >= s.addr && range.start - s.addr < s.size) sec = &s;
    if (!sec) return 0;
    const uint64_t file_off = sec->file_offset + (range.start - sec->addr);
    const uint64_t size = std::min(range.size, sec->size - (range.start - sec->addr));
    if (file_off > file.bytes().size() || file.bytes().size() - file_off < size) return 0;
    const uint8_t* code = file.bytes().data() + file_off;
    r.code_bytes += size;
    uint64_t found = 0;
    for (uint64_t off = 0; off < size;) {
      DecodedInsn d;
      const DecodeStatus st = decode(code + off, size - off, d);
      if (st != DecodeStatus::kOk && st != DecodeStatus::kNotAvx512) {
        ++off;
        continue;
      }
      ++r.instructions;
      if (st == DecodeStatus::kOk) {
        ++found;
        ++r.avx512;
        ++r.per_isa_set[d.isa_set];
        ++r.per_mnemonic[d.mnemonic];
        if (options.count_translations) {
          if (translate(d.bytes, d.length).error == TranslateError::kNone)
            ++r.translated;
          else
            ++r.untranslated[d.mnemonic];
        }
        if (on_found) {
          FoundInstruction f;
          f.address = range.start + off;
          std::memcpy(f.bytes, d.bytes, d.length);
          f.length = d.length;
          on_found(f);
        }
      }
      off += d.length;
    }
    return found;
  };

  if (map.functions.empty()) {
    for (const auto& s : map.sections) decode_range({s.addr, s.size});
    return r;
  }
  for (const CodeRange& range : map.functions) decode_range(range);
  r.gaps_decoded = options.decode_gaps;
  for (const CodeRange& gap : uncovered_ranges(map.sections, map.functions)) {
    r.gap_bytes += gap.size;
    if (options.decode_gaps) r.gap_avx512 += decode_range(gap);
  }
  return r;
}

std::vector<std::string> expand_scan_paths(const std::vector<std::string>& paths,
                                           std::vector<std::string>& errors) {
  namespace fs = std::filesystem;
  std::vector<std::string> out;
  for (const std::string& p : paths) {
    std::error_code ec;
    if (fs::is_directory(p, ec)) {
      std::vector<std::string> found;
      for (auto it = fs::recursive_directory_iterator(p, fs::directory_options::skip_permission_denied, ec);
           !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (it->is_regular_file(ec) && !it->is_symlink(ec)) found.push_back(it->path().string());
      }
      std::sort(found.begin(), found.end());
      out.insert(out.end(), found.begin(), found.end());
    } else if (fs::exists(p, ec)) {
      out.push_back(p);
    } else {
      errors.push_back(p + ": no such file or directory");
    }
  }
  return out;
}

namespace {

std::string json_escape(const std::string& s) {
  std::string o;
  for (char ch : s) {
    if (ch == '"' || ch == '\\') o += '\\';
    if (uint8_t(ch) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", ch);
      o += buf;
      continue;
    }
    o += ch;
  }
  return o;
}

std::string json_counts(const std::map<std::string, uint64_t>& m) {
  std::string s = "{";
  for (const auto& [k, v] : m) s += (s.size() > 1 ? ",\"" : "\"") + json_escape(k) + "\":" + std::to_string(v);
  return s + "}";
}

}  // namespace

std::string scan_text(const std::vector<ScanResult>& results) {
  std::string out;
  char buf[512];
  for (const ScanResult& r : results) {
    if (!r.error.empty()) {
      out += r.path + ": error: " + r.error + "\n";
      continue;
    }
    std::snprintf(buf, sizeof buf,
                  "%s: %llu AVX-512 instructions, %llu translated (%.1f%%) [%llu instructions "
                  "in %llu code bytes, ranges from %s; %llu executable bytes outside them]\n",
                  r.path.c_str(), (unsigned long long)r.avx512, (unsigned long long)r.translated,
                  r.avx512 ? 100.0 * double(r.translated) / double(r.avx512) : 100.0,
                  (unsigned long long)r.instructions, (unsigned long long)r.code_bytes,
                  r.function_source.c_str(), (unsigned long long)r.gap_bytes);
    out += buf;
    // Compiler output leaves a few percent of padding between functions;
    // much more than that is code the function ranges do not describe.
    if (!r.gaps_decoded && r.gap_bytes * 10 > r.gap_bytes + r.code_bytes) {
      std::snprintf(buf, sizeof buf,
                    "  warning: %llu executable bytes (%.0f%%) lie outside every known function "
                    "and were not decoded (assembly without unwind info or symbols?); 'avx512emu "
                    "cache build' decodes them\n",
                    (unsigned long long)r.gap_bytes,
                    100.0 * double(r.gap_bytes) / double(r.gap_bytes + r.code_bytes));
      out += buf;
    } else if (r.gap_avx512) {
      std::snprintf(buf, sizeof buf,
                    "  %llu of them in %llu executable bytes outside every known function\n",
                    (unsigned long long)r.gap_avx512, (unsigned long long)r.gap_bytes);
      out += buf;
    }
    if (!r.avx512) continue;
    for (const auto& [isa, n] : r.per_isa_set) {
      std::snprintf(buf, sizeof buf, "  %-24s %8llu\n", isa.c_str(), (unsigned long long)n);
      out += buf;
    }
    std::vector<std::pair<uint64_t, std::string>> by_count;
    for (const auto& [m, n] : r.per_mnemonic) by_count.push_back({n, m});
    std::sort(by_count.rbegin(), by_count.rend());
    out += "  mnemonics:";
    for (const auto& [n, m] : by_count) out += " " + m + "=" + std::to_string(n);
    out += "\n";
    if (!r.untranslated.empty()) {
      out += "  not translated:";
      for (const auto& [m, n] : r.untranslated) out += " " + m + "=" + std::to_string(n);
      out += "\n";
    }
  }
  return out;
}

std::string scan_json(const std::vector<ScanResult>& results) {
  std::string out = "[";
  for (size_t i = 0; i < results.size(); ++i) {
    const ScanResult& r = results[i];
    out += i ? ",\n" : "\n";
    out += "{\"path\":\"" + json_escape(r.path) + "\"";
    if (!r.error.empty()) {
      out += ",\"error\":\"" + json_escape(r.error) + "\"}";
      continue;
    }
    out += ",\"function_source\":\"" + r.function_source + "\",\"code_bytes\":" +
           std::to_string(r.code_bytes) + ",\"instructions\":" + std::to_string(r.instructions) +
           ",\"gap_bytes\":" + std::to_string(r.gap_bytes) + ",\"gap_avx512\":" +
           std::to_string(r.gap_avx512) + ",\"avx512\":" + std::to_string(r.avx512) +
           ",\"translated\":" +
           std::to_string(r.translated) + ",\"per_isa_set\":" + json_counts(r.per_isa_set) +
           ",\"per_mnemonic\":" + json_counts(r.per_mnemonic) +
           ",\"untranslated\":" + json_counts(r.untranslated) + "}";
  }
  return out + "\n]\n";
}

}  // namespace avx512emu
