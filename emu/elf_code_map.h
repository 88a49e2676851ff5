// Owns reading an ELF64 x86-64 image (a file's bytes, or a loaded object's
// memory) into the ranges that hold code: function ranges from .eh_frame FDEs
// and function symbols, else whole executable sections. Every offset read is
// bounds-checked: a truncated or corrupt image gives an error, never a crash.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace avx512emu {

//! A range of code, as virtual addresses of the image (link-time addresses).
struct CodeRange {
  uint64_t start = 0;
  uint64_t size = 0;
};

struct ElfCodeMap {
  //! Executable sections (or segments when there are no section headers):
  //! virtual address, size and file offset, so callers can find the bytes.
  struct Section {
    std::string name;
    uint64_t addr = 0, size = 0, file_offset = 0;
  };
  std::vector<Section> sections;
  //! Function ranges inside the executable sections, sorted, merged when they
  //! overlap. Empty when the image has neither .eh_frame nor function symbols.
  std::vector<CodeRange> functions;
  std::string function_source;  //!< "eh_frame+symbols", "symbols", or "none".
};

//! Parses `image` (the bytes of an ELF file). Returns false with `error` set
//! for non-ELF, non-x86-64, truncated or corrupt input.
bool read_elf_code_map(std::span<const uint8_t> image, ElfCodeMap& out, std::string& error);

}  // namespace avx512emu
