// Owns the bundled guest workloads of `avx512emu vm`: freestanding CPL3 code
// with AVX-512 intrinsics. Each computes over data from a fixed xorshift64
// stream and returns a 64-bit result through the result port; tests recompute
// the same results in plain C++.
#include <immintrin.h>
#include <stdint.h>

#include "guest_abi.h"

// Linker-script symbols bounding the image.
extern char __text_start[], __text_end[], __bss_end[];
void _start(uint64_t id, uint64_t saved_rip_gva, uint64_t dispatcher_gva);

__attribute__((section(".image_header"), used)) const struct GuestImageHeader guest_image_header = {
    GUEST_IMAGE_MAGIC, (uint64_t)&_start, (uint64_t)__text_start, (uint64_t)__text_end,
    (uint64_t)__bss_end};

static void guest_exit(uint64_t result) {
  __asm__ volatile("out %%al, %1" ::"a"(0), "i"(GUEST_PORT_RESULT), "D"(result) : "memory");
  for (;;) __asm__ volatile("pause");
}

// Reports one loop iteration through the progress port. Clobbering zmm0-15
// makes the compiler keep `vec` (and the loop's other live vectors) in
// zmm16-31 across the exit, and `mask` is pinned to an opmask register, so a
// migration or an upgrade placed at this point meets live AVX-512-only state.
// The asm only reads its operands: the workload's results do not change.
#define REPORT_PROGRESS(vec, mask)                                                             \
  __asm__ volatile("out %%al, %2"                                                              \
                   : "+v"(vec), "+k"(mask)                                                     \
                   : "i"(GUEST_PORT_PROGRESS), "a"(0)                                          \
                   : "memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", \
                     "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15")

static uint64_t xorshift64(uint64_t* s) {
  uint64_t x = *s;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return *s = x;
}

// ---- masked dot product --------------------------------------------------------

#define DOT_N 4096
static int32_t dot_a[DOT_N] __attribute__((aligned(64)));
static int32_t dot_b[DOT_N] __attribute__((aligned(64)));

// Sum of a[i]*b[i] over the lanes where a[i] > 0 (32-bit wrap-around).
static uint64_t masked_dot(void) {
  uint64_t s = GUEST_SEED;
  for (int i = 0; i < DOT_N; ++i) {
    dot_a[i] = (int32_t)(xorshift64(&s) % 2001) - 1000;
    dot_b[i] = (int32_t)(xorshift64(&s) % 2001) - 1000;
  }
  const __m512i zero = _mm512_setzero_si512();
  __m512i acc = zero;
  for (int i = 0; i < DOT_N; i += 16) {
    const __m512i a = _mm512_load_si512(dot_a + i);
    const __m512i b = _mm512_load_si512(dot_b + i);
    __mmask16 positive = _mm512_cmpgt_epi32_mask(a, zero);
    REPORT_PROGRESS(acc, positive);
    acc = _mm512_mask_add_epi32(acc, positive, acc, _mm512_mullo_epi32(a, b));
  }
  return (uint32_t)_mm512_reduce_add_epi32(acc);
}

// ---- byte histogram ---------------------------------------------------------------

#define HIST_N 16384
static uint8_t hist_data[HIST_N] __attribute__((aligned(64)));

// Counts of the bytes by high nibble (16 bins), folded into one checksum.
static uint64_t byte_histogram(void) {
  uint64_t s = GUEST_SEED;
  for (int i = 0; i < HIST_N; ++i) hist_data[i] = (uint8_t)(xorshift64(&s) >> 24);
  uint64_t counts[16] = {0};
  const __m512i high_nibble = _mm512_set1_epi8((char)0xf0);
  for (int i = 0; i < HIST_N; i += 64) {
    __m512i v = _mm512_and_si512(_mm512_load_si512(hist_data + i), high_nibble);
    __mmask64 bin0 = _mm512_cmpeq_epi8_mask(v, _mm512_setzero_si512());
    REPORT_PROGRESS(v, bin0);
    counts[0] += (uint64_t)__builtin_popcountll(bin0);
    for (int bin = 1; bin < 16; ++bin)
      counts[bin] += (uint64_t)__builtin_popcountll(
          _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8((char)(bin << 4))));
  }
  uint64_t h = 0;
  for (int bin = 0; bin < 16; ++bin) h = h * 1000003u + counts[bin];
  return h;
}

// ---- prefix sum ------------------------------------------------------------------

#define PREFIX_N 4096
static int32_t prefix_in[PREFIX_N] __attribute__((aligned(64)));
static int32_t prefix_out[PREFIX_N] __attribute__((aligned(64)));

// Inclusive prefix sum, 16 lanes at a time with log-step shifts; returns
// sum(out[i] * (i + 1)).
static uint64_t prefix_sum(void) {
  uint64_t s = GUEST_SEED;
  for (int i = 0; i < PREFIX_N; ++i) prefix_in[i] = (int32_t)(xorshift64(&s) % 100);
  const __m512i zero = _mm512_setzero_si512();
  const __m512i last_lane = _mm512_set1_epi32(15);
  __m512i carry = zero;
  for (int i = 0; i < PREFIX_N; i += 16) {
    __m512i x = _mm512_load_si512(prefix_in + i);
    // alignr(x, 0, 16 - k) moves every lane k places up, filling with zeros.
    x = _mm512_add_epi32(x, _mm512_alignr_epi32(x, zero, 15));
    x = _mm512_add_epi32(x, _mm512_alignr_epi32(x, zero, 14));
    x = _mm512_add_epi32(x, _mm512_alignr_epi32(x, zero, 12));
    x = _mm512_add_epi32(x, _mm512_alignr_epi32(x, zero, 8));
    __mmask16 all_lanes = 0xffff;
    REPORT_PROGRESS(carry, all_lanes);
    x = _mm512_mask_add_epi32(x, all_lanes, x, carry);
    _mm512_store_si512(prefix_out + i, x);
    carry = _mm512_permutexvar_epi32(last_lane, x);
  }
  uint64_t sum = 0;
  for (int i = 0; i < PREFIX_N; ++i) sum += (uint64_t)(uint32_t)prefix_out[i] * (uint64_t)(i + 1);
  return sum;
}

