// Owns live migration (see live_migration.h): sockets, the feature check,
// the source's pre-copy and switchover, and the destination's rebuild.
#include "live_migration.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <vector>

#include "coverage.h"
#include "featuremap.h"
#include "migration_stream.h"
#include "state_codec.h"
#include "vcpu_snapshot.h"

namespace avx512emu::kvm {
namespace {

constexpr uint64_t kPage = 4096;
// Pages per kMemoryPages record, and the reader's bound that follows.
constexpr uint64_t kPagesPerRecord = 256;
constexpr uint64_t kMaxPayload = 8 + kPagesPerRecord * kPage;
// Pre-copy work done at each guest exit: bounded, so the guest keeps running.
constexpr uint64_t kScanPagesPerExit = 2048, kSendPagesPerExit = 128;
constexpr uint64_t kMaxPrecopyRounds = 8;
// XCR0 a destination loads: x87, SSE, AVX, and the AVX-512 state if native.
constexpr uint64_t kXcr0Avx2 = 0x7;

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

//! Owns a socket.
class Socket {
 public:
  explicit Socket(int fd = -1) : fd_(fd) {}
  ~Socket() {
    if (fd_ >= 0) close(fd_);
  }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

//! Ignores SIGPIPE while it lives: a peer that goes away mid-stream makes
//! writes fail with EPIPE, which the migration handles, instead of killing
//! the VMM (and the guest with it).
class IgnoreSigpipe {
 public:
  IgnoreSigpipe() {
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &ignore, &saved_);
  }
  ~IgnoreSigpipe() { sigaction(SIGPIPE, &saved_, nullptr); }
  IgnoreSigpipe(const IgnoreSigpipe&) = delete;
  IgnoreSigpipe& operator=(const IgnoreSigpipe&) = delete;

 private:
  struct sigaction saved_ {};
};

//! Ends our side of a conversation whose last words were just written: a
//! close with unread input would reset the connection and the peer could
//! lose those words, so read and drop its input until it closes (at most
//! two seconds).
void close_gracefully(int fd) {
  shutdown(fd, SHUT_WR);
  const Clock::time_point deadline = Clock::now() + std::chrono::seconds(2);
  char buf[65536];
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    pollfd p{fd, POLLIN, 0};
    if (left <= 0 || poll(&p, 1, int(left)) <= 0 || read(fd, buf, sizeof buf) <= 0) return;
  }
}

bool split_address(const std::string& address, std::string& host, std::string& port,
                   std::string& error) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == address.size()) {
    error = "address '" + address + "' is not HOST:PORT";
    return false;
  }
  host = address.substr(0, colon);
  port = address.substr(colon + 1);
  return true;
}

addrinfo* resolve(const std::string& address, bool passive, std::string& error) {
  std::string host, port;
  if (!split_address(address, host, port, error)) return nullptr;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = passive ? AI_PASSIVE : 0;
  addrinfo* list = nullptr;
  const int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &list);
  if (rc != 0) {
    error = "cannot resolve '" + address + "': " + gai_strerror(rc);
    return nullptr;
  }
  return list;
}

int connect_to(const std::string& address, std::string& error) {
  addrinfo* list = resolve(address, false, error);
  if (!list) return -1;
  int fd = -1;
  for (addrinfo* a = list; a && fd < 0; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd >= 0 && connect(fd, a->ai_addr, a->ai_addrlen) < 0) {
      error = "cannot connect to " + address + ": " + std::strerror(errno);
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(list);
  if (fd >= 0) {
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  return fd;
}

//! Listens on `address`, reports the port actually bound on stderr (a test
//! may ask for port 0), and accepts one connection.
int accept_one(const std::string& address, std::string& error) {
  addrinfo* list = resolve(address, true, error);
  if (!list) return -1;
  Socket listener(socket(list->ai_family, list->ai_socktype | SOCK_CLOEXEC, list->ai_protocol));
  const int one = 1;
  if (listener.get() < 0 ||
      setsockopt(listener.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
      bind(listener.get(), list->ai_addr, list->ai_addrlen) < 0 || listen(listener.get(), 1) < 0) {
    error = "cannot listen on " + address + ": " + std::strerror(errno);
    freeaddrinfo(list);
    return -1;
  }
  freeaddrinfo(list);
  sockaddr_storage bound{};
  socklen_t len = sizeof bound;
  getsockname(listener.get(), reinterpret_cast<sockaddr*>(&bound), &len);
  char host[INET6_ADDRSTRLEN] = "?";
  uint16_t port = 0;
  if (bound.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&bound);
    inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
    port = ntohs(in->sin_port);
  } else if (bound.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&bound);
    inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
    port = ntohs(in6->sin6_port);
  }
  std::fprintf(stderr, "avx512emu vm: listening on %s:%u\n", host, port);
  std::fflush(stderr);
  const int fd = accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC);
  if (fd < 0) error = std::string("accept: ") + std::strerror(errno);
  return fd;
}

