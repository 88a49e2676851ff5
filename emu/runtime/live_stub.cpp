// Owns the inline stubs: per-plan machine code that runs the plan's
// translations on the live machine state, with no call and no copy of the
// whole register file.
//
// The guest's GPRs, RFLAGS, MXCSR and ymm0-15 stay in the real registers.
// The stub finds the thread's shadow block (level 0 of ThreadShadow, a
// CpuState) through the thread pointer and moves only what the plan's
// translations touch (jit/live_form.h):
//
//   entry:  spill rdi, rax and the flags (lahf/seto) to fs:[spill]
//           depth != 0, or no block yet (rdi := fs:[shadow])  -> slow path
//           depth := 1 (a signal handler's emulation now takes level 1)
//           the spilled words into the block; the GPRs the plan reads or
//           the translations clobber into the block; MXCSR if read
//           VEX-write check of each ymm whose upper half (or, for a memory
//           form, whose block copy) the plan reads, against the block's
//           copy of what the last exit left (sigill_runtime.h)
//   steps:  per instruction: its register form (jit/register_form.h),
//           computing on the live ymm; or its memory form, with the ymm it
//           reads stored to the block and the ones it writes loaded back;
//           or a VEX zeroing idiom / vzeroupper run natively, the block's
//           upper halves cleared after it. ymm a step clobbers as scratch
//           go to the spill space first and come back when next needed.
//           Bodies are copied without their MXCSR prologue/epilogue,
//           AdvanceRip, vzeroupper and ret; their constants go after the stub
//   exit:   spilled ymm back; the block's copy of every ymm given a new
//           value; AVX-512 hosts: the emulated upper state of the registers
//           the stub wrote into the hardware (copies of hw_sync's
//           instructions); the GPRs back; the flags (the guest's result when
//           a translation wrote them, else the entry's); depth := 0; jmp
//           behind the plan's last instruction
//   slow:   flags, rax, rdi back from fs:[spill]; then the state-block stub
//           (push/call avx512emu_stub_entry), below the red zone
//   table:  per step, where its body and constants are and where the guest's
//           registers are while it runs (find_live_stub_fault)
//
// A loop region's stub (build_region_stub) runs the whole loop: copied
// instructions between runs of steps, branches chained. There the halves of
// vector registers that an AVX2 CPU lacks (zmm0-15 bits 511:256, zmm16-31)
// stay in host ymm that no instruction of the loop uses, for the whole
// region, wherever the steps reach them only as whole-register operands
// (jit/pinned_slots.h): loaded at the entry, written back at every exit and
// by a signal that leaves the region (the table's header says which).
//
// Nothing is written to the program's stack on the fast path, and no return
// address of the runtime is ever on it there.
#include "live_stub.h"

#include <atomic>
#include <cstddef>
#include <new>

#include "cpu_state.h"
#include "host_insn.h"
#include "live_form.h"
#include "loop_region.h"
#include "pinned_slots.h"
#include "signal_safe.h"
#include "vex_idioms.h"

extern "C" void avx512emu_stub_entry();
extern "C" void avx512emu_live_hw_sync();

// Loads the emulated AVX-512 state of the block at rdi into the hardware
// (AVX-512 hosts only): the state-block stub entry calls it whole, and
// inline stubs copy the instructions for the registers they wrote (one per
// register, in register order). Offsets are CpuState's (static_asserts
// below): k at 192, zmm at 256.
__asm__(R"(
  .text
  .globl avx512emu_live_hw_sync
  .hidden avx512emu_live_hw_sync
  .type avx512emu_live_hw_sync, @function
  .p2align 4
avx512emu_live_hw_sync:
  .intel_syntax noprefix
  vinserti64x4 zmm0, zmm0, ymmword ptr [rdi+288], 1
  vinserti64x4 zmm1, zmm1, ymmword ptr [rdi+352], 1
  vinserti64x4 zmm2, zmm2, ymmword ptr [rdi+416], 1
  vinserti64x4 zmm3, zmm3, ymmword ptr [rdi+480], 1
  vinserti64x4 zmm4, zmm4, ymmword ptr [rdi+544], 1
  vinserti64x4 zmm5, zmm5, ymmword ptr [rdi+608], 1
  vinserti64x4 zmm6, zmm6, ymmword ptr [rdi+672], 1
  vinserti64x4 zmm7, zmm7, ymmword ptr [rdi+736], 1
  vinserti64x4 zmm8, zmm8, ymmword ptr [rdi+800], 1
  vinserti64x4 zmm9, zmm9, ymmword ptr [rdi+864], 1
  vinserti64x4 zmm10, zmm10, ymmword ptr [rdi+928], 1
  vinserti64x4 zmm11, zmm11, ymmword ptr [rdi+992], 1
  vinserti64x4 zmm12, zmm12, ymmword ptr [rdi+1056], 1
  vinserti64x4 zmm13, zmm13, ymmword ptr [rdi+1120], 1
  vinserti64x4 zmm14, zmm14, ymmword ptr [rdi+1184], 1
  vinserti64x4 zmm15, zmm15, ymmword ptr [rdi+1248], 1
  vmovdqu64 zmm16, zmmword ptr [rdi+1280]
  vmovdqu64 zmm17, zmmword ptr [rdi+1344]
  vmovdqu64 zmm18, zmmword ptr [rdi+1408]
  vmovdqu64 zmm19, zmmword ptr [rdi+1472]
  vmovdqu64 zmm20, zmmword ptr [rdi+1536]
  vmovdqu64 zmm21, zmmword ptr [rdi+1600]
  vmovdqu64 zmm22, zmmword ptr [rdi+1664]
  vmovdqu64 zmm23, zmmword ptr [rdi+1728]
  vmovdqu64 zmm24, zmmword ptr [rdi+1792]
  vmovdqu64 zmm25, zmmword ptr [rdi+1856]
  vmovdqu64 zmm26, zmmword ptr [rdi+1920]
  vmovdqu64 zmm27, zmmword ptr [rdi+1984]
  vmovdqu64 zmm28, zmmword ptr [rdi+2048]
  vmovdqu64 zmm29, zmmword ptr [rdi+2112]
  vmovdqu64 zmm30, zmmword ptr [rdi+2176]
  vmovdqu64 zmm31, zmmword ptr [rdi+2240]
  kmovq k0, qword ptr [rdi+192]
  kmovq k1, qword ptr [rdi+200]
  kmovq k2, qword ptr [rdi+208]
  kmovq k3, qword ptr [rdi+216]
  kmovq k4, qword ptr [rdi+224]
  kmovq k5, qword ptr [rdi+232]
  kmovq k6, qword ptr [rdi+240]
  kmovq k7, qword ptr [rdi+248]
  ret
  .att_syntax prefix
  .size avx512emu_live_hw_sync, .-avx512emu_live_hw_sync
)");
static_assert(avx512emu::state_offset::zmm(0) == 256 && avx512emu::state_offset::k(0) == 192);

