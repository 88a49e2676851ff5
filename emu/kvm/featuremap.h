// Owns the destination's processor feature map: the CPUID feature bits and
// XCR0 bits a host running avx512emu can honestly advertise to guests (its
// native features plus the AVX-512 subsets that coverage reports fully
// translated and verified), and the check of a source host's CPUID dump
// against that map before a migration.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "coverage.h"

namespace avx512emu::kvm {

enum class CpuidReg : uint8_t { kEax, kEbx, kEcx, kEdx };
const char* cpuid_reg_name(CpuidReg r);

//! The four registers CPUID returns for one (leaf, sub-leaf).
struct CpuidLeaf {
  uint32_t leaf = 0, subleaf = 0;
  uint32_t regs[4] = {};  //!< Indexed by CpuidReg.
};

//! The CPUID feature leaves of one machine, and its XCR0.
struct CpuidSnapshot {
  std::vector<CpuidLeaf> leaves;
  uint64_t xcr0 = 0;
  bool has_xcr0 = false;  //!< A source dump may omit XCR0.

  //! The register's value; 0 for a leaf the snapshot does not hold.
  uint32_t reg(uint32_t leaf, uint32_t subleaf, CpuidReg r) const;
  bool bit(uint32_t leaf, uint32_t subleaf, CpuidReg r, int bit) const;
  void set_bit(uint32_t leaf, uint32_t subleaf, CpuidReg r, int bit, bool value);
};

//! Clears the AVX-512 subsets, AVX512VL and the AVX-512 XCR0 bits of a
//! snapshot: the host as a guest that is not shown AVX-512 sees it.
void drop_native_avx512(CpuidSnapshot& host);

//! Reads this CPU's feature leaves (those the feature table names) and, when
//! the OS enabled XSAVE, XCR0.
CpuidSnapshot read_host_cpuid();

//! How a feature's availability is decided.
enum class FeatureKind : uint8_t {
  kHost,           //!< Only native: avx512emu does not emulate it.
  kAvx512Subset,   //!< An AVX-512 subset: native, or emulated when covered.
  kAvx512Vl,       //!< AVX512VL: the 128/256-bit forms of every subset.
  kEvexExtension,  //!< GFNI/VAES/VPCLMULQDQ: native bit with EVEX forms.
};

//! One named CPUID feature bit. Names are the ones QEMU's -cpu option and
//! libvirt's <feature name=...> use.
struct FeatureInfo {
  const char* name;
  uint32_t leaf, subleaf;
  CpuidReg reg;
  uint8_t bit;
  FeatureKind kind;
  //! For AVX-512 subsets and EVEX extensions: the Zydis ISA-set name prefix
  //! ("AVX512F_", "AVX512_VBMI_") whose sets make up the feature.
  const char* isa_prefix;
  //! XCR0 bits the OS must enable for the feature to be usable natively.
  uint64_t xcr0_needed;
};

//! Every feature the map knows, grouped by CPUID leaf.
const std::vector<FeatureInfo>& feature_table();

//! XCR0 bits that go with the AVX-512 state: opmask, ZMM_Hi256, Hi16_ZMM.
inline constexpr uint64_t kXcr0Avx512 = 0xE0;

enum class FeatureSource : uint8_t {
  kNative,    //!< The host CPU has it: advertise.
  kEmulated,  //!< avx512emu covers it: advertise.
  kHidden,    //!< The host has it, but advertising it would be dishonest.
  kAbsent,    //!< Neither the host nor avx512emu provides it.
};
const char* feature_source_name(FeatureSource s);

//! What counts as covering an ISA set.
enum class CoverageBasis : uint8_t {
  kVerified,        //!< translated == verified == known (the honest default).
  kTranslatedOnly,  //!< translated == known, without the differential check.
};

struct FeatureVerdict {
  const FeatureInfo* feature;
  FeatureSource source;
  std::string note;  //!< Why, for anything not plainly native or absent.
};

//! The feature map of a destination host.
struct FeatureMap {
  std::vector<FeatureVerdict> features;  //!< One per feature_table() row.
  uint64_t xcr0_native = 0;              //!< XCR0 bits the host OS enabled.
  uint64_t xcr0_emulated = 0;  //!< AVX-512 XCR0 bits the host lacks but avx512emu provides.
  CoverageBasis basis = CoverageBasis::kVerified;
  bool verification_ran = false;  //!< Whether the coverage report could verify.

