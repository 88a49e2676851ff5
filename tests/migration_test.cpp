// Tests live migration between two `avx512emu vm` processes on loopback:
// from a native AVX-512 source to an AVX2-only destination at several points
// of each workload (early, mid-loop with zmm16-31 and k registers live, late)
// and the way back, against an unmigrated native run and the plain C++
// reference; a source whose features the destination can neither run nor
// emulate; and bad streams: a real destination fed a foreign, truncated or
// corrupted stream refuses it with a clear error, and a source whose
// destination dies or refuses mid-stream keeps running and loses nothing.
// Every port is chosen by the kernel (port 0) and every wait has a deadline.
// Skipped, with the reason, where /dev/kvm is absent or unusable.
#include <arpa/inet.h>
#include <cpuid.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "guest_abi.h"
#include "kvm_workload_reference.h"
#include "migration_stream.h"
#include "mini_vmm.h"
#include "vm_process.h"

namespace avx512emu::kvm {
namespace {

using testing::VmProcess;
using selfcheck::host_runs_avx512;
using testing::native_if_possible;

const std::string kCli = AVX512EMU_CLI;
// Progress events per workload: one per main-loop iteration (guest/workloads.c).
constexpr uint64_t kIterations = 256;
constexpr double kDeadline = 40;  // seconds, for any one process

std::string expected_line(const WorkloadInfo& w) {
  return std::string(w.name) + " " + std::to_string(workload_reference::reference(w.id)) + "\n";
}

//! The workload's stdout from an unmigrated run in `mode`.
std::string unmigrated(const WorkloadInfo& w, const std::string& mode) {
  VmProcess p;
  EXPECT_TRUE(p.start({kCli, "vm", mode, w.name}));
  EXPECT_TRUE(p.finish(kDeadline)) << p.describe();
  EXPECT_EQ(p.exit_code(), 0) << p.describe();
  return p.out();
}

//! Starts a destination listening on a port the kernel picks; returns it
//! (0 when the destination did not report one).
uint16_t start_destination(VmProcess& d, const std::string& mode) {
  if (!d.start({kCli, "vm", mode, "--listen", "127.0.0.1:0"})) return 0;
  std::smatch m;
  if (!d.wait_for_stderr("listening on 127\\.0\\.0\\.1:([0-9]+)\n", 15, &m)) return 0;
  return uint16_t(std::stoul(m[1]));
}

std::vector<std::string> source_args(const std::string& mode, uint16_t port, uint64_t after,
                                     const WorkloadInfo& w) {
  return {kCli,
          "vm",
          mode,
          "--migrate-to",
          "127.0.0.1:" + std::to_string(port),
          "--migrate-after",
          std::to_string(after),
          w.name};
}

const WorkloadInfo& workload(uint64_t id) {
  for (const WorkloadInfo& w : bundled_workloads())
    if (w.id == id) return w;
  throw std::runtime_error("no workload " + std::to_string(id));
}

class MigrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // A destination or a fake one may close its socket while the test
    // writes: that must be an error return, not the end of the test.
    signal(SIGPIPE, SIG_IGN);
    KvmHostTraits traits;
    std::string error;
    if (!probe_kvm_host(traits, error)) GTEST_SKIP() << "KVM is not usable here: " << error;
  }

  //! The source's run when its migration did not happen: it finished the
  //! workload itself, with the right result, and said why.
  static void expect_source_kept_running(const VmProcess& s, const WorkloadInfo& w) {
    EXPECT_EQ(s.exit_code(), 0) << s.describe();
    EXPECT_EQ(s.out(), expected_line(w)) << s.describe();
    EXPECT_NE(s.err().find("the guest keeps running here"), std::string::npos) << s.describe();
    EXPECT_EQ(s.err().find("migrated at progress event"), std::string::npos) << s.describe();
  }

