// Owns the public library API: translate one AVX-512 instruction and execute
// the translation against a CpuState and the current process's memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "cpu_state.h"
#include "translation_cache.h"

namespace avx512emu {

//! Why a translation could not be made.
enum class TranslateError : uint8_t {
  kNone,
  kNotAvx512,    //!< Valid, but not in any AVX512* ISA set.
  kUnsupported,  //!< AVX-512, but this mnemonic or form is not translated yet.
  kInvalid,      //!< Not a valid instruction.
  kTruncated,    //!< The bytes end inside the instruction.
};
const char* translate_error_name(TranslateError e);

//! Signature of generated code: position independent, SysV ABI.
using TranslationFn = void (*)(CpuState*);

//! One translated instruction (a translation-cache entry): `key.length` is
//! the instruction length, `code` the generated function. Never freed while
//! the process-wide cache lives, so pointers stay valid for concurrent readers.
using Translation = jit::CacheEntry;

struct TranslateResult {
  const Translation* translation = nullptr;  //!< Set when error == kNone.
  TranslateError error = TranslateError::kNone;
  std::string message;                        //!< One line: mnemonic and reason.
};

//! Translates the instruction at `bytes` (at most `size` bytes are read).
//! Uses the process-wide translation cache: the same bytes return the same
//! Translation. Thread safe.
TranslateResult translate(const uint8_t* bytes, size_t size);

//! Runs `t` against `state`: reads and writes the state block and the
//! process memory the instruction addresses, and advances state.rip.
inline void execute(const Translation& t, CpuState& state) {
  reinterpret_cast<TranslationFn>(const_cast<void*>(t.code))(&state);
}

//! Maps a translation-cache file (written by `avx512emu cache build`) and
//! makes translate() use its translations before compiling anything. Thread
//! safe; the file stays mapped for the life of the process. Returns false
//! with `error` set for a missing, corrupt, truncated, foreign or
//! version-mismatched file, which is then never used.
bool load_translation_cache(const std::string& path, std::string& error);

//! Counters of translate() since the process started.
struct TranslateStats {
  uint64_t memory_hits = 0;   //!< Found in the in-memory cache.
  uint64_t file_hits = 0;     //!< Found in a loaded cache file (first use).
  uint64_t translations = 0;  //!< Compiled by the JIT.
  uint64_t failures = 0;      //!< Errors returned.
};
TranslateStats translate_stats();

//! Executes the instruction with the reference interpreter instead of the
//! JIT. Same contract as translate + execute. Returns false with `error` set
//! when the instruction cannot be lowered.
bool interpret(const uint8_t* bytes, size_t size, CpuState& state, std::string* error = nullptr);

//! Full text of a translation: decode, IR, AVX2 assembly and code sizes, as
//! `avx512emu translate` prints it. Returns false when translation fails.
bool describe(const uint8_t* bytes, size_t size, std::string& out);

}  // namespace avx512emu