  const FeatureVerdict* find(const std::string& name) const;
  //! Leaves with exactly the advertised (native or emulated) feature bits.
  CpuidSnapshot advertised() const;
};

//! Builds the map from the host's CPUID and the coverage report.
//!
//! Rules (a set is covered when it has known mnemonics and, per `basis`, all
//! of them are verified, or all translated):
//! - kHost features are native when the host has the bit and XCR0 enables
//!   the state they need; otherwise absent.
//! - Emulation needs a host with AVX2, FMA, BMI1 and BMI2, which the
//!   generated code uses.
//! - An AVX-512 subset S is native when the host has it. Otherwise it is
//!   emulated when AVX512F is advertised (for S = AVX512F: when the host can
//!   run translations) and all of S's "core" ISA sets are covered: those not
//!   ending in _128 or _256 (_512, _SCALAR, _KOP, and _128N, the 128-bit forms
//!   that do not need AVX512VL). If AVX512VL is native, S's _128 and _256 sets
//!   must be covered too, since the guest will see VL.
//! - AVX512VL is not an ISA set of its own in Zydis: it is the _128/_256
//!   sets of the other subsets. It is native when the host has it; otherwise
//!   emulated when AVX512F is advertised and the _128 and _256 sets of every
//!   advertised subset (native ones too: without VL in hardware their short
//!   forms #UD) are covered.
//! - GFNI, VAES and VPCLMULQDQ have legacy/VEX forms avx512emu does not
//!   emulate, so they are advertised only when native. When AVX512F is
//!   emulated, a guest that sees both may use their EVEX forms, which trap:
//!   they stay advertised only if those AVX512_<X>_* sets are covered (the
//!   _128/_256 ones only when VL is advertised), else they are hidden.
//! - XCR0 bits 5-7 are emulated when AVX512F is emulated.
FeatureMap build_feature_map(const CpuidSnapshot& host, const CoverageReport& coverage,
                             CoverageBasis basis);

std::string feature_map_text(const FeatureMap& map);
//! JSON with the advertised CPUID leaves ("cpuid"), XCR0, and every feature
//! with its leaf, register, bit and source. Accepted by parse_cpuid_dump().
std::string feature_map_json(const FeatureMap& map);
//! "-cpu host,+emulated...,-hidden..." for QEMU.
std::string feature_map_qemu(const FeatureMap& map);
//! A libvirt <cpu mode='host-passthrough'> element: policy='force' for
//! emulated features, policy='disable' for hidden ones.
std::string feature_map_libvirt(const FeatureMap& map);

//! Parses a CPUID dump given as JSON:
//!
//!   {"cpuid": [{"leaf": 7, "subleaf": 0, "eax": 0, "ebx": "0xd19f4fbb",
//!               "ecx": "0x...", "edx": "0x..."}, ...],
//!    "xcr0": "0xe7"}
//!
//! Numbers are JSON integers or strings with a decimal or 0x-prefixed hex
//! value, at most 32 bits for registers and 64 for xcr0. "subleaf" and any
//! register may be omitted (0); "xcr0" is optional. Other keys are ignored,
//! so `featuremap --format json` output is a valid dump. Returns false with
//! a message naming the problem (and its byte offset for syntax errors).
bool parse_cpuid_dump(std::string_view json, CpuidSnapshot& out, std::string& error);

enum class SourceVerdict : uint8_t { kNative, kEmulated, kMissing };

struct SourceCheckLine {
  std::string name;   //!< Feature name or "xcr0 bit N (name)".
  std::string where;  //!< "7.0.ebx[16]" or "xcr0[5]".
  SourceVerdict verdict;
  std::string note;
};

//! Each feature the source advertises, checked against the destination map.
struct SourceCheck {
  std::vector<SourceCheckLine> lines;
  int missing = 0;  //!< Lines that block migration.
  //! Set bits of the table's registers that no table row names (such as
  //! OSXSAVE or the hypervisor bit); reported, not checked.
  std::vector<std::string> unchecked_bits;
};

SourceCheck check_source(const CpuidSnapshot& source, const FeatureMap& destination);
std::string source_check_text(const SourceCheck& check);

}  // namespace avx512emu::kvm