namespace avx512emu::runtime {
namespace {

LiveStubEnv g_env;

//! The instructions of avx512emu_live_hw_sync, one per register: zmm0-15
//! upper halves, zmm16-31, k0-7 (40 in all, in that order). A stub copies
//! the ones its plan needs; each addresses the block through rdi only.
struct HwSyncTable {
  static constexpr int kCount = 40;
  uint16_t offset[kCount] = {};
  uint8_t length[kCount] = {};
  const uint8_t* insn(int i) const {
    return reinterpret_cast<const uint8_t*>(g_env.hw_sync) + offset[i];
  }
} g_hw_sync;

bool read_hw_sync_table() {
  const auto* code = reinterpret_cast<const uint8_t*>(g_env.hw_sync);
  uint16_t off = 0;
  for (int i = 0; i < HwSyncTable::kCount; ++i) {
    HostInsn h;
    if (!decode_host_insn(code + off, 16, h) || h.rel_size) return false;
    g_hw_sync.offset[i] = off;
    g_hw_sync.length[i] = h.length;
    off = uint16_t(off + h.length);
  }
  return true;
}

constexpr int kRax = 0, kRsp = 4, kRdi = 7;

// ---- A byte writer for the handful of encodings a stub needs -----------------------
//
// Encodings follow the Intel SDM Vol. 2; "[rdi+d32]" is ModRM mod=10 rm=111,
// "fs:[d32]" is the 64 prefix with ModRM rm=100 and SIB 0x25 (no base, no
// index), an absolute 32-bit displacement from the segment base.
class Writer {
 public:
  Writer(uint8_t* p, size_t cap) : p_(p), cap_(cap) {}
  size_t size() const { return n_; }
  bool overflow() const { return overflow_; }

  void byte(uint8_t b) {
    if (n_ < cap_) p_[n_] = b;
    else overflow_ = true;
    ++n_;
  }
  void bytes(std::initializer_list<uint8_t> bs) {
    for (uint8_t b : bs) byte(b);
  }
  void copy(const uint8_t* src, size_t n) {
    for (size_t i = 0; i < n; ++i) byte(src[i]);
  }
  void d32(int32_t v) {
    for (int i = 0; i < 4; ++i) byte(uint8_t(uint32_t(v) >> (8 * i)));
  }
  void q64(uint64_t v) {
    for (int i = 0; i < 8; ++i) byte(uint8_t(v >> (8 * i)));
  }
  void put32_at(size_t at, int32_t v) {
    for (int i = 0; i < 4; ++i)
      if (at + i < cap_) p_[at + i] = uint8_t(uint32_t(v) >> (8 * i));
  }
  void align(size_t to, uint8_t fill) {
    while (n_ % to) byte(fill);
  }

  // REX.W + opcode with reg field `r` and memory [rdi+d32].
  void rex_w_rdi(int r) { byte(uint8_t(0x48 | (r >> 3 << 2))); }
  void modrm_rdi(int r, int32_t d) {
    byte(uint8_t(0x80 | (r & 7) << 3 | 7));
    d32(d);
  }
  void modrm_abs(int r, int32_t d) {
    byte(uint8_t(0x04 | (r & 7) << 3));
    byte(0x25);
    d32(d);
  }
  //! mov [rdi+d], r64
  void store_gpr(int r, int32_t d) {
    rex_w_rdi(r);
    byte(0x89);
    modrm_rdi(r, d);
  }
  //! mov r64, [rdi+d]
  void load_gpr(int r, int32_t d) {
    rex_w_rdi(r);
    byte(0x8b);
    modrm_rdi(r, d);
  }
  //! mov fs:[d], r64 / mov r64, fs:[d]
  void store_fs(int r, int32_t d) {
    byte(0x64);
    byte(uint8_t(0x48 | (r >> 3 << 2)));
    byte(0x89);
    modrm_abs(r, d);
  }
  void load_fs(int r, int32_t d) {
    byte(0x64);
    byte(uint8_t(0x48 | (r >> 3 << 2)));
    byte(0x8b);
    modrm_abs(r, d);
  }
  //! Three-byte VEX prefix: map 0F, the given reg / vvvv / rm registers,
  //! L and pp.
  void vex3(int reg, int vvvv, int rm, bool l256, int pp) {
    byte(0xc4);
    byte(uint8_t((reg >> 3 ? 0 : 0x80) | 0x40 | (rm >> 3 ? 0 : 0x20) | 0x01));
    byte(uint8_t(((~vvvv & 15) << 3) | (l256 ? 4 : 0) | pp));
  }
  //! vmovdqu [rdi+d], ymm / vmovdqu ymm, [rdi+d]   (VEX.256.F3.0F 7F / 6F)
  void store_ymm(int y, int32_t d) {
    vex3(y, 0, 0, true, 2);
    byte(0x7f);
    modrm_rdi(y, d);
  }
  void load_ymm(int y, int32_t d) {
    vex3(y, 0, 0, true, 2);
    byte(0x6f);
    modrm_rdi(y, d);
  }
  //! vpcmpeqb ymm_t, ymm_a, [rdi+d]   (VEX.256.66.0F 74)
  void cmpeqb_ymm(int t, int a, int32_t d) {
    vex3(t, a, 0, true, 1);
    byte(0x74);
    modrm_rdi(t, d);
  }
  //! vpmovmskb eax, ymm_t   (VEX.256.66.0F D7 /r, reg = eax, rm = ymm_t)
  void movmskb_eax(int t) {
    vex3(0, 0, t, true, 1);
    byte(0xd7);
    byte(uint8_t(0xc0 | (t & 7)));
  }
  //! jcc rel32 / jmp rel32 to a position in this buffer (patched later when
  //! the target is not known yet: returns the field's position).
  size_t jcc(uint8_t cc) {
    bytes({0x0f, uint8_t(0x80 | cc)});
    const size_t at = n_;
    d32(0);
    return at;
  }
  size_t jmp() {
    byte(0xe9);
    const size_t at = n_;
    d32(0);
    return at;
  }
  void link(size_t field, size_t target) { put32_at(field, int32_t(int64_t(target) - int64_t(field + 4))); }
  //! The `n` bytes written at `at`, for an in-place rewrite; null when they
  //! did not fit.
  uint8_t* written_at(size_t at, size_t n) { return at + n <= cap_ ? p_ + at : nullptr; }