// ---- string search ----------------------------------------------------------------

#define TEXT_N 16384
// 64 zero bytes of padding: the unaligned loads of the last block stay inside.
static char text[TEXT_N + 64] __attribute__((aligned(64)));

// Occurrences (overlapping) of "abca" in a text over "abcd": returns
// count << 32 ^ sum of the match positions.
static uint64_t string_search(void) {
  uint64_t s = GUEST_SEED;
  for (int i = 0; i < TEXT_N; ++i) text[i] = (char)('a' + (xorshift64(&s) >> 30) % 4);
  uint64_t count = 0, positions = 0;
  for (int i = 0; i < TEXT_N; i += 64) {
    __m512i block = _mm512_loadu_si512(text + i);
    __mmask64 m = _mm512_cmpeq_epi8_mask(block, _mm512_set1_epi8('a'));
    REPORT_PROGRESS(block, m);
    m &= _mm512_cmpeq_epi8_mask(_mm512_loadu_si512(text + i + 1), _mm512_set1_epi8('b'));
    m &= _mm512_cmpeq_epi8_mask(_mm512_loadu_si512(text + i + 2), _mm512_set1_epi8('c'));
    m &= _mm512_cmpeq_epi8_mask(_mm512_loadu_si512(text + i + 3), _mm512_set1_epi8('a'));
    while (m) {
      positions += (uint64_t)(i + __builtin_ctzll(m));
      ++count;
      m &= m - 1;
    }
  }
  return count << 32 ^ positions;
}

// ---- hostile probes ----------------------------------------------------------------
// Guest behaviour a VMM must survive: each ends in an exception the guest
// kernel reports, never in a result.

// Executes a genuine ud2, which must reach the guest's own #UD handler.
static void probe_genuine_ud2(void) {
  __asm__ volatile("ud2");
}

// Executes bytes that no x86 CPU decodes (an EVEX prefix whose reserved
// bits are wrong), which must reach the guest as #UD.
static void probe_invalid_bytes(void) {
  __asm__ volatile(".byte 0x62, 0xf3, 0x7c, 0x48, 0x00, 0xc0");
}

// Calls the miss hypercall from outside the dispatcher.
static void probe_stray_hypercall(void) {
  __asm__ volatile("out %%al, %0" ::"i"(GUEST_PORT_MISS), "a"(0));
}

// Jumps into the dispatcher with a forged trap address, as a guest that
// overwrote the user-visible dispatcher variables could.
static void probe_forged_trap(uint64_t saved_rip_gva, uint64_t dispatcher_gva, uint64_t rip) {
  *(volatile uint64_t*)saved_rip_gva = rip;
  __asm__ volatile("jmp *%0" ::"r"(dispatcher_gva));
}

// ---- benchmark loops ----------------------------------------------------------------

static uint64_t bench_avx512_loop(void) {
  for (int i = 0; i < GUEST_BENCH_ITERATIONS; ++i)
    __asm__ volatile("vpaddd %%zmm1, %%zmm1, %%zmm1" ::: "xmm1", "memory");
  return GUEST_BENCH_ITERATIONS;
}

static uint64_t bench_ud2_loop(void) {
  for (int i = 0; i < GUEST_BENCH_ITERATIONS; ++i) __asm__ volatile("ud2" ::: "memory");
  return GUEST_BENCH_ITERATIONS;
}

__attribute__((section(".text.start"), used)) void _start(uint64_t id, uint64_t saved_rip_gva,
                                                          uint64_t dispatcher_gva) {
  switch (id) {
    case GUEST_WORKLOAD_MASKED_DOT:
      guest_exit(masked_dot());
      break;
    case GUEST_WORKLOAD_BYTE_HISTOGRAM:
      guest_exit(byte_histogram());
      break;
    case GUEST_WORKLOAD_PREFIX_SUM:
      guest_exit(prefix_sum());
      break;
    case GUEST_WORKLOAD_STRING_SEARCH:
      guest_exit(string_search());
      break;
    case GUEST_BENCH_AVX512_LOOP:
      guest_exit(bench_avx512_loop());
      break;
    case GUEST_BENCH_UD2_LOOP:
      guest_exit(bench_ud2_loop());
      break;
    case GUEST_PROBE_GENUINE_UD2:
      probe_genuine_ud2();
      break;
    case GUEST_PROBE_INVALID_BYTES:
      probe_invalid_bytes();
      break;
    case GUEST_PROBE_STRAY_HYPERCALL:
      probe_stray_hypercall();
      break;
    default:
      // Forged traps: the id carries the forged address.
      if (id >= GUEST_PROBE_FORGED_TRAP_BASE)
        probe_forged_trap(saved_rip_gva, dispatcher_gva, id - GUEST_PROBE_FORGED_TRAP_BASE);
      break;
  }
  guest_exit(~0ull);
}
