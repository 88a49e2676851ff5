// Owns `avx512emu cache build|info|verify`: scanning, parallel translation of
// distinct instructions, and the checks a cache file must pass.
#include "cache_builder.h"

#include <algorithm>
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

const char* emu_version() {
  return "0.1.0";
}

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

//! Progress of one phase on stderr. On a terminal one line is rewritten at
//! most five times a second; otherwise (a log) a line is written every five
//! seconds, so short work prints nothing and long work shows it is alive.
class PhaseProgress {
 public:
  explicit PhaseProgress(CacheBuildProgress mode) : mode_(mode) {}

  void show(const std::string& text) {
    if (mode_ == CacheBuildProgress::kNone) return;
    const auto now = Clock::now();
    const auto interval = mode_ == CacheBuildProgress::kTerminal ? std::chrono::milliseconds(200)
                                                                 : std::chrono::milliseconds(5000);
    if (now - last_ < interval) return;
    if (mode_ == CacheBuildProgress::kTerminal) {
      std::fprintf(stderr, "\r%s", text.c_str());
    } else if (now - start_ >= interval) {
      std::fprintf(stderr, "%s\n", text.c_str());
      printed_ = true;
    } else {
      return;  // not long work yet
    }
    last_ = now;
  }

  //! The phase's last state; on a log, only when the phase printed before.
  void finish(const std::string& text) {
    if (mode_ == CacheBuildProgress::kTerminal) std::fprintf(stderr, "\r%s\n", text.c_str());
    if (mode_ == CacheBuildProgress::kLines && printed_) std::fprintf(stderr, "%s\n", text.c_str());
  }

 private:
  CacheBuildProgress mode_;
  Clock::time_point start_ = Clock::now();
  Clock::time_point last_{};
  bool printed_ = false;
};

//! Runs body(i) for every i below `count` on `jobs` threads, each taking the
//! next index; the calling thread reports progress(done) meanwhile.
template <class Body, class Progress>
void parallel_for(size_t count, int jobs, Body body, Progress progress) {
  std::atomic<size_t> next{0}, done{0};
  auto worker = [&] {
    for (size_t i; (i = next.fetch_add(1)) < count;) {
      body(i);
      done.fetch_add(1);
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < std::max(1, jobs); ++t) threads.emplace_back(worker);
  while (done.load() < count) {
    progress(done.load());
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  for (auto& t : threads) t.join();
}

//! Decode, lower and compile one instruction without touching any cache.
//! On failure `mnemonic` names what could not be translated.
bool compile_instruction(const jit::CacheKey& key, jit::CompiledCode& code, std::string& mnemonic) {
  DecodedInsn d;
  ir::Function f;
  std::string error;
  if (decode(key.bytes, key.length, d) == DecodeStatus::kOk && lower_to_ir(d, f, error) &&
      jit::compile_to_avx2(f, code, error))
    return true;
  mnemonic = *d.mnemonic ? d.mnemonic : "(undecodable)";
  return false;
}

std::string count_of(size_t done, size_t total, const char* what) {
  return std::to_string(done) + "/" + std::to_string(total) + " " + what;
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

  // 1. Scan the files in parallel: the distinct instruction byte strings.
  std::set<std::vector<uint8_t>> distinct;
  std::mutex distinct_mutex;
  std::atomic<uint64_t> found{0};
  std::atomic<int> scanned{0}, skipped{0};
  PhaseProgress scan_progress(o.progress);
  auto scan_text = [&](size_t done) {
    std::lock_guard<std::mutex> lock(distinct_mutex);
    return "scanned " + count_of(done, files.size(), "files") + ", " +
           std::to_string(found.load()) + " AVX-512 instructions, " +
           std::to_string(distinct.size()) + " distinct";
  };
  parallel_for(
      files.size(), o.jobs,
      [&](size_t i) {
        std::set<std::vector<uint8_t>> mine;
        const ScanResult r = scan_elf_file(
            files[i],
            [&](const FoundInstruction& f) {
              found.fetch_add(1, std::memory_order_relaxed);  // live, for the progress line
              mine.insert(std::vector<uint8_t>(f.bytes, f.bytes + f.length));
            },
            {.count_translations = false, .decode_gaps = true});
        (r.error.empty() ? scanned : skipped)++;
        std::lock_guard<std::mutex> lock(distinct_mutex);
        distinct.merge(mine);
      },
      [&](size_t done) { scan_progress.show(scan_text(done)); });
  scan_progress.finish(scan_text(files.size()));
  s.files_scanned = scanned;
  s.files_skipped = skipped;
  s.instructions_found = found;
  s.distinct = distinct.size();
  s.scan_seconds = seconds_since(t0);
  if (scanned == 0) {
    // An empty cache would only hide the mistake (and replace FILE).
    error = "none of the " + std::to_string(skipped) +
            " inputs is a readable ELF file; nothing written to " + o.output;
    return false;
  }

  // 2. Translate each distinct instruction once, in parallel.
  const std::vector<std::vector<uint8_t>> work(distinct.begin(), distinct.end());
  distinct.clear();
  std::vector<jit::CacheFileInput> outputs(work.size());
  std::vector<std::string> failed_mnemonic(work.size());
  const auto t1 = Clock::now();
  PhaseProgress translate_progress(o.progress);
  parallel_for(
      work.size(), o.jobs,
      [&](size_t i) {
        jit::CacheKey key;
        key.length = uint8_t(work[i].size());
        std::memcpy(key.bytes, work[i].data(), work[i].size());
        jit::CompiledCode code;
        if (!compile_instruction(key, code, failed_mnemonic[i])) return;
        outputs[i].key = key;
        outputs[i].code = std::move(code.bytes);
        outputs[i].code_size = uint32_t(code.code_size);
      },
      [&](size_t done) {
        translate_progress.show("translated " +
                                count_of(done, work.size(), "distinct instructions"));
      });
  translate_progress.finish("translated " +
                            count_of(work.size(), work.size(), "distinct instructions"));
  s.translate_seconds = seconds_since(t1);

  std::vector<jit::CacheFileInput> inputs;
  inputs.reserve(work.size());
  for (size_t i = 0; i < work.size(); ++i) {
    if (!failed_mnemonic[i].empty()) {
      ++s.untranslated;
      ++s.untranslated_mnemonics[failed_mnemonic[i]];
      continue;
    }
    ++s.translated;
    s.code_bytes += outputs[i].code.size();
    inputs.push_back(std::move(outputs[i]));
  }
  // 3. Write, then read back through the loader: a file it would refuse is
  // reported here rather than at run time.
  if (!jit::write_cache_file(o.output, std::move(inputs), emu_version(), error)) return false;
  const auto written = jit::CacheFile::open(o.output, emu_version(), error);
  if (!written) return false;
  s.file_bytes = written->size();
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