 private:
  uint8_t* p_;
  size_t cap_, n_ = 0;
  bool overflow_ = false;
};

constexpr uint8_t kCcZ = 0x4, kCcNz = 0x5;

//! The step table at the end of every inline stub, for mapping a fault in
//! a translation, or in an instruction a loop region copied, back to the
//! guest instruction (find_live_stub_fault). One row per step or copied
//! instruction.
struct StubTableHeader {
  uint32_t magic;
  uint16_t rows;
  uint16_t pad;
  //! Loop regions: the block offset of the slot that host ymm r holds for
  //! the whole region (jit/pinned_slots.h), 0 for none.
  uint16_t pin_offset[16];
};
struct StubTableRow {
  uint64_t guest_rip;
  uint32_t body_begin, body_end, data_begin, data_end;  //!< offsets in the stub
  uint16_t ymm_spilled;
  uint16_t gprs_in_block;
  uint8_t flags;  //!< LiveStubFault::Flags
  uint8_t pad[3];
};
static_assert(sizeof(StubTableRow) == 32);
constexpr uint32_t kStubTableMagic = 0x5354424c;  // marks a step table

//! Registered inline stubs: start, size, offset of the step table.
struct StubRecord {
  std::atomic<uint64_t> start{0};
  uint32_t size = 0, table = 0;
};
constexpr size_t kMaxStubRecords = size_t(1) << 16;
StubRecord g_stub_records[kMaxStubRecords];
std::atomic<size_t> g_stub_record_count{0};

//! One instruction of a plan as the stub runs it: its register form when it
//! has one (guest ymm live), else its memory form (guest ymm through the
//! block), taken apart by jit/live_form.h.
struct Step {
  const uint8_t* code = nullptr;
  jit::LiveForm form;
  bool register_form = false;
  //! A VEX zeroing idiom or vzeroupper/vzeroall (vex_idioms.h): the
  //! instruction itself runs on the live registers (`code` is the site's
  //! original bytes, `form` only its length); the stub zeroes the upper
  //! halves it clears in the block.
  VexIdiom idiom;
  uint16_t live_read = 0, live_written = 0;    //!< register form: ymm used in place
  uint16_t block_read = 0, block_written = 0;  //!< memory form: ymm through the block
  uint16_t scratch = 0;                        //!< ymm clobbered that are not results
  uint16_t check = 0;                          //!< ymm whose bits 511:256 it reads
};

//! The sites whose translations a stub runs, in the order it runs their
//! steps: a plan's, or every site of a loop region.
struct StepList {
  static constexpr uint32_t kMax = LoopRegion::kMaxInsns;
  uint32_t count = 0;
  Site* sites[kMax] = {};
};

//! The steps, and what they touch together.
struct PlanForms {
  Step step[StepList::kMax];
  uint16_t gprs_read = 0, gprs_written = 0, host_gprs = 0;
  uint16_t check = 0;
  uint32_t upper_written = 0;
  uint8_t k_written = 0;
  bool writes_rflags = false, reads_mxcsr = false;
};

bool analyse(const StepList& plan, PlanForms& p, const char** why) {
  for (uint32_t i = 0; i < plan.count; ++i) {
    const Translation* t = plan.sites[i]->translation;
    if (!t || !t->code) {
      *why = "no translation";
      return false;
    }
    Step& s = p.step[i];
    const char* unused = nullptr;
    if (is_vex_idiom_translation(t)) {
      const Site& site = *plan.sites[i];
      s.idiom = match_vex_idiom(site.original, site.length);
      if (s.idiom.kind == VexIdiomKind::kNone) {
        *why = "unrecognised idiom";
        return false;
      }
      s.code = site.original;
      s.form = jit::LiveForm{};
      s.form.body_end = site.length;
      // vzeroupper/vzeroall act on every ymm: all of them must be live.
      const uint16_t regs =
          s.idiom.kind == VexIdiomKind::kZeroRegister ? uint16_t(1u << s.idiom.reg) : uint16_t(0xffff);
      s.live_read = s.live_written = regs;
      continue;
    }
    if (!t->code_size) {
      *why = "hand-built translation";
      return false;
    }
    if (t->register_code &&
        jit::make_live_form(static_cast<const uint8_t*>(t->register_code), t->register_code_size,
                            t->register_total_size, s.form, &unused)) {
      s.code = static_cast<const uint8_t*>(t->register_code);
      s.register_form = true;
      s.live_read = t->register_low_read;
      s.live_written = t->register_low_written;
      s.scratch = uint16_t(s.form.host_vecs_written & ~s.live_written);
      s.check = uint16_t(s.form.guest_upper_read);
    } else {
      if (!jit::make_live_form(static_cast<const uint8_t*>(t->code), t->code_size, t->total_size,
                               s.form, why))
        return false;
      s.code = static_cast<const uint8_t*>(t->code);
      s.block_read = s.form.guest_low_read;
      s.block_written = s.form.guest_low_written;
      s.scratch = uint16_t(s.form.host_vecs_written & ~s.block_written);
      s.check = uint16_t(s.form.guest_low_read | s.form.guest_upper_read);
    }
    const jit::LiveForm& f = s.form;
    p.gprs_read |= f.guest_gprs_read;
    p.gprs_written |= f.guest_gprs_written;
    p.host_gprs |= f.host_gprs_written;
    p.check |= s.check;
    p.upper_written |= f.guest_upper_written;
    p.k_written |= f.guest_k_written;
    p.writes_rflags |= f.writes_rflags;
    p.reads_mxcsr |= f.reads_mxcsr_slot;
  }
  return true;
}

int lowest_bit(uint32_t m) {
  return m ? __builtin_ctz(m) : -1;
}

}  // namespace

void set_live_stub_env(const LiveStubEnv& env) {
  g_env = env;
  if (g_env.hw_sync && !read_hw_sync_table()) g_env.enabled = false;
}
const LiveStubEnv& live_stub_env() {
  return g_env;
}
uint32_t inline_prefix(const StubPlan& plan) {
  static jit::LiveForm form;  // the patch lock serialises callers
  uint32_t n = 0;
  for (; n < plan.count; ++n) {
    const Translation* t = plan.sites[n]->translation;
    if (t && is_vex_idiom_translation(t)) continue;
    if (!t || !t->code || !t->code_size ||
        !jit::make_live_form(static_cast<const uint8_t*>(t->code), t->code_size, t->total_size,
                             form, nullptr))
      break;
  }
  return n;
}

void register_live_stub(uint64_t start, size_t size) {
  const size_t n = g_stub_record_count.load(std::memory_order_relaxed);
  if (n == kMaxStubRecords) return;  // its faults then look like the stub's own
  uint32_t table = 0;
  sys::copy(&table, reinterpret_cast<const void*>(start + size - 4), 4);
  StubRecord& r = g_stub_records[n];
  r.size = uint32_t(size);
  r.table = table;
  r.start.store(start, std::memory_order_release);
  g_stub_record_count.store(n + 1, std::memory_order_release);
}

bool find_live_stub_fault(uint64_t rip, LiveStubFault& out) {
  const size_t n = g_stub_record_count.load(std::memory_order_acquire);
  for (size_t i = 0; i < n; ++i) {
    const StubRecord& r = g_stub_records[i];
    const uint64_t start = r.start.load(std::memory_order_acquire);
    if (rip < start || rip >= start + r.size) continue;
    StubTableHeader header;
    sys::copy(&header, reinterpret_cast<const void*>(start + r.table), sizeof header);
    if (header.magic != kStubTableMagic) return false;
    const uint64_t off = rip - start;
    for (uint16_t k = 0; k < header.rows; ++k) {
      StubTableRow row;
      sys::copy(&row,
                reinterpret_cast<const void*>(start + r.table + sizeof header + k * sizeof row),
                sizeof row);
      if ((off >= row.body_begin && off < row.body_end) ||
          (off >= row.data_begin && off < row.data_end)) {
        out.guest_rip = row.guest_rip;
        out.gprs_in_block = row.gprs_in_block;
        out.ymm_spilled = row.ymm_spilled;
        out.flags = LiveStubFault::Flags(row.flags);
        out.at_start = off == row.body_begin;
        for (int p = 0; p < 16; ++p) out.pin_offset[p] = header.pin_offset[p];
        return true;
      }
    }
    return false;
  }
  return false;
}

uint64_t live_hw_sync_address() {
  return reinterpret_cast<uint64_t>(&avx512emu_live_hw_sync);
}

namespace {

namespace so = state_offset;

//! The stub's own GPRs: rdi the block pointer, rax scratch.
constexpr uint16_t kStubGprs = (1u << kRax) | (1u << kRdi);
//! GPRs never saved and restored with the ones the steps use: the stub's
//! own (always moved) and rsp (the program's, never written).
constexpr uint16_t kFixedGprs = kStubGprs | (1u << kRsp);

//! One inline stub as it is written: the entry, the steps, the ways out,
//! the slow path, the rare paths of the VEX-write check, the steps'
//! constants and the step table, in that order. A plan stub runs its steps
//! once (build_live_stub); a loop region's stub interleaves them with copied
//! instructions and branches (build_region_stub).
class StubBuilder {
 public:
  //! Rebuilt in place, not assigned from a temporary: the builder is large
  //! and patch_site may run on a small signal stack.
  void reset(uint64_t address, const StepList& steps, PlanForms& p, uint8_t* out, size_t capacity,
             bool region) {
    this->~StubBuilder();
    new (this) StubBuilder(address, steps, p, out, capacity, region);
  }

