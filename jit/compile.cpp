// Owns the translation driver: prologue/epilogue (guest MXCSR in force while
// FP code runs), dispatch of each IR op to its family lowering, and the
// extraction of position-independent bytes.
#include "compile.h"

#include "emit_context.h"

namespace avx512emu::jit {

bool compile_to_avx2(const ir::Function& f, CompiledCode& out, std::string& error) {
  asmjit::CodeHolder code;
  code.init(asmjit::Environment::host());
  x86::Assembler a(&code);
  EmitContext c(a, f);

  // FP ops run under the guest's MXCSR (rounding, DAZ/FTZ, sticky flags);
  // the host's is saved in the state block and restored on the way out.
  const bool fp = f.uses_fp();
  if (fp) {
    a.vstmxcsr(c.state(state_offset::kHostSave));
    a.vldmxcsr(c.state(state_offset::kMxcsr));
  }
  for (const ir::Inst& i : f.insts) {
    if (lower_core(c, i) || lower_integer(c, i) || lower_float(c, i) || lower_shuffle(c, i) ||
        lower_crypto(c, i) || lower_bitcount(c, i) || lower_approx14(c, i)) {
      c.lowered(i);
      continue;
    }
    error = std::string("no AVX2 lowering for IR op ") + ir::op_name(i.op) + "." +
            ir::elem_name(i.elem);
    return false;
  }
  if (fp) {
    a.vstmxcsr(c.state(state_offset::kMxcsr));
    a.vldmxcsr(c.state(state_offset::kHostSave));
  }
  return finish_translation(c, code, out, error);
}

bool finish_translation(EmitContext& c, asmjit::CodeHolder& code, CompiledCode& out,
                        std::string& error) {
  c.a.vzeroupper();
  c.a.ret();
  out.code_size = c.finish();
  if (code.flatten() != asmjit::kErrorOk || code.resolveUnresolvedLinks() != asmjit::kErrorOk) {
    error = "code layout failed";
    return false;
  }
  // Only RIP-relative references to our own labels exist, so the bytes run
  // unchanged at any address.
  out.bytes.resize(code.codeSize());
  code.relocateToBase(0);
  code.copyFlattenedData(out.bytes.data(), out.bytes.size(), asmjit::CopySectionFlags::kPadTargetBuffer);
  return true;
}

}  // namespace avx512emu::jit
