// Owns the emulated child of the runtime benchmarks: starting this program
// under the preload library, the parent's requests and the child's loop.
#include "emulated_child.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdlib>
#include <fstream>
#include <iterator>

namespace avx512emu::bench {
namespace {

//! One line from `in` without its newline; false at end of file.
bool read_line(FILE* in, std::string& line) {
  line.clear();
  for (int c; (c = std::fgetc(in)) != EOF;) {
    if (c == '\n') return true;
    line.push_back(char(c));
  }
  return !line.empty();
}

}  // namespace

EmulatedChild::EmulatedChild(const char* serve_option, const char* program_name, bool patch) {
  const char* preload = std::getenv("AVX512EMU_PRELOAD");
  if (!preload || !*preload) preload = AVX512EMU_PRELOAD_LIBRARY;
  if (access(preload, R_OK) != 0) {
    error_ = std::string("cannot read the preload library ") + preload;
    return;
  }
  int to_child[2], from_child[2];
  if (pipe(to_child) != 0 || pipe(from_child) != 0) {
    error_ = "pipe failed";
    return;
  }
  pid_ = fork();
  if (pid_ == 0) {
    dup2(to_child[0], 0);
    dup2(from_child[1], 1);
    for (int fd : {to_child[0], to_child[1], from_child[0], from_child[1]}) close(fd);
    setenv("LD_PRELOAD", preload, 1);
    setenv("AVX512EMU_SIMULATE_AVX2", "1", 1);
    // As `avx512emu run --simulate-avx2`: glibc's own AVX-512 string
    // functions stay out of the measurement.
    setenv("GLIBC_TUNABLES", "glibc.cpu.hwcaps=-AVX512F,-AVX512VL,-AVX512BW,-AVX512DQ,-AVX512CD",
           1);
    if (patch)
      unsetenv("AVX512EMU_NO_PATCH");
    else
      setenv("AVX512EMU_NO_PATCH", "1", 1);
    execl("/proc/self/exe", program_name, serve_option, static_cast<char*>(nullptr));
    _exit(127);
  }
  close(to_child[0]);
  close(from_child[1]);
  to_ = fdopen(to_child[1], "w");
  from_ = fdopen(from_child[0], "r");
}

EmulatedChild::~EmulatedChild() {
  if (to_) std::fclose(to_);
  if (from_) std::fclose(from_);
  if (pid_ > 0) waitpid(pid_, nullptr, 0);
}

bool EmulatedChild::exchange(const std::string& request, std::string& answer) {
  if (!error_.empty()) return false;
  std::fprintf(to_, "%s\n", request.c_str());
  std::fflush(to_);
  if (!read_line(from_, answer)) {
    error_ = "the emulated child stopped answering (see its stderr)";
    return false;
  }
  return true;
}

bool EmulatedChild::request(const char* what, long n, double& ns, uint64_t& sum) {
  std::string answer;
  if (!exchange(std::string(what) + " " + std::to_string(n), answer)) return false;
  if (std::sscanf(answer.c_str(), "%lf %" SCNu64, &ns, &sum) != 2) {
    error_ = "the emulated child stopped answering (see its stderr)";
    return false;
  }
  return true;
}

int serve_requests(
    const char* program_name,
    const std::function<bool(const std::string& request, std::string& answer)>& answer) {
  // The runtime must be here; otherwise the numbers would be native ones.
  std::ifstream maps("/proc/self/maps");
  const std::string text((std::istreambuf_iterator<char>(maps)), std::istreambuf_iterator<char>());
  if (text.find("libavx512emu-preload") == std::string::npos) {
    std::fprintf(stderr, "%s: the child runs without libavx512emu-preload.so\n", program_name);
    return 1;
  }
  std::string request, reply;
  while (read_line(stdin, request)) {
    if (!answer(request, reply)) return 2;
    std::printf("%s\n", reply.c_str());
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace avx512emu::bench