  Writer w{nullptr, 0};

  // ---- ymm bookkeeping as the steps go: `spilled` registers hold scratch
  // and their guest value is in the spill space; `block_current` ones equal
  // their copy in the block; `modified` ones were written by the stub (any
  // VEX write: their upper bits need the hardware sync), `results` ones got
  // a new guest value.
  uint16_t spilled = 0, block_current = 0, modified = 0, results = 0;
  //! Loop regions: scratch ymm that no guest instruction of the region
  //! uses, spilled once on the way in and restored on the ways out (not
  //! around every step).
  uint16_t pinned = 0;
  //! Loop regions: host ymm that hold a slot of the guest state for the
  //! whole region (jit/pinned_slots.h), a subset of `pinned`; the slot each
  //! holds, and the host ymm of each slot (-1: in the block).
  uint16_t pins = 0;
  int32_t pin_offset[16] = {};
  int8_t pin_of_slot[jit::kPinSlots];
  bool flags_in_block = false;  //!< a step wrote the guest's flags into the block
  uint16_t gprs_in_block = 0;   //!< guest GPRs whose value is in the block now
  //! Loop regions: the GPRs that copied instructions use (as values or in
  //! addresses). The others that the steps touch stay in the block for the
  //! whole region (`resident`): their host registers serve the steps, and
  //! when rdi is one of them it stays the block pointer between runs.
  uint16_t copied_gprs = 0xffff;
  uint16_t resident = 0;
  bool rdi_live_between_runs() const { return copied_gprs >> kRdi & 1; }

  static int32_t ymm_spill(int v) { return g_env.ymm_spill + 32 * v; }
  void spill(uint16_t regs) {
    for (int v = 0; v < 16; ++v)
      if ((regs & ~spilled) >> v & 1) w.store_ymm(v, ymm_spill(v));
    spilled |= regs;
    modified |= regs;
  }
  void unspill(uint16_t regs) {
    for (int v = 0; v < 16; ++v)
      if ((regs & spilled) >> v & 1) w.load_ymm(v, ymm_spill(v));
    spilled = uint16_t(spilled & ~regs);
  }

  //! The entry: rdi, rax and the flags to fs:[spill]; to the slow path when
  //! nested or without a block; depth := 1; the spilled words and every GPR
  //! a step reads, writes or clobbers into the block; MXCSR; the VEX-write
  //! check of the ymm registers whose upper half (or, for a memory form,
  //! whose block copy) the steps read, against what the last exit left
  //! (sigill_runtime.h). The rare paths (a change) go after the exits
  //! (rare_paths()).
  void entry() {
    const uint16_t gpr_save =
        uint16_t((p_->gprs_read | p_->gprs_written | p_->host_gprs) & ~kFixedGprs);
    w.store_fs(kRdi, g_env.tls_spill + int32_t(offsetof(LiveSpill, rdi)));
    w.store_fs(kRax, g_env.tls_spill + int32_t(offsetof(LiveSpill, rax)));
    w.byte(0x9f);                 // lahf
    w.bytes({0x0f, 0x90, 0xc0});  // seto al
    w.bytes({0x64, 0x66, 0x89});  // mov fs:[spill.flags], ax
    w.modrm_abs(kRax, g_env.tls_spill + int32_t(offsetof(LiveSpill, flags)));
    w.bytes({0x64, 0x83, 0x3c, 0x25});  // cmp dword fs:[depth], 0
    w.d32(g_env.tls_depth);
    w.byte(0x00);
    to_slow_[0] = w.jcc(kCcNz);
    w.load_fs(kRdi, g_env.tls_shadow);
    w.bytes({0x48, 0x85, 0xff});  // test rdi, rdi
    to_slow_[1] = w.jcc(kCcZ);
    w.bytes({0x64, 0xc7, 0x04, 0x25});  // mov dword fs:[depth], 1
    w.d32(g_env.tls_depth);
    w.d32(1);
    w.bytes({0x66, 0x89});  // mov [rdi+flags_save], ax
    w.modrm_rdi(kRax, g_env.flags_save);
    w.load_fs(kRax, g_env.tls_spill + int32_t(offsetof(LiveSpill, rax)));
    w.store_gpr(kRax, so::gpr(kRax));
    w.load_fs(kRax, g_env.tls_spill + int32_t(offsetof(LiveSpill, rdi)));
    w.store_gpr(kRax, so::gpr(kRdi));
    for (int r = 0; r < 16; ++r)
      if (gpr_save >> r & 1) w.store_gpr(r, so::gpr(r));
    if (p_->gprs_read >> kRsp & 1) w.store_gpr(kRsp, so::gpr(kRsp));
    if (p_->reads_mxcsr) {
      w.bytes({0xc5, 0xf8, 0xae});  // vstmxcsr [rdi+mxcsr]
      w.modrm_rdi(3, so::kMxcsr);
    }
    gprs_in_block = uint16_t(gpr_save | kStubGprs);
    resident = uint16_t(gprs_in_block & ~copied_gprs & ~(1u << kRsp));

    // The check uses one ymm, t; prefer a register no step touches: its
    // spill and reload then stay off every step's dependency chains.
    uint16_t used = 0;
    for (uint32_t i = 0; i < steps_->count; ++i) {
      const Step& st = p_->step[i];
      used |=
          uint16_t(st.live_read | st.live_written | st.block_read | st.block_written | st.scratch);
    }
    t_ = lowest_bit(uint16_t(~(p_->check | used) & 0xffff));
    if (t_ < 0) t_ = lowest_bit(uint16_t(~p_->check & 0xffff));
    if (t_ < 0) t_ = 15;
    if (p_->check) spill(uint16_t(1u << t_));
    for (int v = 0; v < 16; ++v) {
      if (!(p_->check >> v & 1)) continue;
      if (v == t_) {
        w.load_ymm(t_, ymm_spill(t_));
        w.cmpeqb_ymm(t_, t_, so::zmm(v));
      } else {
        w.cmpeqb_ymm(t_, v, so::zmm(v));
      }
      w.movmskb_eax(t_);
      w.bytes({0xff, 0xc0});  // inc eax: zero when all 32 bytes were equal
      rare_field_[v] = w.jcc(kCcNz);
      rare_back_[v] = w.size();  // unchanged: the block's copy already equals it
      block_current |= uint16_t(1u << v);
    }
  }

