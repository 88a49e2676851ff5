// Owns the library API: decode -> lower -> compile -> cache, the interpreter
// entry, and the human-readable description of a translation.
#include <cinttypes>
#include <cstdio>

#include "avx512emu.h"
#include <algorithm>
#include <cstdlib>
#include <cstring>

#include <atomic>
#include <mutex>

#include "cache_builder.h"
#include "cache_file.h"
#include "compile.h"
#include "register_form.h"
#include "interpreter.h"
#include "lower_to_ir.h"

namespace avx512emu {

const char* translate_error_name(TranslateError e) {
  switch (e) {
    case TranslateError::kNone: return "ok";
    case TranslateError::kNotAvx512: return "not AVX-512";
    case TranslateError::kUnsupported: return "unsupported";
    case TranslateError::kInvalid: return "invalid";
    case TranslateError::kTruncated: return "truncated";
  }
  return "?";
}

namespace {

struct Counters {
  std::atomic<uint64_t> memory_hits{0}, file_hits{0}, translations{0}, failures{0};
};
Counters& counters() {
  static Counters c;
  return c;
}

//! Cache files loaded into this process; never unmapped, because entries of
//! the in-memory cache point into them.
struct LoadedFiles {
  std::mutex mutex;
  std::vector<std::unique_ptr<jit::CacheFile>> files;
  std::atomic<size_t> count{0};
};
LoadedFiles& loaded_files() {
  static LoadedFiles* files = new LoadedFiles;  // leaked on purpose: outlives every user
  return *files;
}

jit::TranslationCache& process_cache() {
  static jit::TranslationCache cache(18);  // room for ~196k distinct encodings
  return cache;
}

jit::CacheKey key_of(const DecodedInsn& d) {
  jit::CacheKey k;
  std::memcpy(k.bytes, d.bytes, d.length);
  k.length = d.length;
  return k;
}

//! Decodes and lowers; on failure fills `result` with the precise error.
bool decode_and_lower(const uint8_t* bytes, size_t size, DecodedInsn& d, ir::Function& f,
                      TranslateResult& result) {
  const DecodeStatus st = decode(bytes, size, d);
  switch (st) {
    case DecodeStatus::kOk: break;
    case DecodeStatus::kNotAvx512:
      result.error = TranslateError::kNotAvx512;
      result.message = std::string(d.mnemonic) + ": not an AVX-512 instruction (ISA set " +
                       d.isa_set + ")";
      return false;
    case DecodeStatus::kInvalid:
      result.error = TranslateError::kInvalid;
      result.message = "invalid instruction bytes " + hex_bytes(bytes, std::min<size_t>(size, 15));
      return false;
    case DecodeStatus::kTruncated:
      result.error = TranslateError::kTruncated;
      result.message = "instruction truncated after " + std::to_string(size) + " bytes";
      return false;
  }
  std::string why;
  if (!lower_to_ir(d, f, why)) {
    result.error = TranslateError::kUnsupported;
    result.message = why;
    return false;
  }
  return true;
}

}  // namespace

TranslateResult translate(const uint8_t* bytes, size_t size) {
  TranslateResult result;
  DecodedInsn d;
  ir::Function f;
  // Hit path: only the length is decoded, then the exact bytes are looked up.
  if (const size_t length = instruction_length(bytes, size)) {
    jit::CacheKey key;
    std::memcpy(key.bytes, bytes, length);
    key.length = uint8_t(length);
    if (const jit::CacheEntry* hit = process_cache().lookup(key)) {
      counters().memory_hits.fetch_add(1, std::memory_order_relaxed);
      result.translation = hit;
      return result;
    }
  }
  if (!decode_and_lower(bytes, size, d, f, result)) {
    counters().failures.fetch_add(1, std::memory_order_relaxed);
    return result;
  }
  const jit::CacheKey key = key_of(d);
  // The register form (register_form.h), for the runtime's inline stubs.
  // Cache files hold the memory form only, so a file hit gets one here too.
  // With AVX512EMU_CHECK_REGISTER_FORM=1 its callable wrapping stands in for
  // the memory form below, so that everything that runs translations (the
  // differential suite first) checks the register form instead.
  jit::CompiledCode live;
  jit::RegisterFormUse use;
  jit::RegisterCode register_code;
  std::string why;
  if (jit::compile_register_form(f, /*callable=*/false, live, use, why))
    register_code = {live.bytes.data(), live.bytes.size(), live.code_size, use.low_read,
                     use.low_written};
  const jit::RegisterCode* register_form = register_code.bytes ? &register_code : nullptr;
  if (loaded_files().count.load(std::memory_order_acquire)) {
    std::lock_guard<std::mutex> lock(loaded_files().mutex);
    for (const auto& file : loaded_files().files) {
      uint32_t code_size = 0, total_size = 0;
      if (const void* code = file->lookup(key, &code_size, &total_size)) {
        result.translation = process_cache().insert_external(key, code, code_size, total_size,
                                                             d.mnemonic, register_form);
        if (result.translation) {
          counters().file_hits.fetch_add(1, std::memory_order_relaxed);
          return result;
        }
      }
    }
  }
  jit::CompiledCode code;
  if (!jit::compile_to_avx2(f, code, why)) {
    counters().failures.fetch_add(1, std::memory_order_relaxed);
    result.error = TranslateError::kUnsupported;
    result.message = std::string(d.mnemonic) + ": " + why;
    return result;
  }
  static const bool check = [] {
    const char* v = std::getenv("AVX512EMU_CHECK_REGISTER_FORM");
    return v && *v && std::strcmp(v, "0") != 0;
  }();
  if (check && register_form) {
    jit::RegisterFormUse unused;
    if (!jit::compile_register_form(f, /*callable=*/true, code, unused, why)) {
      result.error = TranslateError::kUnsupported;
      result.message = std::string(d.mnemonic) + ": register form: " + why;
      return result;
    }
  }
  result.translation = process_cache().insert(key, code.bytes.data(), code.bytes.size(),
                                              code.code_size, d.mnemonic, register_form);
  if (!result.translation) {
    counters().failures.fetch_add(1, std::memory_order_relaxed);
    result.error = TranslateError::kUnsupported;
    result.message = "translation cache is full";
    return result;
  }
  counters().translations.fetch_add(1, std::memory_order_relaxed);
  return result;
}

bool load_translation_cache(const std::string& path, std::string& error) {
  auto file = jit::CacheFile::open(path, emu_version(), error);
  if (!file) return false;
  LoadedFiles& lf = loaded_files();
  std::lock_guard<std::mutex> lock(lf.mutex);
  lf.files.push_back(std::move(file));
  lf.count.store(lf.files.size(), std::memory_order_release);
  return true;
}

TranslateStats translate_stats() {
  const Counters& c = counters();
  return {c.memory_hits.load(), c.file_hits.load(), c.translations.load(), c.failures.load()};
}

bool interpret(const uint8_t* bytes, size_t size, CpuState& state, std::string* error) {
  DecodedInsn d;
  ir::Function f;
  TranslateResult r;
  if (!decode_and_lower(bytes, size, d, f, r)) {
    if (error) *error = r.message;
    return false;
  }
  return interpret_ir(f, state, error);
}

bool describe(const uint8_t* bytes, size_t size, std::string& out) {
  DecodedInsn d;
  ir::Function f;
  TranslateResult r;
  char buf[256];
  const DecodeStatus st = decode(bytes, size, d);
  if (st == DecodeStatus::kOk || st == DecodeStatus::kNotAvx512) {
    std::snprintf(buf, sizeof buf, "decode:  %s\n  bytes %s, length %u, ISA set %s, %s",
                  format_insn(d).c_str(), hex_bytes(d.bytes, d.length).c_str(), d.length, d.isa_set,
                  d.evex  ? "EVEX"
                  : d.vex ? "VEX"
                          : "legacy encoding");
    out += buf;
    if (d.vector_bits) out += ", VL " + std::to_string(d.vector_bits);
    if (d.opmask) out += ", mask k" + std::to_string(d.opmask) + (d.zeroing ? " {z}" : " {merge}");
    if (d.broadcast) out += ", broadcast 1to" + std::to_string(d.broadcast);
    if (d.sae) out += ", sae";
    out += "\n";
  }
  if (!decode_and_lower(bytes, size, d, f, r)) {
    out += std::string("error (") + translate_error_name(r.error) + "): " + r.message + "\n";
    return false;
  }
  out += "ir:\n" + ir::print(f);
  jit::CompiledCode code;
  std::string why;
  if (!jit::compile_to_avx2(f, code, why)) {
    out += std::string("error (unsupported): ") + d.mnemonic + ": " + why + "\n";
    return false;
  }
  out += "avx2:\n";
  for (const DisasmLine& line : disassemble(code.bytes.data(), code.code_size)) {
    std::snprintf(buf, sizeof buf, "  %04x  %s\n", line.offset, line.text.c_str());
    out += buf;
  }
  std::snprintf(buf, sizeof buf,
                "size:    %zu bytes of code, %zu bytes of constants, %zu instructions\n",
                code.code_size, code.bytes.size() - code.code_size,
                disassemble(code.bytes.data(), code.code_size).size());
  out += buf;
  return true;
}

}  // namespace avx512emu
