// Tests the XSAVE image <-> CpuState transfer: round trips through given
// layouts, init-state components, malformed layouts and images, and, on an
// AVX-512 host, real XSAVE/XRSTOR images against registers loaded with
// inline assembly.
#include "kvm/xsave_state.h"

#include <cpuid.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

namespace avx512emu::kvm {
namespace {

// The layout Intel CPUs with AVX-512 report (SDM vol. 1, table 13-1 shows the
// same order); tests give it explicitly so they do not depend on this host.
XsaveLayout intel_layout() {
  XsaveLayout l;
  l.image_size = 0xA80;
  l.ymm_hi128 = {0x240, 256};
  l.opmask = {0x440, 64};
  l.zmm_hi256 = {0x480, 512};
  l.hi16_zmm = {0x680, 1024};
  return l;
}

// A different, equally valid placement: proves offsets are taken from the
// layout and not assumed.
XsaveLayout shuffled_layout() {
  XsaveLayout l;
  l.image_size = 0x1000;
  l.hi16_zmm = {0x240, 1024};
  l.opmask = {0x640, 64};
  l.ymm_hi128 = {0x700, 256};
  l.zmm_hi256 = {0xC00, 512};
  return l;
}

CpuState random_state(uint64_t seed) {
  std::mt19937_64 rng(seed);
  CpuState s{};
  for (auto& reg : s.zmm)
    for (auto& byte : reg) byte = uint8_t(rng());
  for (auto& k : s.k) k = rng();
  s.mxcsr = uint32_t(rng()) & 0xFFFF;
  return s;
}

uint64_t xstate_bv(const std::vector<uint8_t>& image) {
  uint64_t v;
  std::memcpy(&v, image.data() + 512, 8);
  return v;
}

void expect_same_registers(const CpuState& want, const CpuState& got) {
  EXPECT_EQ(want.mxcsr, got.mxcsr);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(0, std::memcmp(want.zmm[i], got.zmm[i], 64)) << "zmm" << i;
  for (int i = 0; i < 8; ++i) EXPECT_EQ(want.k[i], got.k[i]) << "k" << i;
}

TEST(XsaveState, RoundTripRandomStateThroughEachLayout) {
  for (const XsaveLayout& layout : {intel_layout(), shuffled_layout()}) {
    for (uint64_t seed = 1; seed <= 20; ++seed) {
      const CpuState want = random_state(seed);
      std::vector<uint8_t> image(layout.image_size, 0);
      std::string error;
      ASSERT_TRUE(state_to_xsave(want, layout, image, error)) << error;
      CpuState got = random_state(seed + 1000);
      ASSERT_TRUE(xsave_to_state(image, layout, got, error)) << error;
      expect_same_registers(want, got);
    }
  }
}

TEST(XsaveState, WritesComponentsWhereTheLayoutSaysAndSetsTheirXstateBvBits) {
  const XsaveLayout layout = shuffled_layout();
  const CpuState s = random_state(7);
  std::vector<uint8_t> image(layout.image_size, 0);
  std::string error;
  ASSERT_TRUE(state_to_xsave(s, layout, image, error)) << error;
  // Bits 1 (SSE), 2 (AVX), 5 (opmask), 6 (ZMM_Hi256), 7 (Hi16_ZMM).
  EXPECT_EQ(xstate_bv(image), 0xE6u);
  uint32_t mxcsr;
  std::memcpy(&mxcsr, image.data() + 24, 4);
  EXPECT_EQ(mxcsr, s.mxcsr);
  EXPECT_EQ(0, std::memcmp(image.data() + 160 + 16 * 9, s.zmm[9], 16));  // xmm9
  EXPECT_EQ(0, std::memcmp(image.data() + 0x700 + 16 * 9, s.zmm[9] + 16, 16));
  EXPECT_EQ(0, std::memcmp(image.data() + 0xC00 + 32 * 9, s.zmm[9] + 32, 32));
  EXPECT_EQ(0, std::memcmp(image.data() + 0x240 + 64 * 3, s.zmm[19], 64));
  EXPECT_EQ(0, std::memcmp(image.data() + 0x640 + 8 * 6, &s.k[6], 8));
}

TEST(XsaveState, KeepsBytesOutsideTheComponentsItWrites) {
  const XsaveLayout layout = intel_layout();
  std::vector<uint8_t> image(layout.image_size + 8, 0xA5);  // + PKRU (component 9)
  // A standard-format header: XCOMP_BV clear, x87 (bit 0) and PKRU (bit 9)
  // marked as holding values.
  std::memset(image.data() + 512, 0, 64);
  image[512] = 0x01;
  image[513] = 0x02;
  std::string error;
  ASSERT_TRUE(state_to_xsave(random_state(3), layout, image, error)) << error;
  EXPECT_EQ(xstate_bv(image), 0x2E7u);
  EXPECT_EQ(image[0], 0xA5);      // x87 control word
  EXPECT_EQ(image[159], 0xA5);    // last byte of st7
  EXPECT_EQ(image[0xA80], 0xA5);  // PKRU, beyond Hi16_ZMM
}

TEST(XsaveState, ComponentsInInitStateReadAsZeros) {
  const XsaveLayout layout = intel_layout();
  std::vector<uint8_t> image(layout.image_size);
  std::mt19937 rng(5);
  for (auto& b : image) b = uint8_t(rng());
  std::memset(image.data() + 512, 0, 64);  // XSTATE_BV = 0: everything init
  const uint32_t mxcsr = 0x1FA0;
  std::memcpy(image.data() + 24, &mxcsr, 4);

  CpuState s = random_state(9);
  std::string error;
  ASSERT_TRUE(xsave_to_state(image, layout, s, error)) << error;
  CpuState zeros{};
  zeros.mxcsr = mxcsr;  // MXCSR is read whatever XSTATE_BV says
  expect_same_registers(zeros, s);

  // Only SSE and opmask hold values: xmm0-15 and k come from the image, all
  // upper parts and zmm16-31 are zero.
  image[512] = (1 << 1) | (1 << 5);
  ASSERT_TRUE(xsave_to_state(image, layout, s, error)) << error;
  for (int i = 0; i < 16; ++i) {
    EXPECT_EQ(0, std::memcmp(s.zmm[i], image.data() + 160 + 16 * i, 16)) << i;
    for (int b = 16; b < 64; ++b) ASSERT_EQ(s.zmm[i][b], 0) << "zmm" << i << " byte " << b;
  }
  for (int i = 16; i < 32; ++i)
    for (int b = 0; b < 64; ++b) ASSERT_EQ(s.zmm[i][b], 0) << "zmm" << i;
  for (int i = 0; i < 8; ++i) {
    uint64_t k;
    std::memcpy(&k, image.data() + 0x440 + 8 * i, 8);
    EXPECT_EQ(s.k[i], k);
  }
}

TEST(XsaveState, LayoutWithoutAvx512ComponentsLeavesThemOut) {
  XsaveLayout avx2_only = intel_layout();
  avx2_only.image_size = 0x340;
  avx2_only.opmask = avx2_only.zmm_hi256 = avx2_only.hi16_zmm = {};
  const CpuState s = random_state(11);
  std::vector<uint8_t> image(avx2_only.image_size, 0);
  std::string error;
  ASSERT_TRUE(state_to_xsave(s, avx2_only, image, error)) << error;
  EXPECT_EQ(xstate_bv(image), 0x6u);
  CpuState back = random_state(12);
  ASSERT_TRUE(xsave_to_state(image, avx2_only, back, error)) << error;
  for (int i = 0; i < 16; ++i) {
    EXPECT_EQ(0, std::memcmp(back.zmm[i], s.zmm[i], 32)) << "ymm" << i;
    for (int b = 32; b < 64; ++b) ASSERT_EQ(back.zmm[i][b], 0);
  }
  for (int i = 0; i < 8; ++i) EXPECT_EQ(back.k[i], 0u);
}

TEST(XsaveState, RefusesImagesTooSmallForTheLayout) {
  const XsaveLayout layout = intel_layout();
  for (size_t size : {size_t(0), size_t(100), size_t(575), size_t(0x680), size_t(0xA7F)}) {
    // Exactly `size` bytes on the heap, so an overrun would be a real one.
    std::vector<uint8_t> image(size, 0);
    CpuState s = random_state(1);
    const CpuState before = s;
    std::string error;
    EXPECT_FALSE(xsave_to_state(image, layout, s, error)) << size;
    EXPECT_FALSE(error.empty());
    EXPECT_EQ(0, std::memcmp(&before, &s, sizeof s));
    EXPECT_FALSE(state_to_xsave(s, layout, image, error)) << size;
    for (uint8_t b : image) ASSERT_EQ(b, 0) << "image written despite error";
  }
}

TEST(XsaveState, RefusesMalformedLayouts) {
  std::vector<uint8_t> image(0x2000, 0);
  CpuState s{};
  std::string error;
  XsaveLayout wrong_size = intel_layout();
  wrong_size.opmask.size = 32;
  EXPECT_FALSE(xsave_to_state(image, wrong_size, s, error));
  EXPECT_NE(error.find("opmask"), std::string::npos) << error;

  XsaveLayout in_header = intel_layout();
  in_header.zmm_hi256.offset = 520;
  EXPECT_FALSE(state_to_xsave(s, in_header, image, error));
  EXPECT_NE(error.find("ZMM_Hi256"), std::string::npos) << error;

  XsaveLayout wraps = intel_layout();
  wraps.hi16_zmm.offset = 0xFFFFFF00u;  // offset + size overflows 32 bits
  EXPECT_FALSE(xsave_to_state(image, wraps, s, error));
  EXPECT_NE(error.find("beyond"), std::string::npos) << error;
}

TEST(XsaveState, RefusesCompactedImages) {
  const XsaveLayout layout = intel_layout();
  std::vector<uint8_t> image(layout.image_size, 0);
  image[520 + 7] = 0x80;  // XCOMP_BV bit 63
  CpuState s{};
  std::string error;
  EXPECT_FALSE(xsave_to_state(image, layout, s, error));
  EXPECT_NE(error.find("compacted"), std::string::npos) << error;
  EXPECT_FALSE(state_to_xsave(s, layout, image, error));
}

// ---------------------------------------------------------------------------
// Real images from this CPU
// ---------------------------------------------------------------------------

uint64_t read_xcr0() {
  uint32_t lo, hi;
  asm volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (uint64_t(hi) << 32) | lo;
}

// AVX512F and AVX512BW (64-bit kmovq), enabled by the OS in XCR0.
bool host_has_avx512_state() {
  unsigned a, b, c, d;
  if (__get_cpuid_max(0, nullptr) < 0xD) return false;
  __cpuid(1, a, b, c, d);
  if (!(c & (1u << 27))) return false;  // OSXSAVE: xgetbv is usable
  __cpuid_count(7, 0, a, b, c, d);
  const bool f_bw = (b & (1u << 16)) && (b & (1u << 30));
  return f_bw && (read_xcr0() & 0xE6) == 0xE6;
}

// 64-byte aligned buffer for XSAVE/XRSTOR.
struct AlignedImage {
  explicit AlignedImage(size_t n)
      : size((n + 63) & ~size_t(63)), data(static_cast<uint8_t*>(std::aligned_alloc(64, size))) {
    std::memset(data, 0, size);
  }
  ~AlignedImage() { std::free(data); }
  AlignedImage(const AlignedImage&) = delete;
  AlignedImage& operator=(const AlignedImage&) = delete;
  size_t size;
  uint8_t* data;
};

#define AVX512EMU_ZMM_LINES(op, n0, n1, n2, n3, n4, n5, n6, n7) \
  op(n0) op(n1) op(n2) op(n3) op(n4) op(n5) op(n6) op(n7)
#define AVX512EMU_LOAD_ZMM(n) "vmovdqu64 " #n "*64(%[zmm]), %%zmm" #n "\n\t"
#define AVX512EMU_STORE_ZMM(n) "vmovdqu64 %%zmm" #n ", " #n "*64(%[zmm])\n\t"
#define AVX512EMU_LOAD_K(n) "kmovq " #n "*8(%[k]), %%k" #n "\n\t"
#define AVX512EMU_STORE_K(n) "kmovq %%k" #n ", " #n "*8(%[k])\n\t"

// Loads zmm0-31, k0-7 and MXCSR from `s`, then XSAVEs with the OS's XCR0 as
// the requested-feature bitmap. One asm statement, so the compiler cannot
// touch a vector register in between; the caller's MXCSR is restored after.
// The test is built for the x86-64 baseline, so the compiler itself keeps
// nothing in zmm16-31 or k0-7 (all caller-saved in the SysV ABI anyway).
void load_registers_and_xsave(const CpuState& s, uint8_t* image, uint64_t xcr0) {
  uint32_t saved_mxcsr = 0;
  asm volatile("stmxcsr %[saved]\n\t"  //
               AVX512EMU_ZMM_LINES(AVX512EMU_LOAD_ZMM, 0, 1, 2, 3, 4, 5, 6, 7)
                   AVX512EMU_ZMM_LINES(AVX512EMU_LOAD_ZMM, 8, 9, 10, 11, 12, 13, 14, 15)
                       AVX512EMU_ZMM_LINES(AVX512EMU_LOAD_ZMM, 16, 17, 18, 19, 20, 21, 22, 23)
                           AVX512EMU_ZMM_LINES(AVX512EMU_LOAD_ZMM, 24, 25, 26, 27, 28, 29, 30, 31)
                               AVX512EMU_ZMM_LINES(AVX512EMU_LOAD_K, 0, 1, 2, 3, 4, 5, 6, 7)  //
               "ldmxcsr %[mxcsr]\n\t"
               "xsave64 (%[image])\n\t"
               "ldmxcsr %[saved]\n\t"
               "vzeroupper\n\t"
               : [saved] "+m"(saved_mxcsr)
               : [zmm] "r"(s.zmm), [k] "r"(s.k), [mxcsr] "m"(s.mxcsr), [image] "r"(image),
                 "a"(uint32_t(xcr0)), "d"(uint32_t(xcr0 >> 32))
               : "memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8",
                 "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");
}

// XRSTORs `image` with the OS's XCR0, then stores zmm0-31, k0-7 and MXCSR
// into `out`; the caller's MXCSR is restored after.
void xrstor_and_store_registers(const uint8_t* image, uint64_t xcr0, CpuState& out) {
  uint32_t saved_mxcsr = 0;
  asm volatile(
      "stmxcsr %[saved]\n\t"
      "xrstor64 (%[image])\n\t"  //
      AVX512EMU_ZMM_LINES(AVX512EMU_STORE_ZMM, 0, 1, 2, 3, 4, 5, 6, 7)
          AVX512EMU_ZMM_LINES(AVX512EMU_STORE_ZMM, 8, 9, 10, 11, 12, 13, 14, 15)
              AVX512EMU_ZMM_LINES(AVX512EMU_STORE_ZMM, 16, 17, 18, 19, 20, 21, 22, 23)
                  AVX512EMU_ZMM_LINES(AVX512EMU_STORE_ZMM, 24, 25, 26, 27, 28, 29, 30, 31)
                      AVX512EMU_ZMM_LINES(AVX512EMU_STORE_K, 0, 1, 2, 3, 4, 5, 6, 7)  //
      "stmxcsr %[mxcsr]\n\t"
      "ldmxcsr %[saved]\n\t"
      "vzeroupper\n\t"
      : [saved] "+m"(saved_mxcsr), [mxcsr] "=m"(out.mxcsr)
      : [zmm] "r"(out.zmm), [k] "r"(out.k), [image] "r"(image), "a"(uint32_t(xcr0)),
        "d"(uint32_t(xcr0 >> 32))
      : "memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",
        "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");
}

TEST(XsaveStateHost, HostLayoutComesFromCpuidAndIsValid) {
  const XsaveLayout layout = host_xsave_layout();
  ASSERT_GT(layout.image_size, 0u) << "CPUID leaf 0xD reports no XSAVE area";
  EXPECT_EQ(check_xsave_layout(layout, layout.image_size), "");
  if (!host_has_avx512_state()) GTEST_SKIP() << "this CPU has no AVX-512 state in XCR0";
  EXPECT_TRUE(layout.opmask.present());
  EXPECT_TRUE(layout.zmm_hi256.present());
  EXPECT_TRUE(layout.hi16_zmm.present());
}

TEST(XsaveStateHost, NativeXsaveImageConvertsToTheLoadedRegisters) {
  if (!host_has_avx512_state())
    GTEST_SKIP() << "needs AVX512F+BW enabled in XCR0 to load zmm16-31 and k0-7 natively";
  const XsaveLayout layout = host_xsave_layout();
  const uint64_t xcr0 = read_xcr0();
  for (uint64_t seed = 1; seed <= 4; ++seed) {
    CpuState loaded = random_state(seed);
    loaded.mxcsr = 0x7FA5 & 0xFFBF;  // every field but DAZ (not on all CPUs) set somewhere
    AlignedImage image(layout.image_size);
    load_registers_and_xsave(loaded, image.data, xcr0);
    CpuState got = random_state(seed + 100);
    std::string error;
    ASSERT_TRUE(xsave_to_state({image.data, layout.image_size}, layout, got, error)) << error;
    expect_same_registers(loaded, got);
  }
}

TEST(XsaveStateHost, StateWrittenIntoAnImageIsWhatXrstorLoads) {
  if (!host_has_avx512_state())
    GTEST_SKIP() << "needs AVX512F+BW enabled in XCR0 to read zmm16-31 and k0-7 natively";
  const XsaveLayout layout = host_xsave_layout();
  const uint64_t xcr0 = read_xcr0();
  for (uint64_t seed = 1; seed <= 4; ++seed) {
    // Start from a real image of zeroed registers (valid x87 state), so
    // only what state_to_xsave writes can make the registers non-zero.
    AlignedImage image(layout.image_size);
    CpuState zeros{};
    zeros.mxcsr = 0x1F80;
    load_registers_and_xsave(zeros, image.data, xcr0);

    CpuState want = random_state(seed + 50);
    want.mxcsr = 0x3F80 | 0x15;
    std::string error;
    ASSERT_TRUE(state_to_xsave(want, layout, {image.data, layout.image_size}, error)) << error;
    CpuState got{};
    xrstor_and_store_registers(image.data, xcr0, got);
    expect_same_registers(want, got);
  }
}

}  // namespace
}  // namespace avx512emu::kvm
