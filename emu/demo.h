// Owns `avx512emu demo`: a bundled AVX-512 kernel run through the
// translations and checked against a plain C++ computation and, where the
// CPU has AVX-512, against native execution of the same instruction bytes.
#pragma once

#include <string>

namespace avx512emu {

struct DemoResult {
  bool ok = false;        //!< Every check passed.
  std::string report;     //!< What ran and what was compared, for stdout.
  std::string error;      //!< First mismatch or failure, when !ok.
};

//! Runs the bundled kernel (a masked SAXPY with a checksum) over `elements`
//! floats, a multiple of 16.
DemoResult run_demo(int elements);

}  // namespace avx512emu
