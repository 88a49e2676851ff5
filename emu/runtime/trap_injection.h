// Owns the code sweep of the loaded objects: it finds every AVX-512
// instruction in the program and its libraries, registers each as a trap
// site with its translation made ahead of time, and, for trap injection
// (--simulate-avx2), arms each with ud2 so that it traps on an AVX-512 host
// exactly as it would on an AVX2 host.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace avx512emu::runtime {

//! What the sweep found in one loaded object.
struct ObjectSweep {
  std::string path;
  uint64_t base = 0;            //!< Load bias.
  std::string function_source;  //!< "eh_frame+symbols", "symbols" or "none" (linear sweep).
  std::string error;            //!< Set when the object could not be read.
  uint64_t avx512 = 0;          //!< AVX-512 instructions found.
  uint64_t translated = 0;      //!< ... with a translation (pre-translated).
  uint64_t armed = 0;           //!< ... overwritten with ud2.
  uint64_t islands = 0;         //!< Padding reserved for sites shorter than 5 bytes.
  //! VEX zeroing idioms and vzeroupper/vzeroall (vex_idioms.h) in functions
  //! with AVX-512 code: registered and overwritten with ud2, and found but
  //! left native because no jmp could ever replace their trap.
  uint64_t vex_idioms_armed = 0, vex_idioms_native = 0;
  uint64_t skipped = 0;         //!< Not registered: bytes in memory differ from the file
                                //!< (text relocations) or outside an r-x segment.
  std::map<std::string, uint64_t> untranslated;  //!< mnemonic -> count
};

//! Sweeps every loaded object that was not swept before: the main program
//! (through /proc/self/exe), its libraries and objects loaded later by
//! dlopen. The runtime's own object and the vDSO are skipped. Function
//! ranges come from .eh_frame and symbols where the file has them, else the
//! executable sections are swept linearly. Each object's r-x segments become
//! patchable code regions. With `arm`, every AVX-512 instruction found gets
//! ud2 over its first two bytes (translated or not: an AVX2 host would trap
//! on all of them). VEX zeroing idioms and vzeroupper/vzeroall in functions
//! with AVX-512 code are armed with `arm` and on hosts without AVX-512 state
//! (vex_idioms.h). Thread safe (serialised); not for signal handlers.
std::vector<ObjectSweep> sweep_loaded_objects(bool arm);

//! Forgets objects that are no longer loaded (after dlclose): their code
//! regions stop being patchable, and a later object at the same address is
//! swept anew.
void forget_unloaded_objects();

//! One line per object, as --stats prints it at start-up.
std::string sweep_report_text(const std::vector<ObjectSweep>& sweeps, bool armed);

}  // namespace avx512emu::runtime