  //! Step `i`: its register form (on the live ymm) or its memory form (the
  //! ymm it reads stored to the block, the ones it writes loaded back), or a
  //! VEX zeroing idiom run natively with the block's upper halves cleared
  //! after it. Scratch ymm go to the spill space first.
  void step(uint32_t i) {
    const Site& site = *steps_->sites[i];
    const Step& st = p_->step[i];
    const jit::LiveForm& f = st.form;
    unspill(uint16_t(st.live_read | st.block_read));
    for (int v = 0; v < 16; ++v)
      if ((st.block_read & ~block_current) >> v & 1) w.store_ymm(v, so::zmm(v));
    block_current |= st.block_read;
    spill(st.scratch);
    if (f.reads_rip) {
      w.bytes({0x48, 0xb8});       // movabs rax, site address
      w.q64(site.address);
      w.store_gpr(kRax, so::kRip);
    }
    body_at_[i] = w.size();
    step_row_[i] = row_count_;
    add_row(site.address, body_at_[i], body_at_[i] + (f.body_end - f.body_begin), gprs_in_block,
            spilled,
            flags_in_block ? LiveStubFault::kFlagsInBlock : LiveStubFault::kFlagsEntryWord);
    flags_in_block |= f.writes_rflags;
    w.copy(st.code + f.body_begin, f.body_end - f.body_begin);
    if (pins) {
      if (uint8_t* body = w.written_at(body_at_[i], f.body_end - f.body_begin))
        jit::rewrite_pinned_slots(body, f.body_end - f.body_begin, pin_of_slot);
    }
    if (st.idiom.kind != VexIdiomKind::kNone) {
      // The instruction cleared bits 255:width of the live registers; the
      // block's bits 511:256 (or their pins) follow.
      for (int v = 0; v < 16; ++v)
        if (st.live_written >> v & 1) zero_upper(v);
    }
    if (g_env.count_runs) {
      w.bytes({0x48, 0xb8});  // movabs rax, &site's counter
      w.q64(reinterpret_cast<uint64_t>(region_ ? &site.region_runs : &site.stub_runs));
      w.bytes({0xf0, 0x48, 0xff, 0x00});  // lock inc qword [rax]
    }
    // Results: a memory form's are in the block, a register form's live.
    for (int v = 0; v < 16; ++v)
      if (st.block_written >> v & 1) w.load_ymm(v, so::zmm(v));
    const uint16_t written = uint16_t(st.block_written | st.live_written);
    spilled = uint16_t(spilled & ~written);
    modified |= written;
    results |= written;
    block_current = uint16_t((block_current & ~st.live_written) | st.block_written);
  }

  //! Gives each slot in `slots`, in slot order, a host ymm from `free`
  //! while any is left (a loop touches few slots; the rest stay in the
  //! block).
  void choose_pins(uint64_t slots, uint16_t free) {
    for (int s = 0; s < jit::kPinSlots && free; ++s) {
      if (!(slots >> s & 1)) continue;
      const int h = lowest_bit(free);
      free = uint16_t(free & ~(1u << h));
      pin_of_slot[s] = int8_t(h);
      pin_offset[h] = jit::pin_slot_offset(s);
      pins |= uint16_t(1u << h);
    }
  }
  //! The pinned slots from the block into their host ymm, or back.
  void load_pins() {
    for (int h = 0; h < 16; ++h)
      if (pins >> h & 1) w.load_ymm(h, pin_offset[h]);
  }
  void store_pins() {
    for (int h = 0; h < 16; ++h)
      if (pins >> h & 1) w.store_ymm(h, pin_offset[h]);
  }

  //! zmm v's bits 511:256 := 0, in its pin or in the block. Needs rdi the
  //! block only for the latter.
  void zero_upper(int v) {
    const int h = pin_of_slot[v];
    if (h < 0) {
      zero_block_upper(v);
      return;
    }
    w.vex3(h, h, h, /*l256=*/false, 1);  // vpxor xmmh, xmmh, xmmh: clears all of ymmh
    w.byte(0xef);
    w.byte(uint8_t(0xc0 | (h & 7) << 3 | (h & 7)));
  }

  //! mov qword [rdi+zmm(v)+32+8q], 0 for q = 0..3: zmm v's bits 511:256.
  void zero_block_upper(int v) {
    for (int q = 0; q < 4; ++q) {
      w.bytes({0x48, 0xc7});
      w.modrm_rdi(0, so::zmm(v) + 32 + 8 * q);
      w.d32(0);
    }
  }

  //! Host flags := the guest's: the block's rflags when a step wrote them,
  //! else the entry flags word. Clobbers rax.
  void restore_flags() {
    if (flags_in_block) {
      // AH := RFLAGS[7:0] (SF ZF AF PF CF for sahf), AL := OF.
      w.bytes({0x0f, 0xb6});  // movzx eax, byte [rdi+rflags]
      w.modrm_rdi(kRax, so::kRflags);
      w.bytes({0x88, 0xc4});  // mov ah, al
      w.byte(0x8a);           // mov al, byte [rdi+rflags+1]
      w.modrm_rdi(kRax, so::kRflags + 1);
      w.bytes({0xc0, 0xe8, 0x03});  // shr al, 3
      w.bytes({0x24, 0x01});        // and al, 1
    } else {
      w.bytes({0x66, 0x8b});  // mov ax, [rdi+flags_save]
      w.modrm_rdi(kRax, g_env.flags_save);
    }
    w.bytes({0x04, 0x7f});  // add al, 0x7f: OF := (al == 1)
    w.byte(0x9e);           // sahf
  }

  //! AVX-512 hosts: VEX loads zeroed bits 511:256 of every ymm the stub
  //! restored; put the block's upper halves back, and the opmasks and
  //! zmm16-31 the steps wrote, so natively run AVX-512 code sees them.
  void hw_sync() {
    if (!g_env.hw_sync) return;
    const uint32_t uppers = uint32_t(modified) | p_->upper_written;
    for (int r = 0; r < 32; ++r)
      if (uppers >> r & 1) w.copy(g_hw_sync.insn(r), g_hw_sync.length[r]);
    for (int r = 0; r < 8; ++r)
      if (p_->k_written >> r & 1) w.copy(g_hw_sync.insn(32 + r), g_hw_sync.length[32 + r]);
  }

  //! jmp rel32 to an absolute address.
  void jmp_to(uint64_t target) {
    w.byte(0xe9);
    w.d32(int32_t(int64_t(target) - int64_t(address_ + w.size() + 4)));
  }
  //! mov dword fs:[depth], 0
  void release_depth() {
    w.bytes({0x64, 0xc7, 0x04, 0x25});
    w.d32(g_env.tls_depth);
    w.d32(0);
  }

