// Owns the interface between the cache-loader fuzz target and its
// standalone driver: the entry point and what became of the inputs.
#pragma once

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

//! Inputs the loader accepted and refused since the process started; the
//! driver checks that its corpus reaches both outcomes.
struct CacheLoaderFuzzOutcomes {
  uint64_t accepted = 0, refused = 0;
};
CacheLoaderFuzzOutcomes cache_loader_fuzz_outcomes();
