// Owns the feature map: the feature table, the rules that decide what a
// destination advertises, its output formats, the CPUID-dump parser and the
// source-against-destination check.
#include "kvm/featuremap.h"

#include <cpuid.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>
#include <tuple>

namespace avx512emu::kvm {

// ---------------------------------------------------------------------------
// CPUID snapshots
// ---------------------------------------------------------------------------

const char* cpuid_reg_name(CpuidReg r) {
  static const char* const kNames[] = {"eax", "ebx", "ecx", "edx"};
  return kNames[int(r)];
}

namespace {

const CpuidLeaf* find_leaf(const std::vector<CpuidLeaf>& leaves, uint32_t leaf, uint32_t sub) {
  for (const CpuidLeaf& l : leaves)
    if (l.leaf == leaf && l.subleaf == sub) return &l;
  return nullptr;
}

}  // namespace

uint32_t CpuidSnapshot::reg(uint32_t leaf, uint32_t subleaf, CpuidReg r) const {
  const CpuidLeaf* l = find_leaf(leaves, leaf, subleaf);
  return l ? l->regs[int(r)] : 0;
}

bool CpuidSnapshot::bit(uint32_t leaf, uint32_t subleaf, CpuidReg r, int b) const {
  return (reg(leaf, subleaf, r) >> b) & 1;
}

void CpuidSnapshot::set_bit(uint32_t leaf, uint32_t subleaf, CpuidReg r, int b, bool value) {
  auto it = std::find_if(leaves.begin(), leaves.end(), [&](const CpuidLeaf& l) {
    return l.leaf == leaf && l.subleaf == subleaf;
  });
  if (it == leaves.end()) {
    if (!value) return;
    CpuidLeaf l;
    l.leaf = leaf;
    l.subleaf = subleaf;
    leaves.push_back(l);
    it = leaves.end() - 1;
  }
  if (value)
    it->regs[int(r)] |= 1u << b;
  else
    it->regs[int(r)] &= ~(1u << b);
}

// ---------------------------------------------------------------------------
// The feature table
// ---------------------------------------------------------------------------

namespace {

constexpr uint64_t kXcr0Sse = 0x2, kXcr0Ymm = 0x4;
constexpr uint64_t kNeedsAvx = kXcr0Sse | kXcr0Ymm;
constexpr uint64_t kNeedsAvx512 = kNeedsAvx | kXcr0Avx512;

using R = CpuidReg;
using K = FeatureKind;

}  // namespace

const std::vector<FeatureInfo>& feature_table() {
  static const std::vector<FeatureInfo> kTable = {
      // Leaf 1 EDX / ECX.
      {"fpu", 1, 0, R::kEdx, 0, K::kHost, nullptr, 0},
      {"tsc", 1, 0, R::kEdx, 4, K::kHost, nullptr, 0},
      {"cx8", 1, 0, R::kEdx, 8, K::kHost, nullptr, 0},
      {"cmov", 1, 0, R::kEdx, 15, K::kHost, nullptr, 0},
      {"clflush", 1, 0, R::kEdx, 19, K::kHost, nullptr, 0},
      {"mmx", 1, 0, R::kEdx, 23, K::kHost, nullptr, 0},
      {"fxsr", 1, 0, R::kEdx, 24, K::kHost, nullptr, 0},
      {"sse", 1, 0, R::kEdx, 25, K::kHost, nullptr, 0},
      {"sse2", 1, 0, R::kEdx, 26, K::kHost, nullptr, 0},
      {"pni", 1, 0, R::kEcx, 0, K::kHost, nullptr, 0},  // SSE3
      {"pclmulqdq", 1, 0, R::kEcx, 1, K::kHost, nullptr, 0},
      {"ssse3", 1, 0, R::kEcx, 9, K::kHost, nullptr, 0},
      {"fma", 1, 0, R::kEcx, 12, K::kHost, nullptr, kNeedsAvx},
      {"cx16", 1, 0, R::kEcx, 13, K::kHost, nullptr, 0},
      {"sse4.1", 1, 0, R::kEcx, 19, K::kHost, nullptr, 0},
      {"sse4.2", 1, 0, R::kEcx, 20, K::kHost, nullptr, 0},
      {"movbe", 1, 0, R::kEcx, 22, K::kHost, nullptr, 0},
      {"popcnt", 1, 0, R::kEcx, 23, K::kHost, nullptr, 0},
      {"aes", 1, 0, R::kEcx, 25, K::kHost, nullptr, 0},
      {"xsave", 1, 0, R::kEcx, 26, K::kHost, nullptr, 0},
      {"avx", 1, 0, R::kEcx, 28, K::kHost, nullptr, kNeedsAvx},
      {"f16c", 1, 0, R::kEcx, 29, K::kHost, nullptr, kNeedsAvx},
      {"rdrand", 1, 0, R::kEcx, 30, K::kHost, nullptr, 0},
      // Leaf 7.0 EBX.
      {"fsgsbase", 7, 0, R::kEbx, 0, K::kHost, nullptr, 0},
      {"bmi1", 7, 0, R::kEbx, 3, K::kHost, nullptr, 0},
      {"avx2", 7, 0, R::kEbx, 5, K::kHost, nullptr, kNeedsAvx},
      {"bmi2", 7, 0, R::kEbx, 8, K::kHost, nullptr, 0},
      {"erms", 7, 0, R::kEbx, 9, K::kHost, nullptr, 0},
      {"invpcid", 7, 0, R::kEbx, 10, K::kHost, nullptr, 0},
      {"avx512f", 7, 0, R::kEbx, 16, K::kAvx512Subset, "AVX512F_", kNeedsAvx512},
      {"avx512dq", 7, 0, R::kEbx, 17, K::kAvx512Subset, "AVX512DQ_", kNeedsAvx512},
      {"rdseed", 7, 0, R::kEbx, 18, K::kHost, nullptr, 0},
      {"adx", 7, 0, R::kEbx, 19, K::kHost, nullptr, 0},
      {"smap", 7, 0, R::kEbx, 20, K::kHost, nullptr, 0},
      {"avx512ifma", 7, 0, R::kEbx, 21, K::kAvx512Subset, "AVX512_IFMA_", kNeedsAvx512},
      {"clflushopt", 7, 0, R::kEbx, 23, K::kHost, nullptr, 0},
      {"clwb", 7, 0, R::kEbx, 24, K::kHost, nullptr, 0},
      {"avx512pf", 7, 0, R::kEbx, 26, K::kAvx512Subset, "AVX512PF_", kNeedsAvx512},
      {"avx512er", 7, 0, R::kEbx, 27, K::kAvx512Subset, "AVX512ER_", kNeedsAvx512},
      {"avx512cd", 7, 0, R::kEbx, 28, K::kAvx512Subset, "AVX512CD_", kNeedsAvx512},
      {"sha-ni", 7, 0, R::kEbx, 29, K::kHost, nullptr, 0},
      {"avx512bw", 7, 0, R::kEbx, 30, K::kAvx512Subset, "AVX512BW_", kNeedsAvx512},
      {"avx512vl", 7, 0, R::kEbx, 31, K::kAvx512Vl, nullptr, kNeedsAvx512},
      // Leaf 7.0 ECX.
      {"avx512vbmi", 7, 0, R::kEcx, 1, K::kAvx512Subset, "AVX512_VBMI_", kNeedsAvx512},
      {"umip", 7, 0, R::kEcx, 2, K::kHost, nullptr, 0},
      {"pku", 7, 0, R::kEcx, 3, K::kHost, nullptr, 0},
      {"waitpkg", 7, 0, R::kEcx, 5, K::kHost, nullptr, 0},
      {"avx512vbmi2", 7, 0, R::kEcx, 6, K::kAvx512Subset, "AVX512_VBMI2_", kNeedsAvx512},
      {"gfni", 7, 0, R::kEcx, 8, K::kEvexExtension, "AVX512_GFNI_", 0},
      {"vaes", 7, 0, R::kEcx, 9, K::kEvexExtension, "AVX512_VAES_", kNeedsAvx},
      {"vpclmulqdq", 7, 0, R::kEcx, 10, K::kEvexExtension, "AVX512_VPCLMULQDQ_", kNeedsAvx},
      {"avx512vnni", 7, 0, R::kEcx, 11, K::kAvx512Subset, "AVX512_VNNI_", kNeedsAvx512},
      {"avx512bitalg", 7, 0, R::kEcx, 12, K::kAvx512Subset, "AVX512_BITALG_", kNeedsAvx512},
      {"avx512-vpopcntdq", 7, 0, R::kEcx, 14, K::kAvx512Subset, "AVX512_VPOPCNTDQ_", kNeedsAvx512},
      {"rdpid", 7, 0, R::kEcx, 22, K::kHost, nullptr, 0},
      {"movdiri", 7, 0, R::kEcx, 27, K::kHost, nullptr, 0},
      {"movdir64b", 7, 0, R::kEcx, 28, K::kHost, nullptr, 0},
      // Leaf 7.0 EDX.
      {"avx512-4vnniw", 7, 0, R::kEdx, 2, K::kAvx512Subset, "AVX512_4VNNIW_", kNeedsAvx512},
      {"avx512-4fmaps", 7, 0, R::kEdx, 3, K::kAvx512Subset, "AVX512_4FMAPS_", kNeedsAvx512},
      {"fsrm", 7, 0, R::kEdx, 4, K::kHost, nullptr, 0},
      {"avx512-vp2intersect", 7, 0, R::kEdx, 8, K::kAvx512Subset, "AVX512_VP2INTERSECT_",
       kNeedsAvx512},
      {"serialize", 7, 0, R::kEdx, 14, K::kHost, nullptr, 0},
      {"avx512-fp16", 7, 0, R::kEdx, 23, K::kAvx512Subset, "AVX512_FP16_", kNeedsAvx512},
      // Leaf 7.1 EAX.
      {"avx-vnni", 7, 1, R::kEax, 4, K::kHost, nullptr, kNeedsAvx},
      {"avx512-bf16", 7, 1, R::kEax, 5, K::kAvx512Subset, "AVX512_BF16_", kNeedsAvx512},
      // Leaf 0xD.1 EAX.
      {"xsaveopt", 0xD, 1, R::kEax, 0, K::kHost, nullptr, 0},
      {"xsavec", 0xD, 1, R::kEax, 1, K::kHost, nullptr, 0},
      {"xgetbv1", 0xD, 1, R::kEax, 2, K::kHost, nullptr, 0},
      {"xsaves", 0xD, 1, R::kEax, 3, K::kHost, nullptr, 0},
      // Leaf 0x80000001 ECX / EDX.
      {"lahf_lm", 0x80000001, 0, R::kEcx, 0, K::kHost, nullptr, 0},
      {"abm", 0x80000001, 0, R::kEcx, 5, K::kHost, nullptr, 0},  // LZCNT
      {"sse4a", 0x80000001, 0, R::kEcx, 6, K::kHost, nullptr, 0},
      {"3dnowprefetch", 0x80000001, 0, R::kEcx, 8, K::kHost, nullptr, 0},
      {"syscall", 0x80000001, 0, R::kEdx, 11, K::kHost, nullptr, 0},
      {"nx", 0x80000001, 0, R::kEdx, 20, K::kHost, nullptr, 0},
      {"pdpe1gb", 0x80000001, 0, R::kEdx, 26, K::kHost, nullptr, 0},
      {"rdtscp", 0x80000001, 0, R::kEdx, 27, K::kHost, nullptr, 0},
      {"lm", 0x80000001, 0, R::kEdx, 29, K::kHost, nullptr, 0},
  };
  return kTable;
}

namespace {

// The (leaf, sub-leaf) pairs the table uses, in table order.
std::vector<std::pair<uint32_t, uint32_t>> table_leaves() {
  std::vector<std::pair<uint32_t, uint32_t>> out;
  for (const FeatureInfo& f : feature_table())
    if (std::find(out.begin(), out.end(), std::pair(f.leaf, f.subleaf)) == out.end())
      out.emplace_back(f.leaf, f.subleaf);
  return out;
}

std::string where(const FeatureInfo& f) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "0x%x.%u.%s[%u]", f.leaf, f.subleaf, cpuid_reg_name(f.reg), f.bit);
  return buf;
}

