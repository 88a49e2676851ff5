// Owns the three-way differential self-check: native execution on this CPU
// versus interpret() versus translate()+execute(), bit for bit, over every
// enumerated form of a mnemonic and many generated states.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "selfcheck/form_enumerator.h"

namespace avx512emu::selfcheck {

//! Outcome of verifying one mnemonic (or one form).
struct DiffReport {
  int forms = 0;     //!< Forms run (each with all its imm8 values).
  int states = 0;    //!< (form, imm8, state) runs through all three legs.
  int failures = 0;  //!< Runs that mismatched or faulted, plus one per leg
                     //!< error (translate/interpret refused a form+imm8).
  //! The first few failures in full detail: form text, bytes, imm8, state
  //! number and seed, memory placement, which leg differs from native and
  //! which register bytes / memory bytes, plus the inputs that were read.
  std::vector<std::string> messages;
  //! Things that are not failures but limit coverage (e.g. a straddling
  //! placement that faults natively for this form, so it was not used).
  std::vector<std::string> notes;
  //! Forms whose straddling placement the CPU does not fault-suppress (the
  //! mask does not map onto memory elements the simple way), so they were
  //! tested with flush placements only; the first few are also in `notes`.
  int straddle_fallbacks = 0;

  bool passed() const { return failures == 0 && forms > 0; }
  //! All messages (and notes) joined, one per paragraph, for test output.
  std::string summary() const;
};

//! Knobs of verify_mnemonic(); the defaults are the full check.
struct VerifyOptions {
  //! Messages kept in DiffReport::messages (failures are counted regardless).
  int max_messages = 5;
  //! Stop running further states of one (form, imm8) after this many failed.
  int max_failures_per_form = 2;
  //! All 256 imm8 values for vpternlog*, 8 for vpcmp*, 32 for vcmp*. The
  //! 256-value sweep covers the forms with plain addressing and distinct
  //! registers; the variant forms get the spread of immediate_values().
  bool exhaustive_imm = true;
  EnumerateOptions enumerate;
};

//! Fewest states each imm8 value of a form runs with: every state variant
//! (state_gen.h) twice.
inline constexpr int kMinStatesPerImm = 16;

//! Verifies every enumerated form of `mnemonic` with `states_per_form`
//! generated states per form; a form with an imm8 shares them among its
//! immediates, each getting at least kMinStatesPerImm (so vpternlogd's
//! primary forms run 256 x 16 states). Each state runs natively, in
//! the interpreter and as a translation, on copies of the same CpuState and
//! memory arena; the whole CpuState (except scratch, host_save, reserved0)
//! and the whole arena must match native bit for bit. Memory operands are
//! placed in the middle of the arena, flush against either guard page, and,
//! for masked non-broadcast forms, straddling a guard page with the mask
//! bits of the out-of-arena elements cleared (the CPU suppresses those
//! faults, so the emulation must not touch those bytes either).
//! A translate() or interpret() error for a form counts as a failure.
//! Set AVX512EMU_SELFCHECK_TRACE=1 to log each leg to stderr before it runs,
//! so a crash (which kills the process) names its form.
DiffReport verify_mnemonic(const char* mnemonic, int states_per_form, uint64_t seed);
DiffReport verify_mnemonic(const char* mnemonic, int states_per_form, uint64_t seed,
                           const VerifyOptions& options);

//! Verifies one form as it is (its current imm8 only). For checking a
//! single instruction, e.g. one from form_from_bytes().
DiffReport verify_form(const TestForm& form, int states, uint64_t seed,
                       const VerifyOptions& options = {});

//! The mnemonics of semantics_rows(), unique, in table order: the ones the
//! caller may want to verify.
std::vector<std::string> verifiable_mnemonics();

}  // namespace avx512emu::selfcheck