// ---- Feature check ------------------------------------------------------------------

//! The feature map a VMM in this mode presents: what its guests are shown.
std::string own_feature_map_json(bool native) {
  CpuidSnapshot host = read_host_cpuid();
  if (!native) drop_native_avx512(host);
  for (const FeatureInfo* f : untranslatable_features())
    host.set_bit(f->leaf, f->subleaf, f->reg, f->bit, false);
  return feature_map_json(
      build_feature_map(host, build_coverage({}), CoverageBasis::kTranslatedOnly));
}

//! Whether avx512emu translates at least part of `f` (some of its ISA sets).
bool translated_in_part(const FeatureInfo& f, const CoverageReport& coverage) {
  for (const CoverageRow& row : coverage.rows) {
    if (row.translated.empty()) continue;
    if (f.kind == FeatureKind::kAvx512Vl) {
      if (row.isa_set.ends_with("_128") || row.isa_set.ends_with("_256")) return true;
    } else if (f.isa_prefix && row.isa_set.starts_with(f.isa_prefix)) {
      return true;
    }
  }
  return false;
}

//! Checks a source's feature map against this destination. Returns the
//! features that block the migration ("" when none). An AVX-512 feature that
//! avx512emu translates only in part does not block: it is listed in `notes`
//! (its untranslated instructions raise #UD in the guest, as the featuremap
//! report says); one it does not translate at all blocks, as does any
//! feature this CPU lacks and avx512emu does not emulate.
std::string check_source_features(const std::string& json, bool native, std::string& notes) {
  CpuidSnapshot source;
  std::string error;
  if (!parse_cpuid_dump(json, source, error)) return "unreadable source feature map: " + error;
  CpuidSnapshot host = read_host_cpuid();
  if (!native) drop_native_avx512(host);
  const CoverageReport coverage = build_coverage({});
  const FeatureMap map = build_feature_map(host, coverage, CoverageBasis::kTranslatedOnly);
  const SourceCheck check = check_source(source, map);
  const FeatureInfo* avx512f = nullptr;
  for (const FeatureInfo& f : feature_table())
    if (!std::strcmp(f.name, "avx512f")) avx512f = &f;
  std::string blocking;
  for (const SourceCheckLine& line : check.lines) {
    if (line.verdict != SourceVerdict::kMissing) continue;
    bool partial = false;
    if (line.where.starts_with("xcr0[")) {
      // The AVX-512 state lives in the shadow block when AVX512F is emulated.
      const int bit = std::atoi(line.where.c_str() + 5);
      partial = bit >= 5 && bit <= 7 && avx512f && translated_in_part(*avx512f, coverage);
    } else {
      for (const FeatureInfo& f : feature_table())
        if (line.name == f.name && f.kind != FeatureKind::kHost)
          partial = translated_in_part(f, coverage);
    }
    std::string& list = partial ? notes : blocking;
    list += (list.empty() ? "" : ", ") + line.name;
  }
  return blocking;
}

}  // namespace

const std::vector<const FeatureInfo*>& untranslatable_features() {
  static const std::vector<const FeatureInfo*> list = [] {
    std::vector<const FeatureInfo*> out;
    const CoverageReport coverage = build_coverage({});
    for (const FeatureInfo& f : feature_table())
      if (f.kind == FeatureKind::kAvx512Subset && !translated_in_part(f, coverage))
        out.push_back(&f);
    return out;
  }();
  return list;
}