const char* xcr0_bit_name(int bit) {
  switch (bit) {
    case 0:
      return "x87";
    case 1:
      return "SSE";
    case 2:
      return "AVX";
    case 3:
      return "BNDREGS";
    case 4:
      return "BNDCSR";
    case 5:
      return "opmask";
    case 6:
      return "ZMM_Hi256";
    case 7:
      return "Hi16_ZMM";
    case 9:
      return "PKRU";
    case 17:
      return "XTILECFG";
    case 18:
      return "XTILEDATA";
    default:
      return "unnamed";
  }
}

}  // namespace

CpuidSnapshot read_host_cpuid() {
  CpuidSnapshot s;
  const unsigned max_basic = __get_cpuid_max(0, nullptr);
  const unsigned max_ext = __get_cpuid_max(0x80000000, nullptr);
  for (auto [leaf, sub] : table_leaves()) {
    if (leaf < 0x80000000 ? leaf > max_basic : leaf > max_ext) continue;
    CpuidLeaf l;
    l.leaf = leaf;
    l.subleaf = sub;
    __cpuid_count(leaf, sub, l.regs[0], l.regs[1], l.regs[2], l.regs[3]);
    s.leaves.push_back(l);
  }
  // XGETBV is usable only when the OS set CR4.OSXSAVE (CPUID.1:ECX[27]).
  if (s.bit(1, 0, CpuidReg::kEcx, 27)) {
    uint32_t lo, hi;
    asm volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    s.xcr0 = (uint64_t(hi) << 32) | lo;
    s.has_xcr0 = true;
  }
  return s;
}

