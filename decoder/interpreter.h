// Owns the reference interpreter's public entry and the frame that the
// per-family executors (interp_*.cpp) share. Plain C++: the oracle on hosts
// without AVX-512 and the cross-check of the JIT everywhere.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>

#include "cpu_state.h"
#include "ir.h"

namespace avx512emu {

//! Executes `f` against `state` and the process's memory. Returns false, with
//! nothing written, when an op has no interpreter implementation.
bool interpret_ir(const ir::Function& f, CpuState& state, std::string* error = nullptr);

namespace interp {

//! Values of one IR function: each slot holds up to 512 bits.
struct Frame {
  Frame(const ir::Function& f, CpuState& s) : function(&f), state(s) {}
  const ir::Function* function;  //!< for value widths the instructions don't carry
  CpuState& state;
  alignas(64) uint8_t values[kScratchSlots][64] = {};

  template <class T>
  T get(ir::ValueId v, int i) const {
    T x;
    std::memcpy(&x, values[v] + i * sizeof(T), sizeof(T));
    return x;
  }
  template <class T>
  void set(ir::ValueId v, int i, T x) {
    std::memcpy(values[v] + i * sizeof(T), &x, sizeof(T));
  }
  uint64_t u64(ir::ValueId v) const { return get<uint64_t>(v, 0); }
  void set_u64(ir::ValueId v, uint64_t x) { set<uint64_t>(v, 0, x); }
  uint8_t* bytes(ir::ValueId v) { return values[v]; }
  const uint8_t* bytes(ir::ValueId v) const { return values[v]; }
};

//! Number of elements of `inst.elem` in `inst.bits`.
inline int elem_count(const ir::Inst& i) { return i.bits / 8 / ir::elem_bytes(i.elem); }
//! The optional trailing active-element mask of FP ops; all ones if absent.
inline uint64_t active_mask(const ir::Inst& i, const Frame& fr, int fixed_operands) {
  return i.nsrc > fixed_operands ? fr.u64(i.src[fixed_operands]) : ~0ull;
}

// Family executors: each returns false when `inst.op` is not one of its ops.
bool exec_integer(const ir::Inst& inst, Frame& fr);  // interp_int.cpp
bool exec_float(const ir::Inst& inst, Frame& fr);    // interp_fp.cpp
bool exec_shuffle(const ir::Inst& inst, Frame& fr);  // interp_shuffle.cpp
bool exec_crypto(const ir::Inst& inst, Frame& fr);   // interp_crypto.cpp

}  // namespace interp
}  // namespace avx512emu