  //! A destination that refused: non-zero exit, no result, no crash, and a
  //! message matching `reason`.
  static void expect_refused(const VmProcess& d, const std::string& reason) {
    EXPECT_FALSE(d.timed_out()) << d.describe();
    EXPECT_EQ(d.signal(), 0) << d.describe();
    EXPECT_NE(d.exit_code(), 0) << d.describe();
    EXPECT_EQ(d.out(), "") << d.describe();
    EXPECT_TRUE(
        std::regex_search(d.err(), std::regex("avx512emu vm: migration refused: " + reason)))
        << "wanted '" << reason << "'\n"
        << d.describe();
  }
};

// ---- Migrations that happen ----------------------------------------------------------

struct Point {
  uint64_t workload;
  uint64_t after;  //!< progress event of the switchover
  bool to_avx2;    //!< native -> avx2-only, else avx2-only -> native
                   //!< (on an AVX2-only CPU: avx2-only -> avx2-only, and
                   //!< the way back is skipped)
};

std::string point_name(const ::testing::TestParamInfo<Point>& info) {
  const Point& p = info.param;
  const uint64_t after = p.after;
  const char* where = after == 1 ? "Early" : after == kIterations ? "Late" : "MidLoop";
  return std::string(workload(p.workload).name) + "_" + where;
}

class MigrationPointTest : public MigrationTest, public ::testing::WithParamInterface<Point> {};

TEST_P(MigrationPointTest, DestinationFinishesWithTheUnmigratedResult) {
  const Point& p = GetParam();
  const WorkloadInfo& w = workload(p.workload);
  if (!p.to_avx2 && !host_runs_avx512())
    GTEST_SKIP() << "the destination runs --native, which needs AVX-512 on this CPU";
  const std::string source_mode = p.to_avx2 ? native_if_possible() : "--avx2-only";
  const std::string destination_mode = p.to_avx2 ? "--avx2-only" : "--native";
  const std::string unmigrated_out = unmigrated(w, source_mode);
  ASSERT_EQ(unmigrated_out, expected_line(w));

  VmProcess d, s;
  const uint16_t port = start_destination(d, destination_mode);
  ASSERT_NE(port, 0) << d.describe();
  ASSERT_TRUE(s.start(source_args(source_mode, port, p.after, w)));
  ASSERT_TRUE(s.finish(kDeadline)) << s.describe();
  ASSERT_TRUE(d.finish(kDeadline)) << d.describe();

  // The source handed the VM over and printed no result.
  EXPECT_EQ(s.exit_code(), 0) << s.describe();
  EXPECT_EQ(s.out(), "") << s.describe();
  std::smatch m;
  ASSERT_TRUE(std::regex_search(
      s.err(), m,
      std::regex("migrated at progress event ([0-9]+) .* live at switchover: ([0-9]+) of "
                 "zmm16-31, ([0-9]+) of k0-7")))
      << s.describe();
  EXPECT_EQ(std::stoull(m[1]), p.after);
  if (p.after != 1 && p.after != kIterations) {
    // The loops keep a vector in zmm16-31 and a mask in a k register across
    // the progress exit (REPORT_PROGRESS).
    EXPECT_GT(std::stoi(m[2]), 0) << s.err();
    EXPECT_GT(std::stoi(m[3]), 0) << s.err();
  }

  // The destination finished the workload: the same stdout as a run that
  // never migrated, and the plain C++ result.
  EXPECT_EQ(d.exit_code(), 0) << d.describe();
  EXPECT_EQ(d.out(), unmigrated_out) << d.describe();
  EXPECT_EQ(d.out(), expected_line(w)) << d.describe();
  EXPECT_NE(d.err().find("migrated in from a " + source_mode.substr(2) + " source"),
            std::string::npos)
      << d.describe();
  EXPECT_NE(d.err().find("resuming at progress event " + std::to_string(p.after)),
            std::string::npos)
      << d.describe();
}

