// Owns the emulated child of the runtime benchmarks: the benchmark program
// started again under libavx512emu-preload.so with trap injection, and the
// one-line-per-request protocol between it and its parent.
//
// The parent starts the child with EmulatedChild and sends it requests; the
// child, started with the program's serve option, answers them in
// serve_requests(). Both sides time with their own clocks, so a request's
// answer carries the child's measurements (nanoseconds, checksums).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>

namespace avx512emu::bench {

//! This program (/proc/self/exe) under the preload library with trap
//! injection (AVX512EMU_SIMULATE_AVX2=1, and glibc's AVX-512 string
//! functions turned off as `avx512emu run --simulate-avx2` does), with or
//! without site patching. It is started as `program_name serve_option` and
//! answers the parent's requests until its stdin closes; its stderr is the
//! parent's. AVX512EMU_PRELOAD overrides the library's path.
class EmulatedChild {
 public:
  EmulatedChild(const char* serve_option, const char* program_name, bool patch);
  ~EmulatedChild();
  EmulatedChild(const EmulatedChild&) = delete;
  EmulatedChild& operator=(const EmulatedChild&) = delete;

  //! Why the child is unusable; empty while it answers.
  const std::string& error() const { return error_; }

  //! Sends one request line and reads one answer line (without the
  //! newlines); false (and error()) if the child failed.
  bool exchange(const std::string& request, std::string& answer);

  //! "WHAT N" answered by "NANOSECONDS CHECKSUM": one timed batch.
  bool request(const char* what, long n, double& ns, uint64_t& sum);

 private:
  pid_t pid_ = -1;
  FILE* to_ = nullptr;
  FILE* from_ = nullptr;
  std::string error_;
};

//! The child's side: checks that the preload library is mapped (otherwise
//! the numbers would be native ones; returns 1), then answers each line of
//! stdin with one line on stdout. `answer` gets a request without its
//! newline and returns false for a request it does not understand (the
//! child then stops with status 2). Returns 0 when stdin closes.
int serve_requests(
    const char* program_name,
    const std::function<bool(const std::string& request, std::string& answer)>& answer);

}  // namespace avx512emu::bench