  //! The plan stub's way out: guest values back from the spill space, the
  //! block's copy of every ymm given a new value in place (the next entry's
  //! VEX check compares against it; a register only borrowed as scratch
  //! keeps its old copy, so a VEX write before this entry is still seen
  //! later), the GPRs in `gpr_restore`, the flags, rax and rdi; depth := 0;
  //! jmp to `resume`.
  void plan_exit(uint16_t gpr_restore, uint64_t resume) {
    unspill(spilled);
    for (int v = 0; v < 16; ++v)
      if ((results & ~block_current) >> v & 1) w.store_ymm(v, so::zmm(v));
    hw_sync();
    for (int r = 0; r < 16; ++r)
      if (gpr_restore >> r & 1) w.load_gpr(r, so::gpr(r));
    restore_flags();
    w.load_gpr(kRax, so::gpr(kRax));
    w.load_gpr(kRdi, so::gpr(kRdi));
    release_depth();
    jmp_to(resume);
  }

  //! The slow path: flags, rax and rdi back from fs:[spill], then the
  //! state-block stub for `plan` (push/call avx512emu_stub_entry, below the
  //! red zone), then jmp to `resume`.
  void slow_path(const StubPlan& plan, uint64_t resume) {
    const size_t slow = w.size();
    w.link(to_slow_[0], slow);
    w.link(to_slow_[1], slow);
    w.bytes({0x64, 0x66, 0x8b});  // mov ax, fs:[spill.flags]
    w.modrm_abs(kRax, g_env.tls_spill + int32_t(offsetof(LiveSpill, flags)));
    w.bytes({0x04, 0x7f});  // add al, 0x7f
    w.byte(0x9e);           // sahf
    w.load_fs(kRax, g_env.tls_spill + int32_t(offsetof(LiveSpill, rax)));
    w.load_fs(kRdi, g_env.tls_spill + int32_t(offsetof(LiveSpill, rdi)));
    w.bytes({0x48, 0x8d, 0x64, 0x24, 0x80});  // lea rsp, [rsp-128]: over the red zone
    w.byte(0x50);                             // push rax
    w.bytes({0x48, 0xb8});                    // movabs rax, plan
    w.q64(reinterpret_cast<uint64_t>(&plan));
    w.bytes({0xff, 0x15});  // call [rip+entry literal]
    const size_t call_field = w.size();
    w.d32(0);
    w.byte(0x58);                                               // pop rax
    w.bytes({0x48, 0x8d, 0xa4, 0x24, 0x80, 0x00, 0x00, 0x00});  // lea rsp, [rsp+128]
    jmp_to(resume);
    w.align(8, 0xcc);
    w.link(call_field, w.size());
    w.q64(reinterpret_cast<uint64_t>(&avx512emu_stub_entry));
  }

  //! The rare paths of the VEX-write check: eax = movemask + 1 (nonzero).
  void rare_paths() {
    for (int v = 0; v < 16; ++v) {
      if (!(p_->check >> v & 1)) continue;
      w.link(rare_field_[v], w.size());
      w.bytes({0xff, 0xc8});                    // dec eax: the movemask
      w.bytes({0xc1, 0xe8, 0x10});              // shr eax, 16: bytes 31:16 equal?
      w.bytes({0x3d, 0xff, 0xff, 0x00, 0x00});  // cmp eax, 0xffff
      const size_t to_zero = w.jcc(kCcNz);      // bits 255:128 changed: a VEX write
      // Only bits 127:0 changed: a VEX write when bits 255:128 are zero
      // (ambiguous with SSE; see sigill_runtime.h), else an SSE write.
      w.load_gpr(kRax, so::zmm(v) + 16);
      w.rex_w_rdi(kRax);
      w.byte(0x0b);  // or rax, [rdi+zmm+24]
      w.modrm_rdi(kRax, so::zmm(v) + 24);
      const size_t keep_upper = w.jcc(kCcNz);
      w.link(to_zero, w.size());
      zero_block_upper(v);
      // The new value becomes the block's copy (t's own is in the spill space).
      w.link(keep_upper, w.size());
      if (v == t_) {
        w.load_ymm(t_, ymm_spill(t_));
        w.store_ymm(t_, so::zmm(v));
        w.load_ymm(t_, ymm_spill(t_));
      } else {
        w.store_ymm(v, so::zmm(v));
      }
      w.link(w.jmp(), rare_back_[v]);
    }
  }

  //! Tails and constants, each step's block at its original offset modulo
  //! 32, with the bodies' relative fields into them fixed up.
  void constants() {
    for (uint32_t i = 0; i < steps_->count; ++i) {
      const jit::LiveForm& f = p_->step[i].form;
      const uint8_t* code = p_->step[i].code;
      while ((address_ + w.size()) % 32 != f.data_begin % 32) w.byte(0xcc);
      data_at_[i] = w.size();
      w.copy(code + f.data_begin, f.data_end - f.data_begin);
      for (uint8_t x = 0; x < f.fixup_count; ++x) {
        const jit::LiveForm::Fixup& fx = f.fixups[x];
        const size_t field = body_at_[i] + (fx.field - f.body_begin);
        const size_t next = body_at_[i] + (fx.next - f.body_begin);
        const size_t target = fx.to_body_end ? body_at_[i] + (f.body_end - f.body_begin)
                                             : data_at_[i] + (fx.target - f.data_begin);
        w.put32_at(field, int32_t(int64_t(target) - int64_t(next)));
      }
      StubTableRow& row = rows_[step_row_[i]];
      row.data_begin = uint32_t(data_at_[i]);
      row.data_end = uint32_t(data_at_[i] + (f.data_end - f.data_begin));
    }
  }

  //! A row of the step table (see find_live_stub_fault).
  void add_row(uint64_t guest_rip, size_t begin, size_t end, uint16_t in_block,
               uint16_t ymm_spilled, LiveStubFault::Flags flags) {
    if (row_count_ == kMaxRows) {
      rows_overflow_ = true;
      return;
    }
    StubTableRow& row = rows_[row_count_++];
    row = StubTableRow{};
    row.guest_rip = guest_rip;
    row.body_begin = uint32_t(begin);
    row.body_end = uint32_t(end);
    row.gprs_in_block = in_block;
    row.ymm_spilled = ymm_spilled;
    row.flags = flags;
  }

  //! The step table, the stub's last bytes; returns the stub's size, or 0
  //! (with `why`) when it did not fit.
  size_t finish(const char** why) {
    w.align(8, 0xcc);
    const size_t table_at = w.size();
    StubTableHeader header{kStubTableMagic, uint16_t(row_count_), 0, {}};
    for (int h = 0; h < 16; ++h) header.pin_offset[h] = uint16_t(pins >> h & 1 ? pin_offset[h] : 0);
    w.copy(reinterpret_cast<const uint8_t*>(&header), sizeof header);
    for (uint32_t i = 0; i < row_count_; ++i)
      w.copy(reinterpret_cast<const uint8_t*>(&rows_[i]), sizeof rows_[i]);
    w.d32(int32_t(table_at));  // the table's offset, in the stub's last 4 bytes
    if (w.overflow() || rows_overflow_) {
      *why = "stub too large";
      return 0;
    }
    return w.size();
  }

  // ---- Loop regions: transitions between copied code (every guest GPR in
  // its real register, the real flags the guest's) and a run of steps (rdi
  // the block, rax scratch, the registers the run touches in the block).
  // Only moves: the flags pass through untouched.