namespace {

// ---- Streams --------------------------------------------------------------------------

bool send_verdict(MigrationWriter& w, bool accepted, const std::string& reason) {
  const uint8_t flag = accepted ? 1 : 0;
  return w.write_record(MigrationRecord::kVerdict, &flag, 1, reason.data(), reason.size());
}

//! Reads the next record, which must be a verdict. False with `error` set
//! to the refusal or the stream problem.
bool read_verdict(MigrationReader& r, std::string& error) {
  MigrationRecord type;
  std::vector<uint8_t> payload;
  const MigrationReader::Next n = r.next(type, payload);
  if (n != MigrationReader::Next::kRecord) {
    error = n == MigrationReader::Next::kEnd ? "the destination ended the conversation"
                                             : "no answer from the destination (" + r.error() + ")";
    return false;
  }
  if (type != MigrationRecord::kVerdict || payload.empty()) {
    error = "the destination answered with something other than a verdict";
    return false;
  }
  if (payload[0] != 1) {
    error = "the destination refused: " + std::string(payload.begin() + 1, payload.end());
    return false;
  }
  return true;
}

bool is_zero_page(const uint8_t* p) {
  static const uint8_t kZero[kPage] = {};
  return std::memcmp(p, kZero, kPage) == 0;
}

// ---- Source ----------------------------------------------------------------------------

//! The source's side of memory transfer: which pages still have to go, and
//! which went at least once (only those can be stale at the destination,
//! whose memory starts as zeros).
class PageSender {
 public:
  PageSender(const GuestMemory& mem, MigrationWriter& w, MigrationReport& report)
      : mem_(mem), w_(w), report_(report), pages_(mem.size / kPage) {
    pending_.assign((pages_ + 63) / 64, ~0ull);
    sent_.assign((pages_ + 63) / 64, 0);
  }

  //! Sends pending pages from the cursor: at most `send` pages, looking at
  //! no more than `scan`. True when the round's pages are all out.
  bool send_some(uint64_t scan, uint64_t send) {
    uint64_t run_start = 0, run_length = 0;
    while (cursor_ < pages_ && scan-- > 0 && send > 0) {
      const uint64_t p = cursor_++;
      if (!take(pending_, p)) {
        flush_run(run_start, run_length);
        continue;
      }
      if (!test(sent_, p) && is_zero_page(mem_.host + p * kPage)) {
        flush_run(run_start, run_length);
        continue;  // the destination's page is zero already
      }
      if (run_length == 0) run_start = p;
      if (++run_length == kPagesPerRecord) flush_run(run_start, run_length);
      --send;
    }
    flush_run(run_start, run_length);
    return cursor_ >= pages_;
  }

  //! Starts the next round with the pages in `dirty` (and none else).
  void next_round(const std::vector<uint64_t>& dirty) {
    for (size_t i = 0; i < pending_.size(); ++i) pending_[i] |= dirty[i];
    cursor_ = 0;
  }
  void mark_range(uint64_t gpa, uint64_t size) {
    for (uint64_t p = gpa / kPage; p < (gpa + size + kPage - 1) / kPage && p < pages_; ++p)
      pending_[p / 64] |= 1ull << (p % 64);
  }
  bool failed() const { return !w_.error().empty(); }

 private:
  static bool test(const std::vector<uint64_t>& bits, uint64_t p) {
    return bits[p / 64] >> (p % 64) & 1;
  }
  static bool take(std::vector<uint64_t>& bits, uint64_t p) {
    const bool was = test(bits, p);
    bits[p / 64] &= ~(1ull << (p % 64));
    return was;
  }
  void flush_run(uint64_t start, uint64_t& length) {
    if (length == 0) return;
    const uint64_t gpa = start * kPage;
    w_.write_record(MigrationRecord::kMemoryPages, &gpa, sizeof gpa, mem_.host + gpa,
                    length * kPage);
    for (uint64_t p = start; p < start + length; ++p) sent_[p / 64] |= 1ull << (p % 64);
    report_.pages_sent += length;
    length = 0;
  }

