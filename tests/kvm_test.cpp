// Tests the KVM adapter and the small VMM on /dev/kvm: the bundled workloads
// in both modes against plain C++ computations, the trap-path counters
// against the VMM's own count of executions, and guests that attack the miss
// path. Skipped, with the reason, where /dev/kvm is absent or unusable.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "guest_abi.h"
#include "kvm_workload_reference.h"
#include "vm_process.h"
#include "mini_vmm.h"

namespace avx512emu::kvm {
namespace {

using namespace workload_reference;

// ---- Fixture ---------------------------------------------------------------------------

class KvmTest : public ::testing::Test {
 protected:
  void SetUp() override {
    KvmHostTraits traits;
    std::string error;
    if (!probe_kvm_host(traits, error)) GTEST_SKIP() << "KVM is not usable here: " << error;
  }

  //! A VM ready to run; fails the test when it cannot be created.
  static std::unique_ptr<MiniVmm> make_vm(VmOptions o) {
    o.timeout_seconds = 20;
    auto vm = std::make_unique<MiniVmm>();
    std::string error;
    EXPECT_TRUE(vm->create(o, error)) << error;
    return vm;
  }
  static VmOptions avx2_only() { return VmOptions{}; }
};

std::string describe(const RunOutcome& r) {
  return "kind " + std::to_string(int(r.kind)) + ", vector " + std::to_string(r.vector) + ", rip " +
         std::to_string(r.fault_rip) + ", message '" + r.message + "'";
}

// ---- Workloads -------------------------------------------------------------------------

TEST_F(KvmTest, WorkloadsGiveTheReferenceResultNativeAndEmulated) {
  for (const WorkloadInfo& w : bundled_workloads()) {
    SCOPED_TRACE(w.name);
    const uint64_t expected = reference(w.id);
    const RunOutcome e = make_vm(avx2_only())->run(w.id);
    ASSERT_EQ(e.kind, RunOutcome::Kind::kResult) << describe(e);
    EXPECT_EQ(e.result, expected);
    if (!selfcheck::host_runs_avx512()) continue;  // no native leg on an AVX2-only CPU
    VmOptions native;
    native.native = true;
    const RunOutcome n = make_vm(native)->run(w.id);
    ASSERT_EQ(n.kind, RunOutcome::Kind::kResult) << describe(n);
    EXPECT_EQ(n.result, expected);
    EXPECT_EQ(e.result, n.result);
  }
}

// The uncached mode sends every trap to the VMM, which counts executions per
// site itself; the cached mode must then miss once per site and hit the rest.
TEST_F(KvmTest, MissesAreDistinctSitesAndHitsTheRemainingExecutions) {
  for (const WorkloadInfo& w : bundled_workloads()) {
    SCOPED_TRACE(w.name);
    VmOptions uncached = avx2_only();
    uncached.cache_translations = false;
    auto counting = make_vm(uncached);
    const RunOutcome c = counting->run(w.id);
    ASSERT_EQ(c.kind, RunOutcome::Kind::kResult) << describe(c);
    EXPECT_EQ(c.result, reference(w.id));
    uint64_t executions = 0;
    for (const auto& [rip, n] : counting->adapter()->site_executions()) executions += n;
    const uint64_t sites = counting->adapter()->site_executions().size();
    ASSERT_GT(sites, 0u);
    EXPECT_EQ(counting->adapter()->stats().hits, 0u);

    auto cached = make_vm(avx2_only());
    const RunOutcome r = cached->run(w.id);
    ASSERT_EQ(r.kind, RunOutcome::Kind::kResult) << describe(r);
    const AdapterStats s = cached->adapter()->stats();
    EXPECT_EQ(s.misses, sites);
    EXPECT_EQ(s.hits, executions - sites);
    EXPECT_EQ(s.traps, executions);
    EXPECT_EQ(s.installs, sites);
    EXPECT_EQ(s.hypercalls, sites);
    EXPECT_EQ(s.flushes, 0u);
    EXPECT_EQ(s.injected, 0u);
  }
}

TEST_F(KvmTest, ASecondRunHitsOnly) {
  auto vm = make_vm(avx2_only());
  ASSERT_EQ(vm->run(GUEST_WORKLOAD_PREFIX_SUM).kind, RunOutcome::Kind::kResult);
  const AdapterStats first = vm->adapter()->stats();
  const RunOutcome again = vm->run(GUEST_WORKLOAD_PREFIX_SUM);
  ASSERT_EQ(again.kind, RunOutcome::Kind::kResult) << describe(again);
  EXPECT_EQ(again.result, reference_prefix_sum());
  const AdapterStats second = vm->adapter()->stats();
  EXPECT_EQ(second.misses, first.misses);
  EXPECT_EQ(second.hits - first.hits, second.traps - first.traps);
}

// ---- Hostile guests ----------------------------------------------------------------------

class HostileGuestTest : public KvmTest {
 protected:
  void SetUp() override {
    KvmTest::SetUp();
    if (IsSkipped()) return;
    vm_ = make_vm(avx2_only());
  }
  //! After every attack the same VMM still runs a workload correctly.
  void TearDown() override {
    if (!vm_) return;
    const RunOutcome r = vm_->run(GUEST_WORKLOAD_MASKED_DOT);
    ASSERT_EQ(r.kind, RunOutcome::Kind::kResult)
        << "VMM not usable after the attack: " << describe(r);
    EXPECT_EQ(r.result, reference_masked_dot());
  }
  RunOutcome forge_trap(uint64_t rip) { return vm_->run(GUEST_PROBE_FORGED_TRAP_BASE + rip); }
  void expect_exception(const RunOutcome& r, uint8_t vector, uint64_t rip) {
    ASSERT_EQ(r.kind, RunOutcome::Kind::kGuestException) << describe(r);
    EXPECT_EQ(r.vector, vector);
    EXPECT_EQ(r.fault_rip, rip);
  }
  void expect_page_fault(const RunOutcome& r, uint64_t rip, uint64_t cr2, uint64_t error_code) {
    expect_exception(r, 14, rip);
    EXPECT_EQ(r.cr2, cr2);
    EXPECT_EQ(r.error_code, error_code);
  }
  //! The bytes of the bundled image at guest address `rip`.
  static bool image_has(uint64_t rip, std::initializer_list<uint8_t> bytes) {
    const std::vector<uint8_t>& image = bundled_guest_image();
    if (rip < GUEST_IMAGE_BASE || rip - GUEST_IMAGE_BASE + bytes.size() > image.size())
      return false;
    return std::memcmp(image.data() + (rip - GUEST_IMAGE_BASE), std::data(bytes), bytes.size()) ==
           0;
  }
  uint64_t* pte(uint64_t gva) {
    // The VMM's tables: PML4, PDPT, PD, then 4 KiB page tables in order.
    return reinterpret_cast<uint64_t*>(
        vm_->memory().at(guest_map::kPml4 + 0x3000 + 8 * (gva >> 12), 8));
  }
  std::unique_ptr<MiniVmm> vm_;
  // An unused user page of guest memory, and the next one.
  static constexpr uint64_t kScratchPage = 0x300000;
  static constexpr uint64_t kUserFetchError = 0x14;  // U/S | I/D
};

TEST_F(HostileGuestTest, GenuineUd2ReachesTheGuestAsUd) {
  const RunOutcome r = vm_->run(GUEST_PROBE_GENUINE_UD2);
  expect_exception(r, 6, r.fault_rip);
  EXPECT_TRUE(image_has(r.fault_rip, {0x0f, 0x0b})) << r.fault_rip;
}

TEST_F(HostileGuestTest, InvalidBytesReachTheGuestAsUd) {
  const RunOutcome r = vm_->run(GUEST_PROBE_INVALID_BYTES);
  expect_exception(r, 6, r.fault_rip);
  EXPECT_TRUE(image_has(r.fault_rip, {0x62, 0xf3, 0x7c, 0x48, 0x00, 0xc0})) << r.fault_rip;
}

TEST_F(HostileGuestTest, HypercallFromOutsideTheDispatcherIsGeneralProtection) {
  const RunOutcome r = vm_->run(GUEST_PROBE_STRAY_HYPERCALL);
  expect_exception(r, 13, r.fault_rip);
  EXPECT_EQ(r.error_code, 0u);
  EXPECT_TRUE(image_has(r.fault_rip, {0xe6, GUEST_PORT_MISS})) << r.fault_rip;
}

TEST_F(HostileGuestTest, ForgedRipInUnmappedSpaceIsPageFault) {
  const uint64_t rip = 0x7f0000001234;  // PML4 entry 254 is not present
  expect_page_fault(forge_trap(rip), rip, rip, kUserFetchError);
}

TEST_F(HostileGuestTest, ForgedNonCanonicalRipIsGeneralProtection) {
  const RunOutcome r = forge_trap(0x0000900000000000);
  expect_exception(r, 13, 0x0000900000000000);
  EXPECT_EQ(r.error_code, 0u);
}

TEST_F(HostileGuestTest, NonPresentPageIsPageFault) {
  *pte(kScratchPage) = 0;
  expect_page_fault(forge_trap(kScratchPage + 0x10), kScratchPage + 0x10, kScratchPage + 0x10,
                    kUserFetchError);
}

TEST_F(HostileGuestTest, SupervisorPageIsProtectionPageFault) {
  const uint64_t rip = guest_map::kKernelCode;
  expect_page_fault(forge_trap(rip), rip, rip, kUserFetchError | 1);
}

TEST_F(HostileGuestTest, InstructionCrossingIntoUnmappedPageFaultsOnTheSecondPage) {
  // The first five bytes of vpaddd zmm0, zmm0, zmm0 end the page; its last
  // byte would be on the next page, which is not present.
  const uint8_t head[] = {0x62, 0xf1, 0x7d, 0x48, 0xfe};
  const uint64_t rip = kScratchPage + 0x1000 - sizeof head;
  std::memcpy(vm_->memory().at(rip, sizeof head), head, sizeof head);
  *pte(kScratchPage + 0x1000) = 0;
  expect_page_fault(forge_trap(rip), rip, kScratchPage + 0x1000, kUserFetchError);
}

TEST_F(HostileGuestTest, PageTableEntryOutsideGuestMemoryFetchesOpenBusAsUd) {
  // Unbacked physical memory reads as all ones: ff ff is no instruction.
  *pte(kScratchPage) = 0x7ff00000 | 7;
  expect_exception(forge_trap(kScratchPage + 8), 6, kScratchPage + 8);
}

TEST_F(HostileGuestTest, PageTableOutsideGuestMemoryIsReservedBitPageFault) {
  uint64_t* pml4 = reinterpret_cast<uint64_t*>(vm_->memory().at(guest_map::kPml4, 4096));
  pml4[3] = 0x7ff00000 | 7;
  const uint64_t rip = uint64_t(3) << 39;
  expect_page_fault(forge_trap(rip), rip, rip, kUserFetchError | 8 | 1);
}

TEST_F(HostileGuestTest, PageTableLoopEndsInTheLoopingPage) {
  // PML4 entry 1 points at the PML4 itself: every level of the walk for an
  // address with all indexes 1 lands on the same page. The bytes fetched are
  // the PML4's, zeros at offset 0x800 (add [rax], al: not AVX-512) -> #UD.
  uint64_t* pml4 = reinterpret_cast<uint64_t*>(vm_->memory().at(guest_map::kPml4, 4096));
  pml4[1] = guest_map::kPml4 | 7;
  const uint64_t rip = (uint64_t(1) << 39) | (1 << 30) | (1 << 21) | (1 << 12) | 0x800;
  expect_exception(forge_trap(rip), 6, rip);
}

TEST_F(HostileGuestTest, ForgedRipAtANonAvx512InstructionIsUd) {
  // The image header's first bytes are data, not an AVX-512 instruction.
  const uint64_t rip = GUEST_IMAGE_BASE + 0x100000;  // zeroed user memory: add [rax], al
  expect_exception(forge_trap(rip), 6, rip);
}

TEST_F(KvmTest, FullCacheRegionIsFlushedAndTheWorkloadStillCorrect) {
  VmOptions tiny = avx2_only();
  tiny.index_slots_log2 = 4;   // 16 slots
  tiny.code_area_bytes = 640;  // a few translations
  for (const WorkloadInfo& w : bundled_workloads()) {
    SCOPED_TRACE(w.name);
    auto vm = make_vm(tiny);
    const RunOutcome r = vm->run(w.id);
    ASSERT_EQ(r.kind, RunOutcome::Kind::kResult) << describe(r);
    EXPECT_EQ(r.result, reference(w.id));
  }
  auto vm = make_vm(tiny);
  ASSERT_EQ(vm->run(GUEST_WORKLOAD_MASKED_DOT).kind, RunOutcome::Kind::kResult);
  EXPECT_GT(vm->adapter()->stats().flushes, 0u);
  EXPECT_GT(vm->adapter()->stats().misses, vm->adapter()->site_executions().size());
}

TEST_F(KvmTest, CommandLineRunsAWorkloadWithStats) {
  const std::string cmd = std::string(AVX512EMU_CLI) + " vm --avx2-only --stats string_search 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[512];
  while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  EXPECT_EQ(pclose(p), 0) << out;
  EXPECT_NE(out.find("string_search " + std::to_string(reference_string_search()) + "\n"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("misses "), std::string::npos) << out;
  EXPECT_NE(out.find("hits "), std::string::npos) << out;
}

//! Runs a shell command, returning its exit status and what it printed.
int run_shell(const std::string& cmd, std::string& out) {
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return -1;
  char buf[512];
  while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  return pclose(p);
}

TEST_F(KvmTest, CacheFileServesEveryMissWithoutTheJit) {
  // A cache built offline from the guest image covers every site: the VMM
  // installs translations from the file and compiles none.
  const std::string cli = AVX512EMU_CLI;
  const std::string cache = ::testing::TempDir() + "kvm_guest.a5c";
  std::string out;
  ASSERT_EQ(run_shell(cli + " cache build -o " + cache + " " + AVX512EMU_GUEST_ELF, out), 0) << out;
  out.clear();
  ASSERT_EQ(run_shell(cli + " vm --avx2-only --stats --cache " + cache + " prefix_sum", out), 0)
      << out;
  EXPECT_NE(out.find("prefix_sum " + std::to_string(reference_prefix_sum()) + "\n"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("translations: 0 compiled by the JIT"), std::string::npos) << out;
  EXPECT_EQ(out.find(" 0 from a cache file"), std::string::npos) << out;

  // A damaged file is refused before the VM starts.
  std::FILE* f = std::fopen(cache.c_str(), "r+b");
  ASSERT_NE(f, nullptr);
  std::fseek(f, 100, SEEK_SET);
  std::fputc(0x5a, f);
  std::fclose(f);
  out.clear();
  EXPECT_EQ(WEXITSTATUS(run_shell(cli + " vm --avx2-only --cache " + cache + " prefix_sum", out)), 3);
  EXPECT_NE(out.find("cache file refused"), std::string::npos) << out;
  EXPECT_EQ(out.find("prefix_sum "), std::string::npos) << out;
  std::remove(cache.c_str());
}

}  // namespace
}  // namespace avx512emu::kvm
