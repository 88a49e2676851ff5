// Owns what the end-to-end `avx512emu vm` tests need to drive VMM processes
// that talk to each other: a child process whose stdout and stderr are
// collected while it runs, waiting for a line on its stderr (a destination's
// "listening on" report, an upgrade report) with a deadline, and finishing
// it with a deadline, killing it when the deadline passes. Nothing a test
// does with these can hang: every wait is bounded.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <regex>
#include <string>
#include <vector>

#include "selfcheck/native_oracle.h"

namespace avx512emu::testing {

//! The mode for a VM whose AVX-512 should run on the CPU where it can:
//! `--native` on an AVX-512 host, else `--avx2-only` (on an AVX2-only host,
//! the hosts avx512emu is for, every VM runs `--avx2-only`).
inline const char* native_if_possible() {
  return selfcheck::host_runs_avx512() ? "--native" : "--avx2-only";
}

class VmProcess {
 public:
  using Clock = std::chrono::steady_clock;

  VmProcess() = default;
  VmProcess(const VmProcess&) = delete;
  VmProcess& operator=(const VmProcess&) = delete;
  ~VmProcess() {
    if (pid_ > 0 && !reaped_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    for (int& fd : fds_)
      if (fd >= 0) close(fd);
  }

  //! Starts argv (argv[0] is a path). `in_child` runs in the child just
  //! before exec (e.g. to change its signal mask).
  bool start(const std::vector<std::string>& argv, const std::function<void()>& in_child = {}) {
    int out_pipe[2], err_pipe[2];
    if (pipe2(out_pipe, O_CLOEXEC) != 0) return false;
    if (pipe2(err_pipe, O_CLOEXEC) != 0) {
      close(out_pipe[0]);
      close(out_pipe[1]);
      return false;
    }
    pid_ = fork();
    if (pid_ == 0) {
      dup2(out_pipe[1], 1);
      dup2(err_pipe[1], 2);
      if (in_child) in_child();
      std::vector<char*> args;
      for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
    close(out_pipe[1]);
    close(err_pipe[1]);
    fds_[0] = out_pipe[0];
    fds_[1] = err_pipe[0];
    return pid_ > 0;
  }

  pid_t pid() const { return pid_; }
  const std::string& out() const { return out_; }
  const std::string& err() const { return err_; }

  //! Collects output until stderr matches `pattern` (first match returned
  //! in `match`), the process closes its output, or `seconds` pass.
  bool wait_for_stderr(const std::string& pattern, double seconds, std::smatch* match = nullptr) {
    const std::regex re(pattern);
    const Clock::time_point deadline = Clock::now() + to_duration(seconds);
    for (;;) {
      std::smatch m;
      if (std::regex_search(err_, m, re)) {
        if (match) *match = m;
        return true;
      }
      if (!pump(deadline)) return false;
    }
  }

  //! Collects everything the process writes and reaps it. False when it did
  //! not end within `seconds` (it is then killed).
  bool finish(double seconds) {
    const Clock::time_point deadline = Clock::now() + to_duration(seconds);
    while (pump(deadline)) {
    }
    timed_out_ = Clock::now() >= deadline && (fds_[0] >= 0 || fds_[1] >= 0);
    if (timed_out_) kill(pid_, SIGKILL);
    int status = 0;
    if (timed_out_) {
      waitpid(pid_, &status, 0);
    } else {
      // The output is closed; the process is ending (give it the rest of
      // the deadline to do so).
      while (waitpid(pid_, &status, WNOHANG) == 0) {
        if (Clock::now() >= deadline) {
          timed_out_ = true;
          kill(pid_, SIGKILL);
          waitpid(pid_, &status, 0);
          break;
        }
        usleep(1000);
      }
    }
    reaped_ = true;
    if (WIFEXITED(status)) exit_code_ = WEXITSTATUS(status);
    if (WIFSIGNALED(status)) signal_ = WTERMSIG(status);
    return !timed_out_;
  }

  int exit_code() const { return exit_code_; }
  int signal() const { return signal_; }
  bool timed_out() const { return timed_out_; }

  std::string describe() const {
    return "exit " + std::to_string(exit_code_) + ", signal " + std::to_string(signal_) +
           (timed_out_ ? ", killed after its deadline" : "") + "\n--- stdout:\n" + out_ +
           "--- stderr:\n" + err_;
  }

 private:
  static Clock::duration to_duration(double seconds) {
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  }
  //! Reads what is available before `deadline`. False when both pipes are
  //! closed or the deadline passed.
  bool pump(Clock::time_point deadline) {
    if (fds_[0] < 0 && fds_[1] < 0) return false;
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    pollfd p[2] = {{fds_[0], POLLIN, 0}, {fds_[1], POLLIN, 0}};
    const int n = poll(p, 2, int(left));
    if (n < 0) return errno == EINTR;
    if (n == 0) return false;
    std::string* sinks[2] = {&out_, &err_};
    for (int i = 0; i < 2; ++i) {
      if (fds_[i] < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char buf[4096];
      const ssize_t got = read(fds_[i], buf, sizeof buf);
      if (got > 0) {
        sinks[i]->append(buf, size_t(got));
      } else if (got == 0 || errno != EINTR) {
        close(fds_[i]);
        fds_[i] = -1;
      }
    }
    return true;
  }

  pid_t pid_ = -1;
  bool reaped_ = false;
  int fds_[2] = {-1, -1};
  std::string out_, err_;
  int exit_code_ = -1, signal_ = 0;
  bool timed_out_ = false;
};

}  // namespace avx512emu::testing