  GuestMemory mem_;
  MigrationWriter& w_;
  MigrationReport& report_;
  uint64_t pages_;
  uint64_t cursor_ = 0;
  std::vector<uint64_t> pending_, sent_;
};

int count_nonzero(const uint8_t* p, size_t n, size_t stride) {
  int count = 0;
  for (size_t i = 0; i < n; ++i) {
    bool nonzero = false;
    for (size_t b = 0; b < stride; ++b) nonzero |= p[i * stride + b] != 0;
    count += nonzero;
  }
  return count;
}

//! The AVX-512-only registers in use at switchover, for the report (and the
//! tests that place a switchover where they must be live).
void count_live_registers(const MiniVmm& vm, const VcpuSnapshot& s, MigrationReport& report) {
  CpuState arch{};
  std::string error;
  if (!xsave_to_state(s.xsave, s.layout, arch, error)) return;
  if (const KvmAdapter* a = const_cast<MiniVmm&>(vm).adapter()) {
    const auto* block =
        reinterpret_cast<const VcpuBlock*>(vm.memory().at(a->layout().vcpu, sizeof(VcpuBlock)));
    if (block) merge_shadow(block->shadow, arch);
  }
  report.live_zmm16_31 = count_nonzero(arch.zmm[16], 16, 64);
  report.live_k = count_nonzero(reinterpret_cast<const uint8_t*>(arch.k), 8, 8);
}

//! The switchover: everything still pending, the vCPU and the VMM state.
//! False with `error` when the destination did not take the VM.
bool switch_over(MiniVmm& vm, PageSender& sender, MigrationWriter& w, MigrationReader& r,
                 MigrationReport& report, std::string& error) {
  if (!vm.complete_pending_exit(error)) return false;
  if (report.dirty_logging) {
    std::vector<uint64_t> dirty;
    if (!vm.collect_dirty_pages(dirty, error)) return false;
    sender.next_round(dirty);
  }
  // The adapter writes its region from the VMM, which KVM does not log.
  if (KvmAdapter* a = vm.adapter()) sender.mark_range(a->layout().base, a->layout().size);
  const uint64_t before = report.pages_sent;
  while (!sender.send_some(UINT64_MAX, UINT64_MAX) && !sender.failed()) {
  }
  report.final_pages = report.pages_sent - before;
  VcpuSnapshot s;
  if (!capture_vcpu(vm.vm_fd(), vm.vcpu_fd(), s, error)) return false;
  count_live_registers(vm, s, report);
  const std::vector<uint8_t> vcpu = encode_vcpu(s);
  StateWriter vmm;
  vmm.put(vm.progress());
  vmm.blob(vm.adapter() ? vm.adapter()->save_state() : std::vector<uint8_t>{});
  w.write_record(MigrationRecord::kVcpuState, vcpu.data(), vcpu.size());
  w.write_record(MigrationRecord::kVmmState, vmm.buffer().data(), vmm.buffer().size());
  if (!w.finish()) {
    error = "sending to the destination failed: " + w.error();
    return false;
  }
  return read_verdict(r, error);
}

}  // namespace