std::vector<Point> points(bool to_avx2) {
  std::vector<Point> out;
  for (const WorkloadInfo& w : bundled_workloads())
    for (const uint64_t after : {uint64_t(1), kIterations / 2, kIterations})
      out.push_back({w.id, after, to_avx2});
  return out;
}

INSTANTIATE_TEST_SUITE_P(NativeToAvx2Only, MigrationPointTest, ::testing::ValuesIn(points(true)),
                         point_name);
INSTANTIATE_TEST_SUITE_P(Avx2OnlyToNative, MigrationPointTest, ::testing::ValuesIn(points(false)),
                         point_name);

// ---- A source the destination cannot take ------------------------------------------------

//! This CPU's leaves that a feature map check reads, as a source dump, with
//! AVX512_4FMAPS (CPUID.7.0:EDX[3], a Xeon Phi subset that avx512emu does not
//! translate) added.
std::string host_dump_with_4fmaps() {
  std::string leaves;
  const struct {
    uint32_t leaf, subleaf;
  } wanted[] = {{0x1, 0}, {0x7, 0}, {0x7, 1}, {0xd, 1}, {0x80000001, 0}};
  for (const auto& l : wanted) {
    uint32_t r[4] = {};
    __cpuid_count(l.leaf, l.subleaf, r[0], r[1], r[2], r[3]);
    if (l.leaf == 0x7 && l.subleaf == 0) r[3] |= 1u << 3;
    char line[200];
    std::snprintf(line, sizeof line,
                  R"({"leaf": "%#x", "subleaf": %u, "eax": "%#x", "ebx": "%#x", "ecx": "%#x", )"
                  R"("edx": "%#x"})",
                  l.leaf, l.subleaf, r[0], r[1], r[2], r[3]);
    leaves += (leaves.empty() ? "" : ",\n  ") + std::string(line);
  }
  uint32_t lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  char xcr0[40];
  std::snprintf(xcr0, sizeof xcr0, "%#llx", (unsigned long long)(uint64_t(hi) << 32 | lo));
  return "{\"cpuid\": [\n  " + leaves + "\n], \"xcr0\": \"" + xcr0 + "\"}\n";
}

TEST_F(MigrationTest, SourceWithAFeatureTheDestinationCannotEmulateIsRefused) {
  uint32_t a, b, c, d7;
  __cpuid_count(7, 0, a, b, c, d7);
  if (d7 & (1u << 3)) GTEST_SKIP() << "this CPU has AVX512_4FMAPS itself";
  const std::string map_path = ::testing::TempDir() + "migration_test_4fmaps_source.json";
  std::ofstream(map_path) << host_dump_with_4fmaps();

  const WorkloadInfo& w = workload(GUEST_WORKLOAD_MASKED_DOT);
  VmProcess dest, source;
  const uint16_t port = start_destination(dest, "--avx2-only");
  ASSERT_NE(port, 0) << dest.describe();
  std::vector<std::string> args = source_args(native_if_possible(), port, kIterations / 2, w);
  args.insert(args.end() - 1, {"--source-feature-map", map_path});
  ASSERT_TRUE(source.start(args));
  ASSERT_TRUE(source.finish(kDeadline)) << source.describe();
  ASSERT_TRUE(dest.finish(kDeadline)) << dest.describe();

  expect_refused(dest,
                 "the source has features this host can neither run nor emulate: .*avx512-4fmaps");
  expect_source_kept_running(source, w);
  EXPECT_TRUE(std::regex_search(
      source.err(), std::regex("migration failed: the destination refused: .*avx512-4fmaps")))
      << source.describe();
  std::remove(map_path.c_str());
}

// ---- Bad streams at a real destination ---------------------------------------------------

//! A TCP listener on 127.0.0.1 with a port the kernel picked.
class Listener {
 public:
  Listener() {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd_ < 0 || bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) < 0 || listen(fd_, 4) < 0 ||
        getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) < 0)
      return;
    port_ = ntohs(a.sin_port);
  }
  ~Listener() {
    if (fd_ >= 0) close(fd_);
  }
  uint16_t port() const { return port_; }
  //! One connection, or -1 after `seconds`.
  int accept_one(double seconds) const {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, int(seconds * 1000)) != 1) return -1;
    return accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
  }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

