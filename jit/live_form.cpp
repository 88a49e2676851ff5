// Owns make_live_form(): the analysis of a compiled translation for inline
// use on the live machine state (see live_form.h).
#include "live_form.h"

#include "cpu_state.h"
#include "host_insn.h"

namespace avx512emu::jit {
namespace {

constexpr int kRdi = 7, kRsp = 4;

bool is_mxcsr_access(const HostInsn& h, HostInsnKind kind, int32_t offset) {
  return h.kind == kind && h.mem.present && h.mem.base == kRdi && h.mem.index < 0 &&
         h.mem.disp == offset;
}

//! Records what an access to [rdi + disp, + bytes) does to the guest state.
//! Returns false for accesses a live run cannot serve.
bool classify_state_access(const HostMemOperand& m, LiveForm& f, const char** why) {
  namespace so = state_offset;
  const int64_t lo = m.disp, hi = m.disp + (m.bytes ? m.bytes : 1);
  auto overlaps = [&](int64_t a, int64_t b) { return lo < b && a < hi; };
  for (int r = 0; r < 16; ++r) {
    if (!overlaps(so::gpr(r), so::gpr(r) + 8)) continue;
    if (m.read) f.guest_gprs_read |= uint16_t(1u << r);
    if (m.written) f.guest_gprs_written |= uint16_t(1u << r);
  }
  // AdvanceRip adds to rip in place (read and written): it needs no value.
  if (overlaps(so::kRip, so::kRip + 8) && m.read && !m.written) f.reads_rip = true;
  if (overlaps(so::kRflags, so::kRflags + 8) && m.written) f.writes_rflags = true;
  if (overlaps(so::kFsBase, so::kGsBase + 8)) {
    *why = "segment-relative guest operand";
    return false;
  }
  if (overlaps(so::kMxcsr, so::kMxcsr + 4)) {
    if (m.written) {
      *why = "writes the guest MXCSR copy";
      return false;
    }
    f.reads_mxcsr_slot = true;
  }
  for (int r = 0; r < 8; ++r)
    if (overlaps(so::k(r), so::k(r) + 8) && m.written) f.guest_k_written |= uint8_t(1u << r);
  for (int r = 0; r < 32; ++r) {
    const int32_t z = so::zmm(r);
    if (r < 16 && overlaps(z, z + 32)) {
      if (m.read) f.guest_low_read |= uint16_t(1u << r);
      if (m.written) f.guest_low_written |= uint16_t(1u << r);
    }
    if (overlaps(r < 16 ? z + 32 : z, z + 64) && m.written) f.guest_upper_written |= 1u << r;
    if (overlaps(r < 16 ? z + 32 : z, z + 64) && m.read) f.guest_upper_read |= 1u << r;
  }
  if (hi > int64_t(sizeof(CpuState)) || lo < 0) {
    *why = "access outside the state block";
    return false;
  }
  return true;
}

void make_opaque(LiveForm& f) {
  f.guest_gprs_read = f.guest_gprs_written = 0xffff & ~(1u << kRsp);
  f.guest_gprs_read |= 1u << kRsp;
  f.guest_low_read = f.guest_low_written = 0xffff;
  f.guest_upper_written = f.guest_upper_read = ~0u;
  f.guest_k_written = 0xff;
  f.reads_rip = f.writes_rflags = f.reads_mxcsr_slot = true;
}

}  // namespace

bool make_live_form(const uint8_t* code, uint32_t code_size, uint32_t total_size, LiveForm& out,
                    const char** why) {
  out = LiveForm{};
  const char* unused = nullptr;
  if (!why) why = &unused;
  auto fail = [why](const char* reason) {
    *why = reason;
    return false;
  };

  // Pass 1: the shape. One ret, preceded by vzeroupper and, in FP
  // translations, by the MXCSR epilogue that matches the prologue.
  uint32_t first[2] = {0, 0}, window[4] = {0, 0, 0, 0};
  HostInsn first_insn[2], window_insn[4];
  uint32_t ret_at = 0, count = 0;
  bool ret_seen = false;
  for (uint32_t off = 0; off < code_size;) {
    HostInsn h;
    if (!decode_host_insn(code + off, code_size - off, h)) return fail("undecodable generated code");
    if (h.kind == HostInsnKind::kRet) {
      if (ret_seen) return fail("more than one ret");
      ret_seen = true;
      ret_at = off;
    }
    if (!ret_seen) {
      if (count < 2) {
        first[count] = off;
        first_insn[count] = h;
      }
      for (int k = 0; k < 3; ++k) window[k] = window[k + 1], window_insn[k] = window_insn[k + 1];
      window[3] = off;
      window_insn[3] = h;
      ++count;
    }
    off += h.length;
  }
  // window[3] is the vzeroupper, [1] and [2] the MXCSR epilogue if any.
  if (!ret_seen || count < 1 || window_insn[3].kind != HostInsnKind::kVzeroupper)
    return fail("no vzeroupper; ret epilogue");
  const bool prologue = count >= 2 &&
                        is_mxcsr_access(first_insn[0], HostInsnKind::kStmxcsr, state_offset::kHostSave) &&
                        is_mxcsr_access(first_insn[1], HostInsnKind::kLdmxcsr, state_offset::kMxcsr);
  const bool epilogue = count >= 3 &&
                        is_mxcsr_access(window_insn[1], HostInsnKind::kStmxcsr, state_offset::kMxcsr) &&
                        is_mxcsr_access(window_insn[2], HostInsnKind::kLdmxcsr, state_offset::kHostSave);
  if (prologue != epilogue) return fail("unmatched MXCSR prologue/epilogue");
  out.body_begin = prologue ? first[1] + first_insn[1].length : 0;
  out.body_end = epilogue ? window[1] : window[3];
  // The last IR op advances the block's rip (AdvanceRip: add [rdi+rip],
  // imm); inline, the stub's jump back is the advance, so it is left out.
  const int advance = epilogue ? 0 : 2;
  const HostInsn& last = window_insn[advance];
  if (count >= (epilogue ? 4u : 2u) && last.mem.present && last.mem.base == kRdi &&
      last.mem.index < 0 && last.mem.disp == state_offset::kRip && last.mem.written &&
      window[advance] >= out.body_begin)
    out.body_end = window[advance];
  out.data_begin = ret_at + 1;
  out.data_end = total_size;
  if (out.body_end < out.body_begin) return fail("empty body");

  // Pass 2: the body's effects and its relative fields.
  bool opaque = false;
  for (uint32_t off = out.body_begin; off < out.body_end;) {
    HostInsn h;
    if (!decode_host_insn(code + off, code_size - off, h)) return fail("undecodable generated code");
    if (h.kind == HostInsnKind::kRet || h.kind == HostInsnKind::kOther ||
        h.kind == HostInsnKind::kVzeroupper || h.stack || h.high_vec || h.two_memory_operands)
      return fail("instruction that cannot run inline");
    if (h.gprs_written & ((1u << kRdi) | (1u << kRsp))) return fail("writes rdi or rsp");
    // The program's stack, red zone included, is never touched.
    if (h.mem.present && (h.mem.base == kRsp || h.gprs_read >> kRsp & 1))
      return fail("uses the stack pointer");
    out.host_gprs_written |= h.gprs_written;
    out.host_vecs_written |= h.vecs_written;
    out.host_flags_written |= h.flags_written;
    if ((h.gprs_read >> kRdi & 1) || (h.mem.present && h.mem.index == kRdi)) opaque = true;
    if (h.mem.present && h.mem.base == kRdi) {
      // A slot of the scratch area, addressed with an index or through a
      // pointer that lea makes (compress packs elements that way), is no
      // guest state; anything else indexed or derived from rdi may be.
      const bool scratch_area = h.mem.disp >= state_offset::scratch(0) &&
                                h.mem.disp < state_offset::scratch(kScratchSlots) && !h.mem.segment;
      if (h.mem.address_only || h.mem.index >= 0 || h.mem.segment) {
        if (!scratch_area) opaque = true;
      } else if (!classify_state_access(h.mem, out, why)) {
        return false;
      }
    }
    if (h.rel_size) {
      const int64_t target = int64_t(off) + h.rel_target;
      // The body's end is where the copy continues: a jump there needs no fix-up.
      const bool internal = target >= out.body_begin && target <= out.body_end;
      if (!internal) {
        if (h.rel_size != 4) return fail("short jump out of the body");
        if (out.fixup_count == LiveForm::kMaxFixups) return fail("too many fix-ups");
        LiveForm::Fixup& x = out.fixups[out.fixup_count++];
        x.field = off + h.rel_offset;
        x.next = off + h.length;
        if (target >= out.body_end && target <= ret_at) {
          x.to_body_end = true;
        } else if (target >= out.data_begin && target < out.data_end) {
          x.target = uint32_t(target);
        } else {
          return fail("relative reference outside the translation");
        }
      }
    }
    off += h.length;
  }
  // The tails run only to raise a fault; they must not reach back.
  for (uint32_t off = out.data_begin; off < code_size;) {
    HostInsn h;
    if (!decode_host_insn(code + off, code_size - off, h)) return fail("undecodable generated code");
    if (h.rel_size) {
      const int64_t target = int64_t(off) + h.rel_target;
      if (target < out.data_begin || target >= out.data_end) return fail("tail reaches outside");
    }
    off += h.length;
  }
  if (opaque) make_opaque(out);
  return true;
}

}  // namespace avx512emu::jit