RunOutcome run_and_migrate(MiniVmm& vm, uint64_t id, const MigrationSourceOptions& options,
                           MigrationReport& report) {
  const Clock::time_point start = Clock::now();
  const IgnoreSigpipe no_sigpipe;
  report = MigrationReport{};
  auto run_locally = [&](const std::string& why) {
    report.failure = why;
    std::fprintf(stderr, "avx512emu vm: migration failed: %s; the guest keeps running here\n",
                 why.c_str());
    return vm.run(id);
  };
  std::string error;
  Socket sock(connect_to(options.address, error));
  if (sock.get() < 0) return run_locally(error);
  MigrationWriter w(sock.get());
  MigrationReader r(sock.get(), 1 << 16);
  const std::string features = options.feature_map_json.empty()
                                   ? own_feature_map_json(vm.options().native)
                                   : options.feature_map_json;
  StateWriter config;
  config.put(vm.options().memory_bytes);
  config.put(id);
  config.put(uint8_t(vm.options().native));
  w.write_header();
  w.write_record(MigrationRecord::kFeatureMap, features.data(), features.size());
  w.write_record(MigrationRecord::kVmConfig, config.buffer().data(), config.buffer().size());
  if (!w.error().empty()) return run_locally("sending to the destination failed: " + w.error());
  if (!r.read_header()) return run_locally("no answer from the destination (" + r.error() + ")");
  if (!read_verdict(r, error)) return run_locally(error);

  report.dirty_logging = vm.enable_dirty_logging(report.dirty_logging_note);
  PageSender sender(vm.memory(), w, report);
  bool precopy_done = !report.dirty_logging;  // stop-and-copy sends everything at switchover
  RunLimits limits;
  limits.pause_at_progress = options.after_progress;
  limits.at_exit = [&] {
    if (precopy_done || sender.failed()) return;
    if (!sender.send_some(kScanPagesPerExit, kSendPagesPerExit)) return;
    const uint64_t round = ++report.rounds;
    w.write_record(MigrationRecord::kRoundDone, &round, sizeof round);
    std::vector<uint64_t> dirty;
    std::string e;
    if (round >= kMaxPrecopyRounds || !vm.collect_dirty_pages(dirty, e)) {
      precopy_done = true;  // the rest waits for the switchover
      return;
    }
    sender.next_round(dirty);
  };
  RunOutcome out = vm.start(id, limits);
  if (out.kind != RunOutcome::Kind::kPaused) {
    report.failure =
        "the workload ended before progress point " + std::to_string(options.after_progress);
    std::fprintf(stderr, "avx512emu vm: migration not done: %s\n", report.failure.c_str());
    return out;  // closing the socket tells the destination
  }
  const Clock::time_point paused = Clock::now();
  if (sender.failed()) error = "sending to the destination failed: " + w.error();
  if (!error.empty() || !switch_over(vm, sender, w, r, report, error)) {
    report.failure = error;
    std::fprintf(stderr, "avx512emu vm: migration failed: %s; the guest keeps running here\n",
                 error.c_str());
    return vm.resume();
  }
  report.downtime_ms = ms_since(paused);
  report.total_ms = ms_since(start);
  report.bytes_sent = w.bytes_written();
  report.migrated = true;
  return out;
}

// ---- Destination ------------------------------------------------------------------

namespace {

//! Builds the vCPU state the destination loads: the source's registers,
//! with the vector state moved between XSAVE image and shadow block as the
//! two VMMs' modes require.
bool rebuild_vcpu(MiniVmm& vm, VcpuSnapshot& source, const std::vector<uint8_t>& source_adapter,
                  std::string& error) {
  CpuState arch{};
  if (!xsave_to_state(source.xsave, source.layout, arch, error)) return false;
  if (!source_adapter.empty()) {
    // The source emulated: its AVX-512 state is in its shadow block, which
    // arrived with guest memory.
    KvmAdapter source_view;
    if (!source_view.restore_state(vm.memory(), source_adapter, error)) return false;
    const auto* block = reinterpret_cast<const VcpuBlock*>(
        vm.memory().at(source_view.layout().vcpu, sizeof(VcpuBlock)));
    merge_shadow(block->shadow, arch);
  }
  VcpuSnapshot own;
  if (!capture_vcpu(vm.vm_fd(), vm.vcpu_fd(), own, error)) return false;
  // x87 control and status words, tags and registers: up to MXCSR, and from
  // the end of MXCSR_MASK to the XMM registers.
  std::memcpy(own.xsave.data(), source.xsave.data(), kXsaveMxcsrOffset);
  std::memcpy(own.xsave.data() + 32, source.xsave.data() + 32, kXsaveXmmOffset - 32);
  const bool native = vm.options().native;
  if (!state_to_xsave(arch, native ? own.layout : without_avx512(own.layout), own.xsave, error))
    return false;
  if (KvmAdapter* a = vm.adapter()) {
    auto* block = reinterpret_cast<VcpuBlock*>(vm.memory().at(a->layout().vcpu, sizeof(VcpuBlock)));
    load_shadow(arch, block->shadow);
  }
  source.xsave = std::move(own.xsave);
  source.layout = own.layout;
  return restore_vcpu(vm.vcpu_fd(), source, native ? kXcr0Avx2 | kXcr0Avx512 : kXcr0Avx2, error);
}

}  // namespace