  //! Into a run from copied code: the block pointer into rdi, the GPRs in
  //! `store` into the block (copied code may have changed them; the
  //! others' block copies are still current) and, with `save_flags`, the
  //! flags into the entry flags word (they are live across a run that does
  //! not write them: leave_run puts them back).
  void enter_run(uint16_t store, bool save_flags) {
    const bool rdi = store >> kRdi & 1;
    if (rdi) w.store_fs(kRdi, g_env.tls_spill + int32_t(offsetof(LiveSpill, rdi)));
    if (rdi_live_between_runs()) w.load_fs(kRdi, g_env.tls_shadow);
    for (int r = 0; r < 16; ++r)
      if ((store & ~(1u << kRdi)) >> r & 1) w.store_gpr(r, so::gpr(r));
    if (save_flags) {               // rax is in the block by now
      w.byte(0x9f);                 // lahf
      w.bytes({0x0f, 0x90, 0xc0});  // seto al
      w.bytes({0x66, 0x89});        // mov [rdi+flags_save], ax
      w.modrm_rdi(kRax, g_env.flags_save);
    }
    if (rdi) {
      w.load_fs(kRax, g_env.tls_spill + int32_t(offsetof(LiveSpill, rdi)));
      w.store_gpr(kRax, so::gpr(kRdi));
    }
    spilled = pinned;
    block_current = 0;
    flags_in_block = false;
  }

  //! Out of a run into copied code: spilled ymm back, the guest's flags
  //! when `flags` (restore_flags()), the GPRs in `load` and rdi from the
  //! block.
  void leave_run(uint16_t load, bool flags) {
    unspill(uint16_t(spilled & ~pinned));
    if (flags) restore_flags();
    // Only what copied code uses; resident GPRs stay in the block.
    load &= copied_gprs;
    for (int r = 0; r < 16; ++r)
      if ((load & ~(1u << kRdi)) >> r & 1) w.load_gpr(r, so::gpr(r));
    if (rdi_live_between_runs()) w.load_gpr(kRdi, so::gpr(kRdi));
  }

  //! Out of the region, from copied code, to `target` in the original
  //! code: the block's copy of every ymm the region may have changed (for
  //! the next entry's VEX check), the hardware sync, depth := 0.
  void region_exit(uint64_t target) {
    const bool rdi_live = rdi_live_between_runs();
    if (rdi_live) {
      w.store_fs(kRdi, g_env.tls_spill + int32_t(offsetof(LiveSpill, rdi)));
      w.load_fs(kRdi, g_env.tls_shadow);
    }
    store_pins();
    for (int v = 0; v < 16; ++v)
      if (pinned >> v & 1) w.load_ymm(v, ymm_spill(v));
    for (int v = 0; v < 16; ++v)
      if (results >> v & 1) w.store_ymm(v, so::zmm(v));
    hw_sync();
    for (int r = 0; r < 16; ++r)
      if ((resident & ~(1u << kRdi)) >> r & 1) w.load_gpr(r, so::gpr(r));
    if (rdi_live)
      w.load_fs(kRdi, g_env.tls_spill + int32_t(offsetof(LiveSpill, rdi)));
    else
      w.load_gpr(kRdi, so::gpr(kRdi));
    release_depth();
    jmp_to(target);
  }

  //! A copied instruction other than a branch, its RIP-relative operand
  //! pointed at the same address; a VEX write clears the block's upper
  //! half of its destination, as the hardware clears the register's.
  bool copy_insn(const LoopRegion::Insn& in, const char** why) {
    const size_t at = w.size();
    w.copy(in.bytes, in.length);
    if (in.host.rel_size) {
      const int64_t target = int64_t(in.address) + in.host.rel_target;
      const int64_t disp = target - int64_t(address_ + at + in.length);
      // Address 0 is the measuring pass (patch_site): no reach to check.
      if (in.host.rel_size != 4 || (address_ && disp != int32_t(disp))) {
        *why = "a RIP-relative operand out of reach";
        return false;
      }
      w.put32_at(at + in.host.rel_offset, int32_t(disp));
    }
    add_row(in.address, at, at + in.length, resident, pinned, LiveStubFault::kFlagsLive);
    const uint16_t vecs = in.host.vecs_written;
    results |= vecs;
    if (in.host.vex && vecs) {
      const bool rdi_live = rdi_live_between_runs();
      if (rdi_live) {
        w.store_fs(kRdi, g_env.tls_spill + int32_t(offsetof(LiveSpill, rdi)));
        w.load_fs(kRdi, g_env.tls_shadow);
      }
      for (int v = 0; v < 16; ++v)
        if (vecs >> v & 1) zero_upper(v);
      if (rdi_live) w.load_fs(kRdi, g_env.tls_spill + int32_t(offsetof(LiveSpill, rdi)));
    }
    return true;
  }

  uint64_t address() const { return address_; }

 private:
  StubBuilder(uint64_t address, const StepList& steps, PlanForms& p, uint8_t* out, size_t capacity,
              bool region)
      : w(out, capacity), address_(address), steps_(&steps), p_(&p), region_(region) {
    for (int8_t& h : pin_of_slot) h = -1;
  }
  friend StubBuilder* stub_builder();
  StubBuilder() = default;

