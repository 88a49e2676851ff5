// Owns the ELF64 reader behind `scan`, the cache generator and trap
// injection: executable sections, .eh_frame FDE ranges and function symbols.
#include "elf_code_map.h"

#include <elf.h>

#include <algorithm>
#include <cstring>

namespace avx512emu {
namespace {

//! Bounds-checked little-endian reader over the image.
class Reader {
 public:
  explicit Reader(std::span<const uint8_t> image) : image_(image) {}
  template <class T>
  bool read(uint64_t offset, T& out) const {
    if (offset > image_.size() || image_.size() - offset < sizeof(T)) return false;
    std::memcpy(&out, image_.data() + offset, sizeof(T));
    return true;
  }
  bool in_bounds(uint64_t offset, uint64_t size) const {
    return offset <= image_.size() && image_.size() - offset >= size;
  }
  const uint8_t* at(uint64_t offset) const { return image_.data() + offset; }

 private:
  std::span<const uint8_t> image_;
};

//! Cursor over one section's bytes for .eh_frame parsing.
struct Cursor {
  const uint8_t* p;
  const uint8_t* end;
  bool ok = true;

  template <class T>
  T fixed() {
    T v{};
    if (end - p < ptrdiff_t(sizeof(T))) {
      ok = false;
      return v;
    }
    std::memcpy(&v, p, sizeof(T));
    p += sizeof(T);
    return v;
  }
  uint64_t uleb() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p >= end) break;
      const uint8_t b = *p++;
      v |= uint64_t(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
    ok = false;
    return v;
  }
  int64_t sleb() {
    int64_t v = 0;
    int shift = 0;
    uint8_t b = 0;
    do {
      if (p >= end || shift >= 64) {
        ok = false;
        return v;
      }
      b = *p++;
      v |= int64_t(b & 0x7f) << shift;
      shift += 7;
    } while (b & 0x80);
    if (shift < 64 && (b & 0x40)) v |= -(int64_t(1) << shift);
    return v;
  }
  //! A DW_EH_PE-encoded pointer; `field_addr` is the field's virtual address.
  uint64_t encoded(uint8_t enc, uint64_t field_addr, bool apply_base = true) {
    if (enc == 0xff) return 0;  // DW_EH_PE_omit
    uint64_t v = 0;
    switch (enc & 0x0f) {
      case 0x00: v = fixed<uint64_t>(); break;
      case 0x01: v = uleb(); break;
      case 0x02: v = fixed<uint16_t>(); break;
      case 0x03: v = fixed<uint32_t>(); break;
      case 0x04: v = fixed<uint64_t>(); break;
      case 0x09: v = uint64_t(sleb()); break;
      case 0x0a: v = uint64_t(int64_t(fixed<int16_t>())); break;
      case 0x0b: v = uint64_t(int64_t(fixed<int32_t>())); break;
      case 0x0c: v = fixed<uint64_t>(); break;
      default: ok = false; return 0;
    }
    if (apply_base && (enc & 0x70) == 0x10) v += field_addr;  // pcrel
    return v;
  }
};

//! Function ranges from the FDEs of an .eh_frame section.
void read_eh_frame(const uint8_t* data, uint64_t size, uint64_t section_addr,
                   std::vector<CodeRange>& out) {
  struct CieInfo {
    uint64_t offset;
    uint8_t fde_encoding;
  };
  std::vector<CieInfo> cies;
  uint64_t off = 0;
  while (off + 4 <= size) {
    Cursor c{data + off, data + size};
    uint64_t length = c.fixed<uint32_t>();
    if (length == 0) break;  // terminator
    if (length == 0xffffffffu) length = c.fixed<uint64_t>();
    const uint8_t* body = c.p;
    if (!c.ok || length > uint64_t(c.end - body)) break;
    const uint64_t record_end = uint64_t(body - data) + length;
    Cursor r{body, data + record_end};
    const uint64_t id_offset = uint64_t(body - data);
    const uint32_t id = r.fixed<uint32_t>();
    if (id == 0) {  // CIE
      CieInfo cie{off, 0x00};
      const uint8_t version = r.fixed<uint8_t>();
      const char* aug = reinterpret_cast<const char*>(r.p);
      const size_t aug_len = strnlen(aug, size_t(r.end - r.p));
      r.p += aug_len + 1;
      r.uleb();  // code alignment
      r.sleb();  // data alignment
      if (version == 1) r.fixed<uint8_t>(); else r.uleb();  // return register
      if (aug_len && aug[0] == 'z') {
        r.uleb();  // augmentation data length
        for (size_t i = 1; i < aug_len && r.ok; ++i) {
          if (aug[i] == 'R') cie.fde_encoding = r.fixed<uint8_t>();
          else if (aug[i] == 'L') r.fixed<uint8_t>();
          else if (aug[i] == 'P') {
            const uint8_t enc = r.fixed<uint8_t>();
            r.encoded(enc, 0, false);
          } else if (aug[i] != 'S' && aug[i] != 'B') break;
        }
      }
      if (r.ok) cies.push_back(cie);
    } else {  // FDE: id is the distance back to its CIE
      const uint64_t cie_off = id_offset - id;
      uint8_t enc = 0x00;
      bool found = false;
      for (const CieInfo& cie : cies)
        if (cie.offset == cie_off) {
          enc = cie.fde_encoding;
          found = true;
        }
      if (found) {
        const uint64_t field_addr = section_addr + uint64_t(r.p - data);
        const uint64_t begin = r.encoded(enc, field_addr);
        const uint64_t range = r.encoded(enc & 0x0f, 0, false);
        if (r.ok && range > 0 && range < (1ull << 32)) out.push_back({begin, range});
      }
    }
    off = record_end;
  }
}

}  // namespace