int connect_local(uint16_t port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  if (fd >= 0 && connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) return fd;
  if (fd >= 0) close(fd);
  return -1;
}

//! Reads and drops what `fd` sends until it closes or `seconds` pass.
void drain(int fd, double seconds) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  char buf[65536];
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - std::chrono::steady_clock::now())
                          .count();
    pollfd p{fd, POLLIN, 0};
    if (left <= 0 || poll(&p, 1, int(left)) != 1) return;
    if (read(fd, buf, sizeof buf) <= 0) return;
  }
}

//! Sits between a real source and a real destination and damages the
//! source's stream: cuts it after `cut_at` bytes (the destination sees the
//! stream end, the source sees its connection close), or flips the bits of
//! the byte at `flip_at`. Everything else passes unchanged both ways.
class DamagingProxy {
 public:
  DamagingProxy(uint16_t destination_port, uint64_t cut_at, uint64_t flip_at)
      : destination_port_(destination_port), cut_at_(cut_at), flip_at_(flip_at) {
    thread_ = std::thread([this] { run(); });
  }
  ~DamagingProxy() { thread_.join(); }
  uint16_t port() const { return listener_.port(); }
  uint64_t forwarded() const { return forwarded_; }

 private:
  void run() {
    const int src = listener_.accept_one(kDeadline);
    if (src < 0) return;
    const int dst = connect_local(destination_port_);
    if (dst < 0) {
      close(src);
      return;
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(int(kDeadline));
    bool src_open = true;
    char buf[65536];
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p[2] = {{src_open ? src : -1, POLLIN, 0}, {dst, POLLIN, 0}};
      if (poll(p, 2, 200) < 0) break;
      if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {  // destination -> source
        const ssize_t n = read(dst, buf, sizeof buf);
        if (n <= 0) break;  // the destination is gone: so is the source's peer
        if (src_open && send(src, buf, size_t(n), MSG_NOSIGNAL) != n) src_open = false;
      }
      if (src_open && (p[0].revents & (POLLIN | POLLHUP | POLLERR))) {  // source -> destination
        ssize_t n = read(src, buf, sizeof buf);
        if (n <= 0) break;
        const uint64_t at = forwarded_;
        if (flip_at_ >= at && flip_at_ < at + uint64_t(n)) buf[flip_at_ - at] ^= 0xff;
        bool cut = false;
        if (at + uint64_t(n) >= cut_at_) {
          n = ssize_t(cut_at_ - at);
          cut = true;
        }
        if (n > 0 && send(dst, buf, size_t(n), MSG_NOSIGNAL) != n) break;
        forwarded_ += uint64_t(n);
        if (cut) {
          // The stream ends here for both: the destination reads its end,
          // the source loses its connection.
          shutdown(dst, SHUT_WR);
          close(src);
          src_open = false;
          drain(dst, kDeadline);
          close(dst);
          return;
        }
      }
    }
    if (src_open) close(src);
    close(dst);
  }

  Listener listener_;
  uint16_t destination_port_;
  uint64_t cut_at_, flip_at_;
  std::atomic<uint64_t> forwarded_{0};
  std::thread thread_;
};

//! Runs a native source through a DamagingProxy into a real avx2-only
//! destination; both processes are finished when it returns.
void migrate_through_proxy(uint64_t cut_at, uint64_t flip_at, VmProcess& source, VmProcess& dest,
                           uint64_t& forwarded) {
  const uint16_t port = start_destination(dest, "--avx2-only");
  ASSERT_NE(port, 0) << dest.describe();
  const WorkloadInfo& w = workload(GUEST_WORKLOAD_BYTE_HISTOGRAM);
  {
    DamagingProxy proxy(port, cut_at, flip_at);
    ASSERT_TRUE(source.start(source_args(native_if_possible(), proxy.port(), kIterations / 2, w)));
    ASSERT_TRUE(source.finish(kDeadline)) << source.describe();
    ASSERT_TRUE(dest.finish(kDeadline)) << dest.describe();
    forwarded = proxy.forwarded();
  }
}