bool receive_migration(const MigrationDestinationOptions& options, MiniVmm& vm,
                       std::string& error) {
  const IgnoreSigpipe no_sigpipe;
  Socket sock(accept_one(options.address, error));
  if (sock.get() < 0) return false;
  const Clock::time_point start = Clock::now();
  MigrationReader r(sock.get(), kMaxPayload);
  MigrationWriter w(sock.get());
  w.write_header();
  // Tells the source why, then fails with the same words.
  auto refuse = [&](const std::string& why) {
    error = "migration refused: " + why;
    send_verdict(w, false, why);
    w.finish();
    close_gracefully(sock.get());
    return false;
  };
  if (!r.read_header()) return refuse("bad migration stream: " + r.error());
  MigrationRecord type;
  std::vector<uint8_t> payload;
  if (r.next(type, payload) != MigrationReader::Next::kRecord ||
      type != MigrationRecord::kFeatureMap)
    return refuse("the stream does not start with the source's feature map" +
                  (r.error().empty() ? std::string() : " (" + r.error() + ")"));
  std::string notes;
  const std::string blocking =
      check_source_features(std::string(payload.begin(), payload.end()), options.vm.native, notes);
  if (!blocking.empty())
    return refuse("the source has features this host can neither run nor emulate: " + blocking);
  if (!notes.empty())
    std::fprintf(stderr,
                 "avx512emu vm: accepted; emulated in part (untranslated instructions raise #UD): "
                 "%s\n",
                 notes.c_str());
  if (r.next(type, payload) != MigrationReader::Next::kRecord || type != MigrationRecord::kVmConfig)
    return refuse("expected the VM configuration" +
                  (r.error().empty() ? std::string() : " (" + r.error() + ")"));
  StateReader config(payload);
  VmOptions vm_options = options.vm;
  uint64_t workload = 0;
  uint8_t source_native = 0;
  config.get(vm_options.memory_bytes);
  config.get(workload);
  config.get(source_native);
  if (!config.ok() || !config.at_end()) return refuse("corrupt VM configuration record");
  if (!vm.create_incoming(vm_options, error)) return refuse(error);
  if (!send_verdict(w, true, "send the VM")) {
    error = "answering the source failed: " + w.error();
    return false;
  }

  VcpuSnapshot vcpu;
  VmmProgress progress;
  std::vector<uint8_t> adapter_state;
  bool have_vcpu = false, have_vmm = false;
  uint64_t rounds = 0, pages = 0;
  for (;;) {
    const MigrationReader::Next n = r.next(type, payload);
    if (n == MigrationReader::Next::kError) return refuse("bad migration stream: " + r.error());
    if (n == MigrationReader::Next::kEnd) break;
    switch (type) {
      case MigrationRecord::kMemoryPages: {
        uint64_t gpa = 0;
        if (payload.size() < 8 || (payload.size() - 8) % kPage)
          return refuse("malformed pages record");
        std::memcpy(&gpa, payload.data(), 8);
        if (gpa % kPage || !vm.memory().write(gpa, payload.data() + 8, payload.size() - 8))
          return refuse("pages outside guest memory");
        pages += (payload.size() - 8) / kPage;
        break;
      }
      case MigrationRecord::kRoundDone:
        ++rounds;
        break;
      case MigrationRecord::kVcpuState:
        if (!decode_vcpu(payload, vcpu, error)) return refuse(error);
        have_vcpu = true;
        break;
      case MigrationRecord::kVmmState: {
        StateReader s(payload);
        s.get(progress);
        s.blob(adapter_state, kMaxPayload);
        if (!s.ok() || !s.at_end()) return refuse("corrupt VMM state record");
        have_vmm = true;
        break;
      }
      default:
        return refuse(std::string("unexpected ") + migration_record_name(type) + " record");
    }
  }
  if (!have_vcpu || !have_vmm) return refuse("the stream ended without the vCPU and VMM state");
  if (progress.workload_id != workload) return refuse("the VMM state names another workload");
  if (!vm.finish_incoming(adapter_state, progress, error)) return refuse(error);
  if (!rebuild_vcpu(vm, vcpu, adapter_state, error)) return refuse(error);
  if (!send_verdict(w, true, "running") || !w.finish()) {
    error = "acknowledging the migration failed: " + w.error();
    return false;
  }
  std::fprintf(stderr,
               "avx512emu vm: migrated in from a %s source: %" PRIu64 " pages in %" PRIu64
               " pre-copy rounds, %.1f ms; resuming at progress event %" PRIu64 "\n",
               source_native ? "native" : "avx2-only", pages, rounds, ms_since(start),
               progress.progress_events);
  return true;
}

}  // namespace avx512emu::kvm