  static constexpr uint32_t kMaxRows = LoopRegion::kMaxInsns;
  uint64_t address_ = 0;
  const StepList* steps_ = nullptr;
  PlanForms* p_ = nullptr;
  bool region_ = false;
  int t_ = 15;
  size_t to_slow_[2] = {};
  size_t rare_field_[16] = {}, rare_back_[16] = {};
  size_t body_at_[StepList::kMax] = {}, data_at_[StepList::kMax] = {};
  uint32_t step_row_[StepList::kMax] = {};
  StubTableRow rows_[kMaxRows];
  uint32_t row_count_ = 0;
  bool rows_overflow_ = false;
};

//! The one builder (large; the patch lock serialises builders).
StubBuilder* stub_builder() {
  static StubBuilder b;
  return &b;
}

}  // namespace

size_t build_live_stub(uint64_t address, const StubPlan& plan, uint8_t* out, size_t capacity,
                       const char** why) {
  const char* unused = nullptr;
  if (!why) why = &unused;
  if (!g_env.enabled || plan.count == 0) {
    *why = "inline stubs are off";
    return 0;
  }
  static StepList steps;  // the patch lock serialises builders
  steps.count = plan.count;
  for (uint32_t i = 0; i < plan.count; ++i) steps.sites[i] = plan.sites[i];
  static PlanForms p;  // large
  p = PlanForms{};
  if (!analyse(steps, p, why)) return 0;

  const uint16_t gpr_restore = uint16_t((p.gprs_written | p.host_gprs) & ~kFixedGprs);
  StubBuilder& b = *stub_builder();
  b.reset(address, steps, p, out, capacity, /*region=*/false);
  b.entry();
  for (uint32_t i = 0; i < plan.count; ++i) b.step(i);
  const Site& last = *plan.sites[plan.count - 1];
  const uint64_t resume = last.address + last.length;
  b.plan_exit(gpr_restore, resume);
  b.slow_path(plan, resume);
  b.rare_paths();
  b.constants();
  return b.finish(why);
}

size_t build_region_stub(uint64_t address, const StubPlan& plan, const LoopRegion& r, uint8_t* out,
                         size_t capacity, const char** why) {
  const char* unused = nullptr;
  if (!why) why = &unused;
  if (!g_env.enabled || plan.count == 0 || r.count == 0) {
    *why = "inline stubs are off";
    return 0;
  }
  // The region's sites in address order: the steps, analysed together.
  static StepList steps;  // the patch lock serialises builders
  static int32_t step_of[LoopRegion::kMaxInsns];
  steps.count = 0;
  for (uint32_t i = 0; i < r.count; ++i) {
    step_of[i] = -1;
    if (!r.insn[i].site) continue;
    step_of[i] = int32_t(steps.count);
    steps.sites[steps.count++] = r.insn[i].site;
  }
  static PlanForms p;
  p = PlanForms{};
  if (!analyse(steps, p, why)) return 0;

  // Runs of steps start after copied code, at the entry and at branch
  // targets (each start has its way in from copied code).
  static bool run_start[LoopRegion::kMaxInsns];
  for (uint32_t i = 0; i < r.count; ++i)
    run_start[i] = r.insn[i].site && (i == 0 || !r.insn[i - 1].site || i == r.entry);
  for (uint32_t i = 0; i < r.count; ++i)
    if (!r.insn[i].site && r.insn[i].target_index >= 0 && r.insn[r.insn[i].target_index].site)
      run_start[r.insn[i].target_index] = true;
  // GPRs copied code writes: their block copies go stale.
  uint16_t dirty = 0;
  for (uint32_t i = 0; i < r.count; ++i)
    if (!r.insn[i].site)
      dirty |= uint16_t(r.insn[i].host.gprs_written | (r.insn[i].host.stack ? 1u << kRsp : 0u));

  // GPRs copied code uses; the stack pointer always counts as used.
  uint16_t copied_gprs = uint16_t(1u << kRsp);
  for (uint32_t i = 0; i < r.count; ++i) {
    const HostInsn& h = r.insn[i].host;
    if (r.insn[i].site) continue;
    copied_gprs |= uint16_t(h.gprs_read | h.gprs_written);
    if (h.mem.present && h.mem.base >= 0 && h.mem.base < 16)
      copied_gprs |= uint16_t(1u << h.mem.base);
    if (h.mem.present && h.mem.index >= 0 && h.mem.index < 16)
      copied_gprs |= uint16_t(1u << h.mem.index);
  }

  StubBuilder& b = *stub_builder();
  b.reset(address, steps, p, out, capacity, /*region=*/true);
  b.copied_gprs = copied_gprs;
  b.entry();
  b.unspill(b.spilled);
  // Scratch ymm that no instruction of the region uses as a guest register
  // stay spilled while it runs.
  uint16_t guest_vecs = 0, scratch = 0;
  for (uint32_t k = 0; k < steps.count; ++k) {
    const Step& st = p.step[k];
    guest_vecs |=
        uint16_t(st.live_read | st.live_written | st.block_read | st.block_written | st.check);
    scratch |= st.scratch;
  }
  for (uint32_t i = 0; i < r.count; ++i)
    if (!r.insn[i].site)
      guest_vecs |= uint16_t(r.insn[i].host.vecs_read | r.insn[i].host.vecs_written);
  b.pinned = uint16_t(scratch & ~guest_vecs);
  // Slots of the guest state the steps reach only in ways a register
  // operand can serve get the ymm no step and no guest instruction uses.
  uint64_t touched = 0, blocked = 0;
  for (uint32_t k = 0; k < steps.count; ++k) {
    const Step& st = p.step[k];
    if (st.idiom.kind != VexIdiomKind::kNone) continue;
    jit::SlotUse use;
    if (!jit::scan_slot_uses(st.code, st.form.body_begin, st.form.body_end, use))
      use.blocked = ~0ull;
    touched |= use.touched;
    blocked |= use.blocked;
  }
  b.choose_pins(touched & ~blocked, uint16_t(~(guest_vecs | scratch) & 0xffff));
  b.pinned |= b.pins;
  b.spill(b.pinned);
  b.load_pins();
  const size_t to_entry_run = b.w.jmp();

  struct Branch {
    size_t field;
    int32_t index;
    uint64_t target;
  };
  static Branch branches[LoopRegion::kMaxInsns];
  static size_t item_at[LoopRegion::kMaxInsns];
  uint32_t branch_count = 0;
  uint16_t run_load = 0;
  for (uint32_t i = 0; i < r.count; ++i) {
    const LoopRegion::Insn& in = r.insn[i];
    item_at[i] = b.w.size();
    if (in.site) {
      if (run_start[i]) {
        uint16_t touched = 0, clobbered = 0;
        bool writes_flags = false, flags_live_after = false;
        for (uint32_t j = i; j < r.count && r.insn[j].site && (j == i || !run_start[j]); ++j) {
          const jit::LiveForm& f = p.step[step_of[j]].form;
          touched |= uint16_t(f.guest_gprs_read | f.guest_gprs_written | f.host_gprs_written);
          clobbered |= uint16_t(f.guest_gprs_written | f.host_gprs_written);
          writes_flags |= f.writes_rflags;
          flags_live_after = r.insn[j].flags_live_after;
        }
        // The entry saved the flags already (the entry run enters after this).
        b.enter_run(uint16_t((touched | kStubGprs) & dirty), flags_live_after && !writes_flags);
        if (i == r.entry) b.w.link(to_entry_run, b.w.size());
        b.gprs_in_block = uint16_t((touched | kStubGprs | b.resident) & ~(1u << kRsp));
        run_load = uint16_t((clobbered & ~kFixedGprs) | (1u << kRax));
      }
      b.step(uint32_t(step_of[i]));
      const bool run_end = i + 1 == r.count || !r.insn[i + 1].site || run_start[i + 1];
      if (run_end) b.leave_run(run_load, in.flags_live_after);
      continue;
    }
    if (in.host.kind == HostInsnKind::kJump || in.host.kind == HostInsnKind::kCondJump) {
      const uint8_t opcode = in.bytes[in.host.rel_offset - 1];  // 7x / 0F 8x: cc in the low bits
      const size_t field =
          in.host.kind == HostInsnKind::kJump ? b.w.jmp() : b.w.jcc(uint8_t(opcode & 0x0f));
      branches[branch_count++] = Branch{field, in.target_index, in.target};
      continue;
    }
    if (!b.copy_insn(in, why)) return 0;
  }
  // Ways out: the fall-through after the back edge, then one per branch
  // that leaves the region; branches inside it are chained.
  b.region_exit(r.end);
  for (uint32_t k = 0; k < branch_count; ++k) {
    if (branches[k].index >= 0) {
      b.w.link(branches[k].field, item_at[branches[k].index]);
    } else {
      b.w.link(branches[k].field, b.w.size());
      b.region_exit(branches[k].target);
    }
  }
  const Site& last = *plan.sites[plan.count - 1];
  b.slow_path(plan, last.address + last.length);
  b.rare_paths();
  b.constants();
  return b.finish(why);
}

}  // namespace avx512emu::runtime
