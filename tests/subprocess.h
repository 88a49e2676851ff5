// Owns what the end-to-end tests need to run other programs: starting a
// process with extra (or removed) environment variables, collecting its
// stdout/stderr and how it ended, building `avx512emu run` command lines,
// and reading numbers out of the runtime's --stats report.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <optional>
#include <regex>
#include <string>
#include <utility>
#include <vector>

#include "selfcheck/native_oracle.h"

namespace avx512emu::testing {

struct Outcome {
  std::string out, err;
  int exit_code = -1;  //!< When the process exited.
  int signal = 0;      //!< When a signal ended it.
};

//! Environment changes for a child: a value sets the variable, nullopt
//! removes it.
using Env = std::vector<std::pair<std::string, std::optional<std::string>>>;

//! Runs argv[0] (PATH lookup) with environment changes; collects stdout,
//! stderr and how the process ended.
inline Outcome run(const std::vector<std::string>& argv, const Env& env = {}) {
  Outcome o;
  int out_pipe[2], err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0) return o;
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(out_pipe[1], 1);
    dup2(err_pipe[1], 2);
    for (const auto& [name, value] : env) {
      if (value)
        setenv(name.c_str(), value->c_str(), 1);
      else
        unsetenv(name.c_str());
    }
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    _exit(127);
  }
  close(out_pipe[1]);
  close(err_pipe[1]);
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* sinks[2] = {&o.out, &o.err};
  int open_fds = 2;
  while (open_fds > 0 && poll(fds, 2, -1) > 0) {
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP))) continue;
      char buf[4096];
      const ssize_t n = read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        sinks[i]->append(buf, size_t(n));
      } else {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  int status = 0;
  waitpid(pid, &status, 0);
  if (WIFEXITED(status)) o.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) o.signal = WTERMSIG(status);
  return o;
}

inline std::string describe(const Outcome& o) {
  return "exit " + std::to_string(o.exit_code) + ", signal " + std::to_string(o.signal) +
         "\n--- stdout:\n" + o.out + "--- stderr:\n" + o.err;
}

//! `avx512emu run`: the CLI (`cli` run) once it dispatches `run`, else the
//! standalone binary built from the same source.
inline std::vector<std::string> run_tool(const std::string& cli, const std::string& standalone) {
  const Outcome probe = run({cli, "run", "--help"});
  if (probe.exit_code == 0 && probe.out.find("usage: avx512emu run") != std::string::npos)
    return {cli, "run"};
  return {standalone};
}

//! The run that a program with AVX-512 code is compared with. On a CPU
//! with AVX-512: the program itself, natively. Elsewhere it cannot run
//! natively, so: under the preload library with AVX512EMU_REFERENCE=1,
//! where every AVX-512 instruction traps (made to, with trap injection,
//! under AVX512EMU_ASSUME_NO_AVX512 on an AVX-512 CPU) and runs in the
//! reference interpreter, and nothing is patched. That reference is
//! independent of the JIT back end, the inline stubs and the patcher; it
//! shares the decoder, the lowering to IR and the signal-frame plumbing
//! with the runs under test. `preload` is the library's path.
inline Outcome reference_run(const std::vector<std::string>& argv, const std::string& preload,
                             Env env = {}) {
  if (selfcheck::host_runs_avx512()) return run(argv, env);
  env.push_back({"LD_PRELOAD", preload});
  env.push_back({"AVX512EMU_REFERENCE", "1"});
  env.push_back({"AVX512EMU_SIMULATE_AVX2", "1"});
  return run(argv, env);
}

//! A number from the --stats report, e.g. stat(err, "traps"); all ones when
//! the report does not have it.
inline uint64_t stat(const std::string& report, const std::string& name) {
  std::smatch m;
  if (!std::regex_search(report, m, std::regex("[ ,(]" + name + " ([0-9]+)"))) return ~uint64_t(0);
  return std::stoull(m[1]);
}

}  // namespace avx512emu::testing
