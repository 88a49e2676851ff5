// Owns the checks of steady_state_bench's kernels (bench/steady_state_kernels):
// every AVX2 version against a plain scalar reference written here, every
// AVX-512 version against its AVX2 version on this CPU, and the AVX-512
// versions under the trap runtime (this binary again, preloaded, with trap
// injection) against the native results.
//
// A kernel that is wrong in both versions the same way fails the scalar
// check; an emulated result that differs fails the runtime check. Each
// check runs a kernel several times on the same data: the kernels that
// update in place (masked_saxpy) carry state from call to call, and under
// the runtime the first call traps and patches while later ones run
// through the patched stubs.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "subprocess.h"

#if AVX512EMU_HAVE_STEADY_STATE_KERNELS
#include "steady_state_kernels.h"

namespace {

namespace ss = avx512emu::steady_state;
using avx512emu::testing::describe;
using avx512emu::testing::Outcome;
using avx512emu::testing::run;
using avx512emu::testing::stat;

//! The helper mode: print "NAME CHECKSUM" per kernel of the AVX-512
//! versions (run here under the runtime) and exit.
constexpr const char* kChildOption = "--emulated-checksums";
constexpr int kCalls = 3;

bool has_avx512() {
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
         __builtin_cpu_supports("avx512cd");
}

// ---- Scalar references --------------------------------------------------------------------
// Each writes what the kernel would into the kernel's outputs, element by
// element, from the kernel's definition (steady_state_kernels.h).

void reference_dot() {
  // The 16 lanes of the accumulator, then its fixed reduction order:
  // halves, 128-bit lanes, pairs, the last two.
  const ss::DotData& d = ss::dot_data;
  float acc[16] = {};
  for (size_t i = 0; i < ss::kDotN; ++i) acc[i % 16] = std::fma(d.a[i], d.b[i], acc[i % 16]);
  float s[8], q[4];
  for (int j = 0; j < 8; ++j) s[j] = acc[j] + acc[j + 8];
  for (int j = 0; j < 4; ++j) q[j] = s[j] + s[j + 4];
  ss::dot_data.result = (q[0] + q[2]) + (q[1] + q[3]);
}

void reference_count() {
  uint64_t n = 0;
  for (size_t i = 0; i < ss::kCountN; ++i) n += ss::count_data.bytes[i] == ss::count_data.value;
  ss::count_data.result = n;
}

void reference_compress() {
  ss::CompressData& d = ss::compress_data;
  d.kept = 0;
  for (size_t i = 0; i < ss::kCompressN; ++i)
    if (d.in[i] > d.threshold) d.out[d.kept++] = d.in[i];
}

void reference_hash() {
  ss::HashData& d = ss::hash_data;
  for (size_t i = 0; i < ss::kHashN; i += 8) {
    uint64_t x[8];
    for (size_t j = 0; j < 8; ++j)
      x[j] = std::rotl(d.keys[i + j] ^ d.seed ^ (i + j), 23) * ss::kHashP1;
    for (size_t j = 0; j < 8; ++j) {
      const uint64_t y = x[7 - j];
      d.out[i + j] = (y ^ (std::rotl(y, 41) & ss::kHashP2)) * ss::kHashP3;
    }
  }
}

void reference_saxpy() {
  ss::SaxpyData& d = ss::saxpy_data;
  for (size_t i = 0; i < ss::kSaxpyN; ++i)
    if (d.x[i] > 0) d.y[i] = std::fma(d.a, d.x[i], d.y[i]);
}

void reference_sad() {
  uint64_t sum = 0;
  for (size_t i = 0; i < ss::kSadN; ++i) {
    const int a = int(std::min<uint32_t>(ss::sad_data.a[i], 255));
    const int b = std::clamp<int>(ss::sad_data.b[i], -128, 127) + 128;
    sum += uint64_t(std::abs(a - b));
  }
  ss::sad_data.result = sum;
}

void reference_permute() {
  ss::PermuteData& d = ss::permute_data;
  for (size_t i = 0; i < ss::kPermuteN; ++i) {
    const uint32_t first = uint32_t(d.table[d.idx[i] & 31]);
    const uint32_t second = uint32_t(d.table[(d.idx[i] >> 5) & 31]);
    d.out[i] = int32_t(first ^ (second << 1));
  }
}

void reference_zmm_high() {
  const ss::ZmmHighData& d = ss::zmm_high_data;
  ss::ZmmHighResult r = {};
  std::fill(std::begin(r.max), std::end(r.max), INT32_MIN);
  for (size_t i = 0; i < ss::kZmmHighN; ++i) {
    const size_t lane = i % 16;
    const int32_t v = d.v[i];
    const bool above = v > d.threshold;
    r.parity ^= uint32_t(above) << lane;
    r.sum[lane] = int32_t(uint32_t(r.sum[lane]) + uint32_t(v));  // wraps, as vpaddd
    r.max[lane] = std::max(r.max[lane], v);
    if (above && (r.parity >> lane & 1))
      r.masked_sum[lane] = int32_t(uint32_t(r.masked_sum[lane]) + uint32_t(v));
  }
  ss::zmm_high_data.result = r;
}

struct Reference {
  const char* kernel;
  void (*run)();
};
constexpr Reference kReferences[] = {
    {"dot_fma_masked_tail", reference_dot}, {"count_eq_bytes", reference_count},
    {"compress_gt", reference_compress},    {"hash_mix64", reference_hash},
    {"masked_saxpy", reference_saxpy},      {"sat_narrow_sad", reference_sad},
    {"permute2_lookup", reference_permute}, {"zmm16_kregs_asm", reference_zmm_high},
};

//! kCalls runs of one version of `kernel` on fresh data; the checksum.
uint64_t checksum_after_calls(const ss::Kernel& kernel, void (*version)()) {
  kernel.setup();
  for (int i = 0; i < kCalls; ++i) version();
  return kernel.checksum();
}

// ---- Native checks, per kernel ------------------------------------------------------------

class SteadyStateKernel : public ::testing::TestWithParam<size_t> {
 protected:
  const ss::Kernel& kernel() const { return ss::kernels()[GetParam()]; }
};

TEST_P(SteadyStateKernel, Avx2MatchesScalarReference) {
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma"))
    GTEST_SKIP() << "this CPU has no AVX2/FMA";
  const auto ref =
      std::find_if(std::begin(kReferences), std::end(kReferences),
                   [&](const Reference& r) { return !std::strcmp(r.kernel, kernel().name); });
  ASSERT_NE(ref, std::end(kReferences)) << "no scalar reference for " << kernel().name;
  const uint64_t expected = checksum_after_calls(kernel(), ref->run);
  EXPECT_EQ(checksum_after_calls(kernel(), kernel().avx2), expected);
}

TEST_P(SteadyStateKernel, Avx512MatchesAvx2Natively) {
  if (!has_avx512()) GTEST_SKIP() << "this CPU lacks AVX-512F/BW/DQ/VL/CD";
  EXPECT_EQ(checksum_after_calls(kernel(), kernel().avx512),
            checksum_after_calls(kernel(), kernel().avx2));
}

INSTANTIATE_TEST_SUITE_P(Kernels, SteadyStateKernel,
                         ::testing::Range<size_t>(0, ss::kernels().size()),
                         [](const ::testing::TestParamInfo<size_t>& info) {
                           return std::string(ss::kernels()[info.param].name);
                         });

TEST(SteadyStateKernels, ChecksumsSeeTheOutputs) {
  // Guards against a checksum that ignores its outputs (every kernel would
  // then "match"): each kernel's result differs from its cleared outputs.
  for (const ss::Kernel& k : ss::kernels()) {
    k.setup();
    const uint64_t cleared = k.checksum();
    const auto ref =
        std::find_if(std::begin(kReferences), std::end(kReferences),
                     [&](const Reference& r) { return !std::strcmp(r.kernel, k.name); });
    ASSERT_NE(ref, std::end(kReferences)) << k.name;
    ref->run();
    EXPECT_NE(k.checksum(), cleared) << k.name;
  }
}

// ---- Under the runtime --------------------------------------------------------------------

//! The helper mode's body (under the preload library).
int print_emulated_checksums() {
  // Without the runtime the checksums would be native ones and the test
  // would prove nothing.
  std::ifstream maps("/proc/self/maps");
  const std::string text((std::istreambuf_iterator<char>(maps)), std::istreambuf_iterator<char>());
  if (text.find("libavx512emu-preload") == std::string::npos) {
    std::fprintf(stderr,
                 "steady_state_kernels_test: the helper runs without the preload library\n");
    return 3;
  }
  for (const ss::Kernel& k : ss::kernels())
    std::printf("%s %llu\n", k.name,
                static_cast<unsigned long long>(checksum_after_calls(k, k.avx512)));
  return 0;
}

TEST(SteadyStateKernelsUnderRuntime, EmulatedChecksumsMatchNative) {
  // As `avx512emu run --simulate-avx2`: trap injection arms every AVX-512
  // instruction with ud2 (on an AVX2-only CPU they trap by themselves), and
  // glibc keeps to its AVX2 functions.
  const Outcome o = run(
      {"/proc/self/exe", kChildOption},
      {{"LD_PRELOAD", AVX512EMU_PRELOAD_LIBRARY},
       {"AVX512EMU_SIMULATE_AVX2", "1"},
       {"AVX512EMU_STATS", "1"},
       {"AVX512EMU_NO_PATCH", std::nullopt},
       {"GLIBC_TUNABLES", "glibc.cpu.hwcaps=-AVX512F,-AVX512VL,-AVX512BW,-AVX512DQ,-AVX512CD"}});
  ASSERT_EQ(o.exit_code, 0) << describe(o);
  std::map<std::string, uint64_t> emulated;
  std::istringstream lines(o.out);
  for (std::string name; lines >> name;) lines >> emulated[name];
  for (const ss::Kernel& k : ss::kernels()) {
    ASSERT_EQ(emulated.count(k.name), 1u) << k.name << "\n" << describe(o);
    EXPECT_EQ(emulated[k.name], checksum_after_calls(k, k.avx2)) << k.name;
    if (has_avx512()) {
      EXPECT_EQ(emulated[k.name], checksum_after_calls(k, k.avx512)) << k.name;
    }
  }
  // The AVX-512 code really ran emulated: it trapped, sites were patched and
  // later calls ran through their stubs, and nothing was left untranslated.
  // (stat() gives all ones for a figure the report lacks.)
  for (const char* figure : {"traps", "stub runs", "patched sites"}) {
    EXPECT_NE(stat(o.err, figure), ~uint64_t(0)) << figure << "\n" << o.err;
    EXPECT_GT(stat(o.err, figure), 0u) << figure << "\n" << o.err;
  }
  EXPECT_EQ(stat(o.err, "not emulated"), 0u) << o.err;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && !std::strcmp(argv[1], kChildOption)) return print_emulated_checksums();
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}

#else  // !AVX512EMU_HAVE_STEADY_STATE_KERNELS

// bench/ was not built (no Google Benchmark), so neither were the kernels.
TEST(SteadyStateKernels, NeedTheBenchKernels) {
  GTEST_SKIP() << "bench/steady_state_kernels is not built here (Google Benchmark is missing)";
}

#endif