const char* feature_source_name(FeatureSource s) {
  switch (s) {
    case FeatureSource::kNative:
      return "native";
    case FeatureSource::kEmulated:
      return "emulated";
    case FeatureSource::kHidden:
      return "hidden";
    case FeatureSource::kAbsent:
      return "absent";
  }
  return "?";
}

const FeatureVerdict* FeatureMap::find(const std::string& name) const {
  for (const FeatureVerdict& v : features)
    if (name == v.feature->name) return &v;
  return nullptr;
}

CpuidSnapshot FeatureMap::advertised() const {
  CpuidSnapshot s;
  for (auto [leaf, sub] : table_leaves()) {
    CpuidLeaf l;
    l.leaf = leaf;
    l.subleaf = sub;
    s.leaves.push_back(l);
  }
  for (const FeatureVerdict& v : features)
    if (v.source == FeatureSource::kNative || v.source == FeatureSource::kEmulated)
      s.set_bit(v.feature->leaf, v.feature->subleaf, v.feature->reg, v.feature->bit, true);
  s.xcr0 = xcr0_native | xcr0_emulated;
  s.has_xcr0 = true;
  return s;
}

// ---------------------------------------------------------------------------
// The rules
// ---------------------------------------------------------------------------

namespace {

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The _128 and _256 ISA sets need AVX512VL; _128N ("no VL") sets do not.
bool is_vl_set(const std::string& isa_set) {
  return ends_with(isa_set, "_128") || ends_with(isa_set, "_256");
}

// Coverage of one feature's ISA sets, split into the core and VL parts.
struct SetCoverage {
  std::vector<std::string> core_uncovered, vl_uncovered;
  int core_sets = 0;
  bool core_covered() const { return core_sets > 0 && core_uncovered.empty(); }
  bool vl_covered() const { return vl_uncovered.empty(); }
};

SetCoverage coverage_of(const char* prefix, const CoverageReport& report, CoverageBasis basis) {
  SetCoverage c;
  for (const CoverageRow& row : report.rows) {
    if (row.isa_set.rfind(prefix, 0) != 0) continue;
    const size_t done =
        basis == CoverageBasis::kVerified ? row.verified.size() : row.translated.size();
    const bool covered = !row.known.empty() && done == row.known.size();
    const bool vl = is_vl_set(row.isa_set);
    if (!vl) ++c.core_sets;
    if (!covered) (vl ? c.vl_uncovered : c.core_uncovered).push_back(row.isa_set);
  }
  return c;
}

std::string join(const std::vector<std::string>& v, size_t max_items = 6) {
  std::string s;
  for (size_t i = 0; i < v.size() && i < max_items; ++i) s += (i ? ", " : "") + v[i];
  if (v.size() > max_items) s += ", ... (" + std::to_string(v.size()) + " sets)";
  return s;
}

const char* covered_word(CoverageBasis basis) {
  return basis == CoverageBasis::kVerified ? "translated and verified"
                                           : "translated (NOT verified)";
}

}  // namespace

