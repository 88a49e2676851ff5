// Owns `avx512emu cache build|info|verify`: scanning, parallel translation of
// distinct instructions, and the checks a cache file must pass.
#include "cache_builder.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "cache_file.h"
#include "compile.h"
#include "decoded_insn.h"
#include "lower_to_ir.h"
#include "scan.h"

namespace avx512emu {

const char* emu_version() { return "0.1.0"; }

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

//! Decode, lower and compile one instruction without touching any cache.
bool compile_instruction(const jit::CacheKey& key, jit::CompiledCode& code) {
  DecodedInsn d;
  ir::Function f;
  std::string error;
  return decode(key.bytes, key.length, d) == DecodeStatus::kOk && lower_to_ir(d, f, error) &&
         jit::compile_to_avx2(f, code, error);
}

}  // namespace

bool build_cache(const CacheBuildOptions& o, CacheBuildSummary& s, std::string& error) {
  const auto t0 = Clock::now();
  std::vector<std::string> path_errors;
  const auto files = expand_scan_paths(o.paths, path_errors);
  if (!path_errors.empty()) {
    error = path_errors.front();
    return false;
  }
  // 1. Scan: distinct instruction byte strings.
  std::set<std::vector<uint8_t>> distinct;
  for (size_t i = 0; i < files.size(); ++i) {
    const ScanResult r = scan_elf_file(files[i], [&](const FoundInstruction& f) {
      ++s.instructions_found;
      distinct.insert(std::vector<uint8_t>(f.bytes, f.bytes + f.length));
    });
    if (r.error.empty()) ++s.files_scanned;
    else ++s.files_skipped;
    if (o.progress)
      std::fprintf(stderr, "\rscanned %zu/%zu files, %zu distinct AVX-512 instructions", i + 1,
                   files.size(), distinct.size());
  }
  if (o.progress) std::fprintf(stderr, "\n");
  s.distinct = distinct.size();

  // 2. Translate in parallel: workers take the next index atomically.
  const std::vector<std::vector<uint8_t>> work(distinct.begin(), distinct.end());
  std::vector<jit::CacheFileInput> outputs(work.size());
  std::vector<char> ok(work.size(), 0);
  std::atomic<size_t> next{0}, done{0};
  const auto t1 = Clock::now();
  auto worker = [&] {
    for (size_t i; (i = next.fetch_add(1)) < work.size();) {
      jit::CacheKey key;
      key.length = uint8_t(work[i].size());
      std::memcpy(key.bytes, work[i].data(), work[i].size());
      jit::CompiledCode code;
      if (compile_instruction(key, code)) {
        outputs[i].key = key;
        outputs[i].code = std::move(code.bytes);
        outputs[i].code_size = uint32_t(code.code_size);
        ok[i] = 1;
      }
      ++done;
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < std::max(1, o.jobs); ++t) threads.emplace_back(worker);
  while (o.progress && done.load() < work.size()) {
    std::fprintf(stderr, "\rtranslated %zu/%zu", done.load(), work.size());
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  for (auto& t : threads) t.join();
  s.translate_seconds = seconds_since(t1);
  if (o.progress) std::fprintf(stderr, "\rtranslated %zu/%zu\n", work.size(), work.size());

  std::vector<jit::CacheFileInput> inputs;
  for (size_t i = 0; i < work.size(); ++i) {
    if (!ok[i]) {
      ++s.untranslated;
      continue;
    }
    ++s.translated;
    s.code_bytes += outputs[i].code.size();
    inputs.push_back(std::move(outputs[i]));
  }
  if (!jit::write_cache_file(o.output, std::move(inputs), emu_version(), error)) return false;
  std::string open_error;
  if (auto f = jit::CacheFile::open(o.output, emu_version(), open_error)) s.file_bytes = f->size();
  s.seconds = seconds_since(t0);
  return true;
}

bool cache_info(const std::string& path, std::string& out, std::string& error) {
  auto f = jit::CacheFile::open(path, emu_version(), error);
  if (!f) return false;
  const auto& h = f->header();
  std::map<std::string, int> per_mnemonic;
  uint64_t code = 0;
  for (uint32_t i = 0; i < h.entry_count; ++i) {
    const auto& e = f->entry(i);
    DecodedInsn d;
    decode(e.key_bytes, e.key_length, d);
    ++per_mnemonic[d.mnemonic];
    code += e.total_size;
  }
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "file:            %s\nformat version:  %u\navx512emu:       %.16s\n"
                "translations:    %u\ncode bytes:      %llu (%.1f per translation)\n"
                "file size:       %llu\nindex slots:     %u\n",
                path.c_str(), h.format_version, h.emu_version, h.entry_count,
                (unsigned long long)code, h.entry_count ? double(code) / h.entry_count : 0.0,
                (unsigned long long)h.file_size, h.index_slots);
  out = buf;
  out += "mnemonics:      ";
  for (const auto& [m, n] : per_mnemonic) out += " " + m + "=" + std::to_string(n);
  out += "\n";
  return true;
}

bool cache_verify(const std::string& path, std::string& out) {
  std::string error;
  auto f = jit::CacheFile::open(path, emu_version(), error);
  if (!f) {
    out = error + "\n";
    return false;
  }
  const auto& h = f->header();
  int problems = 0;
  auto problem = [&](const std::string& s) {
    if (++problems <= 20) out += s + "\n";
  };
  std::string first;
  if (const uint32_t bad = f->verify_all_code(&first))
    problem(std::to_string(bad) + " translations fail their checksum (" + first + ")");
  for (uint32_t i = 0; i < h.entry_count; ++i) {
    const auto& e = f->entry(i);
    DecodedInsn d;
    const DecodeStatus st = decode(e.key_bytes, e.key_length, d);
    if (st != DecodeStatus::kOk || d.length != e.key_length)
      problem("entry " + std::to_string(i) + ": key " + hex_bytes(e.key_bytes, e.key_length) +
              " is not one AVX-512 instruction");
    for (const auto& line : disassemble(f->base() + e.code_offset, e.code_size))
      if (!line.valid || line.evex || std::strncmp(line.isa_set.c_str(), "AVX512", 6) == 0) {
        problem("entry " + std::to_string(i) + " (" + d.mnemonic + "): code contains " + line.text);
        break;
      }
    jit::CacheKey key;
    key.length = e.key_length;
    std::memcpy(key.bytes, e.key_bytes, e.key_length);
    if (f->lookup(key) != f->base() + e.code_offset)
      problem("entry " + std::to_string(i) + ": the index does not find it");
  }
  out += problems ? std::to_string(problems) + " problems\n"
                  : "ok: " + std::to_string(h.entry_count) +
                        " translations, checksums good, every key decodes, no AVX-512 in code\n";
  return problems == 0;
}

}  // namespace avx512emu
