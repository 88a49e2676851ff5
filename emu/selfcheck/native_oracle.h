// Owns native execution of one instruction against a CpuState (the oracle of
// the differential self-check) and the fault trap that turns a crashing leg
// into a report instead of a dead process.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "cpu_state.h"

namespace avx512emu::selfcheck {

//! RFLAGS bits run_native() loads from the state: the arithmetic flags.
//! Bit 1 and IF always read as set; TF/DF/AC and the rest are never loaded,
//! because they would trap or change how the host code around the
//! instruction behaves.
inline constexpr uint64_t kNativeFlagsLoaded = kFlagCF | kFlagPF | kFlagAF | kFlagZF | kFlagSF | kFlagOF;

//! A stub that runs one instruction natively: it loads the whole CpuState
//! (zmm0-31, k0-7, MXCSR, RFLAGS, every GPR except rsp) into the real
//! registers, executes the instruction bytes, stores everything back and
//! restores the host's callee-saved registers and MXCSR. rsp is never
//! loaded (it stays the host stack), so the instruction must not use it;
//! state.gpr[4] is left unchanged. state.rip advances by the instruction
//! length, as the emulator's does. Memory operands address real memory:
//! the caller makes them valid (a fault is a real fault, see run_guarded()).
class NativeStub {
 public:
  NativeStub() = default;
  ~NativeStub();
  NativeStub(NativeStub&& other) noexcept;
  NativeStub& operator=(NativeStub&& other) noexcept;
  NativeStub(const NativeStub&) = delete;
  NativeStub& operator=(const NativeStub&) = delete;

  //! Assembles the stub around `insn` (its first `len` bytes, 1..15).
  //! Returns false with `error` set when AsmJit cannot build it.
  bool build(const uint8_t* insn, size_t len, std::string* error = nullptr);
  bool ready() const { return fn_ != nullptr; }
  //! Executes the instruction against `state`. build() must have succeeded.
  void run(CpuState& state) const;

 private:
  void release();
  void* fn_ = nullptr;
  uint8_t length_ = 0;
};

//! True when this CPU and OS run AVX-512F/BW/DQ/VL natively, so native
//! execution can serve as the oracle. Rows of other subsets (VBMI, VBMI2 ...)
//! need their own CPUID bit too; a missing one shows up as a SIGILL fault in
//! that mnemonic's report. AVX512EMU_ASSUME_NO_AVX512=1 makes it false.
bool host_runs_avx512();

//! One-shot convenience: builds a stub, runs it once, releases it. Returns
//! false if the stub could not be built.
bool run_native(const uint8_t* insn, size_t len, CpuState& state);

//! What stopped a guarded call.
struct Fault {
  int signal = 0;         //!< SIGSEGV, SIGBUS, SIGILL or SIGFPE; 0 when none.
  uint64_t address = 0;   //!< si_addr: faulting data address (SIGSEGV/SIGBUS) or code address.
  std::string describe() const;  //!< "SIGSEGV at 0x..." etc.
};

//! Calls fn(ctx) with SIGSEGV, SIGBUS, SIGILL and SIGFPE trapped: a fault
//! unwinds back here (siglongjmp) and is reported in `fault` instead of
//! killing the process. The host MXCSR is restored after a fault. Handlers
//! are installed for the call only (or for the life of a FaultTrapScope).
//! Memory fn() allocated before faulting is leaked; that is acceptable for a
//! test harness. Returns true when fn returned normally.
bool run_guarded(void (*fn)(void*), void* ctx, Fault& fault);

//! Keeps the fault handlers installed across many run_guarded() calls
//! (saving two sigaction calls per signal per run); the previous handlers
//! come back when the last scope of the process ends. Scopes and guarded
//! calls may run on several threads at once: each thread's faults unwind to
//! its own run_guarded(). A fault outside any guarded call reinstates the
//! previous handler and re-faults into it.
class FaultTrapScope {
 public:
  FaultTrapScope();
  ~FaultTrapScope();
  FaultTrapScope(const FaultTrapScope&) = delete;
  FaultTrapScope& operator=(const FaultTrapScope&) = delete;
};

}  // namespace avx512emu::selfcheck