FeatureMap build_feature_map(const CpuidSnapshot& host, const CoverageReport& coverage,
                             CoverageBasis basis) {
  FeatureMap map;
  map.basis = basis;
  map.verification_ran = coverage.verification_ran;
  map.xcr0_native = host.has_xcr0 ? host.xcr0 : 0;
  const auto& table = feature_table();
  auto native = [&](const FeatureInfo& f) {
    return host.bit(f.leaf, f.subleaf, f.reg, f.bit) &&
           (map.xcr0_native & f.xcr0_needed) == f.xcr0_needed;
  };
  auto native_named = [&](const char* name) {
    for (const FeatureInfo& f : table)
      if (std::string_view(f.name) == name) return native(f);
    return false;
  };
  const bool can_translate =
      native_named("avx2") && native_named("fma") && native_named("bmi1") && native_named("bmi2");
  const FeatureInfo* vl_info = nullptr;
  for (const FeatureInfo& f : table)
    if (f.kind == K::kAvx512Vl) vl_info = &f;
  const bool vl_native = vl_info && native(*vl_info);

  map.features.reserve(table.size());
  for (const FeatureInfo& f : table)
    map.features.push_back({&f, native(f) ? FeatureSource::kNative : FeatureSource::kAbsent, {}});
  auto verdict = [&](const FeatureInfo& f) -> FeatureVerdict& {
    return map.features[size_t(&f - table.data())];
  };
  auto advertised = [](const FeatureVerdict& v) {
    return v.source == FeatureSource::kNative || v.source == FeatureSource::kEmulated;
  };

  // AVX512F first: every other subset needs it.
  std::vector<const FeatureInfo*> subsets;
  for (const FeatureInfo& f : table)
    if (f.kind == K::kAvx512Subset) subsets.push_back(&f);
  std::stable_partition(subsets.begin(), subsets.end(), [](const FeatureInfo* f) {
    return std::string_view(f->name) == "avx512f";
  });
  bool f_advertised = false;
  for (const FeatureInfo* f : subsets) {
    FeatureVerdict& v = verdict(*f);
    const bool is_f = std::string_view(f->name) == "avx512f";
    if (v.source != FeatureSource::kNative) {
      const SetCoverage c = coverage_of(f->isa_prefix, coverage, basis);
      if (!can_translate)
        v.note = "host lacks AVX2/FMA/BMI1/BMI2, which translations need";
      else if (!is_f && !f_advertised)
        v.note = "needs avx512f, which is not advertised";
      else if (!c.core_covered())
        v.note = c.core_sets == 0 ? std::string("no ISA sets known to the decoder")
                                  : "not fully " + std::string(covered_word(basis)) + ": " +
                                        join(c.core_uncovered);
      else if (vl_native && !c.vl_covered())
        v.note = "host has AVX512VL, but not fully " + std::string(covered_word(basis)) + ": " +
                 join(c.vl_uncovered);
      else {
        v.source = FeatureSource::kEmulated;
        v.note = "all ISA sets " + std::string(covered_word(basis));
      }
    }
    if (is_f) f_advertised = advertised(v);
  }

  // AVX512VL: the short forms of everything advertised.
  if (vl_info && !vl_native) {
    FeatureVerdict& v = verdict(*vl_info);
    std::vector<std::string> blocking;
    for (const FeatureInfo* f : subsets)
      if (advertised(verdict(*f))) {
        const SetCoverage c = coverage_of(f->isa_prefix, coverage, basis);
        blocking.insert(blocking.end(), c.vl_uncovered.begin(), c.vl_uncovered.end());
      }
    if (!f_advertised)
      v.note = "needs avx512f, which is not advertised";
    else if (!blocking.empty())
      v.note = "_128/_256 sets of advertised subsets not fully " +
               std::string(covered_word(basis)) + ": " + join(blocking);
    else {
      v.source = FeatureSource::kEmulated;
      v.note = "_128/_256 sets of all advertised subsets " + std::string(covered_word(basis));
    }
  }
  const bool vl_advertised = vl_info && advertised(verdict(*vl_info));
  const bool f_emulated = f_advertised && !native_named("avx512f");

  // Native features with EVEX forms: honest only if those forms run too.
  for (const FeatureInfo& f : table) {
    if (f.kind != K::kEvexExtension || !f_emulated) continue;
    FeatureVerdict& v = verdict(f);
    if (v.source != FeatureSource::kNative) continue;
    const SetCoverage c = coverage_of(f.isa_prefix, coverage, basis);
    if (!c.core_covered() || (vl_advertised && !c.vl_covered())) {
      std::vector<std::string> missing = c.core_uncovered;
      if (vl_advertised)
        missing.insert(missing.end(), c.vl_uncovered.begin(), c.vl_uncovered.end());
      v.source = FeatureSource::kHidden;
      v.note = "avx512f is emulated and the EVEX forms are not " +
               std::string(covered_word(basis)) +
               (missing.empty() ? std::string() : ": " + join(missing));
    } else {
      v.note = "native; EVEX forms emulated";
    }
  }

  if (f_emulated) map.xcr0_emulated = kXcr0Avx512 & ~map.xcr0_native;
  return map;
}

