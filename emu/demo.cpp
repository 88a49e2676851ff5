// Owns `avx512emu demo` (see demo.h).
#include "demo.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

#include "avx512emu.h"
#include "decoded_insn.h"
#include "selfcheck/native_oracle.h"

namespace avx512emu {
namespace {

// The bundled kernel, one 16-float block per pass, as a compiler would emit
// it for: y[i] = x[i] > 0 ? a * x[i] + y[i] : y[i], while folding the
// results into a checksum. rdx -> a, rsi -> x block, rdi -> y block.
struct DemoInsn {
  uint8_t bytes[8];
  uint8_t length;
};
constexpr DemoInsn kKernel[] = {
    {{0x62, 0xf2, 0x7d, 0x48, 0x18, 0x02}, 6},        // vbroadcastss zmm0, [rdx]
    {{0x62, 0xf1, 0x7c, 0x48, 0x10, 0x0e}, 6},        // vmovups zmm1, [rsi]
    {{0x62, 0xf1, 0x7c, 0x48, 0x10, 0x17}, 6},        // vmovups zmm2, [rdi]
    {{0x62, 0xf1, 0x74, 0x48, 0xc2, 0xcb, 0x0e}, 7},  // vcmpgtps k1, zmm1, zmm3
    {{0x62, 0xf2, 0x75, 0x49, 0xb8, 0xd0}, 6},        // vfmadd231ps zmm2{k1}, zmm1, zmm0
    {{0x62, 0xf3, 0x6d, 0x48, 0x25, 0xe1, 0x96}, 7},  // vpternlogd zmm4, zmm2, zmm1, 0x96
    {{0x62, 0xf1, 0x55, 0x48, 0xfe, 0xec}, 6},        // vpaddd zmm5, zmm5, zmm4
    {{0x62, 0xf1, 0x7c, 0x48, 0x11, 0x17}, 6},        // vmovups [rdi], zmm2
    {{0xc5, 0xf8, 0x93, 0xc1}, 4},                    // kmovw eax, k1
};
constexpr int kKernelLength = int(sizeof(kKernel) / sizeof(kKernel[0]));
constexpr int kRdx = 2, kRsi = 6, kRdi = 7;

//! Inputs with positive, negative and zero x so the mask matters.
void fill_inputs(std::vector<float>& x, std::vector<float>& y) {
  for (size_t i = 0; i < x.size(); ++i) {
    x[i] = float(int(i * 37 % 101) - 50) * 0.25f;
    y[i] = float(int(i * 11 % 17)) * 0.5f - 2.0f;
  }
}

CpuState initial_state() {
  CpuState s;
  std::memset(&s, 0, sizeof s);
  s.mxcsr = 0x1f80;
  s.rflags = 0x202;
  return s;
}

//! Runs the kernel over all blocks with `step` executing one instruction.
template <class Step>
void run_kernel(const float* a, const float* x, float* y, int elements, CpuState& s, Step step) {
  s.gpr[kRdx] = uint64_t(a);
  for (int block = 0; block < elements; block += 16) {
    s.gpr[kRsi] = uint64_t(x + block);
    s.gpr[kRdi] = uint64_t(y + block);
    for (int i = 0; i < kKernelLength; ++i) step(i, s);
  }
}

//! Compares everything the kernel may touch, ignoring rip (each leg counts
//! it differently), the scratch area and rdi, which points into each leg's
//! own copy of y.
bool same_state(const CpuState& a, const CpuState& b, std::string& where) {
  for (int r = 0; r < 16; ++r)
    if (r != kRdi && a.gpr[r] != b.gpr[r]) return where = "gpr " + std::to_string(r), false;
  for (int r = 0; r < 32; ++r)
    if (std::memcmp(a.zmm[r], b.zmm[r], 64)) return where = "zmm" + std::to_string(r), false;
  for (int r = 0; r < 8; ++r)
    if (a.k[r] != b.k[r]) return where = "k" + std::to_string(r), false;
  if (a.mxcsr != b.mxcsr) return where = "mxcsr", false;
  return true;
}

}  // namespace

DemoResult run_demo(int elements) {
  DemoResult out;
  char line[256];
  std::string& r = out.report;
  r += "avx512emu demo: masked SAXPY, y = x > 0 ? a*x + y : y, with a checksum\n";
  std::snprintf(line, sizeof line, "  %d floats, %d blocks of 16, %d instructions per block\n\n",
                elements, elements / 16, kKernelLength);
  r += line;

  // Translate every instruction once; the cache serves the later blocks.
  const Translation* translations[kKernelLength];
  size_t code_bytes = 0;
  for (int i = 0; i < kKernelLength; ++i) {
    const TranslateResult t = translate(kKernel[i].bytes, kKernel[i].length);
    if (!t.translation) {
      out.error = "translation failed: " + t.message;
      return out;
    }
    translations[i] = t.translation;
    code_bytes += t.translation->code_size;
    DecodedInsn insn;
    decode(kKernel[i].bytes, kKernel[i].length, insn);
    std::snprintf(line, sizeof line, "  %-44s %4u bytes of AVX2 code\n", format_insn(insn).c_str(),
                  unsigned(t.translation->code_size));
    r += line;
  }

  const float a = 1.5f;
  const size_t n = size_t(elements);
  std::vector<float> x(n), y0(n);
  fill_inputs(x, y0);

  // Leg 1: the translations.
  std::vector<float> y_jit = y0;
  CpuState jit_state = initial_state();
  run_kernel(&a, x.data(), y_jit.data(), elements, jit_state,
             [&](int i, CpuState& s) { execute(*translations[i], s); });

  // Leg 2: plain C++, independent of the emulator and of the CPU.
  for (size_t i = 0; i < n; ++i) {
    const float want = x[i] > 0 ? std::fma(a, x[i], y0[i]) : y0[i];
    if (std::memcmp(&want, &y_jit[i], 4)) {
      std::snprintf(line, sizeof line, "y[%zu] is %a, plain C++ computes %a", i, double(y_jit[i]),
                    double(want));
      out.error = line;
      return out;
    }
  }
  r += "\n  translated result equals the plain C++ computation: yes\n";

  // Leg 3: the same bytes on this CPU, when it has AVX-512.
  if (selfcheck::host_runs_avx512()) {
    selfcheck::NativeStub stubs[kKernelLength];
    for (int i = 0; i < kKernelLength; ++i)
      if (!stubs[i].build(kKernel[i].bytes, kKernel[i].length, &out.error)) return out;
    std::vector<float> y_native = y0;
    CpuState native_state = initial_state();
    run_kernel(&a, x.data(), y_native.data(), elements, native_state,
               [&](int i, CpuState& s) { stubs[i].run(s); });
    std::string where;
    if (y_native != y_jit || !same_state(native_state, jit_state, where)) {
      out.error = "translated run differs from native execution" +
                  (where.empty() ? std::string(" in y") : " in " + where);
      return out;
    }
    r += "  translated state and memory equal native AVX-512 execution: yes\n";
  } else {
    r += "  this CPU has no AVX-512: native comparison skipped\n";
  }
  std::snprintf(line, sizeof line,
                "  checksum (zmm5 dword 0): 0x%08x, active lanes in last block: %u\n",
                unsigned(jit_state.zmm[5][0] | jit_state.zmm[5][1] << 8 |
                         jit_state.zmm[5][2] << 16 | unsigned(jit_state.zmm[5][3]) << 24),
                unsigned(__builtin_popcountll(jit_state.gpr[0])));
  r += line;
  out.ok = true;
  return out;
}

}  // namespace avx512emu
