// Owns native execution of one instruction against a CpuState (AsmJit stub
// that swaps the whole architectural state in and out) and the fault trap.
#include "selfcheck/native_oracle.h"

#include <asmjit/x86.h>
#include <setjmp.h>
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace avx512emu::selfcheck {
namespace {

// Process-wide and never destroyed: stubs may be released from static
// destructors of other objects, after a function-local object would be gone.
asmjit::JitRuntime& runtime() {
  static asmjit::JitRuntime* rt = new asmjit::JitRuntime();
  return *rt;
}

constexpr int kRsp = 4, kRdi = 7;

// Emits the stub. The state pointer cannot stay in a register (every GPR
// but rsp is guest-owned while the instruction runs) and the JIT memory is
// not guaranteed writable, so it lives on the host stack: rsp is the one
// register the guest never gets.
//
// Stack while the guest state is loaded: [rsp+0] host MXCSR, [rsp+8] state.
void emit_stub(asmjit::x86::Assembler& a, const uint8_t* insn, size_t len) {
  using namespace asmjit::x86;
  namespace off = avx512emu::state_offset;

  // Prologue: SysV callee-saved registers; every vector and k register is
  // caller-saved, so those need no saving.
  for (const Gp& r : {rbx, rbp, r12, r13, r14, r15}) a.push(r);
  a.sub(rsp, 16);
  a.stmxcsr(dword_ptr(rsp, 0));
  a.mov(qword_ptr(rsp, 8), rdi);

  // Load the guest state: vectors and masks first (they need the state
  // pointer in rdi), then MXCSR and RFLAGS, then the GPRs with rdi last.
  for (int i = 0; i < 32; ++i) a.vmovdqu64(zmm(i), zmmword_ptr(rdi, off::zmm(i)));
  for (int i = 0; i < 8; ++i) a.kmovq(k(i), qword_ptr(rdi, off::k(i)));
  a.ldmxcsr(dword_ptr(rdi, off::kMxcsr));
  a.mov(rax, qword_ptr(rdi, off::kRflags));
  a.and_(rax, int32_t(kNativeFlagsLoaded));
  a.or_(rax, 0x202);
  a.push(rax);
  a.popfq();
  for (int i = 0; i < 16; ++i)
    if (i != kRsp && i != kRdi) a.mov(gpq(uint32_t(i)), qword_ptr(rdi, off::gpr(i)));
  a.mov(rdi, qword_ptr(rdi, off::gpr(kRdi)));

  a.embed(insn, len);

  // Store: flags before anything can change them, then free rdi to point
  // at the state again. Stack now: [rsp] guest rdi, [rsp+8] RFLAGS,
  // [rsp+16] host MXCSR, [rsp+24] state pointer.
  a.pushfq();
  a.push(rdi);
  a.mov(rdi, qword_ptr(rsp, 24));
  for (int i = 0; i < 16; ++i)
    if (i != kRsp && i != kRdi) a.mov(qword_ptr(rdi, off::gpr(i)), gpq(uint32_t(i)));
  a.pop(rax);
  a.mov(qword_ptr(rdi, off::gpr(kRdi)), rax);
  a.pop(rax);
  a.mov(qword_ptr(rdi, off::kRflags), rax);
  for (int i = 0; i < 32; ++i) a.vmovdqu64(zmmword_ptr(rdi, off::zmm(i)), zmm(i));
  for (int i = 0; i < 8; ++i) a.kmovq(qword_ptr(rdi, off::k(i)), k(i));
  a.stmxcsr(dword_ptr(rdi, off::kMxcsr));

  // Epilogue: host MXCSR and callee-saved registers; vzeroupper because
  // the host code after us may be SSE.
  a.ldmxcsr(dword_ptr(rsp, 0));
  a.add(rsp, 16);
  for (const Gp& r : {r15, r14, r13, r12, rbp, rbx}) a.pop(r);
  a.vzeroupper();
  a.ret();
}

// ---- Fault trap -----------------------------------------------------------

constexpr int kTrappedSignals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE};
constexpr int kTrappedCount = int(sizeof kTrappedSignals / sizeof kTrappedSignals[0]);

// Dispositions are process-wide, so the handlers go in with the first
// scope of any thread and come out with the last.
std::mutex g_scope_mutex;
struct sigaction g_previous[kTrappedCount];
int g_scope_depth = 0;

// Where an armed fault unwinds to, and what it reports. Thread-local so a
// fault in an unguarded thread is never mistaken for ours.
thread_local sigjmp_buf* t_landing = nullptr;
thread_local volatile int t_signal = 0;
thread_local volatile uintptr_t t_address = 0;

void on_fault(int sig, siginfo_t* info, void*) {
  if (sigjmp_buf* landing = t_landing) {
    t_landing = nullptr;
    t_signal = sig;
    t_address = uintptr_t(info->si_addr);
    siglongjmp(*landing, 1);
  }
  // Not a guarded call: put the previous disposition back and return, so
  // the faulting instruction re-executes and meets it (default = crash).
  for (int i = 0; i < kTrappedCount; ++i)
    if (kTrappedSignals[i] == sig) sigaction(sig, &g_previous[i], nullptr);
}

uint32_t read_mxcsr() {
  uint32_t v;
  asm volatile("stmxcsr %0" : "=m"(v));
  return v;
}
void write_mxcsr(uint32_t v) {
  asm volatile("ldmxcsr %0" : : "m"(v));
}

}  // namespace

