// Owns the transfer between an XSAVE image (standard, non-compacted format,
// as KVM_GET_XSAVE2 and signal frames hold it) and a CpuState: MXCSR, the
// legacy XMM registers, AVX YMM_Hi128, and the AVX-512 opmask, ZMM_Hi256 and
// Hi16_ZMM components. Component offsets come from CPUID leaf 0xD.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "cpu_state.h"

namespace avx512emu::kvm {

//! XSAVE state-component numbers (Intel SDM vol. 1, 13.1) and their XCR0 /
//! XSTATE_BV bits.
inline constexpr int kXsaveSse = 1, kXsaveAvx = 2, kXsaveOpmask = 5, kXsaveZmmHi256 = 6,
                     kXsaveHi16Zmm = 7;

//! Where one state component lives in a standard-format XSAVE image: CPUID
//! leaf 0xD sub-leaf N gives its size (EAX) and offset (EBX). A size of 0
//! means the producer of the image has no such component.
struct XsaveComponent {
  uint32_t offset = 0;
  uint32_t size = 0;
  bool present() const { return size != 0; }
};

//! The layout of a standard-format XSAVE image. The legacy region (x87,
//! MXCSR, XMM0-15) and the 64-byte XSAVE header have architecturally fixed
//! places; the extended components do not, so they are given here. Tests and
//! a migration between hosts with different layouts supply their own.
struct XsaveLayout {
  uint32_t image_size = 0;   //!< Bytes of a whole image (CPUID 0xD.0 EBX).
  XsaveComponent ymm_hi128;  //!< Component 2: upper 128 bits of ymm0-15.
  XsaveComponent opmask;     //!< Component 5: k0-7.
  XsaveComponent zmm_hi256;  //!< Component 6: upper 256 bits of zmm0-15.
  XsaveComponent hi16_zmm;   //!< Component 7: zmm16-31.
};

//! Fixed places of the legacy region and the XSAVE header (SDM 10.5.1, 13.4).
inline constexpr size_t kXsaveMxcsrOffset = 24;
inline constexpr size_t kXsaveXmmOffset = 160;
inline constexpr size_t kXsaveHeaderOffset = 512;
inline constexpr size_t kXsaveXstateBvOffset = 512;
inline constexpr size_t kXsaveXcompBvOffset = 520;
inline constexpr size_t kXsaveExtendedAreaOffset = 576;  //!< Legacy region + header.

//! The layout of this CPU's standard-format XSAVE image, from CPUID leaf 0xD:
//! a component is present when this CPU supports it in XCR0 (0xD.0 EAX), and
//! image_size is the size for the XCR0 the OS enabled (0xD.0 EBX).
XsaveLayout host_xsave_layout();

//! Checks that `layout` describes components of the architectural sizes
//! that do not overlap the legacy region or the header and fit in an image of
//! `image_bytes` bytes. Returns an empty string when valid, else the reason.
std::string check_xsave_layout(const XsaveLayout& layout, size_t image_bytes);

//! Copies MXCSR, xmm0-15, the ymm and zmm upper parts, zmm16-31 and k0-7 from
//! `image` into `state`; other fields of `state` are left alone. A component
//! whose XSTATE_BV bit is clear is in its init state and reads as zeros,
//! whatever the image bytes hold; so does a component the layout lacks.
//! Returns false with `error` set (state untouched) for an invalid layout, an
//! image too small for it, or a compacted image.
bool xsave_to_state(std::span<const uint8_t> image, const XsaveLayout& layout, CpuState& state,
                    std::string& error);

//! Writes the same registers from `state` into `image` and sets the
//! XSTATE_BV bits of the components written (SSE, and AVX, opmask, ZMM_Hi256,
//! Hi16_ZMM where the layout has them), so that XRSTOR or KVM_SET_XSAVE loads
//! them instead of the init state. Other bytes of the image (x87 state, other
//! components) are kept. Same errors as xsave_to_state(); the image is
//! untouched on error.
bool state_to_xsave(const CpuState& state, const XsaveLayout& layout, std::span<uint8_t> image,
                    std::string& error);

}  // namespace avx512emu::kvm