TEST_F(MigrationTest, StreamCutInsideTheHeaderIsRefused) {
  VmProcess source, dest;
  uint64_t forwarded = 0;
  migrate_through_proxy(5, UINT64_MAX, source, dest, forwarded);
  EXPECT_EQ(forwarded, 5u);
  expect_refused(dest, "bad migration stream: migration stream: the stream ends inside");
  expect_source_kept_running(source, workload(GUEST_WORKLOAD_BYTE_HISTOGRAM));
}

TEST_F(MigrationTest, StreamCutDuringPreCopyIsRefusedAndTheSourceLosesNothing) {
  VmProcess source, dest;
  uint64_t forwarded = 0;
  // Past the feature map and configuration, inside the guest's pages.
  migrate_through_proxy(64 << 10, UINT64_MAX, source, dest, forwarded);
  EXPECT_EQ(forwarded, uint64_t(64 << 10));
  expect_refused(dest, "bad migration stream: migration stream: the stream ends inside");
  expect_source_kept_running(source, workload(GUEST_WORKLOAD_BYTE_HISTOGRAM));
}

TEST_F(MigrationTest, CorruptedPageIsRefusedAndTheSourceLosesNothing) {
  VmProcess source, dest;
  uint64_t forwarded = 0;
  migrate_through_proxy(UINT64_MAX, 48 << 10, source, dest, forwarded);
  EXPECT_GT(forwarded, uint64_t(48 << 10));
  expect_refused(dest, "bad migration stream: migration stream: checksum mismatch");
  expect_source_kept_running(source, workload(GUEST_WORKLOAD_BYTE_HISTOGRAM));
}

TEST_F(MigrationTest, ForeignStreamIsRefused) {
  VmProcess dest;
  const uint16_t port = start_destination(dest, "--avx2-only");
  ASSERT_NE(port, 0) << dest.describe();
  const int fd = connect_local(port);
  ASSERT_GE(fd, 0);
  const char garbage[] = "GET / HTTP/1.1\r\nHost: avx512emu\r\n\r\n";
  ASSERT_EQ(send(fd, garbage, sizeof garbage - 1, MSG_NOSIGNAL), ssize_t(sizeof garbage - 1));
  shutdown(fd, SHUT_WR);
  drain(fd, kDeadline);
  close(fd);
  ASSERT_TRUE(dest.finish(kDeadline)) << dest.describe();
  expect_refused(dest, "bad migration stream: .*not an avx512emu migration stream");
}

// ---- Destinations that fail the source -----------------------------------------------------

//! Plays a destination: answers the source's opening with its own header
//! and an "accepted" verdict, then reads `read_limit` more bytes and closes
//! (a destination that dies mid-stream). With `refuse_at_end`, reads the
//! whole VM instead and refuses it at the last moment.
class FakeDestination {
 public:
  FakeDestination(uint64_t read_limit, bool refuse_at_end)
      : read_limit_(read_limit), refuse_at_end_(refuse_at_end) {
    thread_ = std::thread([this] { run(); });
  }
  ~FakeDestination() { thread_.join(); }
  uint16_t port() const { return listener_.port(); }
  bool saw_vcpu_state() const { return saw_vcpu_; }