// ---- NativeStub -------------------------------------------------------------

NativeStub::~NativeStub() {
  release();
}

NativeStub::NativeStub(NativeStub&& other) noexcept : fn_(other.fn_), length_(other.length_) {
  other.fn_ = nullptr;
}

NativeStub& NativeStub::operator=(NativeStub&& other) noexcept {
  if (this != &other) {
    release();
    fn_ = other.fn_;
    length_ = other.length_;
    other.fn_ = nullptr;
  }
  return *this;
}

void NativeStub::release() {
  if (fn_) runtime().release(fn_);
  fn_ = nullptr;
}

bool NativeStub::build(const uint8_t* insn, size_t len, std::string* error) {
  release();
  if (len == 0 || len > 15) {
    if (error) *error = "instruction length must be 1..15";
    return false;
  }
  asmjit::CodeHolder code;
  code.init(runtime().environment());
  asmjit::x86::Assembler a(&code);
  emit_stub(a, insn, len);
  void* fn = nullptr;
  if (const asmjit::Error err = runtime().add(&fn, &code)) {
    if (error) *error = std::string("AsmJit: ") + asmjit::DebugUtils::errorAsString(err);
    return false;
  }
  fn_ = fn;
  length_ = uint8_t(len);
  return true;
}

void NativeStub::run(CpuState& state) const {
  reinterpret_cast<void (*)(CpuState*)>(fn_)(&state);
  state.rip += length_;
}

bool host_runs_avx512() {
  // AVX512EMU_ASSUME_NO_AVX512=1: behave as on an AVX2-only CPU (the test
  // suite's mode for those hosts, run on an AVX-512 machine).
  if (const char* v = std::getenv("AVX512EMU_ASSUME_NO_AVX512"); v && *v && *v != '0') return false;
  // libgcc's feature probe checks both CPUID and the XCR0 state bits the OS
  // enabled (opmask, ZMM_Hi256, Hi16_ZMM).
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
}

bool run_native(const uint8_t* insn, size_t len, CpuState& state) {
  NativeStub stub;
  if (!stub.build(insn, len)) return false;
  stub.run(state);
  return true;
}

// ---- Fault trap -------------------------------------------------------------

std::string Fault::describe() const {
  const char* name = signal == SIGSEGV  ? "SIGSEGV"
                     : signal == SIGBUS ? "SIGBUS"
                     : signal == SIGILL ? "SIGILL"
                     : signal == SIGFPE ? "SIGFPE"
                                        : "no fault";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s at 0x%llx", name, static_cast<unsigned long long>(address));
  return signal ? buf : name;
}

FaultTrapScope::FaultTrapScope() {
  std::lock_guard<std::mutex> lock(g_scope_mutex);
  if (g_scope_depth++ > 0) return;
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_fault;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  for (int i = 0; i < kTrappedCount; ++i) sigaction(kTrappedSignals[i], &sa, &g_previous[i]);
}

FaultTrapScope::~FaultTrapScope() {
  std::lock_guard<std::mutex> lock(g_scope_mutex);
  if (--g_scope_depth > 0) return;
  for (int i = 0; i < kTrappedCount; ++i) sigaction(kTrappedSignals[i], &g_previous[i], nullptr);
}

bool run_guarded(void (*fn)(void*), void* ctx, Fault& fault) {
  FaultTrapScope scope;
  fault = Fault{};
  // Guest code may leave MXCSR in the guest's mode when it faults.
  const uint32_t host_mxcsr = read_mxcsr();
  sigjmp_buf landing;
  // savesigs=1: the jump back restores the signal mask, so the trapped
  // signal is not left blocked.
  if (sigsetjmp(landing, 1) == 0) {
    t_landing = &landing;
    fn(ctx);
    t_landing = nullptr;
    return true;
  }
  write_mxcsr(host_mxcsr);
  asm volatile("vzeroupper");
  fault.signal = t_signal;
  fault.address = t_address;
  return false;
}

}  // namespace avx512emu::selfcheck
