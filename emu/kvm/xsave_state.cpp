// Owns the transfer between standard-format XSAVE images and CpuState.
#include "kvm/xsave_state.h"

#include <cpuid.h>

#include <cstring>

namespace avx512emu::kvm {

namespace {

// Architectural component sizes (SDM vol. 1, 13.2); a layout that reports
// other sizes is not the format this code understands.
constexpr uint32_t kYmmHi128Size = 16 * 16;
constexpr uint32_t kOpmaskSize = 8 * 8;
constexpr uint32_t kZmmHi256Size = 16 * 32;
constexpr uint32_t kHi16ZmmSize = 16 * 64;

// XCOMP_BV bit 63 marks the compacted format (XSAVEC/XSAVES), whose
// component offsets depend on the saved set and are not those of CPUID 0xD.
constexpr uint64_t kXcompBvCompacted = 1ull << 63;

XsaveComponent cpuid_component(uint64_t supported_xcr0, int component) {
  if (!(supported_xcr0 & (1ull << component))) return {};
  unsigned eax, ebx, ecx, edx;
  __cpuid_count(0xD, component, eax, ebx, ecx, edx);
  return {ebx, eax};
}

std::string check_component(const char* name, const XsaveComponent& c, uint32_t expected_size,
                            size_t image_bytes) {
  if (!c.present()) return {};
  if (c.size != expected_size)
    return std::string(name) + " component is " + std::to_string(c.size) + " bytes, expected " +
           std::to_string(expected_size);
  if (c.offset < kXsaveExtendedAreaOffset)
    return std::string(name) + " component at offset " + std::to_string(c.offset) +
           " overlaps the legacy region or the XSAVE header";
  if (uint64_t(c.offset) + c.size > image_bytes)
    return std::string(name) + " component (offset " + std::to_string(c.offset) + ", " +
           std::to_string(c.size) + " bytes) lies beyond the end of a " +
           std::to_string(image_bytes) + "-byte XSAVE image";
  return {};
}

uint64_t load_u64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

void store_u64(uint8_t* p, uint64_t v) {
  std::memcpy(p, &v, 8);
}

// Whether component `c` holds saved values: present in the layout and its
// XSTATE_BV bit set. Otherwise it is in the init state (all zeros for every
// component handled here).
bool holds_values(const XsaveComponent& c, uint64_t xstate_bv, int component) {
  return c.present() && (xstate_bv & (1ull << component));
}

}  // namespace

XsaveLayout host_xsave_layout() {
  XsaveLayout layout;
  unsigned eax, ebx, ecx, edx;
  if (__get_cpuid_max(0, nullptr) < 0xD) return layout;
  __cpuid_count(0xD, 0, eax, ebx, ecx, edx);
  const uint64_t supported_xcr0 = (uint64_t(edx) << 32) | eax;
  layout.image_size = ebx;
  layout.ymm_hi128 = cpuid_component(supported_xcr0, kXsaveAvx);
  layout.opmask = cpuid_component(supported_xcr0, kXsaveOpmask);
  layout.zmm_hi256 = cpuid_component(supported_xcr0, kXsaveZmmHi256);
  layout.hi16_zmm = cpuid_component(supported_xcr0, kXsaveHi16Zmm);
  return layout;
}

std::string check_xsave_layout(const XsaveLayout& layout, size_t image_bytes) {
  if (image_bytes < kXsaveExtendedAreaOffset)
    return "XSAVE image of " + std::to_string(image_bytes) +
           " bytes is smaller than the legacy region and header (576 bytes)";
  for (const std::string& e :
       {check_component("YMM_Hi128", layout.ymm_hi128, kYmmHi128Size, image_bytes),
        check_component("opmask", layout.opmask, kOpmaskSize, image_bytes),
        check_component("ZMM_Hi256", layout.zmm_hi256, kZmmHi256Size, image_bytes),
        check_component("Hi16_ZMM", layout.hi16_zmm, kHi16ZmmSize, image_bytes)})
    if (!e.empty()) return e;
  return {};
}

bool xsave_to_state(std::span<const uint8_t> image, const XsaveLayout& layout, CpuState& state,
                    std::string& error) {
  error = check_xsave_layout(layout, image.size());
  if (!error.empty()) return false;
  const uint8_t* img = image.data();
  if (load_u64(img + kXsaveXcompBvOffset) & kXcompBvCompacted) {
    error = "XSAVE image is in the compacted format; the standard format is required";
    return false;
  }
  const uint64_t xstate_bv = load_u64(img + kXsaveXstateBvOffset);

  // XSAVE stores MXCSR whenever SSE or AVX state is requested, independent of
  // XSTATE_BV[1] (SDM 13.7), and XRSTOR loads it the same way.
  std::memcpy(&state.mxcsr, img + kXsaveMxcsrOffset, 4);
  const bool sse = (xstate_bv >> kXsaveSse) & 1;
  const bool ymm = holds_values(layout.ymm_hi128, xstate_bv, kXsaveAvx);
  const bool zmm_hi = holds_values(layout.zmm_hi256, xstate_bv, kXsaveZmmHi256);
  for (int i = 0; i < 16; ++i) {
    uint8_t* z = state.zmm[i];
    if (sse)
      std::memcpy(z, img + kXsaveXmmOffset + 16 * i, 16);
    else
      std::memset(z, 0, 16);
    if (ymm)
      std::memcpy(z + 16, img + layout.ymm_hi128.offset + 16 * i, 16);
    else
      std::memset(z + 16, 0, 16);
    if (zmm_hi)
      std::memcpy(z + 32, img + layout.zmm_hi256.offset + 32 * i, 32);
    else
      std::memset(z + 32, 0, 32);
  }
  const bool hi16 = holds_values(layout.hi16_zmm, xstate_bv, kXsaveHi16Zmm);
  for (int i = 0; i < 16; ++i) {
    if (hi16)
      std::memcpy(state.zmm[16 + i], img + layout.hi16_zmm.offset + 64 * i, 64);
    else
      std::memset(state.zmm[16 + i], 0, 64);
  }
  const bool opmask = holds_values(layout.opmask, xstate_bv, kXsaveOpmask);
  for (int i = 0; i < 8; ++i)
    state.k[i] = opmask ? load_u64(img + layout.opmask.offset + 8 * i) : 0;
  return true;
}

bool state_to_xsave(const CpuState& state, const XsaveLayout& layout, std::span<uint8_t> image,
                    std::string& error) {
  error = check_xsave_layout(layout, image.size());
  if (!error.empty()) return false;
  uint8_t* img = image.data();
  const uint64_t xcomp_bv = load_u64(img + kXsaveXcompBvOffset);
  if (xcomp_bv & kXcompBvCompacted) {
    error = "XSAVE image is in the compacted format; the standard format is required";
    return false;
  }
  uint64_t xstate_bv = load_u64(img + kXsaveXstateBvOffset);

  std::memcpy(img + kXsaveMxcsrOffset, &state.mxcsr, 4);
  for (int i = 0; i < 16; ++i) std::memcpy(img + kXsaveXmmOffset + 16 * i, state.zmm[i], 16);
  xstate_bv |= 1ull << kXsaveSse;
  if (layout.ymm_hi128.present()) {
    for (int i = 0; i < 16; ++i)
      std::memcpy(img + layout.ymm_hi128.offset + 16 * i, state.zmm[i] + 16, 16);
    xstate_bv |= 1ull << kXsaveAvx;
  }
  if (layout.zmm_hi256.present()) {
    for (int i = 0; i < 16; ++i)
      std::memcpy(img + layout.zmm_hi256.offset + 32 * i, state.zmm[i] + 32, 32);
    xstate_bv |= 1ull << kXsaveZmmHi256;
  }
  if (layout.hi16_zmm.present()) {
    for (int i = 0; i < 16; ++i)
      std::memcpy(img + layout.hi16_zmm.offset + 64 * i, state.zmm[16 + i], 64);
    xstate_bv |= 1ull << kXsaveHi16Zmm;
  }
  if (layout.opmask.present()) {
    for (int i = 0; i < 8; ++i) store_u64(img + layout.opmask.offset + 8 * i, state.k[i]);
    xstate_bv |= 1ull << kXsaveOpmask;
  }
  store_u64(img + kXsaveXstateBvOffset, xstate_bv);
  return true;
}

}  // namespace avx512emu::kvm