// ---------------------------------------------------------------------------
// Output formats
// ---------------------------------------------------------------------------

namespace {

std::string hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (char ch : s) {
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (static_cast<unsigned char>(ch) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", ch);
      out += buf;
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

constexpr const char* kNotVerifiedWarning =
    "WARNING: --no-verify: features marked emulated are only TRANSLATED, NOT VERIFIED "
    "against a native CPU; advertising them to guests is not known to be correct";

bool any_emulated(const FeatureMap& map) {
  return std::any_of(map.features.begin(), map.features.end(),
                     [](const FeatureVerdict& v) { return v.source == FeatureSource::kEmulated; });
}

}  // namespace

std::string feature_map_text(const FeatureMap& map) {
  std::string out;
  if (map.basis == CoverageBasis::kTranslatedOnly) out += std::string(kNotVerifiedWarning) + "\n\n";
  if (map.basis == CoverageBasis::kVerified && !map.verification_ran)
    out +=
        "note: this host cannot run the differential check (no native AVX-512), so nothing "
        "counts as verified and no feature is emulated\n\n";
  char buf[256];
  std::snprintf(buf, sizeof buf, "%-20s %-20s %-9s %s\n", "feature", "cpuid", "source", "note");
  out += buf;
  for (const FeatureVerdict& v : map.features) {
    std::snprintf(buf, sizeof buf, "%-20s %-20s %-9s ", v.feature->name, where(*v.feature).c_str(),
                  feature_source_name(v.source));
    std::string line = buf + v.note;
    line.erase(line.find_last_not_of(' ') + 1);
    out += line + "\n";
  }
  out += "\nxcr0: native " + hex(map.xcr0_native) + ", emulated " + hex(map.xcr0_emulated);
  for (int bit = 0; bit < 64; ++bit)
    if ((map.xcr0_emulated >> bit) & 1) out += std::string(" ") + xcr0_bit_name(bit);
  out += "\n";
  if (map.xcr0_emulated)
    out +=
        "the VMM must accept XSETBV of the emulated XCR0 bits and report their CPUID leaf 0xD "
        "sizes and offsets to the guest\n";
  return out;
}

std::string feature_map_json(const FeatureMap& map) {
  std::string out = "{\n  \"format\": \"avx512emu-cpuid/1\",\n";
  out += "  \"basis\": " +
         json_string(map.basis == CoverageBasis::kVerified ? "verified"
                                                           : "translated-only, NOT VERIFIED") +
         ",\n";
  if (map.basis == CoverageBasis::kTranslatedOnly)
    out += "  \"warning\": " + json_string(kNotVerifiedWarning) + ",\n";
  out += "  \"cpuid\": [\n";
  const CpuidSnapshot adv = map.advertised();
  for (size_t i = 0; i < adv.leaves.size(); ++i) {
    const CpuidLeaf& l = adv.leaves[i];
    out += "    {\"leaf\": \"" + hex(l.leaf) + "\", \"subleaf\": " + std::to_string(l.subleaf);
    for (int r = 0; r < 4; ++r)
      out += std::string(", \"") + cpuid_reg_name(CpuidReg(r)) + "\": \"" + hex(l.regs[r]) + "\"";
    out += i + 1 < adv.leaves.size() ? "},\n" : "}\n";
  }
  out += "  ],\n  \"xcr0\": \"" + hex(adv.xcr0) + "\",\n  \"xcr0_bits\": [";
  bool first = true;
  for (int bit = 0; bit < 64; ++bit) {
    const bool nat = (map.xcr0_native >> bit) & 1, emu = (map.xcr0_emulated >> bit) & 1;
    if (!nat && !emu) continue;
    out += std::string(first ? "\n" : ",\n") + "    {\"bit\": " + std::to_string(bit) +
           ", \"name\": " + json_string(xcr0_bit_name(bit)) +
           ", \"source\": " + json_string(nat ? "native" : "emulated") + "}";
    first = false;
  }
  out += "\n  ],\n  \"features\": [\n";
  for (size_t i = 0; i < map.features.size(); ++i) {
    const FeatureVerdict& v = map.features[i];
    const FeatureInfo& f = *v.feature;
    out += "    {\"name\": " + json_string(f.name) + ", \"leaf\": \"" + hex(f.leaf) +
           "\", \"subleaf\": " + std::to_string(f.subleaf) + ", \"register\": \"" +
           cpuid_reg_name(f.reg) + "\", \"bit\": " + std::to_string(f.bit) +
           ", \"source\": " + json_string(feature_source_name(v.source));
    if (!v.note.empty()) out += ", \"note\": " + json_string(v.note);
    out += i + 1 < map.features.size() ? "},\n" : "}\n";
  }
  return out + "  ]\n}\n";
}

std::string feature_map_qemu(const FeatureMap& map) {
  // "host" passes the native features through; only the differences from
  // the host CPU need spelling out.
  std::string out = "-cpu host";
  for (const FeatureVerdict& v : map.features)
    if (v.source == FeatureSource::kEmulated) out += std::string(",+") + v.feature->name;
  for (const FeatureVerdict& v : map.features)
    if (v.source == FeatureSource::kHidden) out += std::string(",-") + v.feature->name;
  return out + "\n";
}

std::string feature_map_libvirt(const FeatureMap& map) {
  std::string out;
  if (map.basis == CoverageBasis::kTranslatedOnly)
    out += std::string("<!-- ") + kNotVerifiedWarning + " -->\n";
  out += "<cpu mode='host-passthrough' check='none' migratable='on'>\n";
  if (any_emulated(map))
    out += "  <!-- policy='force': provided by avx512emu, not by the host CPU -->\n";
  for (const FeatureVerdict& v : map.features)
    if (v.source == FeatureSource::kEmulated)
      out += std::string("  <feature policy='force' name='") + v.feature->name + "'/>\n";
  for (const FeatureVerdict& v : map.features)
    if (v.source == FeatureSource::kHidden)
      out += std::string("  <feature policy='disable' name='") + v.feature->name + "'/>\n";
  return out + "</cpu>\n";
}

// ---------------------------------------------------------------------------
// A small JSON reader for CPUID dumps
// ---------------------------------------------------------------------------

namespace {

// A parsed JSON value. Numbers keep their text: the dump needs exact 32- and
// 64-bit integers, which a double cannot hold in general.
struct JsonValue {
  enum class Type { kNull, kBool, kNumber, kString, kArray, kObject } type = Type::kNull;
  bool boolean = false;
  std::string text;               // string contents or number literal
  std::vector<JsonValue> items;   // array elements, or object values
  std::vector<std::string> keys;  // object keys, parallel to items

  const JsonValue* member(std::string_view key) const {
    for (size_t i = 0; i < keys.size(); ++i)
      if (keys[i] == key) return &items[i];
    return nullptr;
  }
};

// Recursive descent over RFC 8259 JSON. Nesting is bounded so that hostile
// input ("[[[[...") cannot exhaust the stack.
class JsonReader {
 public:
  explicit JsonReader(std::string_view text) : s_(text) {}

  bool parse(JsonValue& out, std::string& error) {
    skip_space();
    if (!value(out, 0)) {
      error = error_ + " at byte " + std::to_string(pos_);
      return false;
    }
    skip_space();
    if (pos_ != s_.size()) {
      error = "unexpected text after the JSON value at byte " + std::to_string(pos_);
      return false;
    }
    return true;
  }

 private:
  static constexpr int kMaxDepth = 64;

  bool fail(const char* what) {
    error_ = what;
    return false;
  }
  bool at_end() const { return pos_ >= s_.size(); }
  void skip_space() {
    while (!at_end() &&
           (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r'))
      ++pos_;
  }
  bool literal(std::string_view word) {
    if (s_.substr(pos_, word.size()) != word) return fail("invalid literal");
    pos_ += word.size();
    return true;
  }

  bool value(JsonValue& v, int depth) {
    if (depth > kMaxDepth) return fail("nesting deeper than 64 levels");
    if (at_end()) return fail("unexpected end of input");
    switch (s_[pos_]) {
      case '{':
        return object(v, depth);
      case '[':
        return array(v, depth);
      case '"':
        v.type = JsonValue::Type::kString;
        return string(v.text);
      case 't':
        v.type = JsonValue::Type::kBool;
        v.boolean = true;
        return literal("true");
      case 'f':
        v.type = JsonValue::Type::kBool;
        return literal("false");
      case 'n':
        v.type = JsonValue::Type::kNull;
        return literal("null");
      default:
        v.type = JsonValue::Type::kNumber;
        return number(v.text);
    }
  }

  bool object(JsonValue& v, int depth) {
    v.type = JsonValue::Type::kObject;
    ++pos_;  // '{'
    skip_space();
    if (!at_end() && s_[pos_] == '}') return ++pos_, true;
    for (;;) {
      skip_space();
      if (at_end() || s_[pos_] != '"') return fail("expected a string key");
      std::string key;
      if (!string(key)) return false;
      skip_space();
      if (at_end() || s_[pos_] != ':') return fail("expected ':'");
      ++pos_;
      skip_space();
      JsonValue item;
      if (!value(item, depth + 1)) return false;
      v.keys.push_back(std::move(key));
      v.items.push_back(std::move(item));
      skip_space();
      if (at_end()) return fail("unexpected end of input in an object");
      if (s_[pos_] == '}') return ++pos_, true;
      if (s_[pos_] != ',') return fail("expected ',' or '}'");
      ++pos_;
    }
  }

  bool array(JsonValue& v, int depth) {
    v.type = JsonValue::Type::kArray;
    ++pos_;  // '['
    skip_space();
    if (!at_end() && s_[pos_] == ']') return ++pos_, true;
    for (;;) {
      skip_space();
      JsonValue item;
      if (!value(item, depth + 1)) return false;
      v.items.push_back(std::move(item));
      skip_space();
      if (at_end()) return fail("unexpected end of input in an array");
      if (s_[pos_] == ']') return ++pos_, true;
      if (s_[pos_] != ',') return fail("expected ',' or ']'");
      ++pos_;
    }
  }

  static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }

  bool string(std::string& out) {
    ++pos_;  // '"'
    for (;;) {
      if (at_end()) return fail("unterminated string");
      const char c = s_[pos_++];
      if (c == '"') return true;
      if (static_cast<unsigned char>(c) < 0x20) return fail("control character in a string");
      if (c != '\\') {
        out += c;
        continue;
      }
      if (at_end()) return fail("unterminated escape");
      const char e = s_[pos_++];
      switch (e) {
        case '"':
        case '\\':
        case '/':
          out += e;
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          if (s_.size() - pos_ < 4) return fail("truncated \\u escape");
          unsigned cp = 0;
          for (int i = 0; i < 4; ++i) {
            const int d = hex_digit(s_[pos_++]);
            if (d < 0) return fail("invalid \\u escape");
            cp = cp * 16 + unsigned(d);
          }
          // Keys and values of a dump are ASCII; other code points are kept
          // as UTF-8 without pairing surrogates, which nothing here reads.
          if (cp < 0x80) {
            out += char(cp);
          } else if (cp < 0x800) {
            out += char(0xC0 | (cp >> 6));
            out += char(0x80 | (cp & 0x3F));
          } else {
            out += char(0xE0 | (cp >> 12));
            out += char(0x80 | ((cp >> 6) & 0x3F));
            out += char(0x80 | (cp & 0x3F));
          }
          break;
        }
        default:
          return fail("invalid escape");
      }
    }
  }

  bool digits() {
    const size_t start = pos_;
    while (!at_end() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_;
    return pos_ > start;
  }

  bool number(std::string& out) {
    const size_t start = pos_;
    if (!at_end() && s_[pos_] == '-') ++pos_;
    if (!at_end() && s_[pos_] == '0')
      ++pos_;
    else if (!digits())
      return fail("invalid value");
    if (!at_end() && s_[pos_] == '.') {
      ++pos_;
      if (!digits()) return fail("invalid number");
    }
    if (!at_end() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      ++pos_;
      if (!at_end() && (s_[pos_] == '+' || s_[pos_] == '-')) ++pos_;
      if (!digits()) return fail("invalid number");
    }
    out = std::string(s_.substr(start, pos_ - start));
    return true;
  }

  std::string_view s_;
  size_t pos_ = 0;
  std::string error_;
};

// An unsigned integer of at most `max`, given as a JSON integer or as a
// string holding a decimal or 0x-prefixed hex value.
bool json_uint(const JsonValue& v, uint64_t max, uint64_t& out) {
  if (v.type != JsonValue::Type::kNumber && v.type != JsonValue::Type::kString) return false;
  std::string_view t = v.text;
  int base = 10;
  if (v.type == JsonValue::Type::kString && t.size() > 2 && t[0] == '0' &&
      (t[1] == 'x' || t[1] == 'X')) {
    base = 16;
    t.remove_prefix(2);
  }
  if (t.empty()) return false;
  uint64_t value = 0;
  for (char c : t) {
    int d;
    if (c >= '0' && c <= '9')
      d = c - '0';
    else if (base == 16 && c >= 'a' && c <= 'f')
      d = c - 'a' + 10;
    else if (base == 16 && c >= 'A' && c <= 'F')
      d = c - 'A' + 10;
    else
      return false;
    if (value > (max - uint64_t(d)) / uint64_t(base)) return false;
    value = value * uint64_t(base) + uint64_t(d);
  }
  out = value;
  return true;
}

}  // namespace

bool parse_cpuid_dump(std::string_view json, CpuidSnapshot& out, std::string& error) {
  JsonValue root;
  std::string syntax;
  if (!JsonReader(json).parse(root, syntax)) {
    error = "not valid JSON: " + syntax;
    return false;
  }
  if (root.type != JsonValue::Type::kObject) {
    error = "a CPUID dump must be a JSON object with a \"cpuid\" array";
    return false;
  }
  const JsonValue* leaves = root.member("cpuid");
  if (!leaves || leaves->type != JsonValue::Type::kArray) {
    error = "missing \"cpuid\" array (see 'avx512emu featuremap --help' for the format)";
    return false;
  }
  CpuidSnapshot snap;
  for (size_t i = 0; i < leaves->items.size(); ++i) {
    const JsonValue& e = leaves->items[i];
    const std::string at = "cpuid[" + std::to_string(i) + "]";
    if (e.type != JsonValue::Type::kObject) {
      error = at + " is not an object";
      return false;
    }
    CpuidLeaf l;
    uint64_t v = 0;
    const JsonValue* leaf = e.member("leaf");
    if (!leaf || !json_uint(*leaf, 0xFFFFFFFFu, v)) {
      error = at + ": \"leaf\" missing or not a 32-bit unsigned integer";
      return false;
    }
    l.leaf = uint32_t(v);
    if (const JsonValue* sub = e.member("subleaf")) {
      if (!json_uint(*sub, 0xFFFFFFFFu, v)) {
        error = at + ": \"subleaf\" is not a 32-bit unsigned integer";
        return false;
      }
      l.subleaf = uint32_t(v);
    }
    for (int r = 0; r < 4; ++r) {
      const JsonValue* reg = e.member(cpuid_reg_name(CpuidReg(r)));
      if (!reg) continue;
      if (!json_uint(*reg, 0xFFFFFFFFu, v)) {
        error = at + ": \"" + cpuid_reg_name(CpuidReg(r)) + "\" is not a 32-bit unsigned integer";
        return false;
      }
      l.regs[r] = uint32_t(v);
    }
    if (find_leaf(snap.leaves, l.leaf, l.subleaf)) {
      error = at + ": leaf " + hex(l.leaf) + " sub-leaf " + std::to_string(l.subleaf) +
              " appears twice";
      return false;
    }
    snap.leaves.push_back(l);
  }
  if (const JsonValue* xcr0 = root.member("xcr0")) {
    uint64_t v = 0;
    if (!json_uint(*xcr0, ~uint64_t(0), v)) {
      error = "\"xcr0\" is not a 64-bit unsigned integer";
      return false;
    }
    snap.xcr0 = v;
    snap.has_xcr0 = true;
  }
  out = std::move(snap);
  return true;
}

// ---------------------------------------------------------------------------
// Checking a source against the destination
// ---------------------------------------------------------------------------

SourceCheck check_source(const CpuidSnapshot& source, const FeatureMap& destination) {
  SourceCheck check;
  std::map<std::tuple<uint32_t, uint32_t, int>, uint32_t> named_bits;
  for (const FeatureVerdict& v : destination.features) {
    const FeatureInfo& f = *v.feature;
    named_bits[{f.leaf, f.subleaf, int(f.reg)}] |= 1u << f.bit;
    if (!source.bit(f.leaf, f.subleaf, f.reg, f.bit)) continue;
    SourceCheckLine line{f.name, where(f), SourceVerdict::kMissing, v.note};
    if (v.source == FeatureSource::kNative)
      line.verdict = SourceVerdict::kNative;
    else if (v.source == FeatureSource::kEmulated)
      line.verdict = SourceVerdict::kEmulated;
    else if (v.source == FeatureSource::kHidden)
      line.note = "the host has it but hides it: " + v.note;
    check.lines.push_back(std::move(line));
  }
  for (const CpuidLeaf& l : source.leaves)
    for (int r = 0; r < 4; ++r) {
      auto it = named_bits.find({l.leaf, l.subleaf, r});
      if (it == named_bits.end()) continue;  // a leaf the table does not read
      const uint32_t unnamed = l.regs[r] & ~it->second;
      for (int bit = 0; bit < 32; ++bit)
        if ((unnamed >> bit) & 1) {
          char buf[48];
          std::snprintf(buf, sizeof buf, "0x%x.%u.%s[%d]", l.leaf, l.subleaf,
                        cpuid_reg_name(CpuidReg(r)), bit);
          check.unchecked_bits.push_back(buf);
        }
    }
  if (source.has_xcr0)
    for (int bit = 0; bit < 64; ++bit) {
      if (!((source.xcr0 >> bit) & 1)) continue;
      SourceCheckLine line{std::string("xcr0 ") + xcr0_bit_name(bit),
                           "xcr0[" + std::to_string(bit) + "]",
                           SourceVerdict::kMissing,
                           {}};
      if ((destination.xcr0_native >> bit) & 1)
        line.verdict = SourceVerdict::kNative;
      else if ((destination.xcr0_emulated >> bit) & 1)
        line.verdict = SourceVerdict::kEmulated;
      else
        line.note = "the destination cannot hold this XSAVE state";
      check.lines.push_back(std::move(line));
    }
  for (const SourceCheckLine& line : check.lines)
    if (line.verdict == SourceVerdict::kMissing) ++check.missing;
  return check;
}

std::string source_check_text(const SourceCheck& check) {
  std::string out;
  char buf[256];
  for (const SourceCheckLine& line : check.lines) {
    const char* verdict = line.verdict == SourceVerdict::kNative     ? "native"
                          : line.verdict == SourceVerdict::kEmulated ? "emulated"
                                                                     : "missing (blocks migration)";
    std::snprintf(buf, sizeof buf, "%-20s %-20s %s", line.name.c_str(), line.where.c_str(),
                  verdict);
    out += buf;
    if (line.verdict != SourceVerdict::kNative && !line.note.empty()) out += ": " + line.note;
    out += "\n";
  }
  if (!check.unchecked_bits.empty())
    out += "\nnot checked (set in the source, not feature bits this map knows): " +
           join(check.unchecked_bits, check.unchecked_bits.size()) + "\n";
  out += check.missing ? "\nmigration blocked: " + std::to_string(check.missing) +
                             " feature(s) the destination can neither run nor emulate\n"
                       : "\nmigration possible: every checked feature is native or emulated\n";
  return out;
}

void drop_native_avx512(CpuidSnapshot& host) {
  for (const FeatureInfo& f : feature_table())
    if (f.kind == FeatureKind::kAvx512Subset || f.kind == FeatureKind::kAvx512Vl)
      host.set_bit(f.leaf, f.subleaf, f.reg, f.bit, false);
  host.xcr0 &= ~kXcr0Avx512;
}

}  // namespace avx512emu::kvm
