// Owns the generation of the guest-side trap path (see guest_code.h).
//
// Under PVM, guest CPL0 code is emulated one instruction at a time and any
// VEX/EVEX instruction at CPL0 fails, so the CPL0 part is three GPR
// instructions: it records the trapping RIP and returns to the dispatcher at
// CPL3 with the trapping code's RSP and RFLAGS. Everything else, the vector
// state transfer and the translation, runs at CPL3.
#include "guest_code.h"

#include <asmjit/x86.h>

#include <cstddef>
#include <cstring>

namespace avx512emu::kvm {
namespace {

using namespace asmjit;

//! A guest absolute address as a memory operand (identity-mapped region
//! below 2 GiB, so it encodes as a 32-bit displacement or RIP-relative).
x86::Mem at(uint64_t gva, uint32_t size = 8) {
  return x86::Mem(gva, size);
}

struct Addresses {
  explicit Addresses(const RegionLayout& l) : vcpu(l.vcpu) {}
  uint64_t vcpu;
  uint64_t field(size_t offset) const { return vcpu + offset; }
  uint64_t gpr(int i) const { return field(offsetof(VcpuBlock, shadow) + state_offset::gpr(i)); }
  uint64_t zmm(int i) const { return field(offsetof(VcpuBlock, shadow) + state_offset::zmm(i)); }
  uint64_t shadow() const { return field(offsetof(VcpuBlock, shadow)); }
  uint64_t rip() const { return field(offsetof(VcpuBlock, shadow) + state_offset::kRip); }
  uint64_t rflags() const { return field(offsetof(VcpuBlock, shadow) + state_offset::kRflags); }
  uint64_t mxcsr() const { return field(offsetof(VcpuBlock, shadow) + state_offset::kMxcsr); }
  uint64_t ymm_at_entry(int i) const { return field(offsetof(VcpuBlock, ymm_at_entry) + 32 * i); }
  uint64_t saved_rip() const { return field(offsetof(VcpuBlock, saved_rip)); }
  uint64_t pass() const { return field(offsetof(VcpuBlock, pass_to_guest)); }
  uint64_t guest_ud() const { return field(offsetof(VcpuBlock, guest_ud_handler)); }
  uint64_t traps() const { return field(offsetof(VcpuBlock, traps)); }
  uint64_t hits() const { return field(offsetof(VcpuBlock, hits)); }
};

constexpr int kRsp = 4;
const x86::Gp kGpr[16] = {x86::rax, x86::rcx, x86::rdx, x86::rbx, x86::rsp, x86::rbp,
                          x86::rsi, x86::rdi, x86::r8,  x86::r9,  x86::r10, x86::r11,
                          x86::r12, x86::r13, x86::r14, x86::r15};

//! CPL0: `pop [saved_rip]; push dispatcher; iretq`, plus the one-shot
//! pass-through to the guest's own #UD handler (GPR instructions only).
void emit_ud_stub(x86::Assembler& a, const Addresses& g, uint64_t dispatcher) {
  Label chain = a.newLabel();
  a.cmp(at(g.pass(), 1), 0);
  a.jne(chain);
  a.pop(at(g.saved_rip()));
  a.push(imm(dispatcher));  // sign-extended imm32: the region is below 2 GiB
  a.iretq();
  a.bind(chain);
  a.mov(at(g.pass(), 1), 0);
  a.jmp(at(g.guest_ud()));
}

//! Takes ymm0-15 into the shadow. A VEX instruction that wrote ymmN or xmmN
//! zeroed zmmN[511:256] on an AVX-512 CPU; seeing the low half change while
//! bits 255:128 changed or became zero means such a write happened, so the
//! shadow's upper half is zeroed too (the same rule as the SIGILL runtime;
//! a VEX write of equal values stays undetectable).
void emit_enter_vectors(x86::Assembler& a, const Addresses& g) {
  for (int i = 0; i < 16; ++i) a.vmovdqu(at(g.ymm_at_entry(i), 32), x86::Ymm(i));
  for (int i = 0; i < 16; ++i) {
    Label zero_upper = a.newLabel(), keep_upper = a.newLabel();
    a.vmovdqu(x86::ymm0, at(g.ymm_at_entry(i), 32));
    a.vpcmpeqb(x86::ymm1, x86::ymm0, at(g.zmm(i), 32));
    a.vpmovmskb(x86::eax, x86::ymm1);
    a.mov(x86::ecx, x86::eax);
    a.shr(x86::ecx, 16);
    a.cmp(x86::ecx, 0xffff);
    a.jne(zero_upper);  // bits 255:128 changed
    a.cmp(x86::ax, 0xffff);
    a.je(keep_upper);  // unchanged
    a.vextracti128(x86::xmm2, x86::ymm0, 1);
    a.vptest(x86::xmm2, x86::xmm2);
    a.jnz(keep_upper);  // low half changed under a non-zero high half: legacy SSE
    a.bind(zero_upper);
    a.vpxor(x86::xmm1, x86::xmm1, x86::xmm1);
    a.vmovdqu(at(g.zmm(i) + 32, 32), x86::ymm1);
    a.bind(keep_upper);
    a.vmovdqu(at(g.zmm(i), 32), x86::ymm0);
  }
}

void emit_dispatcher(x86::Assembler& a, const RegionLayout& l, const Addresses& g,
                     uint16_t miss_port, Label& miss_exit) {
  // Entry: the trapping code's RSP and RFLAGS, on its own stack, which may
  // have a red zone: switch stacks before anything is pushed.
  a.mov(at(g.gpr(kRsp)), x86::rsp);
  a.mov(x86::rsp, l.stack_top);
  for (int i = 0; i < 16; ++i)
    if (i != kRsp) a.mov(at(g.gpr(i)), kGpr[i]);
  a.pushfq();
  a.pop(at(g.rflags()));
  a.mov(x86::rax, at(g.saved_rip()));
  a.mov(at(g.rip()), x86::rax);
  a.inc(at(g.traps()));
  a.stmxcsr(at(g.mxcsr(), 4));
  emit_enter_vectors(a, g);

  // Lookup: linear probing from the home slot, at most kMaxProbes slots.
  Label lookup = a.newLabel(), probe = a.newLabel(), hit = a.newLabel(), miss = a.newLabel(),
        run = a.newLabel();
  const uint64_t slot_mask = (uint64_t(1) << l.index_slots_log2) - 1;
  a.bind(lookup);
  a.mov(x86::rax, at(g.rip()));
  a.mov(x86::rcx, x86::rax);
  a.mov(x86::rdx, kIndexHashMultiplier);
  a.imul(x86::rcx, x86::rdx);
  a.shr(x86::rcx, 64 - l.index_slots_log2);
  a.not_(x86::rax);
  a.mov(x86::r8d, kMaxProbes);
  a.mov(x86::r9, l.index);
  a.bind(probe);
  a.mov(x86::rdx, x86::rcx);
  a.shl(x86::rdx, 4);
  a.add(x86::rdx, x86::r9);
  a.mov(x86::r10, x86::qword_ptr(x86::rdx));
  a.cmp(x86::r10, x86::rax);
  a.je(hit);
  a.test(x86::r10, x86::r10);
  a.jz(miss);
  a.inc(x86::rcx);
  a.and_(x86::rcx, slot_mask);
  a.dec(x86::r8d);
  a.jnz(probe);

  // Miss: give the VMM the guest's vector registers back (ymm0-2 were
  // scratch) and ask. It answers in rax with the address of the code it
  // installed (0 = look up again), or redirects the vCPU to an exception.
  a.bind(miss);
  for (int i = 0; i < 3; ++i) a.vmovdqu(x86::Ymm(i), at(g.zmm(i), 32));
  a.bind(miss_exit);
  a.out(imm(miss_port), x86::al);
  a.test(x86::rax, x86::rax);
  a.jz(lookup);
  a.jmp(run);

  a.bind(hit);
  a.mov(x86::eax, x86::dword_ptr(x86::rdx, 8));
  a.mov(x86::r9, l.code_area);
  a.add(x86::rax, x86::r9);
  a.inc(at(g.hits()));
  a.bind(run);
  a.mov(x86::rdi, g.shadow());
  a.call(x86::rax);

  // Exit: vector state, MXCSR, RFLAGS, GPRs, then the RIP the translation left.
  for (int i = 0; i < 16; ++i) a.vmovdqu(x86::Ymm(i), at(g.zmm(i), 32));
  a.ldmxcsr(at(g.mxcsr(), 4));
  a.push(at(g.rflags()));
  a.popfq();
  for (int i = 0; i < 16; ++i)
    if (i != kRsp) a.mov(kGpr[i], at(g.gpr(i)));
  a.mov(x86::rsp, at(g.gpr(kRsp)));
  a.jmp(at(g.rip()));
}

}  // namespace

bool generate_guest_code(const RegionLayout& layout, uint16_t miss_port, GuestCode& out,
                         std::string& error) {
  if (layout.base + layout.size > (uint64_t(1) << 31)) {
    error = "the guest cache region must lie below 2 GiB (absolute 32-bit addressing)";
    return false;
  }
  CodeHolder code;
  Environment env(Arch::kX64);
  code.init(env, layout.code);
  x86::Assembler a(&code);
  const Addresses g(layout);
  // The stub comes first and the dispatcher at a fixed offset after it, so
  // the stub can push the dispatcher's address as an immediate.
  constexpr uint64_t kDispatcherOffset = 64;
  Label dispatcher = a.newLabel(), miss_exit = a.newLabel();
  emit_ud_stub(a, g, layout.code + kDispatcherOffset);
  if (code.codeSize() > kDispatcherOffset) {
    error = "the guest #UD stub outgrew its slot";
    return false;
  }
  a.align(AlignMode::kCode, kDispatcherOffset);
  a.bind(dispatcher);
  emit_dispatcher(a, layout, g, miss_port, miss_exit);
  if (code.flatten() != kErrorOk || code.resolveUnresolvedLinks() != kErrorOk ||
      code.relocateToBase(layout.code) != kErrorOk) {
    error = "cannot assemble the guest dispatcher";
    return false;
  }
  const size_t size = code.codeSize();
  if (size > RegionLayout::kCodeBytes) {
    error = "the guest dispatcher does not fit its pages";
    return false;
  }
  out.bytes.resize(size);
  code.copyFlattenedData(out.bytes.data(), size);
  out.ud_stub = layout.code;
  out.dispatcher = layout.code + code.labelOffset(dispatcher);
  out.miss_exit = layout.code + code.labelOffset(miss_exit);
  return true;
}

}  // namespace avx512emu::kvm
