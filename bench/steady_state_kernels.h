// Owns the steady-state kernels: eight small AVX-512 kernels, each with a
// hand-written AVX2 twin that gives the same bits, the data they work on, and
// the table that steady_state_bench and steady_state_kernels_test loop over.
//
// Every kernel works on arrays of a few KiB (L1/L2 resident) and does a few
// thousand elements per call, so a call is short natively and long enough to
// time under emulation. The AVX-512 versions use only instructions avx512emu
// translates (`avx512emu scan` on a binary that links them says so); the
// AVX2 versions do the same operations in the same order, so FP results
// match bit for bit.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace avx512emu::steady_state {

// ---- Data -----------------------------------------------------------------------------
// One global block per kernel. setup() fills the inputs (deterministically)
// and clears the outputs; a kernel thunk in the table runs the kernel on its
// block; checksum() hashes the outputs. Tests write a scalar reference result
// into the same outputs and checksum it the same way.

//! 1. Dot product of floats with FMA; 2045 = 127 * 16 + 13: a masked tail.
constexpr size_t kDotN = 2045;
struct DotData {
  alignas(64) float a[2048];
  alignas(64) float b[2048];
  float result;
};
extern DotData dot_data;

//! 2. Bytes equal to a value; 8181 = 127 * 64 + 53: a masked tail.
constexpr size_t kCountN = 8181;
struct CountData {
  alignas(64) uint8_t bytes[8192];
  uint8_t value;
  uint64_t result;
};
extern CountData count_data;

//! 3. Keep the int32 elements greater than a threshold, in order;
//! 2043 = 127 * 16 + 11: a masked tail. `out` has 8 elements of slack: the
//! AVX2 version stores whole vectors past the kept ones.
constexpr size_t kCompressN = 2043;
struct CompressData {
  alignas(64) int32_t in[2048];
  int32_t threshold;
  alignas(64) int32_t out[2048 + 8];
  size_t kept;
};
extern CompressData compress_data;

//! 4. A 64-bit hash mix of 1024 keys (a multiple of 8). Per block of 8
//! keys k[j] at index i + j:
//!   x[j] = rotl(k[j] ^ seed ^ (i + j), 23) * kHashP1;
//!   y[j] = x[7 - j];
//!   out[i + j] = (y[j] ^ (rotl(y[j], 41) & kHashP2)) * kHashP3.
constexpr size_t kHashN = 1024;
constexpr uint64_t kHashP1 = 0x9e3779b97f4a7c15ull, kHashP2 = 0xbf58476d1ce4e5b9ull,
                   kHashP3 = 0x94d049bb133111ebull;
struct HashData {
  alignas(64) uint64_t keys[kHashN];
  alignas(64) uint64_t out[kHashN];
  uint64_t seed;
};
extern HashData hash_data;

//! 5. y[i] = a * x[i] + y[i] where x[i] > 0, in place; 2045: a masked tail.
constexpr size_t kSaxpyN = 2045;
struct SaxpyData {
  alignas(64) float x[2048];
  alignas(64) float y[2048];
  float a;
};
extern SaxpyData saxpy_data;

//! 6. Sum of absolute differences between a (uint32 saturated to uint8) and
//! b (int16 saturated to int8, biased by 128); 2048 is a multiple of 64.
constexpr size_t kSadN = 2048;
struct SadData {
  alignas(64) uint32_t a[kSadN];
  alignas(64) int16_t b[kSadN];
  uint64_t result;
};
extern SadData sad_data;

//! 7. out[i] = T[idx[i] & 31] ^ (T[(idx[i] >> 5) & 31] << 1) over a 32-entry
//! int32 table; 2048 is a multiple of 16.
constexpr size_t kPermuteN = 2048;
struct PermuteData {
  alignas(64) int32_t table[32];
  alignas(64) uint32_t idx[kPermuteN];
  alignas(64) int32_t out[kPermuteN];
};
extern PermuteData permute_data;

//! 8. Per lane (16 int32 lanes, wrapping arithmetic) over blocks of 16:
//! sum, max, the parity of "element > threshold" so far, and the sum of the
//! elements that are above the threshold while that parity is odd.
constexpr size_t kZmmHighN = 2048;
struct ZmmHighResult {
  alignas(64) int32_t sum[16];
  alignas(64) int32_t max[16];
  alignas(64) int32_t masked_sum[16];
  uint32_t parity;  //!< Bit j: the parity of lane j.
};
struct ZmmHighData {
  alignas(64) int32_t v[kZmmHighN];
  int32_t threshold;
  ZmmHighResult result;
};
extern ZmmHighData zmm_high_data;

// ---- Kernels --------------------------------------------------------------------------
// Each *_avx512 needs AVX-512F/BW/DQ/VL/CD, each *_avx2 needs AVX2/FMA/BMI2/
// POPCNT. Both versions of a kernel give the same result for the same input.

float dot_avx512(const float* a, const float* b, size_t n);
float dot_avx2(const float* a, const float* b, size_t n);

uint64_t count_eq_avx512(const uint8_t* p, size_t n, uint8_t value);
uint64_t count_eq_avx2(const uint8_t* p, size_t n, uint8_t value);

//! Returns the number kept; out needs n + 8 elements for the AVX2 version.
size_t compress_gt_avx512(const int32_t* in, size_t n, int32_t threshold, int32_t* out);
size_t compress_gt_avx2(const int32_t* in, size_t n, int32_t threshold, int32_t* out);

//! n a multiple of 8.
void hash_mix_avx512(const uint64_t* keys, size_t n, uint64_t seed, uint64_t* out);
void hash_mix_avx2(const uint64_t* keys, size_t n, uint64_t seed, uint64_t* out);

void masked_saxpy_avx512(float a, const float* x, float* y, size_t n);
void masked_saxpy_avx2(float a, const float* x, float* y, size_t n);

//! n a multiple of 64.
uint64_t sat_sad_avx512(const uint32_t* a, const int16_t* b, size_t n);
uint64_t sat_sad_avx2(const uint32_t* a, const int16_t* b, size_t n);

//! n a multiple of 16.
void permute_lookup_avx512(const int32_t* table, const uint32_t* idx, size_t n, int32_t* out);
void permute_lookup_avx2(const int32_t* table, const uint32_t* idx, size_t n, int32_t* out);

//! n a positive multiple of 16.
void zmm_high_avx512(const int32_t* v, size_t n, int32_t threshold, ZmmHighResult* r);
void zmm_high_avx2(const int32_t* v, size_t n, int32_t threshold, ZmmHighResult* r);

// ---- The table ------------------------------------------------------------------------

struct Kernel {
  const char* name;
  void (*setup)();         //!< Fresh inputs, cleared outputs.
  void (*avx512)();        //!< One call of the AVX-512 version on the kernel's data.
  void (*avx2)();          //!< One call of the AVX2 version on the kernel's data.
  uint64_t (*checksum)();  //!< FNV-1a over the kernel's outputs.
};

std::span<const Kernel> kernels();
//! nullptr when there is no kernel of that name.
const Kernel* find_kernel(std::string_view name);

//! FNV-1a, 64 bits, continuing from `h`.
uint64_t fnv1a(const void* data, size_t size, uint64_t h = 1469598103934665603ull);

}  // namespace avx512emu::steady_state