 private:
  void run() {
    const int fd = listener_.accept_one(kDeadline);
    if (fd < 0) return;
    timeval tv{int(kDeadline), 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    MigrationReader r(fd, 4 << 20);
    MigrationWriter w(fd);
    MigrationRecord type;
    std::vector<uint8_t> payload;
    const uint8_t yes[] = {1, 'o', 'k'};
    if (w.write_header() && r.read_header() &&
        r.next(type, payload) == MigrationReader::Next::kRecord &&  // feature map
        r.next(type, payload) == MigrationReader::Next::kRecord &&  // VM configuration
        w.write_record(MigrationRecord::kVerdict, yes, sizeof yes)) {
      if (refuse_at_end_) {
        while (r.next(type, payload) == MigrationReader::Next::kRecord)
          saw_vcpu_ = saw_vcpu_ || type == MigrationRecord::kVcpuState;
        const char no[] = "\0out of memory on the destination";
        w.write_record(MigrationRecord::kVerdict, no, sizeof no - 1);
        w.finish();
      } else {
        char buf[4096];
        for (uint64_t got = 0; got < read_limit_;) {
          const ssize_t n = read(fd, buf, std::min<uint64_t>(sizeof buf, read_limit_ - got));
          if (n <= 0) break;
          got += uint64_t(n);
        }
      }
    }
    close(fd);
  }

  Listener listener_;
  uint64_t read_limit_;
  bool refuse_at_end_;
  std::atomic<bool> saw_vcpu_{false};
  std::thread thread_;
};

class FailingDestinationTest : public MigrationTest,
                               public ::testing::WithParamInterface<const char*> {
 protected:
  void SetUp() override {
    MigrationTest::SetUp();
    if (std::string(GetParam()) == "--native" && !host_runs_avx512())
      GTEST_SKIP() << "a --native source needs AVX-512 on this CPU";
  }
};

TEST_P(FailingDestinationTest, DestinationDyingMidStreamLosesNothing) {
  const WorkloadInfo& w = workload(GUEST_WORKLOAD_PREFIX_SUM);
  VmProcess s;
  {
    FakeDestination fake(24 << 10, false);
    ASSERT_TRUE(s.start(source_args(GetParam(), fake.port(), kIterations / 2, w)));
    ASSERT_TRUE(s.finish(kDeadline)) << s.describe();
  }
  expect_source_kept_running(s, w);
  EXPECT_EQ(s.signal(), 0) << s.describe();
}

TEST_P(FailingDestinationTest, DestinationRefusingTheWholeVmLosesNothing) {
  const WorkloadInfo& w = workload(GUEST_WORKLOAD_STRING_SEARCH);
  VmProcess s;
  bool saw_vcpu = false;
  {
    FakeDestination fake(0, true);
    ASSERT_TRUE(s.start(source_args(GetParam(), fake.port(), kIterations / 2, w)));
    ASSERT_TRUE(s.finish(kDeadline)) << s.describe();
    saw_vcpu = fake.saw_vcpu_state();
  }
  EXPECT_TRUE(saw_vcpu) << "the source never reached its switchover";
  expect_source_kept_running(s, w);
  EXPECT_NE(s.err().find("the destination refused: out of memory on the destination"),
            std::string::npos)
      << s.describe();
}

TEST_P(FailingDestinationTest, NobodyListeningLosesNothing) {
  const WorkloadInfo& w = workload(GUEST_WORKLOAD_MASKED_DOT);
  uint16_t port = 0;
  {
    Listener gone;  // a port that was free a moment ago and is closed now
    port = gone.port();
  }
  VmProcess s;
  ASSERT_TRUE(s.start(source_args(GetParam(), port, kIterations / 2, w)));
  ASSERT_TRUE(s.finish(kDeadline)) << s.describe();
  expect_source_kept_running(s, w);
  EXPECT_NE(s.err().find("cannot connect"), std::string::npos) << s.describe();
}

INSTANTIATE_TEST_SUITE_P(SourceMode, FailingDestinationTest,
                         ::testing::Values("--native", "--avx2-only"),
                         [](const ::testing::TestParamInfo<const char*>& info) {
                           return std::string(info.param + 2) == "native" ? "Native" : "Avx2Only";
                         });

}  // namespace
}  // namespace avx512emu::kvm