bool read_elf_code_map(std::span<const uint8_t> image, ElfCodeMap& out, std::string& error) {
  out = ElfCodeMap{};
  Reader rd(image);
  Elf64_Ehdr eh;
  if (!rd.read(0, eh) || std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0) {
    error = image.size() < sizeof(Elf64_Ehdr) && image.size() >= 4 &&
                    std::memcmp(image.data(), ELFMAG, SELFMAG) == 0
                ? "truncated ELF header"
                : "not an ELF file";
    return false;
  }
  if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_machine != EM_X86_64) {
    error = "not an ELF64 x86-64 file";
    return false;
  }
  std::vector<Elf64_Shdr> shdrs;
  if (eh.e_shnum && eh.e_shentsize == sizeof(Elf64_Shdr)) {
    if (!rd.in_bounds(eh.e_shoff, uint64_t(eh.e_shnum) * sizeof(Elf64_Shdr))) {
      error = "section headers outside the file (truncated?)";
      return false;
    }
    shdrs.resize(eh.e_shnum);
    std::memcpy(shdrs.data(), rd.at(eh.e_shoff), shdrs.size() * sizeof(Elf64_Shdr));
  }
  auto section_name = [&](const Elf64_Shdr& s) -> std::string {
    if (eh.e_shstrndx >= shdrs.size()) return "";
    const Elf64_Shdr& strtab = shdrs[eh.e_shstrndx];
    if (s.sh_name >= strtab.sh_size || !rd.in_bounds(strtab.sh_offset, strtab.sh_size)) return "";
    const char* p = reinterpret_cast<const char*>(rd.at(strtab.sh_offset + s.sh_name));
    return std::string(p, strnlen(p, strtab.sh_size - s.sh_name));
  };

  for (const Elf64_Shdr& s : shdrs) {
    if (s.sh_type != SHT_PROGBITS || !(s.sh_flags & SHF_EXECINSTR) || !s.sh_size) continue;
    if (!rd.in_bounds(s.sh_offset, s.sh_size)) {
      error = "executable section " + section_name(s) + " outside the file (truncated?)";
      return false;
    }
    out.sections.push_back({section_name(s), s.sh_addr, s.sh_size, s.sh_offset});
  }
  if (shdrs.empty()) {  // stripped of section headers: use executable segments
    if (eh.e_phentsize != sizeof(Elf64_Phdr) ||
        !rd.in_bounds(eh.e_phoff, uint64_t(eh.e_phnum) * sizeof(Elf64_Phdr))) {
      error = "program headers outside the file (truncated?)";
      return false;
    }
    for (int i = 0; i < eh.e_phnum; ++i) {
      Elf64_Phdr ph;
      rd.read(eh.e_phoff + uint64_t(i) * sizeof ph, ph);
      if (ph.p_type != PT_LOAD || !(ph.p_flags & PF_X)) continue;
      const uint64_t n = std::min<uint64_t>(ph.p_filesz, rd.in_bounds(ph.p_offset, 0) ? image.size() - ph.p_offset : 0);
      out.sections.push_back({"segment", ph.p_vaddr, n, ph.p_offset});
    }
  }

  auto in_exec = [&](uint64_t addr, uint64_t size) {
    for (const auto& s : out.sections)
      if (addr >= s.addr && addr - s.addr < s.size && size <= s.size - (addr - s.addr)) return true;
    return false;
  };
  std::vector<CodeRange> ranges;
  bool have_eh = false, have_syms = false;
  for (const Elf64_Shdr& s : shdrs) {
    if (s.sh_type == SHT_PROGBITS && section_name(s) == ".eh_frame" && rd.in_bounds(s.sh_offset, s.sh_size)) {
      const size_t before = ranges.size();
      read_eh_frame(rd.at(s.sh_offset), s.sh_size, s.sh_addr, ranges);
      have_eh = ranges.size() > before;
    }
    if ((s.sh_type == SHT_SYMTAB || s.sh_type == SHT_DYNSYM) && s.sh_entsize == sizeof(Elf64_Sym) &&
        rd.in_bounds(s.sh_offset, s.sh_size)) {
      for (uint64_t off = 0; off + sizeof(Elf64_Sym) <= s.sh_size; off += sizeof(Elf64_Sym)) {
        Elf64_Sym sym;
        rd.read(s.sh_offset + off, sym);
        if (ELF64_ST_TYPE(sym.st_info) == STT_FUNC && sym.st_size && sym.st_shndx != SHN_UNDEF) {
          ranges.push_back({sym.st_value, sym.st_size});
          have_syms = true;
        }
      }
    }
  }
  std::erase_if(ranges, [&](const CodeRange& r) { return !in_exec(r.start, r.size); });
  std::sort(ranges.begin(), ranges.end(),
            [](const CodeRange& a, const CodeRange& b) { return a.start < b.start; });
  for (const CodeRange& r : ranges) {
    if (!out.functions.empty() && r.start <= out.functions.back().start + out.functions.back().size) {
      CodeRange& last = out.functions.back();
      last.size = std::max(last.start + last.size, r.start + r.size) - last.start;
    } else {
      out.functions.push_back(r);
    }
  }
  out.function_source = have_eh && have_syms ? "eh_frame+symbols"
                        : have_eh            ? "eh_frame"
                        : have_syms          ? "symbols"
                                             : "none";
  return true;
}

}  // namespace avx512emu
